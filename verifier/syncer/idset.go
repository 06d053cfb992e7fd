package syncer

import (
	"hash/maphash"
	"math/bits"
)

// id is a token id or a block revocation id's 16-byte prefix.
type id [16]byte

// idSet is a set of ids in one flat array: open addressing with linear
// probing, the all-zero id marking a free slot (the zero id itself is a
// flag), deletion by backward shift (no tombstones). It costs 16 bytes per
// slot, about 23 bytes per id at the load of a fresh table (0.7), against
// about 38 for a Go map, and needs one or two cache lines per lookup.
// Slots are found with a seeded hash, so ids chosen to collide (a holder
// can grind its own block signatures) cannot be aimed at a table.
//
// An idSet is not safe for concurrent use; the Syncer guards it.
type idSet struct {
	slots []id
	n     int // ids in slots
	zero  bool
	seed  maphash.Seed
}

// Loads of the table: a built or compacted table has loadBuild;
// insertion grows it to loadGrow when it would pass loadMax (so that a
// snapshot streaming in rehashes about 4n ids in all, and a table taking
// changes is not rehashed for every few).
const (
	loadBuildNum, loadBuildDen = 7, 10
	loadGrowNum, loadGrowDen   = 11, 20
	loadMaxNum, loadMaxDen     = 8, 10
)

func newIDSet(n int) *idSet {
	return &idSet{slots: make([]id, capacityFor(n)), seed: maphash.MakeSeed()}
}

func capacityFor(n int) int {
	return max(minSetCapacity, n*loadBuildDen/loadBuildNum+1)
}

// len returns the number of ids held.
func (s *idSet) len() int {
	if s.zero {
		return s.n + 1
	}
	return s.n
}

func (s *idSet) home(k *id) int {
	h := maphash.Bytes(s.seed, k[:])
	hi, _ := bits.Mul64(h, uint64(len(s.slots)))
	return int(hi)
}

// has reports whether k is in the set. It does not allocate.
func (s *idSet) has(k id) bool {
	if k == (id{}) {
		return s.zero
	}
	for i := s.home(&k); ; {
		switch s.slots[i] {
		case k:
			return true
		case id{}:
			return false
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
}

// add adds k and reports whether it was not there yet.
func (s *idSet) add(k id) bool {
	if k == (id{}) {
		added := !s.zero
		s.zero = true
		return added
	}
	if (s.n+1)*loadMaxDen > len(s.slots)*loadMaxNum {
		s.rehash(max(minSetCapacity, (s.n+1)*loadGrowDen/loadGrowNum+1))
	}
	for i := s.home(&k); ; {
		switch s.slots[i] {
		case k:
			return false
		case id{}:
			s.slots[i] = k
			s.n++
			return true
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
}

// remove removes k and reports whether it was there.
func (s *idSet) remove(k id) bool {
	if k == (id{}) {
		removed := s.zero
		s.zero = false
		return removed
	}
	i := s.home(&k)
	for s.slots[i] != k {
		if s.slots[i] == (id{}) {
			return false
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
	// Backward shift: move later ids of the run into the hole when their
	// home is not in the cyclic interval (hole, their slot].
	for j := i; ; {
		if j++; j == len(s.slots) {
			j = 0
		}
		if s.slots[j] == (id{}) {
			break
		}
		h := s.home(&s.slots[j])
		if i <= j && (h <= i || h > j) || i > j && h <= i && h > j {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = id{}
	s.n--
	return true
}

// compact shrinks the table to the build load if it is emptier (a table
// grown while a snapshot streamed in).
func (s *idSet) compact() {
	if c := capacityFor(s.n); c < len(s.slots)*19/20 {
		s.rehash(c)
	}
}

func (s *idSet) rehash(capacity int) {
	old := s.slots
	s.slots = make([]id, capacity)
	for i := range old {
		k := &old[i]
		if *k == (id{}) {
			continue
		}
		j := s.home(k)
		for s.slots[j] != (id{}) {
			if j++; j == len(s.slots) {
				j = 0
			}
		}
		s.slots[j] = *k
	}
}
