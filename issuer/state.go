package issuer

import (
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/writ-dev/writ/cluster"
	"github.com/writ-dev/writ/issuer/policy"
)

// Keys of the state machine in its pebble database.
var (
	kApplied   = []byte("meta/applied")
	kKeyPrefix = []byte("key/")
	kPolCur    = []byte("pol/cur")
	kPolPrefix = []byte("pol/v/")
	kPolSeq    = []byte("pol/seq/")
	kAudHead   = []byte("aud/head")
	kAudPrefix = []byte("aud/r/")
	// Applied command IDs: req/id/<id> → result, and req/ix/<index><id>
	// to prune them in log order.
	kReqID      = []byte("req/id/")
	kNodePrefix = []byte("node/")
	kReqIdx     = []byte("req/ix/")
	kEnd        = []byte{0xff}
)

// State is the issuer's replicated state machine: root keys (sealed under
// the KEK), policy versions and the audit chain, persisted in pebble. It
// implements cluster.FSM. Apply, Snapshot and Restore are called by the
// raft node only; the read methods are safe for concurrent use.
type State struct {
	// db is replaced by Restore under mu's write lock and gate: writers
	// (ApplyBatch) use it under mu's write lock, readers outside mu
	// through acquireDB/releaseDB (state_restore.go).
	db   *pebble.DB
	gate dbGate
	kek  *KEK
	// dir is the database's directory, where Restore swaps in a new one;
	// plog and log receive pebble's and the restore's messages.
	dir  string
	plog pebble.Logger
	log  *slog.Logger

	mu sync.RWMutex
	view
	// feed gets the sync changes of each batch (nil: none); pending holds
	// them until the batch commits; batchRevs: revocations stored by the
	// batch in progress. All guarded by mu.
	feed      syncFeed
	pending   []syncChange
	batchRevs map[string]bool
}

// view is the in-memory copy of the state that requests read. It is
// rebuilt whole from the database (buildView) and swapped in under mu, so
// a failed load or restore never leaves a half-built view.
type view struct {
	applied   uint64
	keys      map[uint32]*keyRecord
	active    *signingKey
	pol       *policy.Policy
	polRec    *policyRecord
	polCount  uint64
	auditSeq  uint64
	auditHash string
	nodes     map[string]nodeRecord // replaced, never modified in place
	// syncEpoch: raft index of the last change to the keys or the
	// revocations (spec/sync.md §1); revocations: how many are stored.
	syncEpoch   uint64
	revocations int
	keyHigh     uint32 // highest key id ever added
	// batchIDs: command IDs the ApplyBatch in progress applied (result) or
	// pruned (nil); guarded by the State's write lock.
	batchIDs map[string]*storedResult
	// reqPruned: the command IDs of log indexes up to it are pruned, so
	// the next prune starts after it instead of walking the deletion
	// markers of everything pruned before (0 after a load or restore).
	reqPruned uint64
}

type signingKey struct {
	id   uint32
	priv ed25519.PrivateKey
}

type auditHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// applyResult is what Apply returns to the writer of a command.
type applyResult struct {
	err  error
	seqs []uint64
	// duplicate: the command's ID had been applied before; seqs are the
	// first application's.
	duplicate bool
	// syncEpoch is the sync epoch right after the command: verifiers that
	// hold it have seen its effect.
	syncEpoch uint64
}

