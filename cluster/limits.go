package cluster

import "time"

// Limits on sizes and times that bound what a peer or a corrupt disk can
// make this package do.
const (
	// DefaultMaxCommandBytes is Config.MaxCommandBytes in DefaultConfig.
	DefaultMaxCommandBytes = 1 << 20

	// MaxCommandBytesLimit is the largest Config.MaxCommandBytes that
	// Validate accepts. Raft sends up to MaxAppendEntries commands in one
	// RPC and keeps recent ones in memory, so huge commands hurt every node.
	MaxCommandBytesLimit = 64 << 20

	// MaxNodeIDBytes bounds Config.NodeID.
	MaxNodeIDBytes = 128

	// maxAppendEntries is raft's MaxAppendEntries: how many log entries go
	// into one StoreLogs call and one AppendEntries RPC.
	maxAppendEntries = 64

	// logCacheEntries is how many recent log entries are kept in memory in
	// front of the pebble LogStore for replication.
	logCacheEntries = 512

	// snapshotsRetained is how many snapshots the snapshot store keeps.
	snapshotsRetained = 2

	// handshakeTimeout bounds one inbound TLS handshake. A peer that does
	// not finish in time is dropped before raft sees the connection.
	handshakeTimeout = 10 * time.Second

	// maxPendingHandshakes bounds concurrent inbound TLS handshakes; further
	// connections are closed at once until one finishes.
	maxPendingHandshakes = 64

	// acceptRetryDelay is the pause after a failed Accept (for example when
	// the process is out of file descriptors).
	acceptRetryDelay = 50 * time.Millisecond

	// transportPoolSize is how many idle outbound connections the raft
	// transport keeps per peer.
	transportPoolSize = 3

	// transportTimeout is the raft transport's I/O deadline per RPC.
	transportTimeout = 10 * time.Second

	// dirPerm is the permission for directories created under DataDir.
	dirPerm = 0o700
)
