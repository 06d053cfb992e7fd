package credential

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"

	"github.com/writ-dev/writ/internal/pki"
)

type jwtCase struct {
	name   string
	token  string
	cfg    func(*JWTConfig) // optional change of the fixture config
	want   error            // nil: accepted
	wantID spiffeid.ID      // for accepted cases; zero means idAgentA
}

// jwtCases builds the table. Every refused case except the shape cases is
// a real token signed with a bundle key whose only defect is the one
// named, so that it would be accepted (or refused for another reason) if
// the check under test were missing.
func jwtCases(t testing.TB, fx *jwtFixture) []jwtCase {
	t.Helper()
	now := fx.now
	es := func(header, claims string) string { return fx.sign(t, "ES256", fx.keyA1, header, claims) }
	good := es(hdr("ES256", kidA1), fx.claims())
	sec := func(d time.Duration) int64 { return now.Add(d).Unix() }
	seg := strings.Split(good, ".")

	// A JWE that wraps a valid JWT-SVID (key "dir", A128GCM).
	enc, err := jose.NewEncrypter(jose.A128GCM, jose.Recipient{Algorithm: jose.DIRECT, Key: make([]byte, 16)},
		(&jose.EncrypterOptions{}).WithContentType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	jweObj, err := enc.Encrypt([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	jwe, err := jweObj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}

	// The same valid claims as a JSON-serialized JWS, signed by keyA1.
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: fx.keyA1, KeyID: kidA1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jsonObj, err := signer.Sign([]byte(fx.claims()))
	if err != nil {
		t.Fatal(err)
	}
	jsonJWS := jsonObj.FullSerialize()

	// An attacker key embedded as jwk.
	attackerJWK, err := jose.JSONWebKey{Key: &fx.keyAttacker.PublicKey}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}

	// A real certificate for x5c: an SVID of A whose key signs the token.
	ca, err := pki.NewCA(tdA, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := ca.IssueSVID(idAgentA, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	x5c := []string{base64.StdEncoding.EncodeToString(svid.Certificates[0].Raw)}
	svidKey := svid.PrivateKey

	// Header with a non-canonical last base64url character: the decoded
	// bytes are the same for a lenient decoder, the string is different.
	nonCanon := func() string {
		h := hdr("ES256", kidA1)
		for len(h)%3 != 1 {
			h = h[:len(h)-1] + " }"
		}
		eh := b64(h)
		last := eh[len(eh)-1]
		alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		i := strings.IndexByte(alphabet, last)
		eh = eh[:len(eh)-1] + string(alphabet[i|1])
		input := eh + "." + b64(fx.claims())
		return input + "." + base64.RawURLEncoding.EncodeToString(fx.signInput(t, "ES256", fx.keyA1, input))
	}()

	flip := func(tok string) string {
		i := strings.LastIndexByte(tok, '.')
		sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
		if err != nil {
			t.Fatal(err)
		}
		sig[len(sig)/2] ^= 1
		return tok[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
	}
	otherSig := es(hdr("ES256", kidA1), fx.claims("sub", "spiffe://a.example/agents/other"))

	manyClaims := map[string]any{"sub": idAgentA.String(), "aud": idIssuer.String(), "exp": sec(4 * time.Minute)}
	for i := len(manyClaims); i <= MaxClaims; i++ {
		manyClaims[fmt.Sprintf("x%02d", i)] = i
	}
	manyClaimsJSON, _ := json.Marshal(manyClaims)

	cases := []jwtCase{
		// Accepted.
		{name: "ok/es256", token: good},
		{name: "ok/es256-go-jose", token: fx.joseSign(t, jose.ES256, fx.keyA1, kidA1, fx.stdClaims(idAgentA))},
		{name: "ok/es384-go-jose", token: fx.joseSign(t, jose.ES384, fx.keyA384, kidA384, fx.stdClaims(idAgentA))},
		{name: "ok/es512", token: fx.sign(t, "ES512", fx.keyA521, hdr("ES512", kidA521), fx.claims())},
		{name: "ok/rs256-go-jose", token: fx.joseSign(t, jose.RS256, fx.keyARSA, kidARSA, fx.stdClaims(idAgentA))},
		{name: "ok/rs512", token: fx.sign(t, "RS512", fx.keyARSA, hdr("RS512", kidARSA), fx.claims())},
		{name: "ok/ps256-go-jose", token: fx.joseSign(t, jose.PS256, fx.keyARSA, kidARSA, fx.stdClaims(idAgentA))},
		{name: "ok/ps384", token: fx.sign(t, "PS384", fx.keyARSA, hdr("PS384", kidARSA), fx.claims())},
		{name: "ok/trust-domain-b", token: fx.sign(t, "ES256", fx.keyB1, hdr("ES256", kidB1), fx.claims("sub", idAgentB.String())), wantID: idAgentB},
		{name: "ok/trust-domain-b-kid-shared-with-a", token: fx.sign(t, "ES256", fx.keyBdup, hdr("ES256", kidA1), fx.claims("sub", idAgentB.String())), wantID: idAgentB},
		{name: "ok/typ-jose", token: es(obj("alg", "ES256", "kid", kidA1, "typ", "JOSE"), fx.claims())},
		{name: "ok/typ-absent", token: es(obj("kid", kidA1, "alg", "ES256"), fx.claims())},
		{name: "ok/header-whitespace", token: es(" {\"alg\" : \"ES256\",\n\"kid\":\"a-ec-1\"} ", fx.claims())},
		{name: "ok/kid-safe-charset", token: es(hdr("ES256", kidSafe), fx.claims())},
		{name: "ok/kid-128-bytes", token: es(hdr("ES256", kid128), fx.claims())},
		{name: "ok/aud-array-single", token: es(hdr("ES256", kidA1), fx.claims("aud", []string{idIssuer.String()}))},
		{name: "ok/extra-claims", token: es(hdr("ES256", kidA1), fx.claims("jti", "x", "iss", "spiffe://a.example", "nested", map[string]any{"a": []int{1}}))},
		{name: "ok/claims-whitespace", token: es(hdr("ES256", kidA1), fmt.Sprintf("{ \"sub\" : %q ,\n \"aud\" : [ %q ] , \"iat\" : %d , \"exp\" :\t%d }",
			idAgentA, idIssuer, sec(-10*time.Second), sec(4*time.Minute)))},
		{name: "ok/iat-absent", token: es(hdr("ES256", kidA1), fx.claims("iat", nil))},
		{name: "ok/nbf-past", token: es(hdr("ES256", kidA1), fx.claims("nbf", sec(-10*time.Second)))},
		{name: "ok/expired-within-leeway", token: es(hdr("ES256", kidA1), fx.claims("iat", sec(-3*time.Minute), "exp", sec(-29*time.Second)))},
		{name: "ok/expired-at-leeway", token: es(hdr("ES256", kidA1), fx.claims("iat", sec(-3*time.Minute), "exp", sec(-30*time.Second)))},
		{name: "ok/nbf-future-within-leeway", token: es(hdr("ES256", kidA1), fx.claims("nbf", sec(29*time.Second)))},
		{name: "ok/iat-future-within-leeway", token: es(hdr("ES256", kidA1), fx.claims("iat", sec(29*time.Second), "exp", sec(3*time.Minute)))},
		{name: "ok/lifetime-at-max", token: es(hdr("ES256", kidA1), fx.claims("iat", sec(-10*time.Second), "exp", sec(-10*time.Second+DefaultMaxLifetime)))},
		{name: "ok/algorithms-narrowed", token: good, cfg: func(c *JWTConfig) { c.Algorithms = []jose.SignatureAlgorithm{jose.ES256} }},

		// Shape, checked before anything is decoded.
		{name: "fail/empty", token: "", want: ErrMalformed},
		{name: "fail/garbage-64KiB", token: strings.Repeat("A", 64<<10), want: ErrTooLarge},
		{name: "fail/token-over-8KiB", token: es(hdr("ES256", kidA1), fx.claims("pad", strings.Repeat("p", MaxTokenBytes))), want: ErrTooLarge},
		{name: "fail/header-over-1KiB", token: es(obj("alg", "ES256", "kid", kidA1, "typ", "JWT", "pad", strings.Repeat("p", MaxHeaderBytes)), fx.claims()), want: ErrTooLarge},
		{name: "fail/signature-over-1KiB", token: seg[0] + "." + seg[1] + "." + strings.Repeat("A", 1400), want: ErrTooLarge},
		{name: "fail/one-segment", token: seg[0], want: ErrMalformed},
		{name: "fail/two-segments", token: seg[0] + "." + seg[1], want: ErrMalformed},
		{name: "fail/four-segments", token: good + "." + seg[2], want: ErrMalformed},
		{name: "fail/six-segments", token: good + "." + seg[2] + "." + seg[2] + "." + seg[2], want: ErrMalformed},
		{name: "fail/jwe", token: jwe, want: ErrEncrypted},
		{name: "fail/json-serialization", token: jsonJWS, want: ErrMalformed},
		{name: "fail/json-serialization-leading-space", token: " " + jsonJWS, want: ErrMalformed},
		{name: "fail/padding", token: seg[0] + "=." + seg[1] + "." + seg[2], want: ErrMalformed},
		{name: "fail/leading-space", token: " " + good, want: ErrMalformed},
		{name: "fail/trailing-newline", token: good + "\n", want: ErrMalformed},
		{name: "fail/inner-whitespace", token: seg[0][:5] + " " + seg[0][5:] + "." + seg[1] + "." + seg[2], want: ErrMalformed},
		{name: "fail/std-base64-alphabet", token: strings.ReplaceAll(strings.ReplaceAll(good, "-", "+"), "_", "/") + "+/", want: ErrMalformed},
		{name: "fail/non-canonical-base64", token: nonCanon, want: ErrMalformed},
		{name: "fail/header-empty", token: "." + seg[1] + "." + seg[2], want: ErrMalformed},
		{name: "fail/payload-empty-detached", token: seg[0] + ".." + seg[2], want: ErrMalformed},
		{name: "fail/header-not-base64-json", token: b64("garbage") + "." + seg[1] + "." + seg[2], want: ErrMalformed},

		// Header.
		{name: "fail/header-array", token: es(`[{"alg":"ES256","kid":"a-ec-1"}]`, fx.claims()), want: ErrMalformed},
		{name: "fail/header-trailing-object", token: es(hdr("ES256", kidA1)+"{}", fx.claims()), want: ErrMalformed},
		{name: "fail/header-invalid-utf8", token: es(`{"alg":"ES256","kid":"a-ec-1","typ":"JWT`+"\xff"+`"}`, fx.claims()), want: ErrMalformed},
		{name: "fail/header-duplicate-alg", token: es(`{"alg":"none","alg":"ES256","kid":"a-ec-1"}`, fx.claims()), want: ErrMalformed},
		{name: "fail/header-duplicate-kid", token: es(`{"alg":"ES256","kid":"a-ec-2","kid":"a-ec-1"}`, fx.claims()), want: ErrMalformed},
		{name: "fail/header-case-variant-alg", token: es(`{"ALG":"none","alg":"ES256","kid":"a-ec-1"}`, fx.claims()), want: ErrHeader},
		{name: "fail/alg-none", token: fx.sign(t, "none", nil, hdr("none", kidA1), fx.claims()), want: ErrAlgorithm},
		{name: "fail/alg-none-with-signature", token: fx.sign(t, "none", nil, hdr("none", kidA1), fx.claims()) + seg[2], want: ErrAlgorithm},
		{name: "fail/alg-missing", token: es(obj("kid", kidA1), fx.claims()), want: ErrAlgorithm},
		{name: "fail/alg-null", token: es(obj("alg", nil, "kid", kidA1), fx.claims()), want: ErrAlgorithm},
		{name: "fail/alg-number", token: es(obj("alg", 256, "kid", kidA1), fx.claims()), want: ErrAlgorithm},
		{name: "fail/alg-lowercase", token: es(hdr("es256", kidA1), fx.claims()), want: ErrAlgorithm},
		{name: "fail/hs256-keyed-with-bundle-public-key", token: fx.sign(t, "HS256", fx.hmacKey, hdr("HS256", kidA1), fx.claims()), want: ErrAlgorithm},
		{name: "fail/hs256-keyed-with-bundle-bytes-authority", token: fx.sign(t, "HS256", fx.hmacKey, hdr("HS256", kidAHMAC), fx.claims()), want: ErrAlgorithm},
		{name: "fail/hs512", token: fx.sign(t, "HS512", fx.hmacKey, hdr("HS512", kidAHMAC), fx.claims()), want: ErrAlgorithm},
		{name: "fail/eddsa-bundle-key", token: fx.sign(t, "EdDSA", fx.keyAEd, hdr("EdDSA", kidAEd), fx.claims()), want: ErrAlgorithm},
		{name: "fail/alg-not-in-config-allowlist", token: fx.sign(t, "RS256", fx.keyARSA, hdr("RS256", kidARSA), fx.claims()),
			cfg: func(c *JWTConfig) { c.Algorithms = []jose.SignatureAlgorithm{jose.ES256} }, want: ErrAlgorithm},
		{name: "fail/crit", token: es(obj("alg", "ES256", "kid", kidA1, "crit", []string{"exp"}), fx.claims()), want: ErrHeader},
		{name: "fail/crit-with-its-parameter", token: es(obj("alg", "ES256", "kid", kidA1, "crit", []string{"exp"}, "exp", 1), fx.claims()), want: ErrHeader},
		{name: "fail/crit-empty", token: es(obj("alg", "ES256", "kid", kidA1, "crit", []string{}), fx.claims()), want: ErrHeader},
		{name: "fail/typ-wrong", token: es(obj("alg", "ES256", "kid", kidA1, "typ", "at+jwt"), fx.claims()), want: ErrHeader},
		{name: "fail/typ-lowercase", token: es(obj("alg", "ES256", "kid", kidA1, "typ", "jwt"), fx.claims()), want: ErrHeader},
		{name: "fail/typ-number", token: es(obj("alg", "ES256", "kid", kidA1, "typ", 1), fx.claims()), want: ErrHeader},
		{name: "fail/cty-nested-jwt", token: es(obj("alg", "ES256", "kid", kidA1, "cty", "JWT"), fx.claims()), want: ErrHeader},
		{name: "fail/unknown-header", token: es(obj("alg", "ES256", "kid", kidA1, "foo", "bar"), fx.claims()), want: ErrHeader},
		{name: "fail/b64-false", token: es(obj("alg", "ES256", "kid", kidA1, "b64", false, "crit", []string{"b64"}), fx.claims()), want: ErrHeader},
		{name: "fail/jwk-header-key-substitution", token: fx.sign(t, "ES256", fx.keyAttacker,
			obj("alg", "ES256", "kid", kidAttack, "jwk", rawJSON(attackerJWK)), fx.claims()), want: ErrHeader},
		{name: "fail/jwk-header-key-substitution-bundle-kid", token: fx.sign(t, "ES256", fx.keyAttacker,
			obj("alg", "ES256", "kid", kidA1, "jwk", rawJSON(attackerJWK)), fx.claims()), want: ErrHeader},
		{name: "fail/jwk-header-matching-bundle-key", token: es(
			obj("alg", "ES256", "kid", kidA1, "jwk", rawJSON(mustJWK(t, &fx.keyA1.PublicKey))), fx.claims()), want: ErrHeader},
		{name: "fail/x5c-header", token: fx.sign(t, "ES256", svidKey, obj("alg", "ES256", "kid", kidA1, "x5c", x5c), fx.claims()), want: ErrHeader},
		{name: "fail/x5c-header-signed-by-bundle-key", token: es(obj("alg", "ES256", "kid", kidA1, "x5c", x5c), fx.claims()), want: ErrHeader},

		// Key id.
		{name: "fail/kid-missing", token: es(obj("alg", "ES256", "typ", "JWT"), fx.claims()), want: ErrKeyID},
		{name: "fail/kid-empty", token: es(hdr("ES256", ""), fx.claims()), want: ErrKeyID},
		{name: "fail/kid-null", token: es(obj("alg", "ES256", "kid", nil), fx.claims()), want: ErrKeyID},
		{name: "fail/kid-number", token: es(obj("alg", "ES256", "kid", 1), fx.claims()), want: ErrKeyID},
		{name: "fail/kid-64KiB", token: es(hdr("ES256", strings.Repeat("k", 64<<10)), fx.claims()), want: ErrTooLarge},
		{name: "fail/kid-700-bytes-in-1KiB-header", token: es(hdr("ES256", strings.Repeat("k", 700)), fx.claims()), want: ErrKeyID},

		// Subject.
		{name: "fail/sub-missing", token: es(hdr("ES256", kidA1), fx.claims("sub", nil)), want: ErrSubject},
		{name: "fail/sub-null", token: es(hdr("ES256", kidA1), strings.Replace(fx.claims(), `"sub":"`+idAgentA.String()+`"`, `"sub":null`, 1)), want: ErrSubject},
		{name: "fail/sub-number", token: es(hdr("ES256", kidA1), fx.claims("sub", 7)), want: ErrSubject},
		{name: "fail/sub-not-spiffe", token: es(hdr("ES256", kidA1), fx.claims("sub", "agents/support")), want: ErrSubject},
		{name: "fail/sub-https", token: es(hdr("ES256", kidA1), fx.claims("sub", "https://a.example/agents/support")), want: ErrSubject},
		{name: "fail/sub-trust-domain-only", token: es(hdr("ES256", kidA1), fx.claims("sub", "spiffe://a.example")), want: ErrSubject},
		{name: "fail/sub-uppercase-trust-domain", token: es(hdr("ES256", kidA1), fx.claims("sub", "spiffe://A.example/agents/support")), want: ErrSubject},
		{name: "fail/sub-dot-segment", token: es(hdr("ES256", kidA1), fx.claims("sub", "spiffe://a.example/agents/../admin")), want: ErrSubject},
		{name: "fail/claims-duplicate-sub", token: es(hdr("ES256", kidA1),
			`{"sub":"spiffe://b.example/agents/partner","sub":"spiffe://a.example/agents/support","aud":"spiffe://a.example/writ","exp":`+fmt.Sprint(sec(4*time.Minute))+`}`), want: ErrMalformed},
		{name: "fail/jti-number", token: es(hdr("ES256", kidA1), fx.claims("jti", 1)), want: ErrMalformed},
		{name: "fail/iss-object", token: es(hdr("ES256", kidA1), fx.claims("iss", map[string]string{"a": "b"})), want: ErrMalformed},
		{name: "fail/claims-case-variant-sub", token: es(hdr("ES256", kidA1), fx.claims("SUB", idAgentB.String(), "sub", nil)), want: ErrSubject},
		{name: "fail/claims-array", token: es(hdr("ES256", kidA1), `["sub"]`), want: ErrMalformed},
		{name: "fail/claims-too-many", token: es(hdr("ES256", kidA1), string(manyClaimsJSON)), want: ErrMalformed},

		// Audience.
		{name: "fail/aud-missing", token: es(hdr("ES256", kidA1), fx.claims("aud", nil)), want: ErrAudience},
		{name: "fail/aud-wrong", token: es(hdr("ES256", kidA1), fx.claims("aud", "spiffe://a.example/other")), want: ErrAudience},
		{name: "fail/aud-prefix", token: es(hdr("ES256", kidA1), fx.claims("aud", "spiffe://a.example/wri")), want: ErrAudience},
		{name: "fail/aud-other-trust-domain", token: es(hdr("ES256", kidA1), fx.claims("aud", "spiffe://b.example/writ")), want: ErrAudience},
		{name: "fail/aud-multiple", token: es(hdr("ES256", kidA1), fx.claims("aud", []string{idIssuer.String(), "spiffe://a.example/other"})), want: ErrAudience},
		{name: "fail/aud-multiple-same", token: es(hdr("ES256", kidA1), fx.claims("aud", []string{idIssuer.String(), idIssuer.String()})), want: ErrAudience},
		{name: "fail/aud-empty-array", token: es(hdr("ES256", kidA1), fx.claims("aud", []string{})), want: ErrAudience},
		{name: "fail/aud-empty-string", token: es(hdr("ES256", kidA1), fx.claims("aud", "")), want: ErrAudience},
		{name: "fail/aud-number", token: es(hdr("ES256", kidA1), fx.claims("aud", 1)), want: ErrAudience},
		{name: "fail/aud-array-of-number", token: es(hdr("ES256", kidA1), fx.claims("aud", []int{1})), want: ErrAudience},
		{name: "fail/aud-null", token: es(hdr("ES256", kidA1), strings.Replace(fx.claims(), `"aud":"`+idIssuer.String()+`"`, `"aud":null`, 1)), want: ErrAudience},

		// Time and lifetime.
		{name: "fail/exp-missing", token: es(hdr("ES256", kidA1), fx.claims("exp", nil)), want: ErrLifetime},
		{name: "fail/exp-string", token: es(hdr("ES256", kidA1), fx.claims("exp", fmt.Sprint(sec(4*time.Minute)))), want: ErrMalformed},
		{name: "fail/exp-fraction", token: es(hdr("ES256", kidA1), fx.claims("exp", rawNumber(fmt.Sprintf("%d.5", sec(4*time.Minute))))), want: ErrMalformed},
		{name: "fail/exp-exponent", token: es(hdr("ES256", kidA1), fx.claims("exp", rawNumber("1.9e9"))), want: ErrMalformed},
		{name: "fail/exp-negative", token: es(hdr("ES256", kidA1), fx.claims("exp", -1)), want: ErrMalformed},
		{name: "fail/exp-year-10000", token: es(hdr("ES256", kidA1), fx.claims("exp", int64(maxNumericDate+1))), want: ErrMalformed},
		{name: "fail/iat-string", token: es(hdr("ES256", kidA1), fx.claims("iat", "yesterday")), want: ErrMalformed},
		{name: "fail/expired-beyond-leeway", token: es(hdr("ES256", kidA1), fx.claims("iat", sec(-3*time.Minute), "exp", sec(-31*time.Second))), want: ErrExpired},
		{name: "fail/expired-long-ago", token: es(hdr("ES256", kidA1), fx.claims("iat", sec(-25*time.Hour), "exp", sec(-24*time.Hour))), want: ErrExpired},
		{name: "fail/expired-zero-leeway", token: es(hdr("ES256", kidA1), fx.claims("iat", sec(-3*time.Minute), "exp", sec(-1*time.Second))),
			cfg: func(c *JWTConfig) { c.Leeway = 0 }, want: ErrExpired},
		{name: "fail/nbf-future", token: es(hdr("ES256", kidA1), fx.claims("nbf", sec(31*time.Second))), want: ErrNotYetValid},
		{name: "fail/iat-future", token: es(hdr("ES256", kidA1), fx.claims("iat", sec(31*time.Second))), want: ErrNotYetValid},
		{name: "fail/lifetime-over-max", token: es(hdr("ES256", kidA1), fx.claims("iat", sec(-10*time.Second), "exp", sec(-9*time.Second+DefaultMaxLifetime))), want: ErrLifetime},
		{name: "fail/lifetime-one-day", token: es(hdr("ES256", kidA1), fx.claims("iat", sec(-10*time.Second), "exp", sec(24*time.Hour))), want: ErrLifetime},
		{name: "fail/lifetime-no-iat-measured-from-now", token: es(hdr("ES256", kidA1), fx.claims("iat", nil, "exp", sec(DefaultMaxLifetime+time.Second))), want: ErrLifetime},
		{name: "fail/lifetime-nbf-backdated", token: es(hdr("ES256", kidA1), fx.claims("iat", sec(0), "nbf", sec(-time.Hour), "exp", sec(4*time.Minute))), want: ErrLifetime},
		{name: "fail/lifetime-iat-backdated", token: es(hdr("ES256", kidA1), fx.claims("iat", sec(-time.Hour), "exp", sec(4*time.Minute))), want: ErrLifetime},
		{name: "fail/exp-before-iat", token: es(hdr("ES256", kidA1), fx.claims("iat", sec(-10*time.Second), "exp", sec(-20*time.Second))), want: ErrLifetime},
		{name: "fail/exp-equals-iat", token: es(hdr("ES256", kidA1), fx.claims("iat", sec(-10*time.Second), "exp", sec(-10*time.Second))), want: ErrLifetime},
		{name: "fail/lifetime-over-narrowed-max", token: good, cfg: func(c *JWTConfig) { c.MaxLifetime = time.Minute }, want: ErrLifetime},

		// Signature and key selection.
		{name: "fail/signature-flipped-bit", token: flip(good), want: ErrSignature},
		{name: "fail/signature-empty", token: seg[0] + "." + seg[1] + ".", want: ErrSignature},
		{name: "fail/signature-truncated", token: seg[0] + "." + seg[1] + "." + seg[2][:40], want: ErrSignature},
		{name: "fail/signature-from-other-token", token: seg[0] + "." + seg[1] + "." + strings.Split(otherSig, ".")[2], want: ErrSignature},
		{name: "fail/kid-unknown", token: es(hdr("ES256", kidAttack), fx.claims()), want: ErrSignature},
		{name: "fail/attacker-key-with-bundle-kid", token: fx.sign(t, "ES256", fx.keyAttacker, hdr("ES256", kidA1), fx.claims()), want: ErrSignature},
		{name: "fail/no-bundle-for-trust-domain", token: es(hdr("ES256", kidA1), fx.claims("sub", idAgentC.String())), want: ErrSignature},
		{name: "fail/cross-trust-domain", token: fx.sign(t, "ES256", fx.keyA2, hdr("ES256", kidA2), fx.claims("sub", idAgentB.String())), want: ErrSignature},
		{name: "fail/cross-trust-domain-same-kid", token: fx.sign(t, "ES256", fx.keyA1, hdr("ES256", kidA1), fx.claims("sub", idAgentB.String())), want: ErrSignature},
		{name: "fail/alg-rs256-on-ec-key", token: fx.sign(t, "RS256", fx.keyARSA, hdr("RS256", kidA1), fx.claims()), want: ErrSignature},
		{name: "fail/alg-es256-on-rsa-key", token: es(hdr("ES256", kidARSA), fx.claims()), want: ErrSignature},
		{name: "fail/alg-es384-on-p256-key", token: fx.sign(t, "ES384", fx.keyA384, hdr("ES384", kidA1), fx.claims()), want: ErrSignature},
		{name: "fail/alg-ps256-signed-as-rs256", token: func() string {
			tok := fx.sign(t, "RS256", fx.keyARSA, hdr("RS256", kidARSA), fx.claims())
			i := strings.LastIndexByte(tok, '.')
			return b64(hdr("PS256", kidARSA)) + "." + strings.Split(tok, ".")[1] + tok[i:]
		}(), want: ErrSignature},
	}
	names := make([]string, 0, len(hostileKids))
	for name := range hostileKids {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cases = append(cases, jwtCase{name: "fail/" + name, token: es(hdr("ES256", hostileKids[name]), fx.claims()), want: ErrKeyID})
	}
	return cases
}

type rawNumber string

func (n rawNumber) MarshalJSON() ([]byte, error) { return []byte(n), nil }

func mustJWK(t testing.TB, key any) []byte {
	t.Helper()
	b, err := jose.JSONWebKey{Key: key}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkNoLeak fails t if msg contains the token or one of its segments.
func checkNoLeak(t testing.TB, msg, token string) {
	t.Helper()
	if len(token) >= 16 && strings.Contains(msg, token) {
		t.Errorf("error message contains the token")
	}
	for _, s := range strings.Split(token, ".") {
		if len(s) >= 16 && strings.Contains(msg, s) {
			t.Errorf("error message contains a token segment")
		}
	}
}

func TestVerifyJWTSVID(t *testing.T) {
	fx := newJWTFixture(t, wallNow())
	seen := map[string]bool{}
	for _, c := range jwtCases(t, fx) {
		if seen[c.name] {
			t.Fatalf("duplicate case %q", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			cfg := fx.cfg()
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			svid, err := VerifyJWTSVID(c.token, fx.bundles, cfg)
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("got error %v, want %v", err, c.want)
				}
				if svid != nil {
					t.Errorf("got SVID %v with error, want nil", svid.ID)
				}
				checkOneSentinel(t, err)
				checkNoLeak(t, err.Error(), c.token)
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			wantID := c.wantID
			if wantID.IsZero() {
				wantID = idAgentA
			}
			if svid.ID != wantID {
				t.Errorf("got ID %v, want %v", svid.ID, wantID)
			}
			if len(svid.Audience) != 1 || svid.Audience[0] != idIssuer.String() {
				t.Errorf("got audience %q, want [%q]", svid.Audience, idIssuer)
			}
			if !fx.wasSigned(c.token) {
				t.Errorf("accepted a token whose signing input no bundle key signed")
			}
			// Differential: go-spiffe must accept whatever we accept (the
			// fixture clock is the wall clock and our leeway is smaller).
			ref, err := jwtsvid.ParseAndValidate(c.token, fx.bundles, []string{idIssuer.String()})
			if err != nil {
				t.Fatalf("go-spiffe ParseAndValidate refused a token we accept: %v", err)
			}
			if ref.ID != svid.ID || !ref.Expiry.Equal(svid.Expiry) {
				t.Errorf("got ID %v expiry %v, go-spiffe says %v %v", svid.ID, svid.Expiry, ref.ID, ref.Expiry)
			}
		})
	}
}

// TestVerifyJWTSVIDNeverFetches shows that jku and x5u are refused and
// never dereferenced: a live server counts requests.
func TestVerifyJWTSVIDNeverFetches(t *testing.T) {
	fx := newJWTFixture(t, wallNow())
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"keys":[%s]}`, mustJWK(t, &fx.keyAttacker.PublicKey))
	}))
	defer srv.Close()
	for _, c := range []struct{ name, param string }{{"fail/jku", "jku"}, {"fail/x5u", "x5u"}} {
		t.Run(c.name, func(t *testing.T) {
			for _, key := range []any{fx.keyAttacker, fx.keyA1} {
				tok := fx.sign(t, "ES256", key, obj("alg", "ES256", "kid", kidA1, c.param, srv.URL+"/keys"), fx.claims())
				_, err := VerifyJWTSVID(tok, fx.bundles, fx.cfg())
				if !errors.Is(err, ErrHeader) {
					t.Errorf("got error %v, want %v", err, ErrHeader)
				}
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("got %d requests to the key URL, want 0", n)
	}
}

// TestVerifyJWTSVIDInjectedClock shows that cfg.Now is the only clock:
// a token valid two hours from now is accepted at that injected time, and
// refused now. go-spiffe's ParseAndValidate, which reads time.Now, refuses
// it: if that ever changes, revisit the note in VerifyJWTSVID's doc.
func TestVerifyJWTSVIDInjectedClock(t *testing.T) {
	fx := newJWTFixture(t, wallNow())
	later := fx.now.Add(2 * time.Hour)
	tok := fx.sign(t, "ES256", fx.keyA1, hdr("ES256", kidA1),
		fx.claims("iat", later.Add(-10*time.Second).Unix(), "exp", later.Add(4*time.Minute).Unix()))

	cfg := fx.cfg()
	cfg.Now = func() time.Time { return later }
	if _, err := VerifyJWTSVID(tok, fx.bundles, cfg); err != nil {
		t.Errorf("at injected time: got error %v, want nil", err)
	}
	if _, err := VerifyJWTSVID(tok, fx.bundles, fx.cfg()); !errors.Is(err, ErrNotYetValid) {
		t.Errorf("now: got error %v, want %v", err, ErrNotYetValid)
	}
	if _, err := jwtsvid.ParseAndValidate(tok, fx.bundles, []string{idIssuer.String()}); err == nil {
		t.Errorf("go-spiffe ParseAndValidate accepted a token not valid at wall-clock time; it may now honour an injected clock")
	}

	// And the other way: a token that expired at the injected time is
	// refused even though it is valid by the wall clock.
	cfg.Now = func() time.Time { return fx.now.Add(time.Hour) }
	good := fx.sign(t, "ES256", fx.keyA1, hdr("ES256", kidA1), fx.claims())
	if _, err := VerifyJWTSVID(good, fx.bundles, cfg); !errors.Is(err, ErrExpired) {
		t.Errorf("an hour later: got error %v, want %v", err, ErrExpired)
	}
}

func TestVerifyJWTSVIDResult(t *testing.T) {
	fx := newJWTFixture(t, wallNow())
	tok := fx.sign(t, "ES256", fx.keyA1, hdr("ES256", kidA1), fx.claims("jti", "abc"))
	svid, err := VerifyJWTSVID(tok, fx.bundles, fx.cfg())
	if err != nil {
		t.Fatalf("got error %v, want nil", err)
	}
	if want := fx.now.Add(4 * time.Minute).UTC(); !svid.Expiry.Equal(want) || svid.Expiry.Location() != time.UTC {
		t.Errorf("got expiry %v, want %v UTC", svid.Expiry, want)
	}
	if got := svid.Claims["jti"]; got != "abc" {
		t.Errorf("got claim jti %v, want %q", got, "abc")
	}
	if got := svid.Claims["sub"]; got != idAgentA.String() {
		t.Errorf("got claim sub %v, want %q", got, idAgentA)
	}
	if got := svid.Marshal(); got != "" {
		t.Errorf("got Marshal() of %d bytes, want empty: the token is not kept", len(got))
	}
}

func TestVerifyJWTSVIDInvalidConfig(t *testing.T) {
	fx := newJWTFixture(t, wallNow())
	tok := fx.sign(t, "ES256", fx.keyA1, hdr("ES256", kidA1), fx.claims())
	if _, err := VerifyJWTSVID(tok, fx.bundles, JWTConfig{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("zero config: got error %v, want %v", err, ErrInvalidConfig)
	}
	if _, err := VerifyJWTSVID(tok, nil, fx.cfg()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil bundles: got error %v, want %v", err, ErrInvalidConfig)
	}
}

func TestJWTConfigValidate(t *testing.T) {
	base := func() JWTConfig {
		c := DefaultJWTConfig()
		c.Audience = idIssuer
		return c
	}
	for _, c := range []struct {
		name string
		edit func(*JWTConfig)
		ok   bool
	}{
		{"ok/default-with-audience", func(*JWTConfig) {}, true},
		{"ok/leeway-zero", func(c *JWTConfig) { c.Leeway = 0 }, true},
		{"ok/leeway-max", func(c *JWTConfig) { c.Leeway = MaxLeeway }, true},
		{"ok/lifetime-max", func(c *JWTConfig) { c.MaxLifetime = MaxMaxLifetime }, true},
		{"ok/one-algorithm", func(c *JWTConfig) { c.Algorithms = []jose.SignatureAlgorithm{jose.PS512} }, true},
		{"fail/default-without-audience", func(c *JWTConfig) { c.Audience = spiffeid.ID{} }, false},
		{"fail/lifetime-zero", func(c *JWTConfig) { c.MaxLifetime = 0 }, false},
		{"fail/lifetime-negative", func(c *JWTConfig) { c.MaxLifetime = -time.Second }, false},
		{"fail/lifetime-over-limit", func(c *JWTConfig) { c.MaxLifetime = MaxMaxLifetime + time.Second }, false},
		{"fail/leeway-negative", func(c *JWTConfig) { c.Leeway = -time.Second }, false},
		{"fail/leeway-over-limit", func(c *JWTConfig) { c.Leeway = MaxLeeway + time.Second }, false},
		{"fail/algorithms-empty", func(c *JWTConfig) { c.Algorithms = nil }, false},
		{"fail/algorithm-hs256", func(c *JWTConfig) { c.Algorithms = append(c.Algorithms, jose.HS256) }, false},
		{"fail/algorithm-none", func(c *JWTConfig) { c.Algorithms = []jose.SignatureAlgorithm{"none"} }, false},
		{"fail/algorithm-eddsa", func(c *JWTConfig) { c.Algorithms = []jose.SignatureAlgorithm{jose.EdDSA} }, false},
		{"fail/now-nil", func(c *JWTConfig) { c.Now = nil }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := base()
			c.edit(&cfg)
			err := cfg.Validate()
			switch {
			case c.ok && err != nil:
				t.Errorf("got error %v, want nil", err)
			case !c.ok && !errors.Is(err, ErrInvalidConfig):
				t.Errorf("got error %v, want %v", err, ErrInvalidConfig)
			}
		})
	}
}

// TestDefaultAlgorithmsMatchGoSpiffe pins the default allowlist to the
// algorithms go-spiffe's jwtsvid accepts: each default algorithm gives a
// token go-spiffe accepts, and HS256/EdDSA/none give tokens it refuses.
func TestDefaultAlgorithmsMatchGoSpiffe(t *testing.T) {
	fx := newJWTFixture(t, wallNow())
	keyFor := func(alg jose.SignatureAlgorithm) (any, string) {
		switch alg {
		case jose.ES256:
			return fx.keyA1, kidA1
		case jose.ES384:
			return fx.keyA384, kidA384
		case jose.ES512:
			return fx.keyA521, kidA521
		}
		return fx.keyARSA, kidARSA
	}
	for _, alg := range DefaultJWTConfig().Algorithms {
		key, kid := keyFor(alg)
		tok := fx.sign(t, string(alg), key, hdr(string(alg), kid), fx.claims())
		if _, err := jwtsvid.ParseAndValidate(tok, fx.bundles, []string{idIssuer.String()}); err != nil {
			t.Errorf("%s: go-spiffe refused: %v", alg, err)
		}
		if _, err := VerifyJWTSVID(tok, fx.bundles, fx.cfg()); err != nil {
			t.Errorf("%s: got error %v, want nil", alg, err)
		}
	}
	for _, tok := range []string{
		fx.sign(t, "HS256", fx.hmacKey, hdr("HS256", kidAHMAC), fx.claims()),
		fx.sign(t, "EdDSA", fx.keyAEd, hdr("EdDSA", kidAEd), fx.claims()),
	} {
		if _, err := jwtsvid.ParseAndValidate(tok, fx.bundles, []string{idIssuer.String()}); err == nil {
			t.Errorf("go-spiffe accepted a token outside its documented algorithm list")
		}
	}
}

func TestVerifyJWTSVIDConcurrent(t *testing.T) {
	fx := newJWTFixture(t, wallNow())
	cases := jwtCases(t, fx)
	cfg := fx.cfg()
	done := make(chan struct{})
	for w := 0; w < 4; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for _, c := range cases {
				if c.cfg != nil {
					continue
				}
				_, err := VerifyJWTSVID(c.token, fx.bundles, cfg)
				if (err == nil) != (c.want == nil) {
					t.Errorf("%s: got error %v, want %v", c.name, err, c.want)
				}
			}
		}()
	}
	for w := 0; w < 4; w++ {
		<-done
	}
}