// OpenState opens (or creates) the state database in dir. kek decrypts the
// root keys; a KEK that does not open the stored keys is ErrBadKEK. log
// receives pebble's messages; nil discards them.
//
// Restore uses the sibling directories dir+".restore" and dir+".old";
// OpenState finishes or undoes a restore that a crash interrupted (see
// openStateDir), so dir must not be a file system root.
func OpenState(dir string, kek *KEK, log *slog.Logger) (*State, error) {
	if kek == nil {
		return nil, fmt.Errorf("%w: none given", ErrBadKEK)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir = filepath.Clean(dir)
	plog := cluster.PebbleLogger(log)
	db, err := openStateDir(dir, plog)
	if err != nil {
		return nil, err
	}
	s := &State{db: db, kek: kek, dir: dir, plog: plog, log: log}
	s.gate.cond.L = &s.gate.mu
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database. Reads that start afterwards fail; reads in
// progress must be over (Close does not wait: a leaked snapshot would
// hang it), and the State must not be used otherwise. Closing again is a
// no-op.
func (s *State) Close() error {
	g := &s.gate
	g.mu.Lock()
	again := g.closed
	g.closed = true
	g.mu.Unlock()
	if again {
		return nil
	}
	return s.db.Close()
}

// load rebuilds the in-memory view from the database.
func (s *State) load() error {
	v, err := buildView(s.db, s.kek)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.view = *v
	s.mu.Unlock()
	return nil
}

// buildView reads a complete view from r (the database, or an indexed
// batch holding a snapshot about to be committed).
func buildView(r pebble.Reader, kek *KEK) (*view, error) {
	v := &view{keys: map[uint32]*keyRecord{}}
	if b, ok, err := get(r, kApplied); err != nil {
		return nil, err
	} else if ok {
		if len(b) != 8 {
			return nil, fmt.Errorf("issuer: stored applied index has %d bytes", len(b))
		}
		v.applied = binary.BigEndian.Uint64(b)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: kKeyPrefix, UpperBound: prefixEnd(kKeyPrefix)})
	if err != nil {
		return nil, err
	}
	for it.First(); it.Valid(); it.Next() {
		var kr keyRecord
		if err := json.Unmarshal(it.Value(), &kr); err != nil {
			it.Close()
			return nil, fmt.Errorf("issuer: stored key: %w", err)
		}
		if err := v.installKey(kek, &kr); err != nil {
			it.Close()
			return nil, err
		}
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	if cur, ok, err := get(r, kPolCur); err != nil {
		return nil, err
	} else if ok {
		raw, ok, err := get(r, append(append([]byte{}, kPolPrefix...), cur...))
		if err != nil || !ok {
			return nil, fmt.Errorf("issuer: current policy %s missing: %v", cur, err)
		}
		var pr policyRecord
		if err := json.Unmarshal(raw, &pr); err != nil {
			return nil, fmt.Errorf("issuer: stored policy: %w", err)
		}
		p, err := policy.Parse(pr.Source)
		if err != nil {
			return nil, fmt.Errorf("issuer: stored policy: %w", err)
		}
		v.pol, v.polRec = p, &pr
	}
	if v.polCount, err = lastSeq(r, kPolSeq); err != nil {
		return nil, err
	}
	v.nodes = map[string]nodeRecord{}
	nit, err := r.NewIter(&pebble.IterOptions{LowerBound: kNodePrefix, UpperBound: prefixEnd(kNodePrefix)})
	if err != nil {
		return nil, err
	}
	for nit.First(); nit.Valid(); nit.Next() {
		var nr nodeRecord
		if err := json.Unmarshal(nit.Value(), &nr); err != nil {
			nit.Close()
			return nil, fmt.Errorf("issuer: stored node: %w", err)
		}
		v.nodes[nr.ID] = nr
	}
	if err := nit.Close(); err != nil {
		return nil, err
	}
	if b, ok, err := get(r, kAudHead); err != nil {
		return nil, err
	} else if ok {
		var h auditHead
		if err := json.Unmarshal(b, &h); err != nil {
			return nil, fmt.Errorf("issuer: audit head: %w", err)
		}
		v.auditSeq, v.auditHash = h.Seq, h.Hash
	}
	if err := v.loadSyncView(r); err != nil {
		return nil, err
	}
	if err := v.loadKeyHigh(r); err != nil {
		return nil, err
	}
	return v, nil
}

// lastSeq returns the sequence number ending the last key under prefix p
// (keys are p followed by a big-endian uint64), 0 if there is none. It
// reads one key, so start-up does not grow with the number of keys.
func lastSeq(r pebble.Reader, p []byte) (uint64, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return 0, err
	}
	var n uint64
	if it.Last() {
		k := it.Key()
		if len(k) != len(p)+8 {
			it.Close()
			return 0, fmt.Errorf("issuer: stored key %q: want an 8-byte sequence number", k)
		}
		n = binary.BigEndian.Uint64(k[len(p):])
	}
	return n, it.Close()
}

// countPrefix counts the keys under prefix p: it reads them all, so it
// must not be used at start-up on a prefix that grows with traffic.
func countPrefix(r pebble.Reader, p []byte) (uint64, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return 0, err
	}
	var n uint64
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	return n, it.Close()
}

