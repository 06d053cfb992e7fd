package credential

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

// supportedAlgorithms are the algorithms JWTConfig.Algorithms may hold:
// the asymmetric algorithms go-spiffe v2.9.0 jwtsvid accepts for
// JWT-SVIDs (and SPIRE signs with). Never none, never HS*.
var supportedAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.PS256, jose.PS384, jose.PS512,
}

// JWTConfig says which JWT-SVIDs VerifyJWTSVID accepts. Build it with
// DefaultJWTConfig, set Audience, and check it with Validate. A JWTConfig
// is a value: it is safe to share between goroutines as long as nobody
// modifies Algorithms.
type JWTConfig struct {
	// Audience is the issuer's own SPIFFE ID. Required: the aud claim must
	// hold exactly this one value. (go-jose and go-spiffe skip the audience
	// check when the expected audience is empty; Validate refuses that.)
	Audience spiffeid.ID

	// MaxLifetime bounds the validity a token claims for itself:
	//
	//	exp − min(Now, iat, nbf)
	//
	// over the claims present, so that a token without iat or nbf is
	// measured from Now and a back-dated iat or nbf counts against it.
	// In addition exp must be after iat and after nbf when they are
	// present. Default DefaultMaxLifetime; at most MaxMaxLifetime.
	MaxLifetime time.Duration

	// Leeway is the clock skew allowed when comparing exp, nbf and iat with
	// Now. Default DefaultLeeway; between 0 and MaxLeeway.
	Leeway time.Duration

	// Algorithms is the allowlist of the alg header. Default: all of
	// RS256, RS384, RS512, ES256, ES384, ES512, PS256, PS384, PS512 (the
	// list of go-spiffe v2.9.0 jwtsvid); Validate refuses anything else.
	Algorithms []jose.SignatureAlgorithm

	// Now returns the verification time. Required; DefaultJWTConfig sets
	// time.Now. It is the only clock VerifyJWTSVID reads.
	Now func() time.Time
}

// DefaultJWTConfig returns a JWTConfig with the defaults and no Audience;
// the caller must set Audience before Validate succeeds.
func DefaultJWTConfig() JWTConfig {
	return JWTConfig{
		MaxLifetime: DefaultMaxLifetime,
		Leeway:      DefaultLeeway,
		Algorithms:  slices.Clone(supportedAlgorithms),
		Now:         time.Now,
	}
}

// Validate reports whether c can be used by VerifyJWTSVID. Its errors wrap
// ErrInvalidConfig and say which bound is violated.
func (c JWTConfig) Validate() error {
	switch {
	case c.Audience.IsZero():
		return fmt.Errorf("%w: Audience is required (the issuer's own SPIFFE ID)", ErrInvalidConfig)
	case c.MaxLifetime <= 0 || c.MaxLifetime > MaxMaxLifetime:
		return fmt.Errorf("%w: MaxLifetime %v must be positive and at most %v (default %v)",
			ErrInvalidConfig, c.MaxLifetime, MaxMaxLifetime, DefaultMaxLifetime)
	case c.Leeway < 0 || c.Leeway > MaxLeeway:
		return fmt.Errorf("%w: Leeway %v must be between 0 and %v (default %v)",
			ErrInvalidConfig, c.Leeway, MaxLeeway, DefaultLeeway)
	case len(c.Algorithms) == 0:
		return fmt.Errorf("%w: Algorithms must not be empty", ErrInvalidConfig)
	case c.Now == nil:
		return fmt.Errorf("%w: Now is required", ErrInvalidConfig)
	}
	for _, alg := range c.Algorithms {
		if !slices.Contains(supportedAlgorithms, alg) {
			return fmt.Errorf("%w: algorithm %q is not one of the asymmetric JWT-SVID algorithms %v",
				ErrInvalidConfig, alg, supportedAlgorithms)
		}
	}
	return nil
}

