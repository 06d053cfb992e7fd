package clustertest

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/cluster"
)

func TestOpRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		op   Op
	}{
		{"ok/plain", Op{ID: "w1-7", Key: "k2", Value: "v"}},
		{"ok/empty-key-and-value", Op{ID: "x"}},
		{"ok/binary", Op{ID: "\x00\xff", Key: "\n", Value: string(bytes.Repeat([]byte{0x80}, 300))}},
		{"ok/max-fields", Op{ID: strings.Repeat("i", MaxOpFieldBytes), Key: strings.Repeat("k", MaxOpFieldBytes), Value: strings.Repeat("v", MaxOpFieldBytes)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeOp(tt.op.Encode())
			if err != nil {
				t.Fatalf("DecodeOp: %v", err)
			}
			if got != tt.op {
				t.Fatalf("got %+v, want %+v", got, tt.op)
			}
		})
	}
}

func TestDecodeOpRefuses(t *testing.T) {
	valid := Op{ID: "id", Key: "k", Value: "v"}.Encode()
	tests := []struct {
		name string
		b    []byte
	}{
		{"fail/empty", nil},
		{"fail/version", append([]byte{9}, valid[1:]...)},
		{"fail/truncated", valid[:len(valid)-1]},
		{"fail/trailing", append(slices.Clone(valid), 0)},
		{"fail/empty-id", Op{Key: "k"}.Encode()},
		{"fail/oversized-field", Op{ID: "i", Key: strings.Repeat("k", MaxOpFieldBytes+1)}.Encode()},
		{"fail/overlong-varint", []byte{opVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if op, err := DecodeOp(tt.b); !errors.Is(err, ErrBadOp) {
				t.Fatalf("got (%+v, %v), want ErrBadOp", op, err)
			}
		})
	}
}

func TestKVDeduplicates(t *testing.T) {
	kv := NewKV()
	a := Op{ID: "a", Key: "k", Value: "1"}
	b := Op{ID: "b", Key: "k", Value: "2"}
	res := kv.ApplyBatch([]cluster.Entry{{Index: 3, Cmd: a.Encode()}, {Index: 4, Cmd: b.Encode()}, {Index: 5, Cmd: a.Encode()}})
	want := []any{Result{Index: 3}, Result{Index: 4}, Result{Index: 3, Dup: true}}
	if !slices.Equal(res, want) {
		t.Fatalf("ApplyBatch: got %v, want %v", res, want)
	}
	if got := kv.Apply(6, b.Encode()); got != (Result{Index: 4, Dup: true}) {
		t.Fatalf("Apply(duplicate b): got %v, want Dup at 4", got)
	}
	if got := kv.Apply(7, []byte("junk")).(Result); !errors.Is(got.Err, ErrBadOp) {
		t.Fatalf("Apply(junk): got %v, want ErrBadOp", got)
	}
	if got := kv.Values("k"); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("Values: got %v, want [1 2]", got)
	}
	if idx, _ := kv.StateHash(); idx != 7 {
		t.Fatalf("StateHash index: got %d, want 7 (the last command, whatever its outcome)", idx)
	}
}

// TestKVSnapshotRestore checks that a restored KV has the same state, the
// same hash and still deduplicates the ops it restored.
func TestKVSnapshotRestore(t *testing.T) {
	src := NewKV()
	for i, id := range []string{"a", "b", "c"} {
		src.Apply(uint64(10+i), Op{ID: id, Key: "k" + id, Value: "v" + id}.Encode())
	}
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Applies after Snapshot must not show up in it.
	src.Apply(20, Op{ID: "late", Key: "k", Value: "v"}.Encode())
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	dst := NewKV()
	dst.Apply(1, Op{ID: "old", Key: "k", Value: "gone"}.Encode())
	if err := dst.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if dst.Restores() != 1 {
		t.Fatalf("Restores: got %d, want 1", dst.Restores())
	}
	if _, ok := dst.Lookup("old"); ok {
		t.Fatal("Restore kept state from before")
	}
	if _, ok := dst.Lookup("late"); ok {
		t.Fatal("snapshot contains an op applied after Snapshot")
	}
	ref := NewKV()
	for i, id := range []string{"a", "b", "c"} {
		ref.Apply(uint64(10+i), Op{ID: id, Key: "k" + id, Value: "v" + id}.Encode())
	}
	gi, gd := dst.StateHash()
	wi, wd := ref.StateHash()
	if gi != wi || !bytes.Equal(gd, wd) {
		t.Fatalf("StateHash after restore: got (%d, %x), want (%d, %x)", gi, gd, wi, wd)
	}
	if got := dst.Apply(30, Op{ID: "b", Key: "kb", Value: "again"}.Encode()); got != (Result{Index: 11, Dup: true}) {
		t.Fatalf("re-applying a restored op: got %v, want Dup at 11", got)
	}
}