func get(r pebble.Reader, k []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, true, nil
}

// installKey adds kr to the view once its sealed private key opens with
// kek and matches its public key; nothing is added otherwise.
func (v *view) installKey(kek *KEK, kr *keyRecord) error {
	if len(kr.Public) != ed25519.PublicKeySize {
		return fmt.Errorf("issuer: key %d: bad public key size", kr.ID)
	}
	var priv ed25519.PrivateKey
	if kr.State == keyActive {
		var err error
		if priv, err = kek.open(kr.ID, kr.Sealed); err != nil {
			return err
		}
		if !priv.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(kr.Public)) {
			return fmt.Errorf("%w: key %d: sealed private key does not match public key", ErrBadKEK, kr.ID)
		}
	}
	v.keys[kr.ID] = kr
	if priv != nil && (v.active == nil || kr.ID > v.active.id) {
		v.active = &signingKey{id: kr.ID, priv: priv}
	}
	return nil
}

// Apply implements cluster.FSM. It is deterministic: the same commands in
// the same order give the same state on every node.
func (s *State) Apply(index uint64, cmd []byte) any {
	return s.ApplyBatch([]cluster.Entry{{Index: index, Cmd: cmd}})[0]
}

// ApplyBatch implements cluster.BatchFSM: the entries of one raft batch
// are written in one synced pebble batch together with the applied index.
func (s *State) ApplyBatch(entries []cluster.Entry) []any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]any, len(entries))
	// A plain batch (an indexed one costs ~15 % of mint throughput): reads
	// go to the committed database, and what this batch changes about
	// command IDs is tracked in batchIDs.
	b := s.db.NewBatch()
	defer b.Close()
	s.batchIDs = map[string]*storedResult{}
	s.pending, s.batchRevs = s.pending[:0], nil
	last := s.applied
	for i, e := range entries {
		if e.Index <= s.applied {
			// Already applied before a restart: raft replays the log tail.
			out[i] = applyResult{}
			continue
		}
		r := s.applyOnce(b, e.Index, e.Cmd)
		r.syncEpoch = s.syncEpoch
		out[i] = r
		last = e.Index
	}
	if last == s.applied {
		return out
	}
	var idx [8]byte
	binary.BigEndian.PutUint64(idx[:], last)
	b.Set(kApplied, idx[:], nil)
	// No fsync here: the raft log is the durable record. Snapshot syncs
	// the database before raft records a snapshot, so the state on disk
	// always holds everything a snapshot covers; on start raft either
	// skips the restore (cluster.Config.FSMApplied: the state is at or
	// past the snapshot) or restores it, and replays the log after it.
	// Entries at or below the stored applied index are skipped.
	if err := b.Commit(pebble.NoSync); err != nil {
		// The disk failed under the state machine; continuing would let
		// this node diverge from the log. Stop the process.
		panic(fmt.Sprintf("issuer: state commit failed at index %d: %v", last, err))
	}
	s.applied = last
	if len(s.pending) > 0 && s.feed != nil {
		s.feed.publish(s.pending)
	}
	return out
}

// commandIDRetention is how many log entries an applied command ID is
// remembered for: a retry that arrives later than that is applied again.
// Retries come within seconds; 100,000 entries are at least minutes of
// the heaviest audit traffic.
const commandIDRetention = 100_000

// storedResult is the remembered outcome of an applied command.
type storedResult struct {
	Seqs []uint64 `json:"seqs"`
}

// applyOnce applies a command unless its ID was applied before, in which
// case it returns the first result again. IDs are forgotten
// commandIDRetention entries later, in log order, so every node prunes
// the same IDs at the same index.
func (s *State) applyOnce(b *pebble.Batch, index uint64, raw []byte) applyResult {
	c, err := decodeCommand(raw)
	if err != nil {
		return applyResult{err: err}
	}
	if index > commandIDRetention {
		s.pruneCommandIDs(b, index-commandIDRetention)
	}
	if c.ID == "" {
		return s.applyOne(b, index, c)
	}
	idKey := append(append([]byte{}, kReqID...), c.ID...)
	if r, inBatch := s.batchIDs[c.ID]; inBatch {
		if r != nil {
			return applyResult{seqs: r.Seqs, duplicate: true}
		}
		// pruned in this batch: forgotten, apply afresh
	} else if v, ok, err := get(s.db, idKey); err != nil {
		return applyResult{err: err}
	} else if ok {
		var r storedResult
		if err := json.Unmarshal(v, &r); err != nil {
			return applyResult{err: fmt.Errorf("issuer: stored command result: %w", err)}
		}
		return applyResult{seqs: r.Seqs, duplicate: true}
	}
	res := s.applyOne(b, index, c)
	if res.err == nil {
		v, _ := json.Marshal(storedResult{Seqs: res.seqs})
		s.batchIDs[c.ID] = &storedResult{Seqs: res.seqs}
		b.Set(idKey, v, nil)
		b.Set(append(binary.BigEndian.AppendUint64(append([]byte{}, kReqIdx...), index), c.ID...), nil, nil)
	}
	return res
}

