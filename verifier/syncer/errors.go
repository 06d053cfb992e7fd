package syncer

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Errors callers branch on. Errors of Sync and of the state file wrap one
// of them, a syncwire error (syncwire.ErrMalformed, ErrTruncated,
// ErrBadSignature), a *ProblemError, or an error of the network or TLS
// stack.
var (
	// ErrInvalidConfig: Config.Validate refused the configuration; the
	// message names the field and its bounds.
	ErrInvalidConfig = errors.New("syncer: invalid config")
	// ErrRollback: a node sent a snapshot, change or heartbeat older
	// than the copy held (spec/sync.md §1): the node is behind; the copy
	// was kept and another node is tried.
	ErrRollback = errors.New("syncer: node is behind the copy held (rollback refused)")
	// ErrGap: a change did not apply to the epoch held, or a heartbeat is
	// ahead of it; the syncer asks again (for a snapshot after a change
	// gap).
	ErrGap = errors.New("syncer: node is ahead of the copy held (gap)")
	// ErrTruncated: an answer ended before its closing heartbeat.
	// Everything up to the last complete signed unit was applied.
	ErrTruncated = errors.New("syncer: answer ended without its closing heartbeat")
	// ErrUnavailable: a node answered 503 (sync_behind, sync_unavailable)
	// or could not be reached.
	ErrUnavailable = errors.New("syncer: node unavailable")
	// ErrBadAnswer: a node answered something that is not a sync answer
	// (another status, content type, or a snapshot with a duplicate
	// entry or an unusable key).
	ErrBadAnswer = errors.New("syncer: bad answer")
	// ErrTooLarge: a snapshot or change would take the copy over its
	// entry limit.
	ErrTooLarge = errors.New("syncer: sync state over the entry limit")
	// ErrNoIssuer: every known node was tried and none answered.
	ErrNoIssuer = errors.New("syncer: no issuer node answered")
	// ErrStateFile: the state file could not be used; the message says
	// which check failed.
	ErrStateFile = errors.New("syncer: state file not usable")
)

// ProblemError is an answer other than 200 from a node: its status, the
// writ problem code when the body was a writ problem (sync_behind,
// sync_unavailable, unauthenticated, forbidden, bad_request), and the
// delay asked for in Retry-After. A 503 also wraps ErrUnavailable; any
// other status wraps ErrBadAnswer.
type ProblemError struct {
	Node       string
	Status     int
	Code       string
	RetryAfter time.Duration
}

// Error returns "syncer: <node> answered <status> <code>".
func (e *ProblemError) Error() string {
	code := e.Code
	if code == "" {
		code = http.StatusText(e.Status)
	}
	return fmt.Sprintf("syncer: %s answered %d %s", e.Node, e.Status, code)
}

// Unwrap returns ErrUnavailable for a 503 and ErrBadAnswer otherwise.
func (e *ProblemError) Unwrap() error {
	if e.Status == http.StatusServiceUnavailable {
		return ErrUnavailable
	}
	return ErrBadAnswer
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}
