package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// Key layout of the pebble database behind Store. Each kind of record has
// its own one-byte prefix so that ranges never overlap.
const (
	prefixMeta   byte = 0x00 // store metadata
	prefixLog    byte = 0x01 // raft log: prefix + big-endian uint64 index
	prefixStable byte = 0x02 // raft stable store: prefix + raw key

	storeFormatV1 byte = 1
)

var keyStoreVersion = []byte{prefixMeta, 'v', 'e', 'r', 's', 'i', 'o', 'n'}

// StoreOptions configures OpenStore.
type StoreOptions struct {
	// FS is the file system pebble uses; nil means the operating system's.
	// Tests pass vfs.NewMem().
	FS vfs.FS
	// Logger receives pebble's messages; nil discards them.
	Logger *slog.Logger
}

// Store is a pebble database holding raft's log and stable state. It owns
// the database: Close closes it. Its LogStore and StableStore are safe for
// concurrent use; every write is synced to disk (pebble.Sync) before it
// returns.
type Store struct {
	db *pebble.DB

	// mu guards closed; readers and writers hold it shared so that Close
	// waits for them and nothing touches a closed pebble DB.
	mu     sync.RWMutex
	closed bool

	logs   LogStore
	stable StableStore
}

// OpenStore opens (creating if needed) the pebble database in dir. It
// fails with ErrStoreVersion if dir holds a store of an unknown format.
func OpenStore(dir string, opts StoreOptions) (*Store, error) {
	po := &pebble.Options{
		FS:     opts.FS,
		Logger: pebbleLogger{log: orDiscard(opts.Logger)},
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("cluster: open store %s: %w", dir, err)
	}
	s := &Store{db: db}
	s.logs.s = s
	s.stable.s = s
	if err := s.checkVersion(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := s.logs.reloadBounds(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("cluster: open store %s: %w", dir, err)
	}
	return s, nil
}

func (s *Store) checkVersion() error {
	v, closer, err := s.db.Get(keyStoreVersion)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if err := s.db.Set(keyStoreVersion, []byte{storeFormatV1}, pebble.Sync); err != nil {
			return fmt.Errorf("cluster: write store version: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("cluster: read store version: %w", err)
	}
	defer func() { _ = closer.Close() }()
	if len(v) != 1 || v[0] != storeFormatV1 {
		return fmt.Errorf("%w: %x", ErrStoreVersion, v)
	}
	return nil
}

// Logs returns the raft.LogStore view of the store.
func (s *Store) Logs() *LogStore { return &s.logs }

// Stable returns the raft.StableStore view of the store.
func (s *Store) Stable() *StableStore { return &s.stable }

// Close waits for in-flight calls, then closes the database. Later calls
// of any store method return ErrStoreClosed. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("cluster: close store: %w", err)
	}
	return nil
}

// acquire takes the shared lock, failing if the store is closed.
func (s *Store) acquire() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrStoreClosed
	}
	return nil
}

func (s *Store) release() { s.mu.RUnlock() }

// LogStore implements raft.LogStore on a Store. Entries live under their
// own key prefix with big-endian indexes, so pebble's order is log order.
// FirstIndex and LastIndex are served from memory and kept up to date by
// every write. Safe for concurrent use.
type LogStore struct {
	s *Store
	// writeMu serializes writes with the update of the cached bounds.
	writeMu sync.Mutex
	first   atomic.Uint64
	last    atomic.Uint64
}

var _ raft.LogStore = (*LogStore)(nil)

