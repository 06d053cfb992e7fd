package syncer

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestIDSetAgainstMap: random adds and removes, checked against a Go map
// after every step, with tables small enough to wrap around and grow.
func TestIDSetAgainstMap(t *testing.T) {
	for _, tc := range []struct {
		name     string
		universe int // ids drawn from this many
		steps    int
	}{
		{"ok/dense-small", 50, 20000},
		{"ok/sparse-growing", 5000, 20000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tc.universe)))
			ids := make([]id, tc.universe)
			for i := range ids {
				if i == 0 {
					continue // keep the zero id in the universe
				}
				binary.LittleEndian.PutUint64(ids[i][:], rng.Uint64())
				binary.LittleEndian.PutUint64(ids[i][8:], rng.Uint64())
			}
			s := newIDSet(0)
			ref := map[id]bool{}
			for step := range tc.steps {
				k := ids[rng.IntN(len(ids))]
				if rng.IntN(3) == 0 {
					if got, want := s.remove(k), ref[k]; got != want {
						t.Fatalf("step %d: remove got %v, want %v", step, got, want)
					}
					delete(ref, k)
				} else {
					if got, want := s.add(k), !ref[k]; got != want {
						t.Fatalf("step %d: add got %v, want %v", step, got, want)
					}
					ref[k] = true
				}
				if s.len() != len(ref) {
					t.Fatalf("step %d: len got %d, want %d", step, s.len(), len(ref))
				}
				if step%97 == 0 {
					for _, k := range ids {
						if s.has(k) != ref[k] {
							t.Fatalf("step %d: has(%x) got %v, want %v", step, k, s.has(k), ref[k])
						}
					}
				}
			}
			s.compact()
			for _, k := range ids {
				if s.has(k) != ref[k] {
					t.Fatalf("after compact: has(%x) got %v, want %v", k, s.has(k), ref[k])
				}
			}
		})
	}
}
