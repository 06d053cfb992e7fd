package attenuation

import "errors"

// Sentinel errors. Every error Restrict and Restriction.Err return wraps
// exactly one of them; compare with errors.Is.
var (
	// ErrNoRestrictions is returned by Restrict when it is given no
	// restriction: an empty block would narrow nothing.
	ErrNoRestrictions = errors.New("attenuation: no restrictions")

	// ErrBadRestriction is wrapped by every error about the input of a
	// restriction constructor (an invalid right, SPIFFE ID, bound, ...).
	ErrBadRestriction = errors.New("attenuation: bad restriction")

	// ErrSealed is returned when the token carries a final signature
	// instead of the secret of its last key: it cannot be attenuated.
	ErrSealed = errors.New("attenuation: token is sealed")

	// ErrMalformed is returned when the input is not a decodable Biscuit
	// v3 token.
	ErrMalformed = errors.New("attenuation: malformed token")

	// ErrLimitExceeded is returned when the input token or the attenuated
	// token would fall outside the verifier's default input limits
	// (token.md §8): verifiers would refuse it without evaluating it.
	ErrLimitExceeded = errors.New("attenuation: limit exceeded")
)
