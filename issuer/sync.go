package issuer

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/internal/syncwire"
)

// Sync serving limits (spec/sync.md §2).
const (
	syncRetained       = 4096 // changes kept for verifiers that resume
	syncMaxPerAnswer   = 1024 // changes in one answer
	syncDefaultWait    = time.Second
	syncMaxWait        = 30 * time.Second
	syncMaxInstanceLen = 64
	// syncLive: a verifier whose last poll is older is no longer counted
	// as connected (receipts, --wait).
	syncLive = 3 * time.Second
	// syncForget: receipts of verifiers silent this long are dropped.
	syncForget = 10 * time.Minute
	// syncVouch: a node whose last heartbeat is older than this cannot
	// vouch for its copy and answers sync_unavailable.
	syncVouch = 2 * time.Second
)

// syncHub serves the sync state of one node to verifiers: the changes the
// state machine publishes (signed once, sent to every poller), the node's
// heartbeats, a cached encoded snapshot, and the receipts verifiers leave
// with each poll. It is safe for concurrent use.
type syncHub struct {
	is *Issuer

	mu      sync.Mutex
	epoch   uint64        // the state's sync epoch as last published
	changes []hubChange   // consecutive (each prev = the one before's epoch)
	hb      *hubBeat      // newest heartbeat, nil before the first
	wake    chan struct{} // closed and replaced on every change and heartbeat
	snap    *hubSnap      // encoded snapshot of the newest epoch built
	// receipts by verifier (SPIFFE ID and instance).
	receipts map[receiptKey]*receipt
	swept    time.Time     // when receipts were last cleared of the silent
	rwake    chan struct{} // closed and replaced on every receipt

	beatNow chan struct{} // asks the heartbeat loop for one now
	snapMu  sync.Mutex    // one snapshot build at a time
}

type hubChange struct {
	epoch, prev uint64
	at          time.Time
	frame       []byte
}

type hubBeat struct {
	epoch uint64
	at    time.Time // the time it vouches for
	made  time.Time // when this node made it
	frame []byte
}

type hubSnap struct {
	epoch   uint64
	entries int
	frames  []byte
}

type receiptKey struct {
	id       string
	instance string
}

type receipt struct {
	epoch   uint64
	last    time.Time // start of the newest poll
	polling int       // polls in progress
}

func newSyncHub(is *Issuer) *syncHub {
	epoch, _ := is.state.SyncEpoch()
	return &syncHub{is: is, epoch: epoch, wake: make(chan struct{}), rwake: make(chan struct{}),
		receipts: map[receiptKey]*receipt{}, beatNow: make(chan struct{}, 1)}
}

// publish implements syncFeed. It runs under the state's write lock.
func (h *syncHub) publish(changes []syncChange) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range changes {
		if c.signer == nil || (len(h.changes) > 0 && h.changes[len(h.changes)-1].epoch != c.prev) || (len(h.changes) == 0 && h.epoch != c.prev) {
			// Unsignable (no key yet) or not contiguous: resuming across
			// it is impossible, verifiers take a snapshot.
			h.changes = h.changes[:0]
		}
		h.epoch = c.epoch
		if c.signer == nil {
			continue
		}
		frame, err := syncwire.EncodeChange(&syncwire.Change{Epoch: c.epoch, Prev: c.prev, Time: c.at, Add: c.add, Remove: c.remove, Keys: c.keys, Nodes: c.nodes, NodesChanged: c.nodesChanged},
			syncwire.Signer{KeyID: c.signer.id, Key: c.signer.priv})
		if err != nil {
			h.is.log.Error("sync: cannot encode change", "epoch", c.epoch, "err", err)
			h.changes = h.changes[:0]
			continue
		}
		if len(h.changes) == syncRetained {
			h.changes = append(h.changes[:0], h.changes[1:]...)
		}
		h.changes = append(h.changes, hubChange{epoch: c.epoch, prev: c.prev, at: c.at, frame: frame})
	}
	h.broadcastLocked()
	h.kick()
}

// kick asks the heartbeat loop for a heartbeat now.
func (h *syncHub) kick() {
	select {
	case h.beatNow <- struct{}{}:
	default:
	}
}

