package clustertest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/writ-dev/writ/cluster"
)

// Limits on what KV decodes. KV only ever sees its own encodings in tests,
// but Apply and Restore must refuse, not panic on, anything else.
const (
	// MaxOpFieldBytes bounds each of Op's ID, Key and Value.
	MaxOpFieldBytes = 4 << 10
	// maxSnapshotBytes bounds a KV snapshot read by Restore.
	maxSnapshotBytes = 256 << 20
)

const (
	opVersion       = 1
	snapshotVersion = 1
)

// ErrBadOp is wrapped by DecodeOp's errors and reported in Result.Err for a
// command KV cannot decode.
var ErrBadOp = errors.New("clustertest: malformed op")

// ErrBadSnapshot is wrapped by KV.Restore's errors for a malformed
// snapshot.
var ErrBadSnapshot = errors.New("clustertest: malformed KV snapshot")

// Op is a KV command: append Value to the list stored at Key — unless an
// op with the same ID was applied before, in which case nothing changes.
// The ID makes retrying an op whose outcome is unknown (a timeout, a lost
// leader) safe: a client re-sends the same Op and it applies at most once.
type Op struct {
	ID    string
	Key   string
	Value string
}

// Encode returns the command bytes for o: a version byte, then ID, Key and
// Value, each as a uvarint length and the bytes.
func (o Op) Encode() []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(o.ID)+len(o.Key)+len(o.Value))
	b = append(b, opVersion)
	for _, f := range []string{o.ID, o.Key, o.Value} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// DecodeOp decodes a command written by Op.Encode. It refuses an unknown
// version, an empty ID, fields over MaxOpFieldBytes, and truncated or
// trailing bytes, with errors wrapping ErrBadOp.
func DecodeOp(b []byte) (Op, error) {
	if len(b) == 0 || b[0] != opVersion {
		return Op{}, fmt.Errorf("%w: unknown version", ErrBadOp)
	}
	r := reader{b: b[1:]}
	var o Op
	for _, f := range []*string{&o.ID, &o.Key, &o.Value} {
		s, err := r.str(MaxOpFieldBytes)
		if err != nil {
			return Op{}, fmt.Errorf("%w: %w", ErrBadOp, err)
		}
		*f = s
	}
	if len(r.b) != 0 {
		return Op{}, fmt.Errorf("%w: %d trailing bytes", ErrBadOp, len(r.b))
	}
	if o.ID == "" {
		return Op{}, fmt.Errorf("%w: empty ID", ErrBadOp)
	}
	return o, nil
}

// Result is the value KV returns for each command: what Node.Apply hands
// to the proposer.
type Result struct {
	// Index is the log index at which the op's ID was first applied. For a
	// duplicate it is the original index, not this command's.
	Index uint64
	// Dup reports that the ID had already been applied: this command
	// changed nothing, and the earlier one (Index) is the op's effect.
	Dup bool
	// Err is set (wrapping ErrBadOp) when the command could not be
	// decoded; nothing changed.
	Err error
}

// Entry is one op KV applied, with the log index it was applied at.
type Entry struct {
	Index uint64
	Op    Op
}

// KV is a deterministic test FSM: a map from keys to lists of values,
// grown by Op commands and deduplicated by op ID. It implements
// cluster.BatchFSM and StateHasher, snapshots and restores its whole
// state, and can hold its Apply calls (Hold) to make a commit outlive the
// proposer's wait. All methods are safe for concurrent use.
type KV struct {
	mu       sync.Mutex
	entries  []Entry        // in log order; only appended to
	byID     map[string]int // op ID -> position in entries
	last     uint64         // index of the last command applied, 0 if none
	digest   [sha256.Size]byte
	restores int
	gate     chan struct{} // while not nil, Apply waits for it to close
}

var (
	_ cluster.BatchFSM = (*KV)(nil)
	_ StateHasher      = (*KV)(nil)
)

// NewKV returns an empty KV.
func NewKV() *KV { return &KV{byID: make(map[string]int)} }

// NewKVFSM is a factory for Start: a fresh, empty KV for each node
// incarnation.
func NewKVFSM(string) cluster.FSM { return NewKV() }

// Apply applies one command; see ApplyBatch.
func (k *KV) Apply(index uint64, cmd []byte) any {
	k.wait()
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.applyLocked(index, cmd)
}

// ApplyBatch applies the commands in order, returning a Result for each.
func (k *KV) ApplyBatch(entries []cluster.Entry) []any {
	k.wait()
	out := make([]any, len(entries))
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, e := range entries {
		out[i] = k.applyLocked(e.Index, e.Cmd)
	}
	return out
}

func (k *KV) wait() {
	k.mu.Lock()
	g := k.gate
	k.mu.Unlock()
	if g != nil {
		<-g
	}
}

func (k *KV) applyLocked(index uint64, cmd []byte) Result {
	k.last = index
	op, err := DecodeOp(cmd)
	if err != nil {
		return Result{Err: err}
	}
	if i, ok := k.byID[op.ID]; ok {
		return Result{Index: k.entries[i].Index, Dup: true}
	}
	e := Entry{Index: index, Op: op}
	k.byID[op.ID] = len(k.entries)
	k.entries = append(k.entries, e)
	k.digest = chain(k.digest, e)
	return Result{Index: index}
}

