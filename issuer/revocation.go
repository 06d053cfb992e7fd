package issuer

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/internal/syncwire"
	"github.com/writ-dev/writ/issuer/policy"
)

// Revocation kinds (spec/sync.md §3, token.md §1).
const (
	RevokeToken = "token" // a token_id: that token
	RevokeBlock = "block" // a block's revocation id: every token carrying that block
	RevokeAgent = "agent" // every token of an agent issued before a time
)

// A revocation is kept, and a retired or revoked key published, until
// every token it can affect has expired: the writer sets ExpiresAt
// (NotAfter) to the moment it affects plus the node's longest token
// lifetime (Config.MaxTTL) plus skewMargin. Apply accepts at most
// maxHorizon, the longest lifetime any policy may grant plus the margin.
const (
	skewMargin = time.Minute
	maxHorizon = policy.MaxTTL + skewMargin
)

// revocationRecord is one revocation as replicated and stored. Epoch is
// the raft index that applied it.
type revocationRecord struct {
	Kind string `json:"kind"`
	// ID: 32 lowercase hex digits (token) or 128 (block).
	ID string `json:"id,omitempty"`
	// Agent and Before (agent kind): tokens whose agent is Agent and whose
	// issued_at is before Before.
	Agent     string    `json:"agent,omitempty"`
	Before    time.Time `json:"before,omitzero"`
	Reason    string    `json:"reason,omitempty"`
	By        string    `json:"by"`
	At        time.Time `json:"at"`
	ExpiresAt time.Time `json:"expires_at"`
	Epoch     uint64    `json:"epoch,omitempty"`
}

// pruneRecord asks every node to drop, as of Now (the leader's clock when
// it wrote the command, so every node drops the same entries), the
// revocations that expired and the keys no longer published.
type pruneRecord struct {
	Now time.Time `json:"now"`
}

// keyStateRecord moves root key ID to State at At. Activating a prepared
// key retires the active one; revoking the active key needs Activate, a
// prepared key that becomes active in the same step, so the cluster never
// stops signing.
type keyStateRecord struct {
	ID       uint32    `json:"id"`
	State    string    `json:"state"`
	Activate uint32    `json:"activate,omitempty"`
	At       time.Time `json:"at"`
	// NotAfter: when the key that stops signing (the retired or revoked
	// one) stops being published; after At, at most maxHorizon later.
	NotAfter time.Time `json:"not_after"`
}

// maxRevocationReason bounds the free-text reason of a revocation.
const maxRevocationReason = 512