// VerifyJWTSVID verifies a JWT-SVID bearer token and returns the SVID with
// its ID (the sub claim), Audience (the one aud value), Expiry and Claims.
// The returned SVID does not keep the token: its Marshal method returns
// the empty string.
//
// The checks run cheapest first and stop at the first failure:
//
//  1. shape: at most MaxTokenBytes; exactly three canonical, unpadded
//     base64url segments (ErrTooLarge, ErrMalformed; five segments are a
//     JWE: ErrEncrypted; a JSON-serialized JWS is never parsed);
//  2. header, a strict JSON object: alg in cfg.Algorithms (ErrAlgorithm);
//     no member other than alg, kid and typ, typ "JWT" or "JOSE" if present
//     (ErrHeader: so crit, jwk, jku, x5c, x5u are refused, never used or
//     fetched); kid present and safe (ErrKeyID);
//  3. claims, a strict JSON object: sub a SPIFFE ID with a path
//     (ErrSubject); aud exactly [cfg.Audience] (ErrAudience); exp present
//     (ErrLifetime); exp, nbf, iat against cfg.Now with cfg.Leeway
//     (ErrExpired, ErrNotYetValid); lifetime (ErrLifetime, see
//     JWTConfig.MaxLifetime);
//  4. signature (ErrSignature): the key is looked up by kid in the bundle
//     of the sub's trust domain only, must be ECDSA for ES* and RSA for
//     RS*/PS*, and go-jose v4 verifies the signature with the alg checked
//     in step 2.
//
// Steps 2 and 3 read claims that are not yet authenticated: the sentinel
// of a refusal says what was wrong with the token as presented, not that
// the token was genuine. Callers must treat every error as a refusal.
//
// Time: go-spiffe's jwtsvid.ParseAndValidate (v2.9.0) checks exp, nbf and
// iat against time.Now() with go-jose's fixed one-minute leeway and cannot
// take another clock, so VerifyJWTSVID does not call it. It performs the
// same steps itself — key lookup through go-spiffe's jwtbundle by the
// trust domain of sub and kid, signature through go-jose — so that
// cfg.Now and cfg.Leeway are the only time checks. Every token it accepts
// is also accepted by ParseAndValidate at the same wall-clock time
// whenever cfg.Now is time.Now and cfg.Leeway is at most one minute.
//
// Errors wrap exactly one sentinel of errors.go and never contain the
// token. bundles must be non-nil and safe for concurrent use if
// VerifyJWTSVID is called concurrently; VerifyJWTSVID itself keeps no
// state and is safe for concurrent use.
func VerifyJWTSVID(token string, bundles jwtbundle.Source, cfg JWTConfig) (*jwtsvid.SVID, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("verify JWT-SVID: %w", err)
	}
	if bundles == nil {
		return nil, fmt.Errorf("verify JWT-SVID: %w: bundle source is nil", ErrInvalidConfig)
	}
	seg, err := splitCompact(token)
	if err != nil {
		return nil, fmt.Errorf("verify JWT-SVID: %w", err)
	}
	hdr, err := parseHeader(seg.header, cfg.Algorithms)
	if err != nil {
		return nil, fmt.Errorf("verify JWT-SVID: header: %w", err)
	}
	cl, err := parseClaims(seg.payload, cfg)
	if err != nil {
		return nil, fmt.Errorf("verify JWT-SVID: claims: %w", err)
	}
	if err := verifySignature(token, seg, hdr, cl.sub.TrustDomain(), bundles); err != nil {
		return nil, fmt.Errorf("verify JWT-SVID: signature: %w", err)
	}
	var all map[string]any
	if err := json.Unmarshal(seg.payload, &all); err != nil {
		// Unreachable: parseClaims decoded the same bytes.
		return nil, fmt.Errorf("verify JWT-SVID: claims: %w", ErrMalformed)
	}
	return &jwtsvid.SVID{
		ID:       cl.sub,
		Audience: []string{cfg.Audience.String()},
		Expiry:   cl.exp.UTC(),
		Claims:   all,
	}, nil
}

type header struct {
	alg jose.SignatureAlgorithm
	kid string
}

// maxHeaderMembers bounds the members decodeObject collects before the
// header is refused; only alg, kid and typ are accepted anyway.
const maxHeaderMembers = 8

