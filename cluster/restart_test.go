package cluster_test

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/writ-dev/writ/cluster"
	"github.com/writ-dev/writ/cluster/clustertest"
)

// kvApplied reports a KV's applied index, as Config.FSMApplied wants it.
func kvApplied(kv *clustertest.KV) func() uint64 {
	return func() uint64 { last, _ := kv.StateHash(); return last }
}

// kvUpTo returns a fresh KV holding the ops of entries at or below index,
// as a KV that persisted its state at that point would after a restart.
func kvUpTo(t *testing.T, entries []clustertest.Entry, index uint64) *clustertest.KV {
	t.Helper()
	kv := clustertest.NewKV()
	for _, e := range entries {
		if e.Index > index {
			break
		}
		if r := kv.ApplyBatch([]cluster.Entry{{Index: e.Index, Cmd: e.Op.Encode()}})[0].(clustertest.Result); r.Err != nil || r.Dup {
			t.Fatalf("rebuild KV at %d: %+v", e.Index, r)
		}
	}
	return kv
}

func applyOp(t *testing.T, n *cluster.Node, i int) {
	t.Helper()
	op := clustertest.Op{ID: fmt.Sprintf("op-%d", i), Key: "k", Value: fmt.Sprint(i)}
	if _, err := n.Apply(t.Context(), op.Encode()); err != nil {
		t.Fatalf("Apply op %d: %v", i, err)
	}
}

// TestRestartSkipsSnapshotRestore: with Config.FSMApplied, a node whose FSM
// state already holds the newest snapshot starts without restoring it and
// ends in the same state; an FSM that is behind the snapshot, wiped, or
// ahead of the log gets the snapshot restored as without the option.
func TestRestartSkipsSnapshotRestore(t *testing.T) {
	ca := clustertest.NewCA(t, "writ.test")
	base := clustertest.Config(t, ca, "n1")

	// History: 30 ops, a barrier, a snapshot (at the barrier's index, past
	// the last op), 5 more ops.
	kv := clustertest.NewKV()
	cfg := base
	cfg.FSMApplied = kvApplied(kv)
	node, stop := runNode(t, cfg, kv)
	waitLeader(t, node)
	for i := range 30 {
		applyOp(t, node, i)
	}
	if err := node.Barrier(t.Context()); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	if err := node.Snapshot(t.Context()); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	snapIndex := node.Stats().LastSnapshotIndex
	atSnap, _ := kv.StateHash()
	if snapIndex <= atSnap {
		t.Fatalf("snapshot at %d, want past the last op %d (the barrier's entry)", snapIndex, atSnap)
	}
	for i := 30; i < 35; i++ {
		applyOp(t, node, i)
	}
	stop()
	wantLast, wantDigest := kv.StateHash()
	history := kv.Entries()

	cases := []struct {
		name        string
		fsm         func(t *testing.T) *clustertest.KV
		nilApplied  bool
		wantRestore bool
	}{
		{"ok/fsm-holds-everything", func(*testing.T) *clustertest.KV { return kv }, false, false},
		{"ok/fsm-at-last-op-before-snapshot", func(t *testing.T) *clustertest.KV { return kvUpTo(t, history, snapIndex) }, false, false},
		{"restore/fsm-behind-snapshot", func(t *testing.T) *clustertest.KV { return kvUpTo(t, history, atSnap-5) }, false, true},
		{"restore/fsm-wiped", func(*testing.T) *clustertest.KV { return clustertest.NewKV() }, false, true},
		{"restore/fsm-ahead-of-log", func(t *testing.T) *clustertest.KV {
			k := clustertest.NewKV()
			k.ApplyBatch([]cluster.Entry{{Index: 1 << 40, Cmd: clustertest.Op{ID: "alien", Key: "k", Value: "x"}.Encode()}})
			return k
		}, false, true},
		{"restore/option-unset", func(*testing.T) *clustertest.KV { return clustertest.NewKV() }, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.DataDir = t.TempDir()
			if err := os.CopyFS(cfg.DataDir, os.DirFS(base.DataDir)); err != nil {
				t.Fatal(err)
			}
			fsm := tc.fsm(t)
			if !tc.nilApplied {
				cfg.FSMApplied = kvApplied(fsm)
			}
			restoresBefore := fsm.Restores()
			node, _ := runNode(t, cfg, fsm)
			info := node.StartInfo()
			if info.Restored != tc.wantRestore || info.SnapshotIndex != snapIndex {
				t.Fatalf("StartInfo: got %+v, want Restored %v at snapshot %d", info, tc.wantRestore, snapIndex)
			}
			waitLeader(t, node)
			if err := node.Barrier(t.Context()); err != nil {
				t.Fatalf("Barrier after restart: %v", err)
			}
			wantRestores := restoresBefore
			if tc.wantRestore {
				wantRestores++
			}
			if got := fsm.Restores(); got != wantRestores {
				t.Errorf("Restore calls: got %d, want %d", got, wantRestores)
			}
			last, digest := fsm.StateHash()
			if last != wantLast || !bytes.Equal(digest, wantDigest) || fsm.Len() != len(history) {
				t.Fatalf("state after restart: last %d, %d ops, digest %x; want last %d, %d ops, digest %x",
					last, fsm.Len(), digest, wantLast, len(history), wantDigest)
			}
			applyOp(t, node, 100)
			if idx, ok := fsm.Lookup("op-100"); !ok || idx <= wantLast {
				t.Fatalf("op after restart: applied at %d (%v), want past %d", idx, ok, wantLast)
			}
		})
	}
}

// TestRestartWithoutSnapshot: with FSMApplied set and no snapshot on disk,
// nothing is restored and the log replays into the FSM as before.
func TestRestartWithoutSnapshot(t *testing.T) {
	ca := clustertest.NewCA(t, "writ.test")
	cfg := clustertest.Config(t, ca, "n1")
	kv := clustertest.NewKV()
	cfg.FSMApplied = kvApplied(kv)
	node, stop := runNode(t, cfg, kv)
	waitLeader(t, node)
	for i := range 5 {
		applyOp(t, node, i)
	}
	stop()
	_, want := kv.StateHash()

	fresh := clustertest.NewKV()
	cfg.FSMApplied = kvApplied(fresh)
	node, _ = runNode(t, cfg, fresh)
	if info := node.StartInfo(); info.Restored || info.SnapshotIndex != 0 {
		t.Fatalf("StartInfo: got %+v, want no snapshot and no restore", info)
	}
	waitLeader(t, node)
	if err := node.Barrier(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, got := fresh.StateHash(); !bytes.Equal(got, want) || fresh.Restores() != 0 {
		t.Fatalf("after replay: digest %x (%d restores), want %x and no restore", got, fresh.Restores(), want)
	}
}