// reset implements syncFeed: a snapshot replaced the state.
func (h *syncHub) reset(epoch uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.changes, h.epoch, h.snap = nil, epoch, nil
	h.broadcastLocked()
}

func (h *syncHub) broadcastLocked() {
	close(h.wake)
	h.wake = make(chan struct{})
}

// runHeartbeats makes a heartbeat every interval (and right after each
// change) until ctx ends: the time is read first, then the node makes
// sure its state holds every write committed before that time
// (linearize: a barrier on the leader, the leader's read index on a
// follower), then it signs (epoch, time) with the active key.
func (h *syncHub) runHeartbeats(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		h.beat(ctx, interval)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.beatNow:
		}
	}
}

func (h *syncHub) beat(ctx context.Context, interval time.Duration) {
	if !h.is.booted.Load() {
		return
	}
	at := h.is.cfg.Now()
	lctx, cancel := context.WithTimeout(ctx, interval)
	err := h.is.linearize(lctx)
	cancel()
	if err != nil {
		return
	}
	h.is.state.mu.RLock()
	epoch, signer := h.is.state.syncEpoch, h.is.state.active
	h.is.state.mu.RUnlock()
	if signer == nil {
		return
	}
	frame, err := syncwire.EncodeHeartbeat(&syncwire.Heartbeat{Epoch: epoch, Time: at, Node: h.is.cfg.NodeID},
		syncwire.Signer{KeyID: signer.id, Key: signer.priv})
	if err != nil {
		h.is.log.Error("sync: cannot encode heartbeat", "err", err)
		return
	}
	h.mu.Lock()
	if h.hb == nil || at.After(h.hb.at) {
		h.hb = &hubBeat{epoch: epoch, at: at, made: h.is.cfg.Now(), frame: frame}
		h.broadcastLocked()
	}
	h.mu.Unlock()
}

// view returns the hub's epoch, newest heartbeat and wake channel under
// one lock.
func (h *syncHub) view() (epoch uint64, hb *hubBeat, wake chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.epoch, h.hb, h.wake
}

// await waits until cond holds for the hub's epoch and newest heartbeat,
// checking again at every change and heartbeat, until timer fires (held
// false) or ctx ends (gone true).
func (h *syncHub) await(ctx context.Context, timer *time.Timer, cond func(epoch uint64, hb *hubBeat) bool) (held, gone bool) {
	for {
		epoch, hb, wake := h.view()
		if cond(epoch, hb) {
			return true, false
		}
		select {
		case <-ctx.Done():
			return false, true
		case <-wake:
		case <-timer.C:
			return false, false
		}
	}
}

// after returns the encoded changes after epoch since (at most max), and
// whether the hub retains everything after since.
func (h *syncHub) after(since uint64, max int) (frames [][]byte, last uint64, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if since == h.epoch {
		return nil, since, true
	}
	if len(h.changes) == 0 || since < h.changes[0].prev || since > h.epoch {
		return nil, 0, false
	}
	i := 0
	for i < len(h.changes) && h.changes[i].prev != since {
		i++
	}
	if i == len(h.changes) {
		return nil, 0, false
	}
	for ; i < len(h.changes) && len(frames) < max; i++ {
		frames = append(frames, h.changes[i].frame)
		last = h.changes[i].epoch
	}
	return frames, last, true
}

// changeTime is when the change at epoch was made, if retained.
func (h *syncHub) changeTime(epoch uint64) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.changes) - 1; i >= 0; i-- {
		if h.changes[i].epoch == epoch {
			return h.changes[i].at, true
		}
		if h.changes[i].epoch < epoch {
			break
		}
	}
	return time.Time{}, false
}

