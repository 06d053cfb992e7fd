package credential

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var (
	tdA = spiffeid.RequireTrustDomainFromString("a.example")
	tdB = spiffeid.RequireTrustDomainFromString("b.example")
	tdC = spiffeid.RequireTrustDomainFromString("c.example") // no bundle

	idIssuer = spiffeid.RequireFromPath(tdA, "/writ")
	idAgentA = spiffeid.RequireFromPath(tdA, "/agents/support")
	idAgentB = spiffeid.RequireFromPath(tdB, "/agents/partner")
	idAgentC = spiffeid.RequireFromPath(tdC, "/agents/stranger")
)

// Key ids of the fixture bundles. Trust domain B's bundle also holds
// kidA1, bound to a different key (keyBdup).
const (
	kidA1     = "a-ec-1"
	kidA2     = "a-ec-2" // only in A's bundle
	kidA384   = "a-ec-384"
	kidA521   = "a-ec-521"
	kidARSA   = "a-rsa-1"
	kidAEd    = "a-ed-1"
	kidAHMAC  = "a-hmac" // A's bundle maps it to []byte: the DER of keyA1's public key
	kidB1     = "b-ec-1"
	kidSafe   = "A.b_c-9"
	kidAttack = "attacker-1" // in no bundle
)

// hostileKids are key ids that VerifyJWTSVID must refuse. A's bundle maps
// each of them to keyA1's public key, so that a token signed by keyA1 with
// one of these kids would verify if the kid check were missing.
var hostileKids = map[string]string{
	"kid-path":        "../../etc/passwd",
	"kid-url":         "https://evil.example/jwks.json",
	"kid-colon":       "a:b",
	"kid-slash":       "a/b",
	"kid-nul":         "a\x00b",
	"kid-newline":     "a\nb",
	"kid-space":       "a b",
	"kid-non-ascii":   "schlüssel",
	"kid-129-bytes":   strings.Repeat("k", 129),
	"kid-percent-url": "%2e%2e%2fetc",
}

var kid128 = strings.Repeat("k", 128)

// jwtFixture holds real keys and the JWT bundles of trust domains A and B.
type jwtFixture struct {
	now time.Time

	keyA1, keyA2, keyA384, keyA521, keyB1, keyBdup, keyAttacker *ecdsa.PrivateKey
	keyARSA                                                     *rsa.PrivateKey
	keyAEd                                                      ed25519.PrivateKey
	hmacKey                                                     []byte

	bundles *jwtbundle.Set

	mu sync.Mutex
	// signed holds every signing input (header.payload) signed with a key
	// of a bundle; a token outside it must never be accepted.
	signed map[string]bool
}

var (
	fixtureOnce sync.Once
	fixtureKeys *jwtFixture
)

