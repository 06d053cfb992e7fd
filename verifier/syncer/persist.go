package syncer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/writ-dev/writ/internal/syncwire"
)

// stateFile keeps the copy on disk as the signed frames it came in
// (spec/sync.md §7), in two files so that a change never rewrites a large
// snapshot:
//
//   - path: the frames of the last snapshot, written once when it is
//     applied (streamed to a temporary file while it arrives, then synced
//     and renamed);
//   - path + ".changes": the frames of the changes applied after it,
//     then the last accepted heartbeat; rewritten whole (temporary file,
//     fsync, rename, fsync of the directory) at most once per
//     Config.PersistEvery while there is something new, and when Run
//     returns.
//
// A new snapshot first replaces the changes file with an empty one, then
// itself, so that a crash never pairs a snapshot with changes of another.
// Write failures are logged: the copy in memory stays good. A nil
// *stateFile (no Config.StateFile) does nothing. Its methods run under
// Syncer.pollMu.
type stateFile struct {
	path string

	changes  []byte // change frames after the snapshot on disk
	nchanges int
	hb       []byte // last accepted heartbeat frame
	dirty    bool
	written  time.Time // last write of the changes file

	tmp    *os.File // the snapshot being received, when writing it
	w      *bufio.Writer
	tmpErr error
}

func (f *stateFile) changesPath() string { return f.path + ".changes" }

// beginSnapshot starts writing a snapshot that is arriving.
func (f *stateFile) beginSnapshot(frame []byte) {
	if f == nil {
		return
	}
	f.abortSnapshot()
	tmp, err := os.CreateTemp(filepath.Dir(f.path), filepath.Base(f.path)+".*.tmp")
	if err != nil {
		f.tmpErr = err
		return
	}
	f.tmp, f.w = tmp, bufio.NewWriterSize(tmp, 256<<10)
	f.snapshotFrame(frame)
}

func (f *stateFile) snapshotFrame(frame []byte) {
	if f == nil || f.tmpErr != nil || f.w == nil {
		return
	}
	_, f.tmpErr = f.w.Write(frame)
}

// abortSnapshot drops a snapshot being written.
func (f *stateFile) abortSnapshot() {
	if f == nil {
		return
	}
	if f.tmp != nil {
		f.tmp.Close()
		os.Remove(f.tmp.Name())
	}
	f.tmp, f.w, f.tmpErr = nil, nil, nil
}

// commitSnapshot makes the snapshot written so far the file's, with no
// changes after it.
func (f *stateFile) commitSnapshot() error {
	if f == nil {
		return nil
	}
	// The changes kept so far belong to the previous snapshot. (Should
	// the files not be replaced, the ones written next fail the chain
	// check at load and are ignored: the file fails closed.)
	f.changes, f.nchanges, f.hb, f.dirty = nil, 0, nil, false
	if f.tmp == nil {
		if f.tmpErr != nil {
			return fmt.Errorf("write %s: %w", f.path, f.tmpErr)
		}
		return errors.New("no snapshot being written")
	}
	defer f.abortSnapshot() // removes the temporary file unless renamed
	err := f.tmpErr
	if err == nil {
		err = f.w.Flush()
	}
	if err == nil {
		err = f.tmp.Sync()
	}
	if err == nil {
		err = writeAtomic(f.changesPath(), nil)
	}
	if err == nil {
		err = os.Rename(f.tmp.Name(), f.path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	f.tmp.Close()
	f.tmp, f.w = nil, nil
	if err := syncDir(filepath.Dir(f.path)); err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return nil
}

// addChange records an applied change and reports whether the changes
// kept grew past their limits (time for a fresh snapshot).
func (f *stateFile) addChange(frame []byte) bool {
	if f == nil {
		return false
	}
	f.changes = append(f.changes, frame...)
	f.nchanges++
	f.dirty = true
	return len(f.changes) > maxLogBytes || f.nchanges > maxLogChanges
}

func (f *stateFile) setHeartbeat(frame []byte) {
	if f == nil {
		return
	}
	f.hb = append(f.hb[:0], frame...)
	f.dirty = true
}

// flush writes the changes file when something new is waiting and
// PersistEvery has passed since the last write, or always when force.
// pollMu held.
func (s *Syncer) flush(force bool) {
	f := s.file
	if f == nil {
		return
	}
	now := s.cfg.Now()
	if !f.dirty || !force && now.Sub(f.written) < s.cfg.PersistEvery {
		return
	}
	if err := writeAtomic(f.changesPath(), f.changes, f.hb); err != nil {
		s.log.Warn("writ sync state file not written", "file", f.changesPath(), "err", err)
		return
	}
	f.dirty, f.written = false, now
}

// writeAtomic replaces path with the concatenation of parts: temporary
// file, fsync, rename, fsync of the directory.
func writeAtomic(path string, parts ...[]byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	for _, p := range parts {
		if _, err := tmp.Write(p); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return err
	}
	return nil
}

// load reads the state file, checks it as a node's answer would be
// checked (its snapshot as a bootstrap: the file is the verifier's own)
// and installs it. A missing file is not an error. Errors wrap
// ErrStateFile; the Syncer is then left as it was. A changes file that
// fails a check is ignored alone: the snapshot is used without it.
func (s *Syncer) load() error {
	f := s.file
	snapFile, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStateFile, err)
	}
	defer snapFile.Close()
	b := newBuilder()
	r := syncwire.NewReader(bufio.NewReaderSize(snapFile, 256<<10))
	r.Entries = b.add
	u, err := r.Next()
	if err == io.EOF {
		err = errors.New("empty")
	}
	if err == nil && u.Snapshot == nil {
		err = fmt.Errorf("starts with a %s, want a snapshot", u.Type)
	}
	if err == nil {
		err = checkKeys(u.Snapshot.Keys)
	}
	if err == nil {
		err = u.VerifyBootstrap()
	}
	if err == nil {
		if _, next := r.Next(); next != io.EOF {
			err = fmt.Errorf("data after the snapshot: %v", next)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrStateFile, f.path, err)
	}
	st := newState()
	st.install(u.Snapshot, b)

	changes, nchanges, hb, asOf, err := s.loadChanges(st)
	if err != nil {
		// st is untouched: loadChanges applies nothing unless all passes.
		s.log.Warn("writ sync changes file ignored", "file", f.changesPath(), "err", err)
		changes, nchanges, hb = nil, 0, nil
	}
	s.mu.Lock()
	s.st = st
	if hb != nil {
		s.asOf, s.hasAsOf = asOf, true
	}
	s.mu.Unlock()
	f.changes, f.nchanges, f.hb = changes, nchanges, hb
	s.setNodes(st.nodes)
	s.readyOnce.Do(func() { close(s.ready) })
	s.log.Info("writ sync state file loaded", "file", f.path, "epoch", st.epoch, "entries", st.entries(),
		"current_as_of", asOf, "fresh", hb != nil)
	return nil
}

