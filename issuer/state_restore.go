package issuer

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Restoring a snapshot streams it into a new database in a sibling
// directory, checks it, then swaps directories. The live directory always
// holds a complete state:
//
//	<dir>.restore  the snapshot being written; deleted if anything fails
//	<dir>          renamed to <dir>.old once the new state is complete
//	<dir>.restore  renamed to <dir>
//	<dir>.old      deleted
//
// openStateDir finishes or undoes a swap that a crash interrupted.
const (
	restoreSuffix = ".restore"
	oldSuffix     = ".old"
)

// restoreBatchBytes bounds the pebble batch that a restore fills before
// committing it, and so the memory a restore holds whatever the size of
// the snapshot. It stays below half of pebble's memtable (4 MB by
// default): a larger batch would be kept whole, on the Go heap, until
// flushed, instead of being copied into the memtable and reused.
const restoreBatchBytes = 1 << 20

// errStateClosed is returned by reads after Close.
var errStateClosed = errors.New("issuer: state closed")

// dbGate counts the users of the database that do not hold the State's
// lock (paged reads, pebble snapshots being streamed), so that a restore
// can wait for them before it closes the database.
//
// Lock order: a user takes the gate first and may then take State.mu; no
// code takes the gate while holding State.mu, and no user takes the gate
// twice. Writers (ApplyBatch) use State.db under State.mu's write lock and
// need no gate: a restore changes State.db under that lock as well.
type dbGate struct {
	mu      sync.Mutex
	cond    sync.Cond // L is &mu; signalled when users drops to 0 or a swap ends
	users   int
	closing bool // a swap is in progress: new users wait
	closed  bool // Close was called: new users fail
}

// acquireDB returns the database for a read outside State.mu; the caller
// must call releaseDB once done with it and with everything opened on it.
func (s *State) acquireDB() (*pebble.DB, error) {
	g := &s.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.closing {
		g.cond.Wait()
	}
	if g.closed {
		return nil, errStateClosed
	}
	g.users++
	return s.db, nil
}

func (s *State) releaseDB() {
	g := &s.gate
	g.mu.Lock()
	if g.users--; g.users == 0 {
		g.cond.Broadcast()
	}
	g.mu.Unlock()
}

// drainDB stops new users of the database and waits for the current ones
// to finish; new users wait for openDB.
func (s *State) drainDB() {
	g := &s.gate
	g.mu.Lock()
	g.closing = true
	for g.users > 0 {
		g.cond.Wait()
	}
	g.mu.Unlock()
}

// openDB ends a drain: db (nil: keep the current one) is the database
// from now on. The caller holds State.mu's write lock if db is not nil.
func (s *State) openDB(db *pebble.DB) {
	g := &s.gate
	g.mu.Lock()
	if db != nil {
		s.db = db
	}
	g.closing = false
	g.cond.Broadcast()
	g.mu.Unlock()
}

// openStateDir recovers dir from a restore that a crash interrupted and
// opens the database in it. Leftovers: <dir>.restore is an incomplete or
// unused snapshot and is deleted; <dir>.old is the previous state,
// deleted if <dir> exists (the swap completed), renamed back to <dir>
// otherwise (the crash came between the two renames: the old state is
// complete, and raft restores the snapshot again).
func openStateDir(dir string, log pebble.Logger) (*pebble.DB, error) {
	old, tmp := dir+oldSuffix, dir+restoreSuffix
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(old); err == nil {
			if err := os.Rename(old, dir); err != nil {
				return nil, fmt.Errorf("issuer: recover state from %s: %w", old, err)
			}
			if err := syncDir(filepath.Dir(dir)); err != nil {
				return nil, fmt.Errorf("issuer: recover state: %w", err)
			}
		}
	} else if err != nil {
		return nil, fmt.Errorf("issuer: open state: %w", err)
	}
	for _, p := range []string{tmp, old} {
		if err := os.RemoveAll(p); err != nil {
			return nil, fmt.Errorf("issuer: remove leftover %s: %w", p, err)
		}
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("issuer: open state: %w", err)
	}
	return db, nil
}

// syncDir makes the entries of directory dir (renames, removals) durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// restore implements Restore; see there.
func (s *State) restore(r io.Reader) error {
	tmp := s.dir + restoreSuffix
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("issuer: restore: %w", err)
	}
	v, err := s.writeSnapshot(tmp, r)
	if err != nil {
		if rerr := os.RemoveAll(tmp); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return fmt.Errorf("issuer: restore: %w", err)
	}
	// The new state is complete, synced and usable: swap it in once the
	// readers of the current database are done.
	s.drainDB()
	s.mu.Lock()
	db, err := s.swapDir(tmp)
	if err == nil {
		s.view = *v
		if s.feed != nil {
			s.feed.reset(v.syncEpoch)
		}
	}
	s.openDB(db)
	s.mu.Unlock()
	// Both best effort: a leftover is deleted by the next OpenState.
	os.RemoveAll(tmp)
	os.RemoveAll(s.dir + oldSuffix)
	if err != nil {
		return fmt.Errorf("issuer: restore: %w", err)
	}
	return nil
}

