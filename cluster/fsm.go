package cluster

import (
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// FSM is the replicated state machine a Node drives. The issuer implements
// it; this package never looks inside commands.
//
// Concurrency: Apply, ApplyBatch, Snapshot and Restore are called from one
// raft goroutine, never concurrently with each other. Snapshot.WriteTo runs
// on another goroutine while Apply continues, so Snapshot must capture a
// point-in-time view cheaply and WriteTo must not observe later Applies.
type FSM interface {
	// Apply applies one committed command at its log index. It must be
	// deterministic: every node applies the same commands in the same order
	// and must reach the same state. Apply must not fail on bad input —
	// an invalid command is a deterministic outcome, reported through the
	// returned value. The returned value is handed to the Node.Apply caller
	// on the node that proposed the command and dropped elsewhere. cmd is
	// owned by raft: read it, copy what must outlive the call, never modify
	// it.
	Apply(index uint64, cmd []byte) any

	// Snapshot returns a point-in-time snapshot of the state. It should be
	// fast; the expensive copying belongs in Snapshot.WriteTo.
	Snapshot() (Snapshot, error)

	// Restore replaces all state with the snapshot read from r (as written
	// by Snapshot.WriteTo). It is called when a leader sends a snapshot,
	// and at start-up when one exists, unless Config.FSMApplied shows the
	// FSM's own durable state already holds it. r is closed by the caller.
	Restore(r io.Reader) error
}

// Snapshot is a point-in-time FSM state, returned by FSM.Snapshot.
type Snapshot interface {
	// WriteTo writes the whole state to w. It runs concurrently with
	// FSM.Apply. An error discards the snapshot.
	WriteTo(w io.Writer) (int64, error)
	// Release is called exactly once when raft is done with the snapshot,
	// whether or not WriteTo was called or succeeded.
	Release()
}

// Entry is one committed command handed to BatchFSM.ApplyBatch.
type Entry struct {
	Index uint64 // raft log index, strictly increasing within and across batches
	Cmd   []byte // the command; owned by raft, read-only, copy to retain
}

// BatchFSM is an FSM that can apply several committed commands at once.
// When the FSM given to New implements it, ApplyBatch is used instead of
// Apply, with up to 64 commands that raft committed together (for example
// one write transaction for a burst of audit records).
type BatchFSM interface {
	FSM
	// ApplyBatch applies entries in order and returns exactly one value per
	// entry, at the same position. The rules of FSM.Apply apply to each.
	ApplyBatch(entries []Entry) []any
}

// fsmAdapter presents an FSM to raft.
type fsmAdapter struct {
	fsm FSM
}

var _ raft.FSM = (*fsmAdapter)(nil)

func newFSMAdapter(f FSM) raft.FSM {
	a := &fsmAdapter{fsm: f}
	if b, ok := f.(BatchFSM); ok {
		return &batchFSMAdapter{fsmAdapter: a, batch: b}
	}
	return a
}

func (a *fsmAdapter) Apply(l *raft.Log) any {
	// raft calls Apply only for LogCommand entries.
	return a.fsm.Apply(l.Index, l.Data)
}

func (a *fsmAdapter) Snapshot() (raft.FSMSnapshot, error) {
	s, err := a.fsm.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("cluster: fsm snapshot: %w", err)
	}
	return snapshotAdapter{s}, nil
}

func (a *fsmAdapter) Restore(rc io.ReadCloser) error {
	// raft closes rc after Restore returns.
	if err := a.fsm.Restore(rc); err != nil {
		return fmt.Errorf("cluster: fsm restore: %w", err)
	}
	return nil
}

// batchFSMAdapter presents a BatchFSM to raft as a raft.BatchingFSM.
type batchFSMAdapter struct {
	*fsmAdapter
	batch BatchFSM
}

var _ raft.BatchingFSM = (*batchFSMAdapter)(nil)

// errBatchResponses is the response given to every entry of a batch for
// which the FSM returned the wrong number of values (a bug in the FSM).
var errBatchResponses = errors.New("cluster: fsm ApplyBatch returned the wrong number of values")

func (b *batchFSMAdapter) ApplyBatch(logs []*raft.Log) []any {
	// raft hands over LogCommand and LogConfiguration entries; only
	// commands are the FSM's business.
	entries := make([]Entry, 0, len(logs))
	for _, l := range logs {
		if l.Type == raft.LogCommand {
			entries = append(entries, Entry{Index: l.Index, Cmd: l.Data})
		}
	}
	out := make([]any, len(logs))
	if len(entries) == 0 {
		return out
	}
	resp := b.batch.ApplyBatch(entries)
	j := 0
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		if len(resp) != len(entries) {
			out[i] = errBatchResponses
		} else {
			out[i] = resp[j]
		}
		j++
	}
	return out
}

// snapshotAdapter presents a Snapshot to raft as a raft.FSMSnapshot.
type snapshotAdapter struct {
	s Snapshot
}

func (a snapshotAdapter) Persist(sink raft.SnapshotSink) error {
	if _, err := a.s.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("cluster: write snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("cluster: close snapshot: %w", err)
	}
	return nil
}

func (a snapshotAdapter) Release() { a.s.Release() }