func logKey(index uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

// logKeyEnd is the exclusive upper bound for deleting through max.
func logKeyEnd(max uint64) []byte {
	if max == math.MaxUint64 {
		return []byte{prefixLog + 1}
	}
	return logKey(max + 1)
}

// FirstIndex returns the lowest stored index, 0 when the log is empty.
func (l *LogStore) FirstIndex() (uint64, error) {
	if err := l.s.acquire(); err != nil {
		return 0, err
	}
	defer l.s.release()
	return l.first.Load(), nil
}

// LastIndex returns the highest stored index, 0 when the log is empty.
func (l *LogStore) LastIndex() (uint64, error) {
	if err := l.s.acquire(); err != nil {
		return 0, err
	}
	defer l.s.release()
	return l.last.Load(), nil
}

// GetLog reads the entry at index into out. It returns raft.ErrLogNotFound
// (unwrapped, as raft compares it with ==) when there is none, and an error
// wrapping ErrCorruptLog when the stored bytes do not decode or belong to
// another index. out's byte slices are fresh copies owned by the caller.
func (l *LogStore) GetLog(index uint64, out *raft.Log) error {
	if err := l.s.acquire(); err != nil {
		return err
	}
	defer l.s.release()
	v, closer, err := l.s.db.Get(logKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("cluster: get log %d: %w", index, err)
	}
	defer func() { _ = closer.Close() }()
	var entry raft.Log
	if err := decodeLog(v, &entry); err != nil {
		return fmt.Errorf("cluster: get log %d: %w", index, err)
	}
	if entry.Index != index {
		return fmt.Errorf("cluster: get log %d: %w: entry holds index %d", index, ErrCorruptLog, entry.Index)
	}
	*out = entry
	return nil
}

// StoreLog stores one entry; see StoreLogs.
func (l *LogStore) StoreLog(entry *raft.Log) error {
	return l.StoreLogs([]*raft.Log{entry})
}

// StoreLogs writes all entries in one synced pebble batch: either all of
// them are durable when it returns nil, or none is written. Entries may
// replace existing ones at the same index. Index 0 and nil entries are
// refused. The entries are not retained.
func (l *LogStore) StoreLogs(entries []*raft.Log) error {
	if len(entries) == 0 {
		return nil
	}
	if err := l.s.acquire(); err != nil {
		return err
	}
	defer l.s.release()

	batch := l.s.db.NewBatch()
	defer func() { _ = batch.Close() }()
	var (
		buf    []byte
		key    [9]byte
		lo, hi uint64 = math.MaxUint64, 0
	)
	key[0] = prefixLog
	for i, e := range entries {
		if e == nil {
			return fmt.Errorf("cluster: store logs: entry %d is nil", i)
		}
		if e.Index == 0 {
			return fmt.Errorf("cluster: store logs: entry %d has index 0", i)
		}
		var err error
		buf, err = appendLog(buf[:0], e)
		if err != nil {
			return err
		}
		binary.BigEndian.PutUint64(key[1:], e.Index)
		// Batch.Set copies key and value, so both buffers are reused.
		if err := batch.Set(key[:], buf, nil); err != nil {
			return fmt.Errorf("cluster: store logs: batch entry %d: %w", e.Index, err)
		}
		lo = min(lo, e.Index)
		hi = max(hi, e.Index)
	}

	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if err := batch.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("cluster: store logs %d..%d: %w", lo, hi, err)
	}
	if f := l.first.Load(); f == 0 || lo < f {
		l.first.Store(lo)
	}
	if hi > l.last.Load() {
		l.last.Store(hi)
	}
	return nil
}

// DeleteRange deletes the entries from min through max inclusive with one
// synced pebble range deletion. min > max deletes nothing.
func (l *LogStore) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	if err := l.s.acquire(); err != nil {
		return err
	}
	defer l.s.release()
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if err := l.s.db.DeleteRange(logKey(min), logKeyEnd(max), pebble.Sync); err != nil {
		return fmt.Errorf("cluster: delete logs %d..%d: %w", min, max, err)
	}
	if err := l.reloadBoundsLocked(); err != nil {
		return fmt.Errorf("cluster: delete logs %d..%d: %w", min, max, err)
	}
	return nil
}

// reloadBounds reads the first and last index from pebble; used at open.
func (l *LogStore) reloadBounds() error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	return l.reloadBoundsLocked()
}

func (l *LogStore) reloadBoundsLocked() error {
	it, err := l.s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixLog},
		UpperBound: []byte{prefixLog + 1},
	})
	if err != nil {
		return fmt.Errorf("read log bounds: %w", err)
	}
	var first, last uint64
	if it.First() {
		first, err = indexFromKey(it.Key())
		if err == nil && it.Last() {
			last, err = indexFromKey(it.Key())
		}
	}
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("read log bounds: %w", cerr)
	}
	if err != nil {
		return err
	}
	l.first.Store(first)
	l.last.Store(last)
	return nil
}

func indexFromKey(k []byte) (uint64, error) {
	if len(k) != 9 || k[0] != prefixLog {
		return 0, fmt.Errorf("%w: malformed log key %x", ErrCorruptLog, k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// StableStore implements raft.StableStore on a Store: a small synced
// key-value map for raft's term and vote. Byte and uint64 values share
// one key space. Safe for concurrent use.
type StableStore struct {
	s *Store
}

var _ raft.StableStore = (*StableStore)(nil)

func stableKey(key []byte) []byte {
	k := make([]byte, 1+len(key))
	k[0] = prefixStable
	copy(k[1:], key)
	return k
}

// Set stores val under key, synced. val is copied.
func (st *StableStore) Set(key, val []byte) error {
	if err := st.s.acquire(); err != nil {
		return err
	}
	defer st.s.release()
	if err := st.s.db.Set(stableKey(key), val, pebble.Sync); err != nil {
		return fmt.Errorf("cluster: stable set %q: %w", key, err)
	}
	return nil
}

// Get returns a copy of the value under key. A missing key returns
// (nil, ErrKeyNotFound), whose message is the "not found" raft expects.
func (st *StableStore) Get(key []byte) ([]byte, error) {
	if err := st.s.acquire(); err != nil {
		return nil, err
	}
	defer st.s.release()
	v, closer, err := st.s.db.Get(stableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: stable get %q: %w", key, err)
	}
	out := make([]byte, len(v))
	copy(out, v)
	_ = closer.Close()
	return out, nil
}

// SetUint64 stores val under key as 8 big-endian bytes, synced.
func (st *StableStore) SetUint64(key []byte, val uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], val)
	return st.Set(key, b[:])
}

// GetUint64 returns the value stored by SetUint64. A missing key returns
// (0, nil), as raft's StableStore contract and InmemStore do; a value that
// is not 8 bytes long is an error.
func (st *StableStore) GetUint64(key []byte) (uint64, error) {
	v, err := st.Get(key)
	if errors.Is(err, ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("cluster: stable get uint64 %q: value has %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