// snapshot returns the encoded snapshot of the state's current epoch,
// built once per epoch.
func (h *syncHub) snapshot() (*hubSnap, error) {
	h.snapMu.Lock()
	defer h.snapMu.Unlock()
	h.mu.Lock()
	cached, epoch := h.snap, h.epoch
	h.mu.Unlock()
	if cached != nil && cached.epoch == epoch {
		return cached, nil
	}
	ss := h.is.state.syncSnapshot()
	defer ss.snap.Close()
	if ss.signer == nil {
		return nil, ErrNoKey
	}
	_, n := h.is.state.SyncEpoch()
	entries, err := ss.entries(n)
	if err != nil {
		return nil, err
	}
	frames, err := syncwire.EncodeSnapshot(&syncwire.Snapshot{Epoch: ss.epoch, Time: h.is.cfg.Now(), Keys: ss.keys, Nodes: ss.nodes, Entries: entries},
		syncwire.Signer{KeyID: ss.signer.id, Key: ss.signer.priv})
	if err != nil {
		return nil, err
	}
	s := &hubSnap{epoch: ss.epoch, entries: len(entries), frames: frames}
	h.mu.Lock()
	if h.snap == nil || s.epoch >= h.snap.epoch {
		h.snap = s
	}
	h.mu.Unlock()
	return s, nil
}

// pollStart records a receipt: verifier k holds epoch since.
func (h *syncHub) pollStart(k receiptKey, since uint64, now time.Time) {
	h.mu.Lock()
	r := h.receipts[k]
	if r == nil {
		r = &receipt{}
		h.receipts[k] = r
	}
	advanced := since > r.epoch
	if advanced {
		r.epoch = since
	}
	r.last = now
	r.polling++
	if now.Sub(h.swept) > syncForget/10 { // not on every poll: it walks every receipt
		h.swept = now
		for key, old := range h.receipts {
			if old.polling == 0 && now.Sub(old.last) > syncForget {
				delete(h.receipts, key)
			}
		}
	}
	close(h.rwake)
	h.rwake = make(chan struct{})
	h.mu.Unlock()
	if advanced && since > 0 {
		if at, ok := h.changeTime(since); ok {
			h.is.metrics.propagation.Observe(now.Sub(at).Seconds())
		}
	}
}

func (h *syncHub) pollEnd(k receiptKey) {
	h.mu.Lock()
	if r := h.receipts[k]; r != nil && r.polling > 0 {
		r.polling--
	}
	h.mu.Unlock()
}

// VerifierReceipt is what a node knows of one verifier (spec/sync.md §6).
type VerifierReceipt struct {
	SPIFFEID    string    `json:"spiffe_id"`
	Instance    string    `json:"instance"`
	Epoch       uint64    `json:"epoch"`
	LastContact time.Time `json:"last_contact"`
	Node        string    `json:"node"`
	Live        bool      `json:"live"`
}

// localReceipts lists this node's receipts.
func (h *syncHub) localReceipts(now time.Time) ([]VerifierReceipt, chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]VerifierReceipt, 0, len(h.receipts))
	for k, r := range h.receipts {
		out = append(out, VerifierReceipt{SPIFFEID: k.id, Instance: k.instance, Epoch: r.epoch, LastContact: r.last.UTC(),
			Node: h.is.cfg.NodeID, Live: r.polling > 0 || now.Sub(r.last) <= syncLive})
	}
	return out, h.rwake
}

