package syncer

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/syncwire"
)

// poll sends one GET /v1/sync to node and applies the answer, unit by
// unit, as it streams in. pollMu held. It returns nil when the answer
// ended with an accepted heartbeat; ErrGap when it should be asked again
// at once; any other error ends the answer (what was applied stays).
func (s *Syncer) poll(ctx context.Context, node string) error {
	since := s.st.epoch
	if s.wantSnapshot || !s.st.snapshot {
		since = 0
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A silent node is dropped: no header, or no body byte, for
	// PollWait + Timeout.
	silent := s.cfg.PollWait + s.cfg.Timeout
	silence := time.AfterFunc(silent, cancel)
	defer silence.Stop()

	q := pollQuery(since, s.instance, s.cfg.PollWait)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, node+"/v1/sync?"+q, nil)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, node, err)
	}
	req.Header.Set("Accept", syncwire.ContentType+", application/problem+json")
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, node, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return problem(node, resp)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != syncwire.ContentType {
		return fmt.Errorf("%w: %s: content type %.64q, want %s", ErrBadAnswer, node, mt, syncwire.ContentType)
	}
	silence.Reset(silent)
	r := syncwire.NewReader(&idleReader{r: resp.Body, t: silence, d: silent})
	var (
		b   *builder
		raw []byte // the frame of the change or heartbeat being decoded
	)
	r.Frame = func(f []byte) error {
		switch syncwire.FrameType(f[0]) {
		case syncwire.TypeSnapshotBegin:
			// Refuse a rollback or an oversized snapshot before reading it.
			if len(f) >= 5+8 {
				if e := binary.BigEndian.Uint64(f[5:]); e < s.st.epoch {
					return fmt.Errorf("%w: snapshot epoch %d, holding %d", ErrRollback, e, s.st.epoch)
				}
			}
			if len(f) >= 5+4 {
				if n := binary.BigEndian.Uint32(f[len(f)-4:]); n > maxEntries {
					return fmt.Errorf("%w: snapshot of %d entries, at most %d", ErrTooLarge, n, maxEntries)
				}
			}
			b = newBuilder()
			s.file.beginSnapshot(f)
		case syncwire.TypeSnapshotEntries, syncwire.TypeSnapshotEnd:
			s.file.snapshotFrame(f)
		default:
			raw = append(raw[:0], f...)
		}
		return nil
	}
	r.Entries = func(batch []syncwire.Entry) error { return b.add(batch) }
	defer s.file.abortSnapshot() // no-op once committed

	closed := false
	for {
		u, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", node, err)
		}
		switch {
		case u.Snapshot != nil:
			err = s.applySnapshot(u, b, node)
		case u.Change != nil:
			err = s.applyChange(u, raw)
		case u.Heartbeat != nil:
			err = s.applyHeartbeat(u, raw)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", node, err)
		}
		closed = u.Heartbeat != nil
	}
	if !closed {
		return fmt.Errorf("%w: %s", ErrTruncated, node)
	}
	return nil
}

// pollQuery is the query of a poll.
func pollQuery(since uint64, instance string, wait time.Duration) string {
	q := "since=" + strconv.FormatUint(since, 10) + "&instance=" + instance
	if since > 0 {
		q += "&wait=" + strconv.FormatInt(wait.Milliseconds(), 10)
	}
	return q
}

// applySnapshot verifies a decoded snapshot and, when the rules of
// spec/sync.md §1 and §4 allow it, replaces the copy with it.
func (s *Syncer) applySnapshot(u *syncwire.Unit, b *builder, node string) error {
	snap := u.Snapshot
	if snap.Epoch < s.st.epoch {
		return fmt.Errorf("%w: snapshot epoch %d, holding %d", ErrRollback, snap.Epoch, s.st.epoch)
	}
	if err := checkKeys(snap.Keys); err != nil {
		return err
	}
	bootstrap := false
	err := u.VerifyWith(s.signer)
	if errors.Is(err, syncwire.ErrUnknownSigner) && s.bootstrapAllowed() {
		err, bootstrap = u.VerifyBootstrap(), true
	}
	if err != nil {
		return err
	}
	st := newState()
	st.install(snap, b)
	if err := s.file.commitSnapshot(); err != nil {
		s.log.Warn("writ sync state file not written", "file", s.cfg.StateFile, "err", err)
	}
	s.mu.Lock()
	s.st = st
	s.mu.Unlock()
	s.wantSnapshot = false
	s.setNodes(st.nodes)
	s.readyOnce.Do(func() { close(s.ready) })
	s.log.Info("writ sync snapshot applied", "epoch", snap.Epoch, "entries", u.Count, "keys", len(snap.Keys),
		"bytes", u.Size, "node", node, "bootstrap", bootstrap, "signer", u.KeyID)
	return nil
}