// newJWTFixture returns a fixture whose clock is now. Its keys are derived
// from fixed labels, so that every process of a fuzzing run (coordinator
// and workers) has the same keys and a seed token signed in one verifies
// in another. Tests that compare with go-spiffe, which reads time.Now,
// pass the wall clock.
func newJWTFixture(t testing.TB, now time.Time) *jwtFixture {
	t.Helper()
	fixtureOnce.Do(func() {
		k := &jwtFixture{
			keyA1: fixedECKey(t, elliptic.P256(), "a-ec-1"), keyA2: fixedECKey(t, elliptic.P256(), "a-ec-2"),
			keyA384: fixedECKey(t, elliptic.P384(), "a-ec-384"), keyA521: fixedECKey(t, elliptic.P521(), "a-ec-521"),
			keyB1: fixedECKey(t, elliptic.P256(), "b-ec-1"), keyBdup: fixedECKey(t, elliptic.P256(), "b-ec-dup"),
			keyAttacker: fixedECKey(t, elliptic.P256(), "attacker"),
			keyARSA:     fixedRSAKey(t, "a-rsa-1"),
			keyAEd:      ed25519.NewKeyFromSeed(derive("a-ed-1", ed25519.SeedSize)),
		}
		var err error
		k.hmacKey, err = x509.MarshalPKIXPublicKey(&k.keyA1.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		fixtureKeys = k
	})
	k := fixtureKeys
	if k == nil {
		t.Fatal("fixture keys: an earlier test failed to derive them")
	}
	fx := &jwtFixture{
		now:   now,
		keyA1: k.keyA1, keyA2: k.keyA2, keyA384: k.keyA384, keyA521: k.keyA521,
		keyB1: k.keyB1, keyBdup: k.keyBdup, keyAttacker: k.keyAttacker,
		keyARSA: k.keyARSA, keyAEd: k.keyAEd, hmacKey: k.hmacKey,
		signed: make(map[string]bool),
	}
	a := map[string]crypto.PublicKey{
		kidA1:   &fx.keyA1.PublicKey,
		kidA2:   &fx.keyA2.PublicKey,
		kidA384: &fx.keyA384.PublicKey,
		kidA521: &fx.keyA521.PublicKey,
		kidARSA: &fx.keyARSA.PublicKey,
		kidAEd:  fx.keyAEd.Public(),
		// A []byte authority: go-jose would use it as an HMAC key.
		kidAHMAC: fx.hmacKey,
		kidSafe:  &fx.keyA1.PublicKey,
		kid128:   &fx.keyA1.PublicKey,
	}
	for _, kid := range hostileKids {
		a[kid] = &fx.keyA1.PublicKey
	}
	b := map[string]crypto.PublicKey{
		kidB1: &fx.keyB1.PublicKey,
		kidA1: &fx.keyBdup.PublicKey, // same kid as A's, different key
	}
	fx.bundles = jwtbundle.NewSet(
		jwtbundle.FromJWTAuthorities(tdA, a),
		jwtbundle.FromJWTAuthorities(tdB, b),
	)
	return fx
}

// cfg returns the default config with the fixture's audience and clock.
func (fx *jwtFixture) cfg() JWTConfig {
	c := DefaultJWTConfig()
	c.Audience = idIssuer
	c.Now = func() time.Time { return fx.now }
	return c
}

// isBundleKey reports whether key is the private half of a bundle key.
func (fx *jwtFixture) isBundleKey(key any) bool {
	switch key {
	case fx.keyA1, fx.keyA2, fx.keyA384, fx.keyA521, fx.keyB1, fx.keyBdup, fx.keyARSA:
		return true
	}
	if k, ok := key.(ed25519.PrivateKey); ok && k.Equal(fx.keyAEd) {
		return true
	}
	if k, ok := key.([]byte); ok && hmac.Equal(k, fx.hmacKey) {
		return true
	}
	return false
}

func (fx *jwtFixture) record(signingInput string, key any) {
	if fx.isBundleKey(key) {
		fx.mu.Lock()
		fx.signed[signingInput] = true
		fx.mu.Unlock()
	}
}

// wasSigned reports whether the signing input of token was signed with a
// bundle key by the fixture.
func (fx *jwtFixture) wasSigned(token string) bool {
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return false
	}
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return fx.signed[token[:i]]
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// rawJSON is inserted into obj output verbatim.
type rawJSON string

// obj builds a JSON object from name/value pairs in order; values are
// marshalled with encoding/json unless they are rawJSON.
func obj(kv ...any) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			sb.WriteByte(',')
		}
		name, _ := json.Marshal(kv[i])
		sb.Write(name)
		sb.WriteByte(':')
		if r, ok := kv[i+1].(rawJSON); ok {
			sb.WriteString(string(r))
			continue
		}
		v, err := json.Marshal(kv[i+1])
		if err != nil {
			panic(err)
		}
		sb.Write(v)
	}
	sb.WriteByte('}')
	return sb.String()
}

// hdr is the usual JWT-SVID header.
func hdr(alg, kid string) string { return obj("alg", alg, "kid", kid, "typ", "JWT") }

