package cluster

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

func TestStoreDetectsCorruptEntries(t *testing.T) {
	s, err := OpenStore("db", StoreOptions{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Logs().StoreLogs([]*raft.Log{{Index: 1, Term: 1, Data: []byte("a")}, {Index: 2, Term: 1}}); err != nil {
		t.Fatal(err)
	}
	// Entry 2's bytes under key 3: a value moved to the wrong key.
	moved, closer, err := s.db.Get(logKey(2))
	if err != nil {
		t.Fatal(err)
	}
	movedCopy := append([]byte(nil), moved...)
	_ = closer.Close()
	if err := s.db.Set(logKey(3), movedCopy, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Set(logKey(1), []byte("garbage"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	for _, idx := range []uint64{1, 3} {
		var l raft.Log
		if err := s.Logs().GetLog(idx, &l); !errors.Is(err, ErrCorruptLog) {
			t.Errorf("GetLog(%d): got %v, want ErrCorruptLog", idx, err)
		}
	}
}

func TestStoreRefusesUnknownVersion(t *testing.T) {
	fs := vfs.NewMem()
	s, err := OpenStore("db", StoreOptions{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Set(keyStoreVersion, []byte{2}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenStore("db", StoreOptions{FS: fs})
	if !errors.Is(err, ErrStoreVersion) {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("OpenStore: got %v, want ErrStoreVersion", err)
	}
}

func TestStoreGetUint64RejectsWrongLength(t *testing.T) {
	s, err := OpenStore("db", StoreOptions{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Stable().Set([]byte("k"), []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stable().GetUint64([]byte("k")); err == nil {
		t.Fatal("GetUint64 of a 3-byte value: got nil error, want error")
	}
}