func TestKVStateHashDiffers(t *testing.T) {
	tests := []struct {
		name string
		a, b []Entry
	}{
		{"fail/order", []Entry{{1, Op{ID: "x"}}, {2, Op{ID: "y"}}}, []Entry{{1, Op{ID: "y"}}, {2, Op{ID: "x"}}}},
		{"fail/index", []Entry{{1, Op{ID: "x"}}}, []Entry{{2, Op{ID: "x"}}}},
		{"fail/value", []Entry{{1, Op{ID: "x", Value: "1"}}}, []Entry{{1, Op{ID: "x", Value: "2"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			digest := func(es []Entry) []byte {
				kv := NewKV()
				for _, e := range es {
					kv.Apply(e.Index, e.Op.Encode())
				}
				_, d := kv.StateHash()
				return d
			}
			if bytes.Equal(digest(tt.a), digest(tt.b)) {
				t.Fatal("different states have the same hash")
			}
		})
	}
}

func TestKVRestoreRefuses(t *testing.T) {
	good := func() []byte {
		kv := NewKV()
		kv.Apply(5, Op{ID: "a", Key: "k", Value: "v"}.Encode())
		kv.Apply(6, Op{ID: "b", Key: "k", Value: "w"}.Encode())
		s, _ := kv.Snapshot()
		var buf bytes.Buffer
		_, _ = s.WriteTo(&buf)
		return buf.Bytes()
	}()
	dup := NewKV()
	dup.entries = []Entry{{1, Op{ID: "a"}}, {2, Op{ID: "a"}}}
	dup.last = 2
	dupSnap, _ := dup.Snapshot()
	var dupBuf bytes.Buffer
	_, _ = dupSnap.WriteTo(&dupBuf)
	tests := []struct {
		name string
		b    []byte
	}{
		{"fail/empty", nil},
		{"fail/version", append([]byte{7}, good[1:]...)},
		{"fail/truncated", good[:len(good)-1]},
		{"fail/trailing", append(slices.Clone(good), 1)},
		{"fail/huge-count", []byte{snapshotVersion, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"fail/duplicate-id", dupBuf.Bytes()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := NewKV()
			kv.Apply(1, Op{ID: "keep", Key: "k", Value: "v"}.Encode())
			if err := kv.Restore(bytes.NewReader(tt.b)); !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("got %v, want ErrBadSnapshot", err)
			}
			if _, ok := kv.Lookup("keep"); !ok || kv.Restores() != 0 {
				t.Fatal("a refused snapshot changed the state")
			}
		})
	}
}

func TestKVHold(t *testing.T) {
	kv := NewKV()
	release := kv.Hold()
	applied := make(chan struct{})
	go func() {
		kv.Apply(1, Op{ID: "a"}.Encode())
		close(applied)
	}()
	select {
	case <-applied:
		t.Fatal("Apply returned while held")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	release() // idempotent
	<-applied
	if _, ok := kv.Lookup("a"); !ok {
		t.Fatal("op not applied after release")
	}
}

func FuzzDecodeOp(f *testing.F) {
	f.Add(Op{ID: "w1-1", Key: "k", Value: "v"}.Encode())
	f.Add([]byte{opVersion, 1, 'a', 0, 0})
	f.Add([]byte{opVersion, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		op, err := DecodeOp(b)
		if err != nil {
			return
		}
		if !bytes.Equal(op.Encode(), b) {
			t.Fatalf("DecodeOp accepted a non-canonical encoding %x", b)
		}
	})
}

func FuzzKVRestore(f *testing.F) {
	kv := NewKV()
	kv.Apply(3, Op{ID: "a", Key: "k", Value: "v"}.Encode())
	s, _ := kv.Snapshot()
	var buf bytes.Buffer
	_, _ = s.WriteTo(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte{snapshotVersion, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		kv := NewKV()
		if err := kv.Restore(bytes.NewReader(b)); err != nil {
			return
		}
		// What was accepted snapshots back to the same bytes.
		s, err := kv.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := s.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), b) {
			t.Fatalf("restored %x, snapshots back as %x", b, out.Bytes())
		}
	})
}
