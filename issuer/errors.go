package issuer

import "errors"

// Errors callers branch on. HTTP handlers translate them to problem types
// once, at the edge (problem.go).
var (
	// ErrBadKEK: the key-encryption key is missing, malformed or does not
	// decrypt the stored root keys.
	ErrBadKEK = errors.New("issuer: bad key-encryption key")
	// ErrBadCommand: a replicated command could not be decoded (unknown
	// version or type, unknown field, trailing data).
	ErrBadCommand = errors.New("issuer: bad command")
	// ErrNoKey: no active root key exists yet.
	ErrNoKey = errors.New("issuer: no active root key")
	// ErrNoPolicy: no issuance policy has been set.
	ErrNoPolicy = errors.New("issuer: no issuance policy")
	// ErrAuditChain: the audit chain does not verify.
	ErrAuditChain = errors.New("issuer: audit chain broken")
)
