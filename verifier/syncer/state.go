package syncer

import (
	"cmp"
	"crypto/ed25519"
	"fmt"
	"slices"
	"time"

	"github.com/writ-dev/writ/internal/syncwire"
	"github.com/writ-dev/writ/verifier"
)

// state is a copy of the sync state. Its fields are replaced or changed
// only under Syncer.mu (write); lookups read them under Syncer.mu (read).
type state struct {
	epoch    uint64 // 0: no snapshot yet
	snapshot bool   // a snapshot was applied (from a node or the file)
	keys     []syncwire.Key
	nodes    []string
	// Derived from keys: the keys that verify, in the order RootKeys
	// returns them, and the revoked ids.
	usable  []verifier.RootKey
	revoked map[uint32]bool
	tokens  *idSet
	blocks  *idSet
	agents  map[string][]int64 // agent → befores (Unix ms), ascending
}

func newState() *state {
	return &state{tokens: newIDSet(0), blocks: newIDSet(0), agents: map[string][]int64{}}
}

// entries returns the number of revocation entries held.
func (s *state) entries() int {
	n := s.tokens.len() + s.blocks.len()
	for _, b := range s.agents {
		n += len(b)
	}
	return n
}

// setKeys replaces the key list. keys must have passed checkKeys.
func (s *state) setKeys(keys []syncwire.Key) {
	s.keys = keys
	s.usable = s.usable[:0:0]
	s.revoked = map[uint32]bool{}
	rank := func(st syncwire.KeyState) int {
		switch st {
		case syncwire.KeyActive:
			return 0
		case syncwire.KeyRetiring:
			return 1
		}
		return 2
	}
	sorted := slices.Clone(keys)
	slices.SortStableFunc(sorted, func(a, b syncwire.Key) int { return cmp.Compare(rank(a.State), rank(b.State)) })
	for _, k := range sorted {
		if k.State.Verifies() {
			s.usable = append(s.usable, verifier.RootKey{ID: k.ID, Public: k.Public})
		} else {
			s.revoked[k.ID] = true
		}
	}
}

// signer returns the key of id when it may verify sync frames.
func (s *state) signer(id uint32) (ed25519.PublicKey, bool) {
	for _, k := range s.usable {
		if k.ID == id {
			return k.Public, true
		}
	}
	return nil, false
}

// checkKeys refuses a key list with a key that is not a canonical Ed25519
// point of large order (such a key verifies forged signatures), whatever
// its state.
func checkKeys(keys []syncwire.Key) error {
	rk := make([]verifier.RootKey, len(keys))
	for i, k := range keys {
		rk[i] = verifier.RootKey{ID: k.ID, Public: k.Public}
	}
	if _, err := verifier.NewKeySet(rk...); err != nil {
		return fmt.Errorf("%w: key list: %w", ErrBadAnswer, err)
	}
	return nil
}

// builder collects a snapshot's entries as they stream in, into tables
// that replace the held ones only once the snapshot is verified.
type builder struct {
	tokens, blocks *idSet
	agents         map[string][]int64
	n              int
}

func newBuilder() *builder {
	// Sized for what arrives, not for the announced count.
	return &builder{tokens: newIDSet(0), blocks: newIDSet(0), agents: map[string][]int64{}}
}

// add is the Reader.Entries hook.
func (b *builder) add(batch []syncwire.Entry) error {
	if b.n += len(batch); b.n > maxEntries {
		return fmt.Errorf("%w: snapshot of more than %d entries", ErrTooLarge, maxEntries)
	}
	for i := range batch {
		e := &batch[i]
		fresh := true
		switch e.Kind {
		case syncwire.EntryToken:
			fresh = b.tokens.add(e.ID)
		case syncwire.EntryBlock:
			fresh = b.blocks.add(e.ID)
		case syncwire.EntryAgent:
			fresh = addBefore(b.agents, e.Agent, e.Before.UnixMilli())
		}
		if !fresh {
			return fmt.Errorf("%w: snapshot lists a %s entry twice", ErrBadAnswer, e.Kind)
		}
	}
	return nil
}

// addBefore adds before to agent's list, keeping it sorted; false when it
// was there.
func addBefore(m map[string][]int64, agent string, before int64) bool {
	list := m[agent]
	i, found := slices.BinarySearch(list, before)
	if found {
		return false
	}
	m[agent] = slices.Insert(list, i, before)
	return true
}

func removeBefore(m map[string][]int64, agent string, before int64) {
	list := m[agent]
	if i, found := slices.BinarySearch(list, before); found {
		if len(list) == 1 {
			delete(m, agent)
		} else {
			m[agent] = slices.Delete(list, i, i+1)
		}
	}
}

// install makes the builder's tables the state's (a verified snapshot).
func (s *state) install(snap *syncwire.Snapshot, b *builder) {
	b.tokens.compact()
	b.blocks.compact()
	s.epoch, s.snapshot = snap.Epoch, true
	s.nodes = snap.Nodes
	s.tokens, s.blocks, s.agents = b.tokens, b.blocks, b.agents
	s.setKeys(snap.Keys)
}

// applyChange applies a verified change whose prev is s.epoch.
func (s *state) applyChange(c *syncwire.Change) {
	for i := range c.Remove {
		e := &c.Remove[i]
		switch e.Kind {
		case syncwire.EntryToken:
			s.tokens.remove(e.ID)
		case syncwire.EntryBlock:
			s.blocks.remove(e.ID)
		case syncwire.EntryAgent:
			removeBefore(s.agents, e.Agent, e.Before.UnixMilli())
		}
	}
	for i := range c.Add {
		e := &c.Add[i]
		switch e.Kind {
		case syncwire.EntryToken:
			s.tokens.add(e.ID)
		case syncwire.EntryBlock:
			s.blocks.add(e.ID)
		case syncwire.EntryAgent:
			addBefore(s.agents, e.Agent, e.Before.UnixMilli())
		}
	}
	if c.Keys != nil {
		s.setKeys(c.Keys)
	}
	if c.NodesChanged {
		s.nodes = c.Nodes
	}
	s.epoch = c.Epoch
}

// agentRevoked reports whether a token of agent issued at issuedAt is
// revoked: issued before the latest before of agent.
func (s *state) agentRevoked(agent string, issuedAt time.Time) bool {
	list := s.agents[agent]
	return len(list) > 0 && issuedAt.Before(time.UnixMilli(list[len(list)-1]))
}
