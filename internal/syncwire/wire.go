package syncwire

import (
	"crypto/ed25519"
	"strconv"
	"time"
)

// ContentType is the media type of a GET /v1/sync answer.
const ContentType = "application/vnd.writ.sync.v1"

// domain prefixes every signed message (spec/sync.md §4).
const domain = "writ-sync-v1\x00"

// headroom is the room a buffer keeps before a frame body for the signed
// message prefix (domain ‖ type); the 5-byte frame header fits in it.
const headroom = len(domain) + 1

// FrameType is the type byte of a frame.
type FrameType uint8

// Frame types of spec/sync.md §3.
const (
	TypeSnapshotBegin   FrameType = 1
	TypeSnapshotEntries FrameType = 2
	TypeSnapshotEnd     FrameType = 3
	TypeChange          FrameType = 4
	TypeHeartbeat       FrameType = 5
)

// String returns the frame type's name in spec/sync.md, or "type(N)".
func (t FrameType) String() string {
	switch t {
	case TypeSnapshotBegin:
		return "snapshot_begin"
	case TypeSnapshotEntries:
		return "snapshot_entries"
	case TypeSnapshotEnd:
		return "snapshot_end"
	case TypeChange:
		return "change"
	case TypeHeartbeat:
		return "heartbeat"
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// KeyState is the state of a root key.
type KeyState uint8

// Key states (spec/sync.md §3).
const (
	// KeyPrepared: published, not yet signing; verifies.
	KeyPrepared KeyState = 1
	// KeyActive: signing; verifies.
	KeyActive KeyState = 2
	// KeyRetiring: no longer signing, its tokens still valid; verifies.
	KeyRetiring KeyState = 3
	// KeyRevoked: every token it signed is refused; verifies nothing.
	KeyRevoked KeyState = 4
)

// String returns "prepared", "active", "retiring", "revoked" or
// "KeyState(N)".
func (s KeyState) String() string {
	switch s {
	case KeyPrepared:
		return "prepared"
	case KeyActive:
		return "active"
	case KeyRetiring:
		return "retiring"
	case KeyRevoked:
		return "revoked"
	}
	return "KeyState(" + strconv.Itoa(int(s)) + ")"
}

// Verifies reports whether a key in state s may verify tokens and sync
// frames: prepared, active or retiring.
func (s KeyState) Verifies() bool { return s >= KeyPrepared && s <= KeyRetiring }

func (s KeyState) valid() bool { return s >= KeyPrepared && s <= KeyRevoked }

// Key is a root public key and its state.
type Key struct {
	ID     uint32
	State  KeyState
	Public ed25519.PublicKey // 32 bytes
	// NotAfter is when the key stops being published; zero means no date
	// yet (encoded as 0, so the Unix epoch itself cannot be a date).
	NotAfter time.Time
}

// EntryKind is the kind of a revocation entry.
type EntryKind uint8

// Entry kinds (spec/sync.md §3).
const (
	// EntryToken: a revoked token_id (16 bytes).
	EntryToken EntryKind = 1
	// EntryBlock: the first 16 bytes of a revoked block's signature.
	EntryBlock EntryKind = 2
	// EntryAgent: every token of Agent issued before Before.
	EntryAgent EntryKind = 3
)

// String returns "token", "block", "agent" or "EntryKind(N)".
func (k EntryKind) String() string {
	switch k {
	case EntryToken:
		return "token"
	case EntryBlock:
		return "block"
	case EntryAgent:
		return "agent"
	}
	return "EntryKind(" + strconv.Itoa(int(k)) + ")"
}

// Entry is one revocation. A token or block entry has ID set and Agent
// and Before zero; an agent entry has Agent and Before set and ID zero.
// Two entries are the same entry when all their fields are equal.
type Entry struct {
	Kind EntryKind
	// ID is the token id, or the block signature's 16-byte prefix.
	ID [16]byte
	// Agent is the agent fact of the revoked tokens (1–2,048 bytes).
	Agent string
	// Before: tokens of Agent issued before it are revoked. Millisecond
	// precision on the wire.
	Before time.Time
}

// Snapshot is the whole sync state at Epoch.
type Snapshot struct {
	Epoch uint64
	Time  time.Time
	Keys  []Key    // 1 to 64, ids strictly increasing
	Nodes []string // 0 to 16 "host:port" API addresses
	// Entries each appear once. A Reader with an Entries hook leaves it
	// nil.
	Entries []Entry
}

// Change takes the sync state from epoch Prev to epoch Epoch.
type Change struct {
	Epoch, Prev uint64
	Time        time.Time
	Add, Remove []Entry
	// Keys, when not nil, is the whole new key list; nil means unchanged.
	Keys []Key
	// Nodes is the whole new node list when NodesChanged is set (it may
	// then be empty); otherwise it is nil.
	Nodes        []string
	NodesChanged bool
}

// Heartbeat says that at Time the node's copy was the cluster's current
// state at Epoch.
type Heartbeat struct {
	Epoch uint64
	Time  time.Time
	// Node names the node that vouches (1–255 bytes), for logs.
	Node string
}

// Signer signs frames with a root key.
type Signer struct {
	KeyID uint32
	Key   ed25519.PrivateKey
}

// unixMilli returns t in Unix milliseconds; the zero time is 0.
func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMilli is the inverse of UnixMilli, in UTC.
func fromMilli(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