// validate checks a revocation as an admin asked for it (before Epoch and
// ExpiresAt are set); apply checks it again.
func (r *revocationRecord) validate() error {
	switch r.Kind {
	case RevokeToken:
		if len(r.ID) != 32 || !isLowerHex(r.ID) || r.Agent != "" || !r.Before.IsZero() {
			return fmt.Errorf("token revocation wants id: 32 lowercase hex digits, nothing else")
		}
	case RevokeBlock:
		if len(r.ID) != 128 || !isLowerHex(r.ID) || r.Agent != "" || !r.Before.IsZero() {
			return fmt.Errorf("block revocation wants id: 128 lowercase hex digits (a block signature), nothing else")
		}
	case RevokeAgent:
		if r.ID != "" {
			return fmt.Errorf("agent revocation takes agent and before, not id")
		}
		if len(r.Agent) > 2048 {
			return fmt.Errorf("agent: longer than 2048 bytes")
		}
		if _, err := spiffeid.FromString(r.Agent); err != nil {
			return fmt.Errorf("agent: %v", err)
		}
		if r.Before.IsZero() {
			return fmt.Errorf("agent revocation wants before")
		}
		if r.Before.After(r.At) {
			return fmt.Errorf("before is later than the revocation itself")
		}
	default:
		return fmt.Errorf("kind %q: want token, block or agent", r.Kind)
	}
	if len(r.Reason) > maxRevocationReason {
		return fmt.Errorf("reason: longer than %d bytes", maxRevocationReason)
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// affectsFrom is the latest issue time of a token the revocation affects.
func (r *revocationRecord) affectsFrom() time.Time {
	if r.Kind == RevokeAgent {
		return r.Before
	}
	return r.At
}

// subject names what a revocation covers, for audit records and logs.
func (r *revocationRecord) subject() string {
	if r.Kind == RevokeAgent {
		return "agent:" + r.Agent + "@" + r.Before.UTC().Format(time.RFC3339Nano)
	}
	return r.Kind + ":" + r.ID
}

// entryKey is how a revocation is keyed in the state: its kind, then the
// raw id (token, block) or the time and agent. Two requests for the same
// revocation have the same key, so revoking twice changes nothing.
func (r *revocationRecord) entryKey() []byte {
	switch r.Kind {
	case RevokeToken, RevokeBlock:
		raw, _ := hex.DecodeString(r.ID)
		return append([]byte{r.kindByte()}, raw...)
	default:
		k := binary.BigEndian.AppendUint64([]byte{r.kindByte()}, uint64(r.Before.UnixMilli()))
		return append(k, r.Agent...)
	}
}

func (r *revocationRecord) kindByte() byte {
	switch r.Kind {
	case RevokeToken:
		return byte(syncwire.EntryToken)
	case RevokeBlock:
		return byte(syncwire.EntryBlock)
	default:
		return byte(syncwire.EntryAgent)
	}
}

// wire is the revocation as verifiers hold it (spec/sync.md §3): token ids
// whole, block ids by their first 16 bytes.
func (r *revocationRecord) wire() syncwire.Entry {
	e := syncwire.Entry{Kind: syncwire.EntryKind(r.kindByte())}
	switch r.Kind {
	case RevokeToken, RevokeBlock:
		raw, _ := hex.DecodeString(r.ID)
		copy(e.ID[:], raw)
	default:
		e.Agent, e.Before = r.Agent, r.Before
	}
	return e
}

var (
	kRevEntry  = []byte("rev/e/") // rev/e/<entry key> → revocationRecord
	kRevExpiry = []byte("rev/x/") // rev/x/<expires unix ms><entry key> → nil
	kSyncEpoch = []byte("sync/epoch")
	kRevCount  = []byte("sync/revocations") // how many rev/e/ entries, so start-up need not count them
)

func revEntryKey(ek []byte) []byte { return append(append([]byte{}, kRevEntry...), ek...) }
func revExpiryKey(exp time.Time, ek []byte) []byte {
	k := binary.BigEndian.AppendUint64(append([]byte{}, kRevExpiry...), uint64(max(exp.UnixMilli(), 0)))
	return append(k, ek...)
}

// syncChange is what one applied command changed about the sync state.
type syncChange struct {
	epoch, prev uint64
	at          time.Time
	add, remove []syncwire.Entry
	keys        []syncwire.Key // nil: unchanged
	// nodes: the members' API addresses, when nodesChanged.
	nodes        []string
	nodesChanged bool
	// signer is the active key before the change: the one verifiers
	// already hold. nil when there was none (the first key).
	signer *signingKey
}

// syncFeed receives the sync changes of each applied batch, in order,
// after they are committed, and a reset when a snapshot replaced the
// state. It is called with the State's write lock held and must not block
// or call back into the State.
type syncFeed interface {
	publish(changes []syncChange)
	reset(epoch uint64)
}

// setSyncFeed connects the state's changes to f (nil: none).
func (s *State) setSyncFeed(f syncFeed) {
	s.mu.Lock()
	s.feed = f
	s.mu.Unlock()
}

// loadSyncView reads the sync epoch and counts the revocations.
func (v *view) loadSyncView(r pebble.Reader) error {
	if b, ok, err := get(r, kSyncEpoch); err != nil {
		return err
	} else if ok {
		if len(b) != 8 {
			return fmt.Errorf("issuer: stored sync epoch has %d bytes", len(b))
		}
		v.syncEpoch = binary.BigEndian.Uint64(b)
	}
	if b, ok, err := get(r, kRevCount); err != nil {
		return err
	} else if ok {
		if len(b) != 8 {
			return fmt.Errorf("issuer: stored revocation count has %d bytes", len(b))
		}
		v.revocations = int(binary.BigEndian.Uint64(b))
	}
	return nil
}

// change starts the sync change of the command being applied at index.
func (s *State) change(index uint64, at time.Time) *syncChange {
	ch := &syncChange{epoch: index, prev: s.syncEpoch, at: at}
	if s.active != nil {
		ch.signer = s.active
	}
	return ch
}

// endChange records ch as the new sync epoch in batch b.
func (s *State) endChange(b *pebble.Batch, ch *syncChange) {
	s.syncEpoch = ch.epoch
	b.Set(kSyncEpoch, binary.BigEndian.AppendUint64(nil, ch.epoch), nil)
	b.Set(kRevCount, binary.BigEndian.AppendUint64(nil, uint64(s.revocations)), nil)
	s.pending = append(s.pending, *ch)
}

// applyRevoke stores a revocation unless the same one is stored already.
func (s *State) applyRevoke(b *pebble.Batch, index uint64, r *revocationRecord) error {
	if err := r.validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	ek := r.entryKey()
	if _, ok, err := get(s.db, revEntryKey(ek)); err != nil {
		return err
	} else if ok || s.batchRevs[string(ek)] {
		return nil // revoked already: the first record stands
	}
	if from := r.affectsFrom(); !r.ExpiresAt.After(from) || r.ExpiresAt.After(from.Add(maxHorizon)) {
		return fmt.Errorf("%w: revocation expires_at must be after %s and at most %s later", ErrBadCommand, from.Format(time.RFC3339), maxHorizon)
	}
	r.Epoch = index
	v, _ := json.Marshal(r)
	b.Set(revEntryKey(ek), v, nil)
	b.Set(revExpiryKey(r.ExpiresAt, ek), nil, nil)
	if s.batchRevs == nil {
		s.batchRevs = map[string]bool{}
	}
	s.batchRevs[string(ek)] = true
	s.revocations++
	ch := s.change(index, r.At)
	ch.add = []syncwire.Entry{r.wire()}
	s.endChange(b, ch)
	return nil
}

// applyPrune drops the revocations and keys whose horizon passed by
// p.Now. Entries revoked earlier in the same batch expire a day later, so
// reading the committed database is enough.
func (s *State) applyPrune(b *pebble.Batch, index uint64, p *pruneRecord) (removed int, err error) {
	ch := s.change(index, p.Now)
	hi := revExpiryKey(p.Now.Add(time.Millisecond), nil)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: kRevExpiry, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	for it.First(); it.Valid(); it.Next() {
		ek := it.Key()[len(kRevExpiry)+8:]
		raw, ok, err := get(s.db, revEntryKey(ek))
		if err != nil {
			it.Close()
			return 0, err
		}
		b.Delete(append([]byte{}, it.Key()...), nil)
		if !ok {
			continue
		}
		var r revocationRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			it.Close()
			return 0, fmt.Errorf("issuer: stored revocation: %w", err)
		}
		b.Delete(revEntryKey(ek), nil)
		ch.remove = append(ch.remove, r.wire())
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	keys := s.keys // replaced, never modified in place
	for id, k := range s.keys {
		if (k.State == keyRetiring || k.State == keyRevoked) && !k.NotAfter.IsZero() && !k.NotAfter.After(p.Now) {
			if len(keys) == len(s.keys) {
				keys = maps.Clone(s.keys)
			}
			delete(keys, id)
			b.Delete(keyKey(id), nil)
		}
	}
	keysChanged := len(keys) != len(s.keys)
	if len(ch.remove) == 0 && !keysChanged {
		return 0, nil
	}
	s.revocations -= len(ch.remove)
	if keysChanged {
		s.keys = keys
		ch.keys = s.wireKeys()
	}
	s.endChange(b, ch)
	return len(ch.remove), nil
}

// applyKeyState moves a root key to another state (see keyStateRecord).
func (s *State) applyKeyState(b *pebble.Batch, index uint64, ks *keyStateRecord) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: key.state: %s", ErrBadCommand, fmt.Sprintf(format, args...))
	}
	k, ok := s.keys[ks.ID]
	if !ok {
		return bad("no key %d", ks.ID)
	}
	if !ks.NotAfter.After(ks.At) || ks.NotAfter.After(ks.At.Add(maxHorizon)) {
		return bad("not_after must be after at and at most %s later", maxHorizon)
	}
	ch := s.change(index, ks.At)
	keys := maps.Clone(s.keys)
	set := func(kr *keyRecord) {
		v, _ := json.Marshal(kr)
		b.Set(keyKey(kr.ID), v, nil)
		keys[kr.ID] = kr
	}
	activate := func(id uint32) (*signingKey, error) {
		p, ok := s.keys[id]
		if !ok || p.State != keyPrepared {
			return nil, bad("key %d is not prepared", id)
		}
		priv, err := s.kek.open(p.ID, p.Sealed)
		if err != nil {
			return nil, err
		}
		if !priv.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(p.Public)) {
			return nil, fmt.Errorf("%w: key %d: sealed private key does not match public key", ErrBadKEK, p.ID)
		}
		n := *p
		n.State, n.ActivatedAt = keyActive, ks.At.UTC()
		set(&n)
		return &signingKey{id: n.ID, priv: priv}, nil
	}
	retire := func(kr *keyRecord, state string) {
		n := *kr
		n.State, n.NotAfter = state, ks.NotAfter.UTC()
		set(&n)
	}
	active := s.active
	switch ks.State {
	case keyActive:
		if k.State != keyPrepared {
			return bad("key %d is %s, only a prepared key can be activated", ks.ID, k.State)
		}
		next, err := activate(ks.ID)
		if err != nil {
			return err
		}
		if s.active != nil {
			retire(s.keys[s.active.id], keyRetiring)
		}
		active = next
	case keyRevoked:
		if k.State == keyRevoked {
			return nil // already revoked
		}
		if s.active != nil && s.active.id == ks.ID {
			if ks.Activate == 0 {
				return bad("key %d is the active key: name a prepared key to activate in its place", ks.ID)
			}
			next, err := activate(ks.Activate)
			if err != nil {
				return err
			}
			active = next
		} else if ks.Activate != 0 {
			return bad("activate is only for revoking the active key")
		}
		retire(k, keyRevoked)
	default:
		return bad("state %q: want active or revoked", ks.State)
	}
	s.keys, s.active = keys, active
	ch.keys = s.wireKeys()
	s.endChange(b, ch)
	return nil
}

