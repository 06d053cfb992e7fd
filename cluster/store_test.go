package cluster_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/writ-dev/writ/cluster"
)

// storeBackend opens a LogStore+StableStore pair. reopen, when not nil,
// closes the pair and opens the same data again.
type storeBackend struct {
	name string
	open func(t *testing.T) (stores, func() stores)
}

type stores struct {
	logs   raft.LogStore
	stable raft.StableStore
}

func pebbleBackend(t *testing.T, dir string, fs vfs.FS) (stores, func() stores) {
	open := func() *cluster.Store {
		s, err := cluster.OpenStore(dir, cluster.StoreOptions{FS: fs})
		if err != nil {
			t.Fatalf("OpenStore: %v", err)
		}
		return s
	}
	cur := open()
	t.Cleanup(func() { _ = cur.Close() })
	reopen := func() stores {
		if err := cur.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		cur = open()
		return stores{cur.Logs(), cur.Stable()}
	}
	return stores{cur.Logs(), cur.Stable()}, reopen
}

// backends are the stores the conformance suite runs against: ours on an
// in-memory and a real file system, and raft's own InmemStore as the
// reference for what raft expects.
var backends = []storeBackend{
	{"pebble-mem", func(t *testing.T) (stores, func() stores) {
		return pebbleBackend(t, "db", vfs.NewMem())
	}},
	{"pebble-disk", func(t *testing.T) (stores, func() stores) {
		return pebbleBackend(t, filepath.Join(t.TempDir(), "db"), nil)
	}},
	{"raft-inmem", func(t *testing.T) (stores, func() stores) {
		s := raft.NewInmemStore()
		return stores{s, s}, nil
	}},
}

func entry(index, term uint64, data string) *raft.Log {
	l := &raft.Log{Index: index, Term: term, Type: raft.LogCommand}
	if data != "" {
		l.Data = []byte(data)
	}
	return l
}

func entries(from, to, term uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, entry(i, term, "cmd-"+string(rune('a'+i%26))))
	}
	return out
}

func checkBounds(t *testing.T, s raft.LogStore, wantFirst, wantLast uint64) {
	t.Helper()
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if first != wantFirst || last != wantLast {
		t.Fatalf("got bounds %d..%d, want %d..%d", first, last, wantFirst, wantLast)
	}
}

func checkLog(t *testing.T, s raft.LogStore, want *raft.Log) {
	t.Helper()
	var got raft.Log
	if err := s.GetLog(want.Index, &got); err != nil {
		t.Fatalf("GetLog(%d): %v", want.Index, err)
	}
	if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
		!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
		!got.AppendedAt.Equal(want.AppendedAt) {
		t.Fatalf("GetLog(%d): got %+v, want %+v", want.Index, got, *want)
	}
}

func checkMissing(t *testing.T, s raft.LogStore, index uint64) {
	t.Helper()
	var got raft.Log
	// raft compares with ==, so the error must be raft.ErrLogNotFound itself.
	if err := s.GetLog(index, &got); err != raft.ErrLogNotFound { //nolint:errorlint // raft's contract is identity
		t.Fatalf("GetLog(%d): got error %v, want raft.ErrLogNotFound", index, err)
	}
}

func storeLogs(t *testing.T, s raft.LogStore, logs []*raft.Log) {
	t.Helper()
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs: %v", err)
	}
}

func deleteRange(t *testing.T, s raft.LogStore, lo, hi uint64) {
	t.Helper()
	if err := s.DeleteRange(lo, hi); err != nil {
		t.Fatalf("DeleteRange(%d, %d): %v", lo, hi, err)
	}
}