// loadChanges checks the changes file against st, a freshly installed
// snapshot, and applies it to st only when every unit passes: changes
// chained from st's epoch, each verified with the keys held before it,
// then at most one heartbeat, at the final epoch. It returns the frames
// of the changes, of the heartbeat, and the time as of which the
// heartbeat vouches (min of its time, the file's modification time and
// now).
func (s *Syncer) loadChanges(st *state) (changes []byte, nchanges int, hb []byte, asOf time.Time, err error) {
	path := s.file.changesPath()
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil, time.Time{}, nil
	}
	if err != nil {
		return nil, 0, nil, time.Time{}, err
	}
	if fi.Size() > maxLogBytes+2*syncwire.MaxBody {
		return nil, 0, nil, time.Time{}, fmt.Errorf("%d bytes, at most %d", fi.Size(), maxLogBytes+2*syncwire.MaxBody)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, nil, time.Time{}, err
	}
	var frames [][]byte
	r := syncwire.NewReader(bytes.NewReader(data))
	r.Frame = func(raw []byte) error { frames = append(frames, bytes.Clone(raw)); return nil }
	var units []*syncwire.Unit
	for {
		u, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, nil, time.Time{}, err
		}
		units = append(units, u)
	}
	// Check everything first, on the epochs and keys alone.
	epoch, keys, added := st.epoch, &state{}, 0
	keys.setKeys(st.keys)
	for i, u := range units {
		switch {
		case u.Heartbeat != nil && i != len(units)-1:
			return nil, 0, nil, time.Time{}, errors.New("a heartbeat is not last")
		case u.Heartbeat != nil && u.Heartbeat.Epoch != epoch:
			return nil, 0, nil, time.Time{}, fmt.Errorf("heartbeat at epoch %d, changes end at %d", u.Heartbeat.Epoch, epoch)
		case u.Change != nil && u.Change.Prev != epoch:
			return nil, 0, nil, time.Time{}, fmt.Errorf("change %d→%d after epoch %d", u.Change.Prev, u.Change.Epoch, epoch)
		case u.Snapshot != nil:
			return nil, 0, nil, time.Time{}, errors.New("holds a snapshot")
		}
		if err := u.VerifyWith(keys.signer); err != nil {
			return nil, 0, nil, time.Time{}, err
		}
		if c := u.Change; c != nil {
			if c.Keys != nil {
				if err := checkKeys(c.Keys); err != nil {
					return nil, 0, nil, time.Time{}, err
				}
				keys.setKeys(c.Keys)
			}
			epoch, added = c.Epoch, added+len(c.Add)
		}
	}
	if n := st.entries() + added; n > maxEntries {
		return nil, 0, nil, time.Time{}, fmt.Errorf("%w: up to %d entries", ErrTooLarge, n)
	}
	for i, u := range units {
		if u.Change != nil {
			st.applyChange(u.Change)
			changes = append(changes, frames[i]...)
			nchanges++
		} else {
			hb = frames[i]
			asOf = u.Heartbeat.Time
			if mt := fi.ModTime(); mt.Before(asOf) {
				asOf = mt
			}
			if now := s.cfg.Now(); now.Before(asOf) {
				asOf = now
			}
		}
	}
	return changes, nchanges, hb, asOf, nil
}
