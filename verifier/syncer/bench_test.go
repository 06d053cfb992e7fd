package syncer_test

import (
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/writ-dev/writ/internal/syncwire"
	"github.com/writ-dev/writ/verifier/syncer"
)

// bigID returns the i-th id of a large test set (kind 1: tokens, 2:
// blocks); its hex form is what the verifier asks about.
func bigID(kind byte, i int) (syncwire.Entry, string) {
	e := syncwire.Entry{Kind: syncwire.EntryKind(kind)}
	e.ID[0] = 0xa0 | kind
	binary.BigEndian.PutUint64(e.ID[4:], uint64(i)*0x9e3779b97f4a7c15)
	binary.BigEndian.PutUint32(e.ID[12:], uint32(i))
	h := hex.EncodeToString(e.ID[:])
	if kind == 2 {
		h += hex.EncodeToString(make([]byte, 48))
	}
	return e, h
}

// bigSnapshot returns the frames of a snapshot of n entries, half token
// ids and half block ids when mixed, else all token ids.
func bigSnapshot(tb testing.TB, n int, mixed bool) []byte {
	s := &syncwire.Snapshot{Epoch: 100, Keys: []syncwire.Key{key(1, syncwire.KeyActive)}, Entries: make([]syncwire.Entry, n)}
	for i := range s.Entries {
		kind := byte(1)
		if mixed && i%2 == 1 {
			kind = 2
		}
		s.Entries[i], _ = bigID(kind, i)
	}
	b, err := syncwire.EncodeSnapshot(s, rootKey(1))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// loadBig returns a Syncer whose copy, loaded from a state file, holds n
// entries.
func loadBig(tb testing.TB, p *pkiFixture, n int, mixed bool) *syncer.Syncer {
	path := filepath.Join(tb.TempDir(), "state")
	if err := os.WriteFile(path, bigSnapshot(tb, n, mixed), 0o600); err != nil {
		tb.Fatal(err)
	}
	s := p.newSyncer(tb, newClock(), []string{"https://127.0.0.1:1"}, func(c *syncer.Config) { c.StateFile = path })
	if s.Epoch() != 100 {
		tb.Fatalf("state file not loaded: epoch %d", s.Epoch())
	}
	return s
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestMemoryPerEntry: a copy of 1,000,000 revocation entries takes at
// most 40 bytes per entry of heap.
func TestMemoryPerEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 1,000,000-entry copy")
	}
	p := newPKI(t)
	const n = 1_000_000
	for _, tc := range []struct {
		name  string
		mixed bool
	}{{"ok/tokens", false}, {"ok/tokens-and-blocks", true}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state")
			if err := os.WriteFile(path, bigSnapshot(t, n, tc.mixed), 0o600); err != nil {
				t.Fatal(err)
			}
			before := heapInUse()
			s := p.newSyncer(t, newClock(), []string{"https://127.0.0.1:1"}, func(c *syncer.Config) { c.StateFile = path })
			after := heapInUse()
			_, h := bigID(1, 8) // even: a token id in both sets
			if s.Epoch() != 100 || !s.Revoked(h) {
				t.Fatalf("copy not loaded: epoch %d", s.Epoch())
			}
			perEntry := float64(int64(after)-int64(before)) / n
			t.Logf("%.1f bytes per entry of heap at %d entries", perEntry, n)
			if perEntry > 40 {
				t.Errorf("got %.1f bytes per entry, want at most 40", perEntry)
			}
			runtime.KeepAlive(s)
		})
	}
}

// BenchmarkRevoked: one lookup in a copy of 1,000,000 entries (half
// token ids, half block ids), as the verifier asks once per block.
func BenchmarkRevoked(b *testing.B) {
	s := loadBig(b, newPKI(b), 1_000_000, true)
	const m = 1 << 12
	for _, tc := range []struct {
		name string
		kind byte
		hit  bool
	}{{"token-hit", 1, true}, {"token-miss", 1, false}, {"block-hit", 2, true}, {"block-miss", 2, false}} {
		ids := make([]string, m)
		for i := range ids {
			j := (i * 7919) % 500_000 * 2 // an index of this kind
			if tc.kind == 2 {
				j++
			}
			if !tc.hit {
				j += 1_000_000
			}
			_, ids[i] = bigID(tc.kind, j)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if s.Revoked(ids[i&(m-1)]) != tc.hit {
					b.Fatalf("Revoked(%s): got %v, want %v", ids[i&(m-1)], !tc.hit, tc.hit)
				}
				i++
			}
		})
	}
	b.Run("parallel-token-hit", func(b *testing.B) {
		_, id := bigID(1, 4242)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !s.Revoked(id) {
					b.Fatal("not revoked")
				}
			}
		})
	})
}

// BenchmarkSnapshotApply: a verifier's first sync of a 1,000,000-entry
// copy over mTLS (half token ids, half block ids): request, stream,
// verification, tables, swap. Run with -benchtime=3x.
func BenchmarkSnapshotApply(b *testing.B) {
	p, clk := newPKI(b), newClock()
	c := newCluster(clk.Now)
	c.epoch = 100
	n := p.startNode(b, c, "node-1")
	body := append(bigSnapshot(b, 1_000_000, true), c.heartbeat(b, "node-1")...)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		s := p.newSyncer(b, clk, []string{n.url})
		n.setScript(body)
		if err := s.Sync(b.Context()); err != nil {
			b.Fatal(err)
		}
		if s.Epoch() != 100 {
			b.Fatalf("epoch %d", s.Epoch())
		}
		s.Close()
	}
	b.ReportMetric(float64(len(body))/1e6, "wire-B/entry")
}