// wireKeys is the published key set as verifiers get it, by id.
func (v *view) wireKeys() []syncwire.Key {
	out := make([]syncwire.Key, 0, len(v.keys))
	for _, k := range v.keys {
		out = append(out, syncwire.Key{ID: k.ID, State: wireKeyState(k.State), Public: ed25519.PublicKey(bytes.Clone(k.Public)), NotAfter: k.NotAfter})
	}
	slices.SortFunc(out, func(a, b syncwire.Key) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func wireKeyState(s string) syncwire.KeyState {
	switch s {
	case keyPrepared:
		return syncwire.KeyPrepared
	case keyActive:
		return syncwire.KeyActive
	case keyRetiring:
		return syncwire.KeyRetiring
	default:
		return syncwire.KeyRevoked
	}
}

// Revocation is a stored revocation as the admin API shows it.
type Revocation struct {
	Kind      string    `json:"kind"`
	ID        string    `json:"id,omitempty"`
	Agent     string    `json:"agent,omitempty"`
	Before    time.Time `json:"before,omitzero"`
	Reason    string    `json:"reason,omitempty"`
	By        string    `json:"by"`
	At        time.Time `json:"at"`
	ExpiresAt time.Time `json:"expires_at"`
	Epoch     uint64    `json:"epoch"`
}

// Revocations returns up to limit stored revocations in key order,
// starting after the entry key after (nil: from the first), and the key
// to continue from (nil: no more).
func (s *State) Revocations(after []byte, limit int) ([]Revocation, []byte, error) {
	lo := kRevEntry
	if after != nil {
		lo = append(revEntryKey(after), 0)
	}
	db, err := s.acquireDB()
	if err != nil {
		return nil, nil, err
	}
	defer s.releaseDB()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(kRevEntry)})
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	var out []Revocation
	var last []byte
	for it.First(); it.Valid(); it.Next() {
		if len(out) == limit {
			return out, last, nil
		}
		var r revocationRecord
		if err := json.Unmarshal(it.Value(), &r); err != nil {
			return nil, nil, fmt.Errorf("issuer: stored revocation: %w", err)
		}
		out = append(out, Revocation(r))
		last = append([]byte{}, it.Key()[len(kRevEntry):]...)
	}
	return out, nil, it.Error()
}

