package syncwire

import (
	"errors"
	"fmt"
	"io"
)

// Errors callers branch on. Every error of the package wraps at most one
// of them (ErrUnknownSigner comes with ErrBadSignature), or is an I/O error
// of the underlying reader or writer, wrapped with the step.
var (
	// ErrMalformed: a frame breaks spec/sync.md §3 (type, length, count,
	// range, order of the snapshot frames, trailing bytes). The stream
	// must not be read further.
	ErrMalformed = errors.New("syncwire: malformed frame")
	// ErrTruncated: the stream ended inside a frame or inside a snapshot.
	// Units returned before it are complete; nothing after them is.
	ErrTruncated = errors.New("syncwire: truncated stream")
	// ErrBadSignature: a unit's signature does not verify, its signer is
	// unknown or not allowed to sign, or a snapshot's entries do not
	// match the digest it signs.
	ErrBadSignature = errors.New("syncwire: bad signature")
	// ErrUnknownSigner: the unit names a signing key the caller does not
	// hold in a signing state. Errors wrapping it also wrap
	// ErrBadSignature (spec/sync.md §4: a revoked or unknown signer is
	// bad_signature); callers test it to decide whether a bootstrap
	// snapshot could help.
	ErrUnknownSigner = errors.New("syncwire: unknown signer")
	// ErrInvalid: a value given to an encoder cannot be encoded (a key
	// state, kind, length or count outside its range, an epoch of 0, a
	// change whose epoch is not after prev, a malformed Signer).
	ErrInvalid = errors.New("syncwire: invalid value to encode")
	// ErrTooLarge: a change or heartbeat would exceed the 1 MiB frame
	// limit. The issuer answers a snapshot instead (spec/sync.md §2).
	ErrTooLarge = errors.New("syncwire: frame over 1 MiB")
)

// FrameError says which frame of a stream is malformed or truncated. It
// wraps ErrMalformed or ErrTruncated (and io.ErrUnexpectedEOF for the
// latter).
type FrameError struct {
	// Offset is the position in the stream of the frame's type byte.
	Offset int64
	// Type is the frame's type byte (0 when the header itself is cut).
	Type FrameType
	// Reason says what is wrong, for logs; it never quotes the frame.
	Reason string

	truncated bool
}

// Error returns "syncwire: malformed <type> frame at byte N: reason".
func (e *FrameError) Error() string {
	what := "malformed"
	if e.truncated {
		what = "truncated"
	}
	if e.Type == 0 && e.truncated {
		return fmt.Sprintf("syncwire: %s stream at byte %d: %s", what, e.Offset, e.Reason)
	}
	return fmt.Sprintf("syncwire: %s %s frame at byte %d: %s", what, e.Type, e.Offset, e.Reason)
}

// Unwrap returns ErrMalformed, or ErrTruncated and io.ErrUnexpectedEOF.
func (e *FrameError) Unwrap() []error {
	if e.truncated {
		return []error{ErrTruncated, io.ErrUnexpectedEOF}
	}
	return []error{ErrMalformed}
}

// SignatureError says which unit failed verification. It wraps
// ErrBadSignature, and ErrUnknownSigner when Unknown is set.
type SignatureError struct {
	// Type is the type of the signed frame: TypeSnapshotEnd,
	// TypeChange or TypeHeartbeat.
	Type FrameType
	// KeyID is the signing key the unit names.
	KeyID uint32
	// Unknown is set when the key was not available to verify with
	// (unknown, or revoked, to the caller).
	Unknown bool
	// Reason says what failed, for logs.
	Reason string
}

// Error returns "syncwire: bad signature on <type> by key N: reason".
func (e *SignatureError) Error() string {
	return fmt.Sprintf("syncwire: bad signature on %s by key %d: %s", e.Type, e.KeyID, e.Reason)
}

// Unwrap returns ErrBadSignature, and ErrUnknownSigner when Unknown.
func (e *SignatureError) Unwrap() []error {
	if e.Unknown {
		return []error{ErrBadSignature, ErrUnknownSigner}
	}
	return []error{ErrBadSignature}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
