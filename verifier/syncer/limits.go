package syncer

import "time"

// Limits of what the syncer accepts from issuer nodes and from its state
// file. Nodes are authenticated by their SVID, but their frames are
// untrusted until verified, and a bug must not exhaust the verifier.
const (
	// maxEntries bounds the revocation entries held (tokens, blocks and
	// agents together): about 100 MB of tables. A snapshot or change that
	// would exceed it is refused (ErrTooLarge) and the copy goes stale:
	// raise it before the cluster holds that many.
	maxEntries = 1 << 22
	// maxIssuers bounds Config.Issuers.
	maxIssuers = 64
	// maxProblemBytes bounds the body of an error answer that is read.
	maxProblemBytes = 64 << 10
	// maxLogBytes and maxLogChanges bound the changes kept for the state
	// file after its snapshot; beyond either, the next poll asks for a
	// fresh snapshot (since=0), which becomes the file's new base.
	maxLogBytes   = 16 << 20
	maxLogChanges = 8192
	// maxAgain bounds the polls Sync sends to fetch what a heartbeat
	// says is missing (more than 1,024 changes per answer).
	maxAgain = 64
	// minPollInterval spaces successful polls, so that a node answering
	// at once forever cannot make Run spin.
	minPollInterval = 10 * time.Millisecond
	// minSetCapacity is the smallest table of an id set.
	minSetCapacity = 64
)
