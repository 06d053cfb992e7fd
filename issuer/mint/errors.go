package mint

import "errors"

// Sentinel errors. Every error Mint returns wraps one of them, or is an
// error of the random source; compare with errors.Is.
var (
	// ErrBadClaims is wrapped by every error about the content of Claims
	// (missing rights, invalid SPIFFE ID, expiry not after issued-at, ...).
	// Errors about a restriction also wrap attenuation.ErrBadRestriction.
	ErrBadClaims = errors.New("mint: bad claims")

	// ErrBadKey is returned when Key.Private is not an Ed25519 private key.
	ErrBadKey = errors.New("mint: bad key")

	// ErrLimitExceeded is returned when the token would fall outside the
	// verifier's default input limits (token.md §8): verifiers would refuse
	// it without evaluating it.
	ErrLimitExceeded = errors.New("mint: limit exceeded")
)
