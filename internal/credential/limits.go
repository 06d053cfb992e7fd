package credential

import "time"

// Limits of untrusted input. Every bound is checked before the bytes are
// decoded, so that a hostile caller pays for the refusal, not the issuer.

// MaxTokenBytes bounds a JWT-SVID bearer token. SPIRE's JWT-SVIDs are well
// under 1 KiB (ES256) or 1.5 KiB (RS256/PS256 with 4096-bit keys); a larger
// token is refused with ErrTooLarge before any decoding.
const MaxTokenBytes = 8 << 10

// MaxHeaderBytes bounds the base64url-encoded JOSE header segment. A
// JWT-SVID header carries alg, kid and typ only.
const MaxHeaderBytes = 1 << 10

// MaxSignatureBytes bounds the decoded signature: 1024 bytes is an RSA
// signature with an 8192-bit key. ECDSA P-521 signatures are 132 bytes.
const MaxSignatureBytes = 1 << 10

// MaxKeyIDBytes bounds the kid header. SPIRE's key ids are 32 characters;
// RFC 7638 thumbprints in base64url are 43.
const MaxKeyIDBytes = 128

// MaxClaims bounds the number of top-level members of the claims object.
const MaxClaims = 64

// maxNumericDate is 9999-12-31T23:59:59Z, the largest exp, nbf or iat
// accepted; later values, negative values and non-integers are malformed.
const maxNumericDate = 253402300799

// Bounds of JWTConfig.
const (
	// DefaultMaxLifetime is the default JWTConfig.MaxLifetime. It equals
	// SPIRE's default JWT-SVID TTL (default_jwt_svid_ttl, 5m).
	DefaultMaxLifetime = 5 * time.Minute
	// MaxMaxLifetime is the largest JWTConfig.MaxLifetime Validate accepts.
	MaxMaxLifetime = 24 * time.Hour

	// DefaultLeeway is the default JWTConfig.Leeway.
	DefaultLeeway = 30 * time.Second
	// MaxLeeway is the largest JWTConfig.Leeway Validate accepts.
	MaxLeeway = 5 * time.Minute
)

// MaxCertBytes bounds each DER certificate of a peer chain. SVIDs are under
// 2 KiB; crypto/tls itself accepts up to 16 MiB per handshake message.
const MaxCertBytes = 16 << 10

// Bounds of X509Config.MaxChainDepth, which counts certificates including
// the leaf and, for verified chains, the root.
const (
	DefaultMaxChainDepth = 4
	MinChainDepth        = 2 // leaf signed directly by a bundle root
	MaxChainDepthLimit   = 16
)
