package verifier

import (
	"sync"
)

// tokenCache keeps compiled, signature-verified tokens by the SHA-256 of
// their bytes, so that a token seen before costs no decoding and no
// signature work. It holds at most its capacity; when full it evicts with
// the CLOCK algorithm (an entry used since the hand last passed gets a
// second chance). Only successfully verified tokens enter it, so an
// attacker cannot fill it without valid signatures.
//
// It is sharded by the first byte of the key to spread lock contention;
// get takes a read lock only.
type tokenCache struct {
	shards []cacheShard
}

type cacheShard struct {
	mu   sync.RWMutex
	m    map[[32]byte]*compiled
	ring [][32]byte // keys in insertion order; the clock face
	hand int
	cap  int
}

// cacheShards is the number of shards of caches of at least
// cacheShardMin entries per shard; smaller caches use one shard so that
// their capacity is exact.
const (
	cacheShards   = 16
	cacheShardMin = 256
)

func newTokenCache(size int) *tokenCache {
	n := 1
	if size >= cacheShards*cacheShardMin {
		n = cacheShards
	}
	c := &tokenCache{shards: make([]cacheShard, n)}
	per := (size + n - 1) / n
	for i := range c.shards {
		c.shards[i].cap = per
		c.shards[i].m = make(map[[32]byte]*compiled, min(per, 1024))
	}
	return c
}

func (c *tokenCache) shard(key *[32]byte) *cacheShard {
	return &c.shards[int(key[0])%len(c.shards)]
}

// get returns the entry for key, or nil.
func (c *tokenCache) get(key *[32]byte) *compiled {
	s := c.shard(key)
	s.mu.RLock()
	e := s.m[*key]
	s.mu.RUnlock()
	if e != nil && !e.ref.Load() {
		e.ref.Store(true)
	}
	return e
}

// put adds e under key unless the key is present, evicting if full.
func (c *tokenCache) put(key *[32]byte, e *compiled) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[*key]; ok {
		return
	}
	if len(s.ring) < s.cap {
		s.ring = append(s.ring, *key)
		s.m[*key] = e
		return
	}
	// Advance the hand past recently used entries, at most one full turn.
	for range len(s.ring) {
		old := s.m[s.ring[s.hand]]
		if old == nil || !old.ref.Load() {
			break
		}
		old.ref.Store(false)
		s.hand = (s.hand + 1) % len(s.ring)
	}
	delete(s.m, s.ring[s.hand])
	s.ring[s.hand] = *key
	s.m[*key] = e
	s.hand = (s.hand + 1) % len(s.ring)
}

// remove drops key; its ring slot is reused by a later eviction.
func (c *tokenCache) remove(key *[32]byte) {
	s := c.shard(key)
	s.mu.Lock()
	delete(s.m, *key)
	s.mu.Unlock()
}

// len returns the number of entries.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
