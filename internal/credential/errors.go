package credential

import "errors"

// Every error returned by VerifyJWTSVID, VerifyPeer and the Validate
// methods wraps exactly one of these sentinels. Compare with errors.Is.
// Error messages never contain the token, its segments, or header and
// claim values that failed validation; they name the step that failed and
// may quote values that passed validation (a key id of the safe charset, a
// SPIFFE ID, a trust domain, the configured allowlist and audience) and,
// for VerifyPeer, crypto/x509's explanation of a chain it refused.
var (
	// ErrInvalidConfig is wrapped by the errors of JWTConfig.Validate and
	// X509Config.Validate, and returned by the Verify functions when given
	// an invalid config or a nil bundle source. It is a programming error,
	// not a refusal of the caller.
	ErrInvalidConfig = errors.New("credential: invalid config")

	// ErrTooLarge means the input exceeds a limit of limits.go (token,
	// header segment, signature, certificate size). It is reported before
	// any decoding.
	ErrTooLarge = errors.New("credential: input too large")

	// ErrMalformed means the input is not a well-formed compact JWS
	// (exactly three unpadded, canonical base64url segments; header and
	// claims each a single JSON object of valid UTF-8 without duplicate
	// members; claims of the right JSON types) or, for VerifyPeer, a
	// certificate does not parse. JSON-serialized JWS is refused with
	// ErrMalformed without being parsed.
	ErrMalformed = errors.New("credential: malformed credential")

	// ErrEncrypted means the token is a compact JWE (five segments). It is
	// refused without being decrypted or parsed: JWT-SVIDs are signed only.
	ErrEncrypted = errors.New("credential: encrypted token (JWE) not accepted")

	// ErrAlgorithm means the alg header is missing, not a string, or not in
	// JWTConfig.Algorithms ("none" and HS* never are).
	ErrAlgorithm = errors.New("credential: signature algorithm not allowed")

	// ErrKeyID means the kid header is missing, not a string, empty, longer
	// than MaxKeyIDBytes, or has a character outside [A-Za-z0-9._-].
	ErrKeyID = errors.New("credential: invalid key id")

	// ErrHeader means the JOSE header carries a parameter other than alg,
	// kid and typ, or typ is neither "JWT" nor "JOSE". In particular crit,
	// jwk, jku, x5c, x5u, x5t, x5t#S256, cty, enc and zip are refused:
	// keys come only from the trust bundle, selected by kid.
	ErrHeader = errors.New("credential: JOSE header not accepted")

	// ErrSubject means the sub claim is missing, not a string, not a
	// SPIFFE ID, or a trust domain ID without a workload path.
	ErrSubject = errors.New("credential: invalid subject")

	// ErrAudience means the aud claim is missing or empty, holds more than
	// one value, or its one value is not JWTConfig.Audience.
	ErrAudience = errors.New("credential: audience mismatch")

	// ErrExpired means exp (JWT) or NotAfter (X.509 leaf) is before
	// Now minus the leeway (JWT) or before Now (X.509).
	ErrExpired = errors.New("credential: expired")

	// ErrNotYetValid means nbf or iat (JWT) is after Now plus the leeway,
	// or NotBefore (X.509 leaf) is after Now.
	ErrNotYetValid = errors.New("credential: not yet valid")

	// ErrLifetime means the token has no exp, or claims a validity longer
	// than JWTConfig.MaxLifetime, or its exp is not after its iat/nbf. See
	// JWTConfig.MaxLifetime for how the lifetime is measured.
	ErrLifetime = errors.New("credential: lifetime not accepted")

	// ErrSignature means the signature does not verify with the key named
	// by kid in the bundle of the sub claim's trust domain, or there is no
	// such bundle or no such key in it, or the key does not fit alg. Keys
	// of other trust domains are never tried.
	ErrSignature = errors.New("credential: signature not verified")

	// ErrNotSVID means the peer's leaf certificate is not an X.509-SVID:
	// it is a CA, lacks digitalSignature or has keyCertSign/cRLSign key
	// usage, has no URI SAN or more than one, or its URI SAN is not a
	// SPIFFE ID with a workload path. An empty chain is ErrNotSVID too.
	ErrNotSVID = errors.New("credential: peer certificate is not an X.509-SVID")

	// ErrChainTooDeep means the presented chain, or a chain verified to a
	// bundle root, has more certificates than X509Config.MaxChainDepth.
	ErrChainTooDeep = errors.New("credential: certificate chain too deep")

	// ErrUntrusted means there is no X.509 bundle for the leaf's trust
	// domain, or the chain does not verify to a root of that bundle (bad
	// signature, expired intermediate, intermediate that is not a CA,
	// path length exceeded, ...). Bundles of other trust domains are never
	// tried.
	ErrUntrusted = errors.New("credential: certificate chain not trusted")
)