// SyncEpoch returns the epoch of the sync state and how many revocations
// it holds.
func (s *State) SyncEpoch() (epoch uint64, revocations int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.syncEpoch, s.revocations
}

// syncSnapshot is the sync state at one epoch, for encoding.
type syncSnapshot struct {
	epoch  uint64
	keys   []syncwire.Key
	nodes  []string
	signer *signingKey
	snap   *heldSnapshot
}

// heldSnapshot is a pebble snapshot that holds the State's database open
// (a Restore waits) until it is closed.
type heldSnapshot struct {
	*pebble.Snapshot
	release func() // nil once closed
}

// Close closes the snapshot and lets a Restore go on; it is idempotent.
func (h *heldSnapshot) Close() error {
	if h == nil || h.release == nil {
		return nil
	}
	err := h.Snapshot.Close()
	h.release()
	h.release = nil
	return err
}

// syncSnapshot captures the sync state; the caller must close snap soon
// (a Restore waits for it), and must not read the database through the
// State meanwhile (it may call the State's other methods). If the State
// is closed, snap is nil and entries fails.
func (s *State) syncSnapshot() *syncSnapshot {
	// The gate before the lock (dbGate's lock order): the database and
	// the view then belong to the same state.
	db, err := s.acquireDB()
	s.mu.RLock()
	defer s.mu.RUnlock()
	ss := &syncSnapshot{epoch: s.syncEpoch, keys: s.wireKeys(), nodes: memberAPIAddrs(s.nodes), signer: s.active}
	if err == nil {
		ss.snap = &heldSnapshot{Snapshot: db.NewSnapshot(), release: s.releaseDB}
	}
	return ss
}

