package verifier

import (
	"errors"

	"github.com/writ-dev/writ/spec"
)

// Errors Inspect returns, and the classes of refusal behind the reasons
// of Decision (Authorize itself returns a Decision, never an error). Every
// error of this package wraps at most one of them; compare with errors.Is.
var (
	// ErrMalformed: not a decodable Biscuit v3 writ token (reason
	// malformed).
	ErrMalformed = errors.New("verifier: malformed token")
	// ErrLimitsExceeded: outside a Limits bound (reason limits_exceeded).
	ErrLimitsExceeded = errors.New("verifier: token exceeds a limit")
	// ErrUnsupported: a feature outside writ v1 (reason unsupported).
	ErrUnsupported = errors.New("verifier: unsupported token feature")
	// ErrUnknownKey: no known root key for the token (reason unknown_key).
	ErrUnknownKey = errors.New("verifier: unknown root key")
	// ErrBadSignature: a block signature or the proof does not verify
	// (reason bad_signature).
	ErrBadSignature = errors.New("verifier: bad signature")
	// ErrKeyRevoked: the token names a root key its KeySource reports
	// revoked (KeyRevocationSource; reason revoked).
	ErrKeyRevoked = errors.New("verifier: root key revoked")
	// ErrInvalidConfig is wrapped by the errors of Config.Validate,
	// Limits.Validate and New.
	ErrInvalidConfig = errors.New("verifier: invalid config")
)

// reasonOf maps an error of the decode, compile and signature steps to
// its reason code. An error wrapping none of the sentinels is a bug; it
// denies as malformed (fail closed).
func reasonOf(err error) string {
	switch {
	case errors.Is(err, ErrLimitsExceeded):
		return spec.ReasonLimitsExceeded
	case errors.Is(err, ErrUnsupported):
		return spec.ReasonUnsupported
	case errors.Is(err, ErrUnknownKey):
		return spec.ReasonUnknownKey
	case errors.Is(err, ErrBadSignature):
		return spec.ReasonBadSignature
	case errors.Is(err, ErrKeyRevoked):
		return spec.ReasonRevoked
	default:
		return spec.ReasonMalformed
	}
}

// ErrRoute is wrapped by the errors of the RouteFunc PathRoute returns.
var ErrRoute = errors.New("verifier: request maps to no resource")

// ErrInvalidKeySet is wrapped by every error NewKeySet, ParseJWKS and
// LoadKeys return for a key set that is malformed or unsafe.
var ErrInvalidKeySet = errors.New("verifier: invalid key set")

// Errors of RevocationList.
var (
	// ErrInvalidRevocationID means an id is not 32 or 128 hex digits.
	ErrInvalidRevocationID = errors.New("verifier: invalid revocation id")
	// ErrInvalidRevocationList means a revocation file is malformed or
	// over a limit.
	ErrInvalidRevocationList = errors.New("verifier: invalid revocation list")
)