// swapDir closes the current database, moves the state in tmp to s.dir
// and opens it. On failure it puts the previous state back, reopens it
// and returns it with the error. The caller holds s.mu's write lock and
// has drained the database's other users.
func (s *State) swapDir(tmp string) (*pebble.DB, error) {
	old, parent := s.dir+oldSuffix, filepath.Dir(s.dir)
	// A Close error (nothing is left open) does not stop the swap: the
	// database is closed either way.
	if err := s.db.Close(); err != nil {
		s.log.Warn("close state before restore", "err", err)
	}
	// back puts the previous state back after a failed step.
	back := func(step string, err error) (*pebble.DB, error) {
		err = fmt.Errorf("%s: %w", step, err)
		if _, serr := os.Stat(s.dir); serr == nil {
			if _, oerr := os.Stat(old); oerr == nil {
				if rerr := os.Rename(s.dir, tmp); rerr != nil {
					panic(fmt.Sprintf("issuer: restore failed (%v) and the previous state cannot be put back: %v", err, rerr))
				}
			}
		}
		if _, oerr := os.Stat(old); oerr == nil {
			if rerr := os.Rename(old, s.dir); rerr != nil {
				panic(fmt.Sprintf("issuer: restore failed (%v) and the previous state cannot be put back: %v", err, rerr))
			}
			syncDir(parent)
		}
		db, oerr := pebble.Open(s.dir, &pebble.Options{Logger: s.plog})
		if oerr != nil {
			// No database to continue with: the node cannot apply the log.
			panic(fmt.Sprintf("issuer: restore failed (%v) and the previous state does not reopen: %v", err, oerr))
		}
		return db, err
	}
	if err := os.RemoveAll(old); err != nil {
		return back("remove leftover", err)
	}
	if err := os.Rename(s.dir, old); err != nil {
		return back("set the previous state aside", err)
	}
	if err := syncDir(parent); err != nil {
		return back("sync", err)
	}
	if err := os.Rename(tmp, s.dir); err != nil {
		return back("move the new state in", err)
	}
	if err := syncDir(parent); err != nil {
		return back("sync", err)
	}
	db, err := pebble.Open(s.dir, &pebble.Options{Logger: s.plog})
	if err != nil {
		return back("open the new state", err)
	}
	return db, nil
}

// writeSnapshot streams the snapshot in r into a new database in dir, in
// batches of restoreBatchBytes, checks the stream's checksum and the
// view the database holds (the KEK opens its keys, its policy parses),
// and returns that view once the database is on disk and closed.
func (s *State) writeSnapshot(dir string, r io.Reader) (v *view, err error) {
	h := sha256.New()
	raw := bufio.NewReaderSize(r, 64<<10)
	br := &hashReader{r: raw, h: h}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return nil, errors.New("not a state snapshot")
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: s.plog})
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := db.Close(); err == nil && cerr != nil {
			v, err = nil, cerr
		}
	}()
	b := db.NewBatch()
	defer b.Close()
	var kb, vb []byte
	for {
		kl, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, fmt.Errorf("truncated: %w", err)
		}
		if kl == 0 {
			break
		}
		if kb, err = readInto(br, kb, kl-1); err != nil {
			return nil, err
		}
		vl, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, fmt.Errorf("truncated: %w", err)
		}
		if vb, err = readInto(br, vb, vl); err != nil {
			return nil, err
		}
		if err := b.Set(kb, vb, nil); err != nil {
			return nil, err
		}
		if b.Len() >= restoreBatchBytes {
			// Not synced: nothing in dir counts until the end.
			if err := b.Commit(pebble.NoSync); err != nil {
				return nil, err
			}
			b.Reset()
		}
	}
	sum := h.Sum(nil)
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(raw, got); err != nil || string(got) != string(sum) {
		return nil, errors.New("checksum mismatch")
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, err
	}
	// Write the memtables out, so that opening the database after the
	// swap has no log to replay.
	if err := db.Flush(); err != nil {
		return nil, err
	}
	return buildView(db, s.kek)
}

// readInto reads n bytes into buf, reused when large enough.
func readInto(r io.Reader, buf []byte, n uint64) ([]byte, error) {
	if n > maxSnapshotValue {
		return buf, fmt.Errorf("entry of %d bytes exceeds %d", n, maxSnapshotValue)
	}
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return buf, fmt.Errorf("truncated: %w", err)
	}
	return buf, nil
}