// pruneCommandIDs forgets the IDs of commands applied at or before upTo.
// They are older than the batch in progress, so the committed database
// holds all of them; each is marked forgotten in batchIDs.
func (s *State) pruneCommandIDs(b *pebble.Batch, upTo uint64) {
	if upTo <= s.reqPruned {
		return
	}
	lo := binary.BigEndian.AppendUint64(append([]byte{}, kReqIdx...), s.reqPruned+1)
	hi := binary.BigEndian.AppendUint64(append([]byte{}, kReqIdx...), upTo+1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return
	}
	defer it.Close()
	s.reqPruned = upTo
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		id := string(k[len(kReqIdx)+8:])
		if _, done := s.batchIDs[id]; done {
			continue // pruned (or re-applied) earlier in this batch
		}
		b.Delete(append(append([]byte{}, kReqID...), id...), nil)
		b.Delete(append([]byte{}, k...), nil)
		s.batchIDs[id] = nil
	}
}

func (s *State) applyOne(b *pebble.Batch, index uint64, c *command) applyResult {
	switch c.Type {
	case cmdRevoke:
		if err := s.applyRevoke(b, index, c.Revocation); err != nil {
			return applyResult{err: err}
		}
	case cmdPrune:
		if _, err := s.applyPrune(b, index, c.Prune); err != nil {
			return applyResult{err: err}
		}
	case cmdKeyState:
		if err := s.applyKeyState(b, index, c.KeyState); err != nil {
			return applyResult{err: err}
		}
	case cmdKeyAdd:
		kr := c.Key
		if _, dup := s.keys[kr.ID]; dup || kr.ID <= s.keyHigh {
			return applyResult{err: fmt.Errorf("%w: key %d exists or existed", ErrBadCommand, kr.ID)}
		}
		kr.Epoch = index
		switch {
		case kr.State == keyPrepared:
		case kr.State == keyActive && s.active == nil:
		default:
			return applyResult{err: fmt.Errorf("%w: key %d: a new key is added prepared (active only when there is no active key), not %s", ErrBadCommand, kr.ID, kr.State)}
		}
		ch := s.change(index, kr.CreatedAt)
		if err := s.installKey(s.kek, kr); err != nil {
			return applyResult{err: err}
		}
		v, _ := json.Marshal(kr)
		b.Set(keyKey(kr.ID), v, nil)
		s.keyHigh = max(s.keyHigh, kr.ID)
		b.Set(kKeyHigh, binary.BigEndian.AppendUint32(nil, s.keyHigh), nil)
		ch.keys = s.wireKeys()
		s.endChange(b, ch)
	case cmdNodeSet:
		// Removal is final: a late self-registration of a node that was
		// removed meanwhile (it forwarded its record before it learned of
		// the removal) must not bring the record back.
		if old, ok := s.nodes[c.Node.ID]; ok && old.Removed && !c.Node.Removed {
			return applyResult{err: fmt.Errorf("%w: node %s was removed; its id cannot come back (reset its data and join under a new id)", ErrBadCommand, c.Node.ID)}
		}
		v, _ := json.Marshal(c.Node)
		b.Set(append(append([]byte{}, kNodePrefix...), c.Node.ID...), v, nil)
		nodes := maps.Clone(s.nodes)
		if nodes == nil {
			nodes = map[string]nodeRecord{}
		}
		nodes[c.Node.ID] = *c.Node
		before := memberAPIAddrs(s.nodes)
		s.nodes = nodes
		// Verifiers learn where the nodes answer from the sync stream.
		if after := memberAPIAddrs(nodes); !slices.Equal(before, after) {
			ch := s.change(index, c.Node.SetAt)
			ch.nodes, ch.nodesChanged = after, true
			s.endChange(b, ch)
		}
	case cmdPolicySet:
		pr := c.Policy
		p, err := policy.Parse(pr.Source)
		if err != nil {
			return applyResult{err: err}
		}
		if p.Version() != pr.Version {
			return applyResult{err: fmt.Errorf("%w: policy version mismatch", ErrBadCommand)}
		}
		v, _ := json.Marshal(pr)
		b.Set(append(append([]byte{}, kPolPrefix...), pr.Version...), v, nil)
		b.Set(kPolCur, []byte(pr.Version), nil)
		s.polCount++
		b.Set(binary.BigEndian.AppendUint64(append([]byte{}, kPolSeq...), s.polCount), []byte(pr.Version), nil)
		s.pol, s.polRec = p, pr
	}
	return applyResult{seqs: s.appendAudit(b, c.Audit)}
}

