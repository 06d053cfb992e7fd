package pki

import (
	"errors"
	"fmt"
	"io/fs"
)

var (
	// ErrFileExists is returned by the WriteFiles methods when a target
	// file already exists and WithOverwrite was not given. It also matches
	// fs.ErrExist.
	ErrFileExists = fmt.Errorf("pki: refusing to overwrite existing file: %w", fs.ErrExist)

	// ErrTrustDomainMismatch is returned when a SPIFFE ID or a loaded CA
	// does not belong to the trust domain the caller asked for.
	ErrTrustDomainMismatch = errors.New("pki: trust domain mismatch")

	// ErrCANotValid is returned when a CA is used (or loaded by
	// LoadOrCreateCA) at a time outside its validity period.
	ErrCANotValid = errors.New("pki: CA certificate not valid at this time")

	// ErrInvalidCA is returned when loaded CA files do not hold a usable
	// SPIFFE CA: not exactly one certificate, not a CA, no keyCertSign, no
	// trust domain URI SAN, or a key that does not match the certificate.
	ErrInvalidCA = errors.New("pki: invalid CA")
)
