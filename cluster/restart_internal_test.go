package cluster

import (
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// TestMustRestore decides between the FSM's own state and the snapshot
// for a log of
//
//	1 config t1, 2 command t1, 3 command t2, 4 barrier t2,
//	5 config t2, 6 command t2, 7 barrier t2.
func TestMustRestore(t *testing.T) {
	types := []raft.LogType{raft.LogConfiguration, raft.LogCommand, raft.LogCommand, raft.LogBarrier,
		raft.LogConfiguration, raft.LogCommand, raft.LogBarrier}
	terms := []uint64{1, 1, 2, 2, 2, 2, 2}
	cases := []struct {
		name          string
		compactTo     uint64 // entries 1..compactTo are deleted first
		snapIndex     uint64
		snapTerm      uint64
		applied       uint64
		wantRestore   bool
		wantReasonSub string
	}{
		{"skip/at-snapshot", 0, 6, 2, 6, false, "already holds"},
		{"skip/ahead-of-snapshot", 0, 3, 2, 6, false, "already holds"},
		{"skip/only-barrier-and-config-between", 0, 5, 2, 3, false, "non-command"},
		{"skip/trailing-barrier", 0, 7, 2, 6, false, "non-command"},
		{"skip/log-compacted-below-fsm", 5, 7, 2, 6, false, "non-command"},
		{"skip/snapshot-past-log-fsm-at-it", 0, 20, 3, 20, false, "already holds"},
		{"restore/command-between", 0, 6, 2, 3, true, "command 6"},
		{"restore/empty-fsm", 0, 5, 2, 0, true, "command 2"},
		{"restore/term-mismatch", 0, 5, 3, 3, true, "term"},
		{"restore/entries-compacted", 4, 5, 2, 3, true, "no longer holds"},
		{"restore/snapshot-past-log", 0, 20, 3, 7, true, "no longer holds"},
		{"restore/fsm-past-log", 0, 5, 2, 8, true, "past the end of the log"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenStore("db", StoreOptions{FS: vfs.NewMem()})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var logs []*raft.Log
			for i, typ := range types {
				logs = append(logs, &raft.Log{Index: uint64(i + 1), Term: terms[i], Type: typ, Data: []byte{byte(i)}})
			}
			if err := s.Logs().StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
			if tc.compactTo > 0 {
				if err := s.Logs().DeleteRange(1, tc.compactTo); err != nil {
					t.Fatal(err)
				}
			}
			restore, why := mustRestore(tc.snapIndex, tc.snapTerm, tc.applied, s.Logs())
			if restore != tc.wantRestore || !strings.Contains(why, tc.wantReasonSub) {
				t.Fatalf("mustRestore: got (%v, %q), want (%v, …%q…)", restore, why, tc.wantRestore, tc.wantReasonSub)
			}
		})
	}
}

// TestPlanStart: no snapshot means nothing to restore; a snapshot and no
// FSMApplied means restore.
func TestPlanStart(t *testing.T) {
	dir := t.TempDir()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 1, newHCLog(nil, "test"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore("db", StoreOptions{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	info, err := planStart(snaps, s.Logs(), func() uint64 { return 0 })
	if err != nil || info.Restored || info.SnapshotIndex != 0 {
		t.Fatalf("no snapshot: got %+v, %v; want nothing restored", info, err)
	}
	sink, err := snaps.Create(raft.SnapshotVersionMax, 9, 2, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write([]byte("state")); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		applied     func() uint64
		wantRestore bool
	}{
		{"restore/no-fsm-applied", nil, true},
		{"restore/fsm-behind-empty-log", func() uint64 { return 3 }, true},
		{"skip/fsm-at-snapshot", func() uint64 { return 9 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := planStart(snaps, s.Logs(), tc.applied)
			if err != nil || info.Restored != tc.wantRestore || info.SnapshotIndex != 9 {
				t.Fatalf("got %+v, %v; want Restored %v at snapshot 9", info, err, tc.wantRestore)
			}
		})
	}
}
