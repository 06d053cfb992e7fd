package cluster

import (
	"errors"
	"fmt"
)

// Sentinel errors. Compare with errors.Is; most are wrapped with the step
// that failed.
var (
	// ErrNotLeader means this node is not the leader, so the request was not
	// accepted and nothing was applied. Retry on the leader; the concrete
	// error is a *NotLeaderError naming the leader when one is known.
	ErrNotLeader = errors.New("cluster: not the leader")

	// ErrLeadershipLost means leadership was lost while the command was in
	// flight: the command may or may not be committed. Callers that must
	// not apply twice need an idempotency key inside the command.
	ErrLeadershipLost = errors.New("cluster: leadership lost while applying")

	// ErrShutdown means the node is shut down (or shutting down) and accepts
	// no more work.
	ErrShutdown = errors.New("cluster: node is shut down")

	// ErrTimeout means a deadline passed before raft answered. For Apply the
	// outcome is unknown: the command may still be committed. An error
	// caused by the caller's context deadline matches both ErrTimeout and
	// context.DeadlineExceeded.
	ErrTimeout = errors.New("cluster: timed out")

	// ErrCommandTooLarge means the command exceeds Config.MaxCommandBytes.
	// The concrete error is a *CommandTooLargeError.
	ErrCommandTooLarge = errors.New("cluster: command too large")

	// ErrStoreClosed is returned by LogStore and StableStore methods after
	// Store.Close.
	ErrStoreClosed = errors.New("cluster: store is closed")

	// ErrCorruptLog means a stored raft log entry failed to decode: bad
	// version, bad checksum, truncated or trailing bytes.
	ErrCorruptLog = errors.New("cluster: corrupt log entry")

	// ErrStoreVersion means the pebble store was written with a store format
	// this code does not know; it is refused rather than misread.
	ErrStoreVersion = errors.New("cluster: unsupported store format version")

	// ErrInvalidConfig is wrapped by every Config.Validate error.
	ErrInvalidConfig = errors.New("cluster: invalid config")

	// ErrKeyNotFound is returned by StableStore.Get for a missing key.
	//
	// Its message is exactly "not found", without the package prefix,
	// because hashicorp/raft recognises a missing stable key by comparing
	// err.Error() with that string (raft.go, api.go in raft v1.8.0), as
	// raft's own InmemStore and raft-boltdb report it.
	ErrKeyNotFound = errors.New("not found")
)

// NotLeaderError is returned when a request that needs the leader reaches a
// follower or candidate. It matches ErrNotLeader with errors.Is.
type NotLeaderError struct {
	// LeaderID and LeaderAddr name the leader this node currently knows of;
	// both are empty when no leader is known (an election is running).
	LeaderID   string
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "cluster: not the leader (no leader known)"
	}
	return fmt.Sprintf("cluster: not the leader (leader is %q at %s)", e.LeaderID, e.LeaderAddr)
}

// Is reports whether target is ErrNotLeader.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// CommandTooLargeError is returned by Node.Apply for a command larger than
// Config.MaxCommandBytes. It matches ErrCommandTooLarge with errors.Is.
type CommandTooLargeError struct {
	Size int // bytes in the refused command
	Max  int // the configured MaxCommandBytes
}

func (e *CommandTooLargeError) Error() string {
	return fmt.Sprintf("cluster: command of %d bytes exceeds the limit of %d bytes", e.Size, e.Max)
}

// Is reports whether target is ErrCommandTooLarge.
func (e *CommandTooLargeError) Is(target error) bool { return target == ErrCommandTooLarge }