// entries reads every revocation of the snapshot in its wire form.
func (ss *syncSnapshot) entries(capHint int) ([]syncwire.Entry, error) {
	if ss.snap == nil || ss.snap.release == nil {
		return nil, errStateClosed
	}
	it, err := ss.snap.NewIter(&pebble.IterOptions{LowerBound: kRevEntry, UpperBound: prefixEnd(kRevEntry)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := make([]syncwire.Entry, 0, capHint)
	for it.First(); it.Valid(); it.Next() {
		ek := it.Key()[len(kRevEntry):]
		if len(ek) < 1 {
			return nil, fmt.Errorf("issuer: stored revocation key too short")
		}
		e := syncwire.Entry{Kind: syncwire.EntryKind(ek[0])}
		switch e.Kind {
		case syncwire.EntryToken, syncwire.EntryBlock:
			if len(ek) < 17 {
				return nil, fmt.Errorf("issuer: stored revocation key too short")
			}
			copy(e.ID[:], ek[1:17])
		case syncwire.EntryAgent:
			if len(ek) < 10 {
				return nil, fmt.Errorf("issuer: stored revocation key too short")
			}
			e.Before = time.UnixMilli(int64(binary.BigEndian.Uint64(ek[1:9]))).UTC()
			e.Agent = string(ek[9:])
		default:
			return nil, fmt.Errorf("issuer: stored revocation of kind %d", ek[0])
		}
		out = append(out, e)
	}
	return out, it.Error()
}

// pruneDue reports whether a prune at now would drop anything.
func (s *State) pruneDue(now time.Time) bool {
	s.mu.RLock()
	for _, k := range s.keys {
		if (k.State == keyRetiring || k.State == keyRevoked) && !k.NotAfter.IsZero() && !k.NotAfter.After(now) {
			s.mu.RUnlock()
			return true
		}
	}
	s.mu.RUnlock()
	db, err := s.acquireDB()
	if err != nil {
		return false
	}
	defer s.releaseDB()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: kRevExpiry, UpperBound: revExpiryKey(now.Add(time.Millisecond), nil)})
	if err != nil {
		return false
	}
	defer it.Close()
	return it.First()
}

// revocation returns the stored revocation with entry key ek.
func (s *State) revocation(ek []byte) (*Revocation, bool, error) {
	db, err := s.acquireDB()
	if err != nil {
		return nil, false, err
	}
	raw, ok, err := get(db, revEntryKey(ek))
	s.releaseDB()
	if err != nil || !ok {
		return nil, false, err
	}
	var r revocationRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, false, fmt.Errorf("issuer: stored revocation: %w", err)
	}
	rv := Revocation(r)
	return &rv, true, nil
}

// memberAPIAddrs lists the API addresses of the members that are not
// removed, sorted, at most syncwire.MaxNodes: what verifiers are told.
func memberAPIAddrs(nodes map[string]nodeRecord) []string {
	var out []string
	for _, n := range nodes {
		if !n.Removed && n.APIAddr != "" {
			out = append(out, n.APIAddr)
		}
	}
	slices.Sort(out)
	return out[:min(len(out), syncwire.MaxNodes)]
}