func parseHeader(b []byte, algs []jose.SignatureAlgorithm) (header, error) {
	m, err := decodeObject(b, maxHeaderMembers)
	if err != nil {
		return header{}, fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	alg, ok := jsonString(m["alg"])
	if !ok {
		return header{}, fmt.Errorf("alg missing or not a string: %w", ErrAlgorithm)
	}
	if !slices.Contains(algs, jose.SignatureAlgorithm(alg)) {
		// alg is not echoed: it is attacker-chosen.
		return header{}, fmt.Errorf("alg not in the allowlist %v: %w", algs, ErrAlgorithm)
	}
	for name := range m {
		switch name {
		case "alg", "kid", "typ":
		default:
			// Refused rather than ignored: crit must not be ignored (RFC
			// 7515 §4.1.11), and key-carrying parameters (jwk, jku, x5c,
			// x5u) would otherwise be parsed by go-jose.
			return header{}, fmt.Errorf("parameter %s not accepted: %w", safeName(name), ErrHeader)
		}
	}
	if raw, present := m["typ"]; present {
		typ, ok := jsonString(raw)
		if !ok || (typ != "JWT" && typ != "JOSE") {
			return header{}, fmt.Errorf(`typ must be "JWT" or "JOSE": %w`, ErrHeader)
		}
	}
	kid, ok := jsonString(m["kid"])
	switch {
	case !ok:
		return header{}, fmt.Errorf("kid missing or not a string: %w", ErrKeyID)
	case kid == "":
		return header{}, fmt.Errorf("kid empty: %w", ErrKeyID)
	case len(kid) > MaxKeyIDBytes:
		return header{}, fmt.Errorf("kid of %d bytes exceeds %d: %w", len(kid), MaxKeyIDBytes, ErrKeyID)
	case !safeKeyID(kid):
		return header{}, fmt.Errorf("kid has a character outside [A-Za-z0-9._-]: %w", ErrKeyID)
	}
	return header{alg: jose.SignatureAlgorithm(alg), kid: kid}, nil
}

// safeKeyID reports whether kid uses only [A-Za-z0-9._-]: no path
// separators, no URL syntax, no control or non-ASCII characters.
func safeKeyID(kid string) bool {
	for i := 0; i < len(kid); i++ {
		if c := kid[i]; !b64Chars[c] && c != '.' {
			return false
		}
	}
	return true
}

// safeName returns a header member name fit for an error message: the
// registered names it is likely to be, otherwise a placeholder.
func safeName(name string) string {
	switch name {
	case "crit", "jwk", "jku", "x5c", "x5u", "x5t", "x5t#S256", "cty", "enc", "zip", "b64", "epk", "iv", "tag", "p2s", "p2c", "nonce", "url":
		return name
	}
	return "(unregistered)"
}

type claims struct {
	sub spiffeid.ID
	exp time.Time
}

func parseClaims(b []byte, cfg JWTConfig) (claims, error) {
	m, err := decodeObject(b, MaxClaims)
	if err != nil {
		return claims{}, fmt.Errorf("%v: %w", err, ErrMalformed)
	}

	subStr, ok := jsonString(m["sub"])
	if !ok {
		return claims{}, fmt.Errorf("sub missing or not a string: %w", ErrSubject)
	}
	sub, err := spiffeid.FromString(subStr)
	if err != nil {
		return claims{}, fmt.Errorf("sub is not a SPIFFE ID: %w", ErrSubject)
	}
	if sub.Path() == "" {
		return claims{}, fmt.Errorf("sub %q is a trust domain, not a workload: %w", sub, ErrSubject)
	}

	if err := checkAudience(m["aud"], cfg.Audience.String()); err != nil {
		return claims{}, err
	}
	// The other registered string claims are not used, but a wrong type is
	// refused as go-jose's jwt.Claims (and so go-spiffe) would refuse it.
	for _, name := range []string{"iss", "jti"} {
		if raw, present := m[name]; present {
			if _, ok := jsonString(raw); !ok {
				return claims{}, fmt.Errorf("%s is not a string: %w", name, ErrMalformed)
			}
		}
	}

	rawExp, present := m["exp"]
	if !present {
		return claims{}, fmt.Errorf("exp missing (unbounded lifetime): %w", ErrLifetime)
	}
	expN, ok := numericDate(rawExp)
	if !ok {
		return claims{}, fmt.Errorf("exp is not an integer NumericDate: %w", ErrMalformed)
	}
	var nbf, iat *time.Time
	for _, c := range []struct {
		name string
		dst  **time.Time
	}{{"nbf", &nbf}, {"iat", &iat}} {
		raw, present := m[c.name]
		if !present {
			continue
		}
		n, ok := numericDate(raw)
		if !ok {
			return claims{}, fmt.Errorf("%s is not an integer NumericDate: %w", c.name, ErrMalformed)
		}
		t := time.Unix(n, 0)
		*c.dst = &t
	}

	exp := time.Unix(expN, 0)
	now := cfg.Now()
	if now.Sub(exp) > cfg.Leeway {
		return claims{}, fmt.Errorf("exp %v is before now %v minus leeway %v: %w",
			exp.UTC(), now.UTC(), cfg.Leeway, ErrExpired)
	}
	start := now
	for _, c := range []struct {
		name string
		t    *time.Time
	}{{"nbf", nbf}, {"iat", iat}} {
		if c.t == nil {
			continue
		}
		if c.t.Sub(now) > cfg.Leeway {
			return claims{}, fmt.Errorf("%s %v is after now %v plus leeway %v: %w",
				c.name, c.t.UTC(), now.UTC(), cfg.Leeway, ErrNotYetValid)
		}
		if !exp.After(*c.t) {
			return claims{}, fmt.Errorf("exp %v is not after %s %v: %w", exp.UTC(), c.name, c.t.UTC(), ErrLifetime)
		}
		if c.t.Before(start) {
			start = *c.t
		}
	}
	if life := exp.Sub(start); life > cfg.MaxLifetime {
		return claims{}, fmt.Errorf("lifetime %v exceeds %v: %w", life, cfg.MaxLifetime, ErrLifetime)
	}
	return claims{sub: sub, exp: exp}, nil
}

// checkAudience accepts aud = "want" and aud = ["want"], nothing else.
func checkAudience(raw json.RawMessage, want string) error {
	if len(raw) == 0 {
		return fmt.Errorf("aud missing: %w", ErrAudience)
	}
	var got string
	switch raw[0] {
	case '"':
		s, ok := jsonString(raw)
		if !ok {
			return fmt.Errorf("aud is not a string: %w", ErrAudience)
		}
		got = s
	case '[':
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return fmt.Errorf("aud is not an array: %w", ErrAudience)
		}
		if len(list) != 1 {
			return fmt.Errorf("aud has %d values, want exactly 1: %w", len(list), ErrAudience)
		}
		s, ok := jsonString(list[0])
		if !ok {
			return fmt.Errorf("aud value is not a string: %w", ErrAudience)
		}
		got = s
	default:
		return fmt.Errorf("aud is neither a string nor an array: %w", ErrAudience)
	}
	if got != want {
		return fmt.Errorf("aud is not %q: %w", want, ErrAudience)
	}
	return nil
}

