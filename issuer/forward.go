package issuer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/writ-dev/writ/cluster"
)

// forwarder applies commands through consensus from any node: on the
// leader it applies them directly; on a follower it sends them to the
// leader's API (POST /v1/internal/apply, mTLS, issuer nodes only). Every
// command carries an ID, so retrying after a timeout, a lost answer or a
// leader change never applies it twice.
type forwarder struct {
	is     *Issuer
	node   *cluster.Node
	client *http.Client
}

func newForwarder(is *Issuer, node *cluster.Node) *forwarder {
	tr := &http.Transport{
		TLSClientConfig:     tlsconfig.MTLSClientConfig(is.cfg.SVID, is.cfg.Bundles, tlsconfig.AuthorizeID(is.id)),
		MaxIdleConnsPerHost: 16,
		ForceAttemptHTTP2:   false,
		DialContext:         is.cfg.ForwardDialContext, // nil (production): net.Dialer
	}
	return &forwarder{is: is, node: node, client: &http.Client{Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// forwardedResult is the answer of /v1/internal/apply.
type forwardedResult struct {
	Seqs      []uint64 `json:"seqs"`
	Duplicate bool     `json:"duplicate,omitempty"`
	Error     string   `json:"error,omitempty"`
	// SyncEpoch: the leader's sync epoch right after the command.
	SyncEpoch uint64 `json:"sync_epoch,omitempty"`
}

// errNoLeaderAddr: the leader is known but has not registered its API
// address yet (it does so first thing after election).
var errNoLeaderAddr = errors.New("issuer: leader's API address not known yet")

// Apply implements applier. It retries until ctx ends while there is no
// leader, the leader is unreachable or leadership moves; a command the
// state machine refused is returned as its result, not retried.
func (f *forwarder) Apply(ctx context.Context, cmd []byte) (any, error) {
	delay := 10 * time.Millisecond
	for {
		res, err := f.applyOnce(ctx, cmd)
		if err == nil {
			return res, nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return nil, err
		}
		f.is.log.Debug("apply retry", "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

func retryable(err error) bool {
	return errors.Is(err, cluster.ErrNotLeader) || errors.Is(err, cluster.ErrLeadershipLost) ||
		errors.Is(err, errNoLeaderAddr) || errors.Is(err, errForward)
}

// errForward wraps failures to reach the leader or answers of a leader
// that is no longer leader: worth retrying.
var errForward = errors.New("issuer: forward to leader")

// leaderAPI returns the current leader and the API address it registered;
// the errors are retryable (no leader yet, or not registered yet).
func (f *forwarder) leaderAPI() (id, addr string, err error) {
	id, _ = f.node.Leader()
	if id == "" {
		return "", "", &cluster.NotLeaderError{}
	}
	rec, ok := f.is.state.Node(id)
	if !ok || rec.APIAddr == "" || rec.Removed {
		return "", "", errNoLeaderAddr
	}
	return id, rec.APIAddr, nil
}

// forwardAttemptTimeout bounds one request to the leader. A leader cut
// off by a partition that drops packets (rather than refusing them) never
// answers, and TCP gives up only after many minutes: unbounded, an
// attempt would wait for its caller's deadline — for an audit worker,
// whose context has none, until the partition heals — while the other
// nodes have long elected a new leader. Retrying is safe: every command
// carries an ID, so the state machine applies it once.
const forwardAttemptTimeout = 3 * time.Second

// attempt bounds one request to the leader: forwardAttemptTimeout, and
// no longer than this node follows that leader (changed closes), so a
// leader that froze or fell behind a partition is given up as soon as
// the others elect another, not only at the timeout.
func attempt(ctx context.Context, changed <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, forwardAttemptTimeout)
	go func() {
		select {
		case <-changed:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (f *forwarder) applyOnce(ctx context.Context, cmd []byte) (any, error) {
	if f.node.IsLeader() {
		return f.node.Apply(ctx, cmd)
	}
	changed := f.node.LeaderChanged()
	leader, addr, err := f.leaderAPI()
	if err != nil {
		return nil, err
	}
	ctx, cancel := attempt(ctx, changed)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+"/v1/internal/apply", bytes.NewReader(cmd))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", errForward, leader, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", errForward, leader, err)
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusUnprocessableEntity:
		var fr forwardedResult
		if err := json.Unmarshal(body, &fr); err != nil {
			return nil, fmt.Errorf("issuer: forward: answer: %w", err)
		}
		res := applyResult{seqs: fr.Seqs, duplicate: fr.Duplicate, syncEpoch: fr.SyncEpoch}
		if fr.Error != "" {
			res.err = errors.New(fr.Error)
		}
		return res, nil
	case http.StatusServiceUnavailable:
		return nil, fmt.Errorf("%w %s: not leader or not ready", errForward, leader)
	}
	return nil, fmt.Errorf("issuer: forward to %s: answered %s", leader, resp.Status)
}

// handleInternalApply serves POST /v1/internal/apply: the leader applies a
// command a follower received. Only issuer nodes (the issuer's own SPIFFE
// ID, as on the raft transport) may call it; the command is decoded
// strictly before it is proposed.
func (is *Issuer) handleInternalApply(w http.ResponseWriter, r *http.Request) {
	if !is.internalCaller(w, r) {
		return
	}
	body, err := readLimited(w, r, int64(cluster.DefaultConfig().MaxCommandBytes))
	if err != nil {
		writeProblem(w, http.StatusRequestEntityTooLarge, ProblemTooLarge, "command too large", nil)
		return
	}
	if _, err := decodeCommand(body); err != nil {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, err.Error(), nil)
		return
	}
	if !is.node.IsLeader() {
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "not the leader", nil)
		return
	}
	res, err := is.node.Apply(r.Context(), body)
	if err != nil {
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "apply: "+err.Error(), nil)
		return
	}
	ar, _ := res.(applyResult)
	out := forwardedResult{Seqs: ar.seqs, Duplicate: ar.duplicate, SyncEpoch: ar.syncEpoch}
	status := http.StatusOK
	if ar.err != nil {
		out.Error, status = ar.err.Error(), http.StatusUnprocessableEntity
	}
	writeJSON(w, status, &out)
}

// ensureNodeRecord registers this node's addresses in the replicated
// member list when they are missing or changed, so that followers can
// forward to it when it leads.
func (is *Issuer) ensureNodeRecord(ctx context.Context) error {
	want := nodeRecord{ID: is.cfg.NodeID, APIAddr: is.advertiseAPI(), RaftAddr: is.node.Addr()}
	if cur, ok := is.state.Node(want.ID); ok {
		if cur.Removed {
			return fmt.Errorf("issuer: node %s was removed from the cluster; reset its data directory to join again", want.ID)
		}
		if cur.APIAddr == want.APIAddr && cur.RaftAddr == want.RaftAddr {
			return nil
		}
	}
	return is.setNode(ctx, want, AuditNodeSet, is.id)
}

// setNode replicates member record n, stamped now, with its audit record
// of the given kind on behalf of caller.
func (is *Issuer) setNode(ctx context.Context, n nodeRecord, kind string, caller spiffeid.ID) error {
	n.SetAt = is.cfg.Now().UTC()
	rec := &AuditRecord{Time: n.SetAt, Node: is.cfg.NodeID, Kind: kind, Caller: caller.String(), Subject: n.ID}
	return is.apply(ctx, &command{Type: cmdNodeSet, Node: &n, Audit: []*AuditRecord{rec}})
}

// advertiseAPI is the API address other nodes reach this one at.
func (is *Issuer) advertiseAPI() string {
	if is.cfg.AdvertiseAPIAddr != "" {
		return is.cfg.AdvertiseAPIAddr
	}
	return is.Addr()
}

// linearizeTimeout bounds a linearizable read: without a reachable
// leader the read fails rather than answering from a stale view.
const linearizeTimeout = 5 * time.Second

// readIndex is the answer of POST /v1/internal/read-index.
type readIndex struct {
	Index uint64 `json:"index"`
}

// linearize makes the next local read reflect every write committed
// before it was called. On the leader that is a raft barrier; on a
// follower it asks the leader for an index at which all committed writes
// are applied (the leader runs the barrier) and waits until this node has
// applied up to it.
func (is *Issuer) linearize(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, linearizeTimeout)
	defer cancel()
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		idx, err := is.fwd.readIndex(ctx)
		if err == nil {
			for is.state.Applied() < idx {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(2 * time.Millisecond):
				}
			}
			return nil
		}
		if !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
	}
}