// handleSync serves GET /v1/sync (spec/sync.md §2).
func (is *Issuer) handleSync(w http.ResponseWriter, r *http.Request) {
	id, ok := is.requirePeer(w, r, func(id spiffeid.ID) bool { return is.tds[id.TrustDomain()] || id == is.id },
		"sync requires an X.509-SVID as TLS client certificate", "this trust domain may not sync")
	if !ok {
		return
	}
	q := r.URL.Query()
	since, err := strconv.ParseUint(q.Get("since"), 10, 64)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "since: want an epoch (0 for a snapshot)", nil)
		return
	}
	instance := q.Get("instance")
	if !validInstance(instance) {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "instance: want 1 to 64 of A-Z a-z 0-9 . _ -", nil)
		return
	}
	wait := syncDefaultWait
	if v := q.Get("wait"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms < 0 || time.Duration(ms)*time.Millisecond > syncMaxWait {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "wait: want 0 to 30000 milliseconds", nil)
			return
		}
		wait = time.Duration(ms) * time.Millisecond
	}
	h := is.sync
	key := receiptKey{id: id.String(), instance: instance}
	h.pollStart(key, since, is.cfg.Now())
	defer h.pollEnd(key)

	ctx := r.Context()
	deadline := time.Now().Add(wait)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	// The node must be able to vouch for its copy, and hold since.
	vouches := func(hb *hubBeat) bool { return hb != nil && is.cfg.Now().Sub(hb.made) <= syncVouch }
	held, gone := h.await(ctx, timer, func(epoch uint64, hb *hubBeat) bool { return vouches(hb) && since <= epoch })
	if gone {
		return
	}
	if !held {
		w.Header().Set("Retry-After", "1")
		if _, hb, _ := h.view(); !vouches(hb) {
			writeProblem(w, http.StatusServiceUnavailable, ProblemSyncUnavailable, "this node cannot vouch for its copy now (no leader or no quorum); try another node", nil)
		} else {
			writeProblem(w, http.StatusServiceUnavailable, ProblemSyncBehind, "this node has not applied epoch "+strconv.FormatUint(since, 10)+" yet", nil)
		}
		return
	}
	// Long poll: wait for a change after since, unless a snapshot is due.
	if since > 0 {
		if _, gone := h.await(ctx, timer, func(epoch uint64, _ *hubBeat) bool { return epoch > since }); gone {
			return
		}
	}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Now().Add(wait + 60*time.Second))
	w.Header().Set("Content-Type", syncwire.ContentType)
	w.Header().Set("Cache-Control", "no-store")
	var sent uint64
	frames, last, resumable := h.after(since, syncMaxPerAnswer)
	if since == 0 || !resumable {
		snap, err := h.snapshot()
		if err != nil {
			is.log.Error("sync: snapshot", "err", err)
			w.Header().Set("Retry-After", "1")
			writeProblem(w, http.StatusServiceUnavailable, ProblemSyncUnavailable, "cannot build a snapshot", nil)
			return
		}
		w.WriteHeader(http.StatusOK)
		if err := writePaced(w, rc.SetWriteDeadline, snap.frames); err != nil {
			return
		}
		rc.SetWriteDeadline(time.Now().Add(wait + 60*time.Second))
		sent = snap.epoch
		frames, last, _ = h.after(sent, syncMaxPerAnswer)
	} else {
		w.WriteHeader(http.StatusOK)
		sent = since
	}
	for _, f := range frames {
		if _, err := w.Write(f); err != nil {
			return
		}
	}
	if len(frames) > 0 {
		sent = last
	}
	// Close with a heartbeat for the epoch sent, waiting briefly for the
	// one that follows a change.
	closeBy := time.NewTimer(max(time.Until(deadline), 0) + time.Second)
	defer closeBy.Stop()
	for {
		_, hb, wake := h.view()
		if hb != nil && hb.epoch == sent {
			w.Write(hb.frame)
			return
		}
		if hb != nil && hb.epoch > sent {
			more, l, ok := h.after(sent, syncMaxPerAnswer)
			if !ok || len(more) == 0 {
				return
			}
			for _, f := range more {
				if _, err := w.Write(f); err != nil {
					return
				}
			}
			sent = l
			continue
		}
		rc.Flush()
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-closeBy.C:
			return
		}
	}
}

// A snapshot is written in chunks of syncChunk bytes, each with its own
// write deadline syncChunkWait ahead: a verifier on a slow link gets a
// snapshot of any size as long as it reads at least 8 KiB/s, and one
// that stops reading is dropped (1,000,000 revocations are about 19 MB).
const (
	syncChunk     = 256 << 10
	syncChunkWait = 30 * time.Second
)

// writePaced writes b to w in chunks of syncChunk, setting the write
// deadline before each.
func writePaced(w io.Writer, setDeadline func(time.Time) error, b []byte) error {
	for len(b) > 0 {
		n := min(len(b), syncChunk)
		setDeadline(time.Now().Add(syncChunkWait))
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func validInstance(s string) bool {
	if len(s) == 0 || len(s) > syncMaxInstanceLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