func TestStoreConformance(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, s stores)
	}{
		{"ok/empty", func(t *testing.T, s stores) {
			checkBounds(t, s.logs, 0, 0)
			checkMissing(t, s.logs, 1)
		}},
		{"ok/store-get-all-fields", func(t *testing.T, s stores) {
			want := &raft.Log{
				Index: 7, Term: 3, Type: raft.LogConfiguration,
				Data: []byte("data\x00\xff"), Extensions: []byte("ext"),
				AppendedAt: time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC),
			}
			if err := s.logs.StoreLog(want); err != nil {
				t.Fatalf("StoreLog: %v", err)
			}
			checkBounds(t, s.logs, 7, 7)
			checkLog(t, s.logs, want)
			checkMissing(t, s.logs, 6)
			checkMissing(t, s.logs, 8)
		}},
		{"ok/store-get-empty-data", func(t *testing.T, s stores) {
			want := &raft.Log{Index: 1, Term: 1, Type: raft.LogNoop}
			storeLogs(t, s.logs, []*raft.Log{want})
			checkLog(t, s.logs, want)
		}},
		{"ok/batch", func(t *testing.T, s stores) {
			logs := entries(1, 100, 2)
			storeLogs(t, s.logs, logs)
			checkBounds(t, s.logs, 1, 100)
			for _, l := range logs {
				checkLog(t, s.logs, l)
			}
			checkMissing(t, s.logs, 101)
		}},
		{"ok/append-batches", func(t *testing.T, s stores) {
			storeLogs(t, s.logs, entries(1, 10, 1))
			storeLogs(t, s.logs, entries(11, 20, 2))
			checkBounds(t, s.logs, 1, 20)
			checkLog(t, s.logs, entries(15, 15, 2)[0])
		}},
		{"ok/overwrite-same-index", func(t *testing.T, s stores) {
			storeLogs(t, s.logs, entries(1, 5, 1))
			replaced := entry(5, 2, "new")
			storeLogs(t, s.logs, []*raft.Log{replaced})
			checkBounds(t, s.logs, 1, 5)
			checkLog(t, s.logs, replaced)
		}},
		{"ok/delete-prefix", func(t *testing.T, s stores) {
			storeLogs(t, s.logs, entries(1, 10, 1))
			deleteRange(t, s.logs, 1, 5)
			checkBounds(t, s.logs, 6, 10)
			checkMissing(t, s.logs, 1)
			checkMissing(t, s.logs, 5)
			checkLog(t, s.logs, entries(6, 6, 1)[0])
		}},
		{"ok/delete-suffix", func(t *testing.T, s stores) {
			storeLogs(t, s.logs, entries(1, 10, 1))
			deleteRange(t, s.logs, 8, 10)
			checkBounds(t, s.logs, 1, 7)
			checkMissing(t, s.logs, 8)
			checkLog(t, s.logs, entries(7, 7, 1)[0])
		}},
		{"ok/delete-then-append", func(t *testing.T, s stores) {
			storeLogs(t, s.logs, entries(1, 10, 1))
			deleteRange(t, s.logs, 6, 10)
			storeLogs(t, s.logs, entries(6, 12, 2))
			checkBounds(t, s.logs, 1, 12)
			checkLog(t, s.logs, entries(6, 6, 2)[0])
		}},
		{"ok/delete-all", func(t *testing.T, s stores) {
			storeLogs(t, s.logs, entries(1, 10, 1))
			deleteRange(t, s.logs, 1, 10)
			checkBounds(t, s.logs, 0, 0)
			checkMissing(t, s.logs, 1)
			storeLogs(t, s.logs, entries(20, 25, 3))
			checkBounds(t, s.logs, 20, 25)
		}},
		{"ok/stable-get-missing", func(t *testing.T, s stores) {
			// raft treats a missing key as a "not found" error (or nil) and
			// an empty value.
			v, err := s.stable.Get([]byte("missing"))
			if err == nil || err.Error() != "not found" {
				t.Fatalf("Get(missing): got error %v, want \"not found\"", err)
			}
			if len(v) != 0 {
				t.Fatalf("Get(missing): got value %q, want empty", v)
			}
		}},
		{"ok/stable-get-uint64-missing", func(t *testing.T, s stores) {
			// raft.StableStore: "GetUint64 returns ... 0 if key was not found".
			v, err := s.stable.GetUint64([]byte("CurrentTerm"))
			if err != nil || v != 0 {
				t.Fatalf("GetUint64(missing): got (%d, %v), want (0, nil)", v, err)
			}
		}},
		{"ok/stable-set-get", func(t *testing.T, s stores) {
			big := bytes.Repeat([]byte{0xab}, 64<<10)
			for _, kv := range []struct{ k, v []byte }{
				{[]byte("LastVoteCand"), []byte("node-1")},
				{[]byte("k\x00bin"), []byte{0, 1, 2}},
				{[]byte("big"), big},
			} {
				if err := s.stable.Set(kv.k, kv.v); err != nil {
					t.Fatalf("Set(%q): %v", kv.k, err)
				}
				got, err := s.stable.Get(kv.k)
				if err != nil || !bytes.Equal(got, kv.v) {
					t.Fatalf("Get(%q): got (%d bytes, %v), want %d bytes", kv.k, len(got), err, len(kv.v))
				}
			}
			if err := s.stable.Set([]byte("LastVoteCand"), []byte("node-2")); err != nil {
				t.Fatalf("Set overwrite: %v", err)
			}
			if got, err := s.stable.Get([]byte("LastVoteCand")); err != nil || string(got) != "node-2" {
				t.Fatalf("Get after overwrite: got (%q, %v), want node-2", got, err)
			}
		}},
		{"ok/stable-uint64", func(t *testing.T, s stores) {
			for _, v := range []uint64{0, 1, 1 << 40, ^uint64(0)} {
				if err := s.stable.SetUint64([]byte("CurrentTerm"), v); err != nil {
					t.Fatalf("SetUint64(%d): %v", v, err)
				}
				got, err := s.stable.GetUint64([]byte("CurrentTerm"))
				if err != nil || got != v {
					t.Fatalf("GetUint64: got (%d, %v), want %d", got, err, v)
				}
			}
		}},
	}
	for _, b := range backends {
		for _, tc := range cases {
			t.Run(b.name+"/"+tc.name, func(t *testing.T) {
				s, _ := b.open(t)
				tc.run(t, s)
			})
		}
	}
}