// claims returns the JSON of valid claims for idAgentA (iat now-10s, exp
// now+4m) after applying the edits; a nil value deletes the claim.
func (fx *jwtFixture) claims(edits ...any) string {
	m := map[string]any{
		"sub": idAgentA.String(),
		"aud": idIssuer.String(),
		"iat": fx.now.Add(-10 * time.Second).Unix(),
		"exp": fx.now.Add(4 * time.Minute).Unix(),
	}
	for i := 0; i+1 < len(edits); i += 2 {
		name := edits[i].(string)
		if edits[i+1] == nil {
			delete(m, name)
			continue
		}
		m[name] = edits[i+1]
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// sign builds a compact JWS by hand from the header and claims JSON and
// signs it with key for alg ("none" gives an empty signature).
func (fx *jwtFixture) sign(t testing.TB, alg string, key any, header, claims string) string {
	t.Helper()
	input := b64(header) + "." + b64(claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(fx.signInput(t, alg, key, input))
}

// signInput signs the ASCII signing input as JWS alg does.
func (fx *jwtFixture) signInput(t testing.TB, alg string, key any, input string) []byte {
	t.Helper()
	if alg == "none" {
		return nil
	}
	fx.record(input, key)
	var h crypto.Hash
	switch {
	case strings.HasSuffix(alg, "256"):
		h = crypto.SHA256
	case strings.HasSuffix(alg, "384"):
		h = crypto.SHA384
	case strings.HasSuffix(alg, "512"):
		h = crypto.SHA512
	}
	digest := func() []byte {
		d := h.New()
		d.Write([]byte(input))
		return d.Sum(nil)
	}
	var sig []byte
	var err error
	switch {
	case alg == "EdDSA":
		sig = ed25519.Sign(key.(ed25519.PrivateKey), []byte(input))
	case strings.HasPrefix(alg, "ES"):
		k := key.(*ecdsa.PrivateKey)
		r, s, serr := ecdsa.Sign(rand.Reader, k, digest())
		if serr != nil {
			t.Fatal(serr)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		sig = append(r.FillBytes(make([]byte, size)), s.FillBytes(make([]byte, size))...)
	case strings.HasPrefix(alg, "RS"):
		sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), h, digest())
	case strings.HasPrefix(alg, "PS"):
		sig, err = rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), h, digest(),
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case strings.HasPrefix(alg, "HS"):
		m := hmac.New(h.New, key.([]byte))
		m.Write([]byte(input))
		sig = m.Sum(nil)
	default:
		t.Fatalf("sign: unknown alg %q", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// joseSign builds a JWT with go-jose's own signer and jwt builder.
func (fx *jwtFixture) joseSign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, cl any) string {
	t.Helper()
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(cl).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	fx.record(tok[:strings.LastIndexByte(tok, '.')], key)
	return tok
}

// stdClaims are valid go-jose claims for sub.
func (fx *jwtFixture) stdClaims(sub spiffeid.ID) jwt.Claims {
	return jwt.Claims{
		Subject:  sub.String(),
		Audience: jwt.Audience{idIssuer.String()},
		IssuedAt: jwt.NewNumericDate(fx.now.Add(-10 * time.Second)),
		Expiry:   jwt.NewNumericDate(fx.now.Add(4 * time.Minute)),
	}
}

// wallNow is the wall clock truncated to the second, for tests that
// compare with go-spiffe's jwtsvid (which reads time.Now itself).
func wallNow() time.Time { return time.Now().Truncate(time.Second) }

// fuzzNow is the fixed clock of the fuzz targets: seeds made by the
// coordinator stay valid in the workers however long the run.
var fuzzNow = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// derive returns n bytes deterministically derived from label (SHA-256 in
// counter mode). Test keys only.
func derive(label string, n int) []byte {
	var out []byte
	for i := 0; len(out) < n; i++ {
		h := sha256.Sum256([]byte(fmt.Sprintf("writ credential test key %s %d", label, i)))
		out = append(out, h[:]...)
	}
	return out[:n]
}

// fixedECKey derives an ECDSA key from label. Clearing the top bits keeps
// the scalar below the curve order.
func fixedECKey(t testing.TB, c elliptic.Curve, label string) *ecdsa.PrivateKey {
	t.Helper()
	b := derive(label, (c.Params().BitSize+7)/8)
	if c == elliptic.P521() {
		b[0] = 0
	} else {
		b[0] &= 0x7f
	}
	k, err := ecdsa.ParseRawPrivateKey(c, b)
	if err != nil {
		t.Fatalf("derive key %s: %v", label, err)
	}
	return k
}

// fixedRSAKey derives a 2048-bit RSA key from label: each prime is the
// first probable prime at or after a derived 1024-bit odd number with its
// two top bits set.
func fixedRSAKey(t testing.TB, label string) *rsa.PrivateKey {
	t.Helper()
	prime := func(l string) *big.Int {
		b := derive(l, 128)
		b[0] |= 0xc0
		b[127] |= 1
		p := new(big.Int).SetBytes(b)
		for !p.ProbablyPrime(20) {
			p.Add(p, big.NewInt(2))
		}
		return p
	}
	e := big.NewInt(65537)
	one := big.NewInt(1)
	for i := 0; ; i++ {
		p, q := prime(fmt.Sprintf("%s p %d", label, i)), prime(fmt.Sprintf("%s q %d", label, i))
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(e, phi)
		if d == nil || p.Cmp(q) == 0 {
			continue
		}
		k := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537},
			D:         d,
			Primes:    []*big.Int{p, q},
		}
		k.Precompute()
		if err := k.Validate(); err != nil {
			t.Fatalf("derive key %s: %v", label, err)
		}
		return k
	}
}