// verifySignature looks the key up by kid in the bundle of td only and
// verifies the signature with go-jose, allowing only hdr.alg.
func verifySignature(token string, seg compact, hdr header, td spiffeid.TrustDomain, bundles jwtbundle.Source) error {
	if len(seg.signature) == 0 {
		return fmt.Errorf("empty signature: %w", ErrSignature)
	}
	bundle, err := bundles.GetJWTBundleForTrustDomain(td)
	if err != nil || bundle == nil {
		return fmt.Errorf("no JWT bundle for trust domain %q: %w", td, ErrSignature)
	}
	if bundle.TrustDomain() != td {
		return fmt.Errorf("bundle source returned the bundle of %q for %q: %w", bundle.TrustDomain(), td, ErrSignature)
	}
	key, ok := bundle.FindJWTAuthority(hdr.kid)
	if !ok {
		return fmt.Errorf("no key %q in the JWT bundle of %q: %w", hdr.kid, td, ErrSignature)
	}
	switch key.(type) {
	case *ecdsa.PublicKey:
		if !strings.HasPrefix(string(hdr.alg), "ES") {
			return fmt.Errorf("key %q is ECDSA, alg is %s: %w", hdr.kid, hdr.alg, ErrSignature)
		}
	case *rsa.PublicKey:
		if !strings.HasPrefix(string(hdr.alg), "RS") && !strings.HasPrefix(string(hdr.alg), "PS") {
			return fmt.Errorf("key %q is RSA, alg is %s: %w", hdr.kid, hdr.alg, ErrSignature)
		}
	default:
		return fmt.Errorf("key %q has unsupported type %T: %w", hdr.kid, key, ErrSignature)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{hdr.alg})
	if err != nil {
		return fmt.Errorf("go-jose refused the JWS: %w", ErrMalformed)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return fmt.Errorf("key %q of %q: %w", hdr.kid, td, ErrSignature)
	}
	if !bytes.Equal(payload, seg.payload) {
		return fmt.Errorf("go-jose verified a different payload: %w", ErrSignature)
	}
	return nil
}