// chain extends the state digest by one entry: SHA-256 of the previous
// digest and the entry's encoding, so that equal digests mean equal
// entries in equal order.
func chain(prev [sha256.Size]byte, e Entry) [sha256.Size]byte {
	h := sha256.New()
	h.Write(prev[:])
	h.Write(appendEntry(nil, e))
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

func appendEntry(b []byte, e Entry) []byte {
	b = binary.AppendUvarint(b, e.Index)
	for _, f := range []string{e.Op.ID, e.Op.Key, e.Op.Value} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// Hold makes Apply and ApplyBatch block until release is called, so that
// a command can commit in the cluster while this node's FSM — and hence
// the proposer's Node.Apply, if this node leads — has not applied it yet.
// release is idempotent; it must be called before the node is stopped,
// since raft's shutdown waits for the FSM.
func (k *KV) Hold() (release func()) {
	g := make(chan struct{})
	k.mu.Lock()
	k.gate = g
	k.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			k.mu.Lock()
			if k.gate == g {
				k.gate = nil
			}
			k.mu.Unlock()
			close(g)
		})
	}
}

// StateHash returns the index of the last command applied and a digest of
// every applied op with its index, in order.
func (k *KV) StateHash() (uint64, []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.last, bytes.Clone(k.digest[:])
}

// Lookup returns the log index at which the op with this ID was applied.
func (k *KV) Lookup(id string) (index uint64, ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	i, ok := k.byID[id]
	if !ok {
		return 0, false
	}
	return k.entries[i].Index, true
}

// Values returns the list stored at key, in the order applied.
func (k *KV) Values(key string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, e := range k.entries {
		if e.Op.Key == key {
			out = append(out, e.Op.Value)
		}
	}
	return out
}

// Entries returns a copy of every applied op, in log order.
func (k *KV) Entries() []Entry {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Entry(nil), k.entries...)
}

// Len returns how many ops have been applied (duplicates excluded).
func (k *KV) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.entries)
}

// Restores returns how many times Restore replaced the state: once at
// start-up when the node had a snapshot, and once per snapshot a leader
// installed.
func (k *KV) Restores() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.restores
}

// Snapshot captures the state. The entries slice is only ever appended
// to, so the capture is a slice header, not a copy.
func (k *KV) Snapshot() (cluster.Snapshot, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return kvSnapshot{last: k.last, entries: k.entries[:len(k.entries):len(k.entries)]}, nil
}

type kvSnapshot struct {
	last    uint64
	entries []Entry
}

// WriteTo writes a version byte, the last applied index, the entry count
// and the entries.
func (s kvSnapshot) WriteTo(w io.Writer) (int64, error) {
	b := []byte{snapshotVersion}
	b = binary.AppendUvarint(b, s.last)
	b = binary.AppendUvarint(b, uint64(len(s.entries)))
	for _, e := range s.entries {
		b = appendEntry(b, e)
	}
	n, err := w.Write(b)
	return int64(n), err
}

func (kvSnapshot) Release() {}

// Restore replaces the state with a snapshot written by Snapshot. A
// malformed snapshot is refused (ErrBadSnapshot) and the state is left as
// it was.
func (k *KV) Restore(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, maxSnapshotBytes+1))
	if err != nil {
		return fmt.Errorf("clustertest: read KV snapshot: %w", err)
	}
	if len(b) > maxSnapshotBytes {
		return fmt.Errorf("%w: larger than %d bytes", ErrBadSnapshot, maxSnapshotBytes)
	}
	last, entries, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	byID := make(map[string]int, len(entries))
	var digest [sha256.Size]byte
	for i, e := range entries {
		if _, dup := byID[e.Op.ID]; dup {
			return fmt.Errorf("%w: op ID %q appears twice", ErrBadSnapshot, e.Op.ID)
		}
		byID[e.Op.ID] = i
		digest = chain(digest, e)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.entries, k.byID, k.last, k.digest = entries, byID, last, digest
	k.restores++
	return nil
}

func decodeSnapshot(b []byte) (uint64, []Entry, error) {
	if len(b) == 0 || b[0] != snapshotVersion {
		return 0, nil, fmt.Errorf("%w: unknown version", ErrBadSnapshot)
	}
	r := reader{b: b[1:]}
	last, err := r.uvarint()
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	n, err := r.uvarint()
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	// Every entry takes at least 4 bytes: do not trust n for allocation.
	if n > uint64(len(r.b)/4) {
		return 0, nil, fmt.Errorf("%w: %d entries cannot fit in %d bytes", ErrBadSnapshot, n, len(r.b))
	}
	entries := make([]Entry, 0, n)
	var prev uint64
	for range n {
		var e Entry
		if e.Index, err = r.uvarint(); err != nil {
			return 0, nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
		}
		if e.Index <= prev || e.Index > last {
			return 0, nil, fmt.Errorf("%w: entry index %d out of order", ErrBadSnapshot, e.Index)
		}
		prev = e.Index
		for _, f := range []*string{&e.Op.ID, &e.Op.Key, &e.Op.Value} {
			if *f, err = r.str(MaxOpFieldBytes); err != nil {
				return 0, nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
			}
		}
		if e.Op.ID == "" {
			return 0, nil, fmt.Errorf("%w: empty op ID", ErrBadSnapshot)
		}
		entries = append(entries, e)
	}
	if len(r.b) != 0 {
		return 0, nil, fmt.Errorf("%w: %d trailing bytes", ErrBadSnapshot, len(r.b))
	}
	return last, entries, nil
}

// reader decodes uvarints and length-prefixed strings.
type reader struct{ b []byte }

func (r *reader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, errors.New("truncated or overlong varint")
	}
	if n != varintLen(v) {
		return 0, errors.New("non-minimal varint")
	}
	r.b = r.b[n:]
	return v, nil
}

func (r *reader) str(limit int) (string, error) {
	n, err := r.uvarint()
	if err != nil {
		return "", err
	}
	if n > uint64(limit) {
		return "", fmt.Errorf("field of %d bytes exceeds %d", n, limit)
	}
	if n > uint64(len(r.b)) {
		return "", errors.New("truncated field")
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s, nil
}

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