// appendAudit chains recs onto the audit trail in batch b.
func (s *State) appendAudit(b *pebble.Batch, recs []*AuditRecord) []uint64 {
	seqs := make([]uint64, 0, len(recs))
	for _, r := range recs {
		r.Seq = s.auditSeq + 1
		h, err := chainHash(s.auditHash, r)
		if err != nil {
			// A record that cannot be encoded cannot be chained; keep the
			// chain intact and leave the record out (the caller sees fewer
			// sequence numbers than records and fails closed).
			continue
		}
		r.Prev, r.Hash = s.auditHash, h
		v, _ := json.Marshal(r)
		b.Set(auditKey(r.Seq), v, nil)
		s.auditSeq, s.auditHash = r.Seq, h
		seqs = append(seqs, r.Seq)
	}
	v, _ := json.Marshal(auditHead{Seq: s.auditSeq, Hash: s.auditHash})
	b.Set(kAudHead, v, nil)
	return seqs
}

func keyKey(id uint32) []byte {
	return binary.BigEndian.AppendUint32(append([]byte{}, kKeyPrefix...), id)
}
func auditKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte{}, kAudPrefix...), seq)
}

func prefixEnd(p []byte) []byte {
	e := append([]byte{}, p...)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] < 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return kEnd
}

// ActiveKey returns the current signing key.
func (s *State) ActiveKey() (id uint32, priv ed25519.PrivateKey, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.active == nil {
		return 0, nil, ErrNoKey
	}
	return s.active.id, s.active.priv, nil
}

// PublicKeys returns every root key verifiers may trust (prepared,
// active, retiring; not revoked), sorted by id.
func (s *State) PublicKeys() []PublicKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]PublicKey, 0, len(s.keys))
	for _, k := range s.keys {
		if k.State == keyRevoked {
			continue // published to syncing verifiers as revoked, never as a key to trust
		}
		out = append(out, PublicKey{ID: k.ID, Public: ed25519.PublicKey(k.Public), State: k.State, CreatedAt: k.CreatedAt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// PublicKey is a root key as published to verifiers.
type PublicKey struct {
	ID        uint32
	Public    ed25519.PublicKey
	State     string
	CreatedAt time.Time
}

// Node returns the record of cluster member id.
func (s *State) Node(id string) (nodeRecord, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, ok := s.nodes[id]
	return n, ok
}

// Nodes returns the records of every member ever registered, removed ones
// included, sorted by id.
func (s *State) Nodes() []nodeRecord {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]nodeRecord, 0, len(s.nodes))
	for _, n := range s.nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b nodeRecord) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Policy returns the current issuance policy and its record, or ErrNoPolicy.
func (s *State) Policy() (*policy.Policy, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.pol == nil {
		return nil, ErrNoPolicy
	}
	return s.pol, nil
}

// PolicySource returns the YAML source of the current policy.
func (s *State) PolicySource() (version string, source []byte, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.polRec == nil {
		return "", nil, ErrNoPolicy
	}
	return s.polRec.Version, s.polRec.Source, nil
}

// AuditHead returns the sequence number and hash of the newest record.
func (s *State) AuditHead() (seq uint64, hash string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.auditSeq, s.auditHash
}

// Applied returns the last applied raft index.
func (s *State) Applied() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied
}