// applyChange verifies a decoded change and applies it when its prev is
// the epoch held.
func (s *Syncer) applyChange(u *syncwire.Unit, raw []byte) error {
	c := u.Change
	h := s.st.epoch
	switch {
	case !s.st.snapshot:
		s.wantSnapshot = true
		return fmt.Errorf("%w: change %d→%d before any snapshot", ErrGap, c.Prev, c.Epoch)
	case c.Epoch <= h:
		return fmt.Errorf("%w: change to epoch %d, holding %d", ErrRollback, c.Epoch, h)
	case c.Prev != h:
		s.wantSnapshot = true
		return fmt.Errorf("%w: change %d→%d, holding %d", ErrGap, c.Prev, c.Epoch, h)
	}
	if err := s.verify(u); err != nil {
		return err
	}
	if c.Keys != nil {
		if err := checkKeys(c.Keys); err != nil {
			return err
		}
	}
	if n := s.st.entries() + len(c.Add); n > maxEntries {
		return fmt.Errorf("%w: %d entries after change %d", ErrTooLarge, n, c.Epoch)
	}
	s.mu.Lock()
	s.st.applyChange(c)
	s.mu.Unlock()
	if c.NodesChanged {
		s.setNodes(c.Nodes)
	}
	if s.file.addChange(raw) {
		s.wantSnapshot = true // compact the state file
	}
	s.log.Debug("writ sync change applied", "epoch", c.Epoch, "added", len(c.Add), "removed", len(c.Remove),
		"keys_changed", c.Keys != nil)
	return nil
}

// applyHeartbeat verifies a decoded heartbeat and records the freshness it
// vouches for when its epoch is the one held.
func (s *Syncer) applyHeartbeat(u *syncwire.Unit, raw []byte) error {
	hb := u.Heartbeat
	h := s.st.epoch
	switch {
	case !s.st.snapshot || hb.Epoch > h:
		return fmt.Errorf("%w: heartbeat at epoch %d, holding %d", ErrGap, hb.Epoch, h)
	case hb.Epoch < h:
		return fmt.Errorf("%w: heartbeat at epoch %d, holding %d", ErrRollback, hb.Epoch, h)
	}
	if err := s.verify(u); err != nil {
		return err
	}
	t := hb.Time
	if now := s.cfg.Now(); t.After(now) {
		t = now // never fresher than its arrival
	}
	s.mu.Lock()
	if !s.hasAsOf || t.After(s.asOf) {
		s.asOf, s.hasAsOf = t, true
	}
	s.mu.Unlock()
	s.file.setHeartbeat(raw)
	return nil
}

// verify checks a change or heartbeat with the keys held. An unknown
// signer while bootstrap is allowed makes the next poll ask for a
// snapshot (spec/sync.md §4).
func (s *Syncer) verify(u *syncwire.Unit) error {
	err := u.VerifyWith(s.signer)
	if errors.Is(err, syncwire.ErrUnknownSigner) && s.bootstrapAllowed() {
		s.wantSnapshot = true
	}
	return err
}

// idleReader resets t to d whenever bytes arrive.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 {
		ir.t.Reset(ir.d)
	}
	return n, err
}

// problem turns an answer other than 200 into a *ProblemError.
func problem(node string, resp *http.Response) error {
	pe := &ProblemError{Node: node, Status: resp.StatusCode}
	if secs, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && secs > 0 {
		pe.RetryAfter = time.Duration(min(secs, 3600)) * time.Second
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/problem+json" {
		var p struct {
			Type string `json:"type"`
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProblemBytes))
		if json.Unmarshal(body, &p) == nil {
			if i := strings.LastIndex(p.Type, "/problems/"); i >= 0 {
				pe.Code = p.Type[i+len("/problems/"):]
				if len(pe.Code) > 64 {
					pe.Code = pe.Code[:64]
				}
			}
		}
	}
	return pe
}