// leaderReadIndex returns, on the leader, an index at which this node's
// state holds every write acknowledged before the call, having confirmed
// with a quorum that it still leads (so no newer leader acknowledged
// anything it lacks). It writes nothing to the log, except one barrier
// per term: a new leader must first apply what earlier leaders
// committed. After that, every acknowledged write was applied here before
// it was acknowledged, so the applied index read at the start suffices.
// (Heartbeats to verifiers linearize every second on every node; with a
// barrier each they filled the log with ~3 entries a second.)
func (is *Issuer) leaderReadIndex(ctx context.Context) (uint64, error) {
	term := is.node.Term()
	if is.barrierTerm.Load() != term {
		if err := is.node.Barrier(ctx); err != nil {
			return 0, err
		}
		is.barrierTerm.Store(term)
	}
	idx := is.state.Applied()
	if err := is.node.VerifyLeader(ctx); err != nil {
		return 0, err
	}
	return idx, nil
}

func (f *forwarder) readIndex(ctx context.Context) (uint64, error) {
	if f.node.IsLeader() {
		return f.is.leaderReadIndex(ctx)
	}
	changed := f.node.LeaderChanged()
	leader, addr, err := f.leaderAPI()
	if err != nil {
		return 0, err
	}
	ctx, cancel := attempt(ctx, changed)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+"/v1/internal/read-index", nil)
	if err != nil {
		return 0, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w %s: %v", errForward, leader, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%w %s: read index answered %s", errForward, leader, resp.Status)
	}
	var ri readIndex
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&ri); err != nil {
		return 0, fmt.Errorf("%w %s: read index: %v", errForward, leader, err)
	}
	return ri.Index, nil
}

// handleReadIndex serves POST /v1/internal/read-index (issuer nodes only):
// the leader confirms it still leads and has applied every committed
// entry (raft barrier), and answers its applied index.
func (is *Issuer) handleReadIndex(w http.ResponseWriter, r *http.Request) {
	if !is.internalCaller(w, r) {
		return
	}
	if !is.node.IsLeader() {
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "not the leader", nil)
		return
	}
	idx, err := is.leaderReadIndex(r.Context())
	if err != nil {
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "read index: "+err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, &readIndex{Index: idx})
}

// internalCaller admits issuer nodes only (the issuer's own SPIFFE ID).
func (is *Issuer) internalCaller(w http.ResponseWriter, r *http.Request) bool {
	_, ok := is.requirePeer(w, r, func(id spiffeid.ID) bool { return id == is.id },
		"issuer node X.509-SVID required", "issuer nodes only")
	return ok
}