// AuditRecords returns up to limit records starting at seq from (≥ 1).
func (s *State) AuditRecords(from uint64, limit int) ([]AuditRecord, error) {
	if from == 0 {
		from = 1
	}
	db, err := s.acquireDB()
	if err != nil {
		return nil, err
	}
	defer s.releaseDB()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: auditKey(from), UpperBound: prefixEnd(kAudPrefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []AuditRecord
	for it.First(); it.Valid() && len(out) < limit; it.Next() {
		var r AuditRecord
		if err := json.Unmarshal(it.Value(), &r); err != nil {
			return nil, fmt.Errorf("%w: record at %x: %v", ErrAuditChain, it.Key(), err)
		}
		out = append(out, r)
	}
	return out, it.Error()
}

// snapshotMagic starts every state snapshot.
const snapshotMagic = "writ-state-snapshot-v1\n"

// Snapshot implements cluster.FSM: a pebble snapshot streamed as
// length-prefixed key/value pairs followed by a SHA-256 of the stream.
//
// It first syncs the database (ApplyBatch commits without), so that the
// state is on disk up to the snapshot point before raft records the
// snapshot: whenever a snapshot exists, the state on disk holds at least
// what it holds, and a restart can keep the state instead of restoring
// the snapshot (cluster.Config.FSMApplied). It runs on raft's FSM
// goroutine, between applies, so the sync covers exactly the applied
// entries.
//
// The snapshot holds the database until Release: a Restore waits for it.
func (s *State) Snapshot() (cluster.Snapshot, error) {
	db, err := s.acquireDB()
	if err != nil {
		return nil, err
	}
	if err := db.LogData(nil, pebble.Sync); err != nil {
		s.releaseDB()
		return nil, fmt.Errorf("issuer: sync state for snapshot: %w", err)
	}
	return &stateSnapshot{snap: db.NewSnapshot(), release: s.releaseDB}, nil
}

type stateSnapshot struct {
	snap    *pebble.Snapshot
	release func() // once, after snap is closed
}

func (ss *stateSnapshot) WriteTo(w io.Writer) (int64, error) {
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	bw := bufio.NewWriter(cw)
	bw.WriteString(snapshotMagic)
	it, err := ss.snap.NewIter(&pebble.IterOptions{})
	if err != nil {
		return 0, err
	}
	var lb [binary.MaxVarintLen64]byte
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		bw.Write(lb[:binary.PutUvarint(lb[:], uint64(len(k))+1)])
		bw.Write(k)
		bw.Write(lb[:binary.PutUvarint(lb[:], uint64(len(v)))])
		bw.Write(v)
	}
	if err := it.Close(); err != nil {
		return cw.n, err
	}
	bw.WriteByte(0) // end marker: key length 0
	if err := bw.Flush(); err != nil {
		return cw.n, err
	}
	n, err := w.Write(h.Sum(nil))
	return cw.n + int64(n), err
}

func (ss *stateSnapshot) Release() {
	if ss.snap == nil {
		return // released already
	}
	ss.snap.Close()
	ss.snap = nil
	ss.release()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// maxSnapshotValue bounds one value in a snapshot stream.
const maxSnapshotValue = 64 << 20

// Restore implements cluster.FSM: it replaces all state with the
// snapshot's, atomically. The snapshot is streamed into a new database
// beside the current one (dir+".restore") in bounded batches, so memory
// does not grow with its size; its checksum is checked and its view built
// (the KEK must open its keys, its policy must parse) before the current
// state is touched. A snapshot this node cannot use leaves the current
// state as it was and no new directory behind. Then Restore waits for
// the reads in progress and the open Snapshots (their Release), closes
// the current database and swaps the directories (see openStateDir for
// crash recovery). Reads that start meanwhile wait for the swap.
func (s *State) Restore(r io.Reader) error { return s.restore(r) }

// hashReader hashes exactly the bytes its reader hands out.
type hashReader struct {
	r *bufio.Reader
	h hash.Hash
}

func (hr *hashReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	return n, err
}

func (hr *hashReader) ReadByte() (byte, error) {
	c, err := hr.r.ReadByte()
	if err == nil {
		hr.h.Write([]byte{c})
	}
	return c, err
}