func TestStoreReopenKeepsData(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s, reopen := b.open(t)
			if reopen == nil {
				t.Skip("backend is not persistent")
			}
			logs := entries(1, 50, 4)
			storeLogs(t, s.logs, logs)
			deleteRange(t, s.logs, 1, 9)
			if err := s.stable.SetUint64([]byte("CurrentTerm"), 4); err != nil {
				t.Fatal(err)
			}
			if err := s.stable.Set([]byte("LastVoteCand"), []byte("n1")); err != nil {
				t.Fatal(err)
			}

			s = reopen()
			checkBounds(t, s.logs, 10, 50)
			checkMissing(t, s.logs, 9)
			for _, l := range logs[9:] {
				checkLog(t, s.logs, l)
			}
			if got, err := s.stable.GetUint64([]byte("CurrentTerm")); err != nil || got != 4 {
				t.Fatalf("GetUint64 after reopen: got (%d, %v), want 4", got, err)
			}
			if got, err := s.stable.Get([]byte("LastVoteCand")); err != nil || string(got) != "n1" {
				t.Fatalf("Get after reopen: got (%q, %v), want n1", got, err)
			}
		})
	}
}

func TestStoreClosed(t *testing.T) {
	s, err := cluster.OpenStore("db", cluster.StoreOptions{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: got %v, want nil", err)
	}
	calls := map[string]error{
		"StoreLogs": s.Logs().StoreLogs(entries(1, 1, 1)),
		"GetLog":    s.Logs().GetLog(1, new(raft.Log)),
		"Set":       s.Stable().Set([]byte("k"), []byte("v")),
	}
	_, calls["FirstIndex"] = s.Logs().FirstIndex()
	_, calls["Get"] = s.Stable().Get([]byte("k"))
	for name, err := range calls {
		if !errors.Is(err, cluster.ErrStoreClosed) {
			t.Errorf("%s after Close: got %v, want ErrStoreClosed", name, err)
		}
	}
}

func TestStoreRefusesBadEntries(t *testing.T) {
	s, err := cluster.OpenStore("db", cluster.StoreOptions{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for name, logs := range map[string][]*raft.Log{
		"fail/index-zero":   {entry(0, 1, "x")},
		"fail/nil-entry":    {entry(1, 1, "x"), nil},
		"fail/unknown-type": {{Index: 1, Term: 1, Type: raft.LogType(200)}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := s.Logs().StoreLogs(logs); err == nil {
				t.Fatal("StoreLogs: got nil error, want refusal")
			}
			// The batch is all-or-nothing: nothing was written.
			checkBounds(t, s.Logs(), 0, 0)
		})
	}
}
