package issuer

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Audit record kinds of revocations and key changes.
const (
	AuditRevoke   = "revocation.add"
	AuditPrune    = "revocation.prune"
	AuditKeyState = "key.state"
)

// RevokeRequest is the body of POST /v1/admin/revocations.
type RevokeRequest struct {
	// Kind is token, block, agent or key.
	Kind string `json:"kind"`
	// ID: the token_id (32 hex digits) or a block's revocation id (128).
	ID string `json:"id,omitempty"`
	// Agent and Before (agent kind): that agent's tokens issued before
	// Before; Before defaults to now.
	Agent  string    `json:"agent,omitempty"`
	Before time.Time `json:"before,omitzero"`
	// KeyID (key kind): the root key to revoke.
	KeyID  uint32 `json:"key_id,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Wait, when set, holds the answer until the revocation has reached
	// that share of the live verifiers, or the timeout passed.
	Wait *WaitSpec `json:"wait,omitempty"`
}

// WaitSpec asks an admin write to wait for verifiers (spec/sync.md §6).
type WaitSpec struct {
	// Share of the live verifiers that must acknowledge: 0 < share ≤ 1.
	Share float64 `json:"share"`
	// TimeoutMS: at most this long (1 to 300,000; default 5,000).
	TimeoutMS int `json:"timeout_ms,omitempty"`
}

// RevokeResult is the answer of POST /v1/admin/revocations.
type RevokeResult struct {
	Revocation *Revocation `json:"revocation,omitempty"`
	Key        *KeyInfo    `json:"key,omitempty"`
	// Epoch: verifiers at this sync epoch or later enforce it.
	Epoch       uint64       `json:"epoch"`
	Propagation *Propagation `json:"propagation,omitempty"`
}

// Propagation reports how far a change has reached the verifiers.
type Propagation struct {
	Epoch        uint64  `json:"epoch"`
	Verifiers    int     `json:"verifiers"`
	Acknowledged int     `json:"acknowledged"`
	Share        float64 `json:"share"`
	Complete     bool    `json:"complete"`
	ElapsedMS    float64 `json:"elapsed_ms"`
	// Pending lists (up to 20) live verifiers that have not acknowledged.
	Pending []VerifierReceipt `json:"pending,omitempty"`
}

const (
	defaultWaitTimeout = 5 * time.Second
	maxWaitTimeout     = 5 * time.Minute
)

func (ws *WaitSpec) validate() error {
	if ws.Share <= 0 || ws.Share > 1 {
		return errors.New("wait.share: want more than 0 and at most 1")
	}
	if ws.TimeoutMS < 0 || time.Duration(ws.TimeoutMS)*time.Millisecond > maxWaitTimeout {
		return errors.New("wait.timeout_ms: want 1 to 300000")
	}
	return nil
}

func (ws *WaitSpec) timeout() time.Duration {
	if ws.TimeoutMS == 0 {
		return defaultWaitTimeout
	}
	return time.Duration(ws.TimeoutMS) * time.Millisecond
}

func (is *Issuer) handleRevoke(w http.ResponseWriter, r *http.Request, admin spiffeid.ID) {
	body, ok := is.readBody(w, r)
	if !ok {
		return
	}
	var req RevokeRequest
	if err := decodeStrict(body, &req); err != nil {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "body: "+err.Error(), nil)
		return
	}
	is.serveRevoke(w, r, admin, &req)
}

// serveRevoke commits req and answers it (POST /v1/admin/revocations and
// POST /v1/admin/keys/{id}/revoke).
func (is *Issuer) serveRevoke(w http.ResponseWriter, r *http.Request, admin spiffeid.ID, req *RevokeRequest) {
	if req.Wait != nil {
		if err := req.Wait.validate(); err != nil {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, err.Error(), nil)
			return
		}
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(req.Wait.timeout() + 30*time.Second))
	}
	var res RevokeResult
	var err error
	if req.Kind == "key" {
		if req.ID != "" || req.Agent != "" || !req.Before.IsZero() || req.KeyID == 0 {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "key revocation wants key_id, nothing else", nil)
			return
		}
		var ki *KeyInfo
		ki, res.Epoch, err = is.RevokeKey(r.Context(), admin, req.KeyID, req.Reason)
		res.Key = ki
	} else {
		if req.KeyID != 0 {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "key_id is for kind key", nil)
			return
		}
		rec := &revocationRecord{Kind: req.Kind, ID: strings.ToLower(req.ID), Agent: req.Agent, Before: req.Before.UTC(), Reason: req.Reason}
		var stored *Revocation
		stored, res.Epoch, err = is.Revoke(r.Context(), admin, rec)
		res.Revocation = stored
	}
	var bad *badRequestError
	switch {
	case errors.As(err, &bad):
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, bad.msg, nil)
		return
	case errors.Is(err, ErrBadCommand):
		writeProblem(w, http.StatusConflict, ProblemConflict, err.Error(), nil)
		return
	case err != nil:
		is.log.Error("revoke failed", "err", err)
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "cannot commit the revocation", nil)
		return
	}
	status := http.StatusOK
	if req.Wait != nil {
		p := is.waitPropagation(r.Context(), res.Epoch, req.Wait.Share, req.Wait.timeout())
		res.Propagation = &p
		if !p.Complete {
			status = http.StatusAccepted
		}
	}
	writeJSON(w, status, &res)
}

// badRequestError is a request the issuer refuses before committing.
type badRequestError struct{ msg string }

func (e *badRequestError) Error() string { return e.msg }

// Revoke commits a revocation on behalf of admin (r's Kind, ID or
// Agent/Before and Reason set; Before zero means now) and returns it as
// stored and the sync epoch verifiers must reach to enforce it. Revoking
// something already revoked returns the first record.
func (is *Issuer) Revoke(ctx context.Context, admin spiffeid.ID, r *revocationRecord) (*Revocation, uint64, error) {
	now := is.cfg.Now().UTC()
	r.At, r.By = now, admin.String()
	if r.Kind == RevokeAgent && r.Before.IsZero() {
		r.Before = now
	}
	r.ExpiresAt = r.affectsFrom().Add(is.cfg.MaxTTL + skewMargin).UTC()
	if err := r.validate(); err != nil {
		return nil, 0, &badRequestError{err.Error()}
	}
	audit := &AuditRecord{Time: now, Node: is.cfg.NodeID, Kind: AuditRevoke, Caller: admin.String(), Subject: r.subject(), Note: r.Reason, ExpiresAt: r.ExpiresAt}
	epoch, err := is.applyEpoch(ctx, &command{Type: cmdRevoke, Revocation: r, Audit: []*AuditRecord{audit}})
	if err != nil {
		return nil, 0, fmt.Errorf("issuer: revoke: %w", err)
	}
	is.log.Info("revoked", "what", r.subject(), "by", admin.String(), "epoch", epoch)
	// Answer the stored record: the first one, if this was revoked
	// before. A follower applies the entry shortly after the leader.
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	if held, _ := is.sync.await(ctx, timer, func(e uint64, _ *hubBeat) bool { return e >= epoch }); !held {
		return nil, 0, fmt.Errorf("issuer: revoke: committed at epoch %d but not applied on this node yet", epoch)
	}
	stored, ok, err := is.state.revocation(r.entryKey())
	switch {
	case err != nil:
		return nil, 0, err
	case !ok:
		return nil, 0, fmt.Errorf("issuer: revoke: committed at epoch %d but not stored on this node", epoch)
	}
	return stored, epoch, nil
}

// Prune drops the revocations and keys whose tokens have all expired by
// now, if there are any. It returns how many revocations it dropped.
func (is *Issuer) Prune(ctx context.Context) error {
	now := is.cfg.Now().UTC()
	if !is.state.pruneDue(now) {
		return nil
	}
	audit := &AuditRecord{Time: now, Node: is.cfg.NodeID, Kind: AuditPrune, Caller: is.id.String()}
	return is.apply(ctx, &command{Type: cmdPrune, Prune: &pruneRecord{Now: now}, Audit: []*AuditRecord{audit}})
}

func (is *Issuer) handleListRevocations(w http.ResponseWriter, r *http.Request, _ spiffeid.ID) {
	q := r.URL.Query()
	limit, ok := pageLimit(w, q)
	if !ok {
		return
	}
	var after []byte
	if v := q.Get("after"); v != "" {
		b, err := hex.DecodeString(v)
		if err != nil || len(b) == 0 || len(b) > 4096 {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "after: want the next value of a previous page", nil)
			return
		}
		after = b
	}
	if err := is.linearize(r.Context()); err != nil {
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "cannot read a linearizable view", nil)
		return
	}
	revs, next, err := is.state.Revocations(after, limit)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, ProblemInternal, "cannot read revocations", nil)
		return
	}
	if revs == nil {
		revs = []Revocation{}
	}
	page := RevocationPage{Revocations: revs}
	page.Epoch, page.Total = is.state.SyncEpoch()
	if next != nil {
		page.Next = hex.EncodeToString(next)
	}
	writeJSON(w, http.StatusOK, &page)
}

// RevocationPage is the body of GET /v1/admin/revocations.
type RevocationPage struct {
	Revocations []Revocation `json:"revocations"`
	Epoch       uint64       `json:"epoch"`
	Total       int          `json:"total"`
	// Next, when set, is the after= value of the next page.
	Next string `json:"next,omitempty"`
}

// SyncStatus is the body of GET /v1/admin/revocations/status.
type SyncStatus struct {
	Epoch       uint64 `json:"epoch"`
	Revocations int    `json:"revocations"`
	// Verifiers: every verifier any node has heard from in the last 10
	// minutes, merged across nodes.
	Verifiers []VerifierStatus `json:"verifiers"`
	// Unreachable lists members whose receipts could not be read.
	Unreachable []string `json:"unreachable,omitempty"`
}

// VerifierStatus is one verifier in SyncStatus.
type VerifierStatus struct {
	VerifierReceipt
	// LagMS: how long the verifier has been missing the oldest change it
	// does not hold (0 when current; -1 when that change is too old to
	// know).
	LagMS float64 `json:"lag_ms"`
}

func (is *Issuer) handleSyncStatus(w http.ResponseWriter, r *http.Request, _ spiffeid.ID) {
	recs, unreachable := is.allReceipts(r.Context(), 0, 0)
	epoch, n := is.state.SyncEpoch()
	st := SyncStatus{Epoch: epoch, Revocations: n, Verifiers: []VerifierStatus{}, Unreachable: unreachable}
	now := is.cfg.Now()
	for _, rc := range recs {
		vs := VerifierStatus{VerifierReceipt: rc}
		if rc.Epoch < epoch {
			vs.LagMS = -1
			if at, ok := is.sync.firstAfter(rc.Epoch); ok {
				vs.LagMS = float64(now.Sub(at).Microseconds()) / 1000
			}
		}
		st.Verifiers = append(st.Verifiers, vs)
	}
	writeJSON(w, http.StatusOK, &st)
}

// firstAfter is the time of the first retained change after epoch.
func (h *syncHub) firstAfter(epoch uint64) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.changes {
		if c.prev == epoch {
			return c.at, true
		}
	}
	return time.Time{}, false
}

// waitPropagation waits until share of the live verifiers (as every
// member knows them) hold epoch, or timeout.
func (is *Issuer) waitPropagation(ctx context.Context, epoch uint64, share float64, timeout time.Duration) Propagation {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		left := time.Until(start.Add(timeout))
		recs, _ := is.allReceipts(ctx, epoch, max(left, 0))
		p := Propagation{Epoch: epoch}
		for _, rc := range recs {
			if !rc.Live {
				continue
			}
			p.Verifiers++
			if rc.Epoch >= epoch {
				p.Acknowledged++
			} else if len(p.Pending) < 20 {
				p.Pending = append(p.Pending, rc)
			}
		}
		p.Share = 1
		if p.Verifiers > 0 {
			p.Share = float64(p.Acknowledged) / float64(p.Verifiers)
		}
		p.ElapsedMS = float64(time.Since(start).Microseconds()) / 1000
		p.Complete = p.Share >= share
		if p.Complete || ctx.Err() != nil {
			if p.Complete {
				p.Pending = nil
			}
			return p
		}
		// Receipts that were all in but short of the share: someone went
		// silent; look again shortly.
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// allReceipts merges the receipts of every member. With wait > 0 each
// member answers once all its live verifiers hold epoch, or after wait.
func (is *Issuer) allReceipts(ctx context.Context, epoch uint64, wait time.Duration) ([]VerifierReceipt, []string) {
	type answer struct {
		node string
		recs []VerifierReceipt
		err  error
	}
	var members []nodeRecord
	for _, n := range is.state.Nodes() {
		if !n.Removed && n.ID != is.cfg.NodeID && n.APIAddr != "" {
			members = append(members, n)
		}
	}
	answers := make([]answer, len(members)+1)
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs, err := is.peerReceipts(ctx, m.APIAddr, epoch, wait)
			answers[i] = answer{node: m.ID, recs: recs, err: err}
		}()
	}
	answers[len(members)] = answer{node: is.cfg.NodeID, recs: is.sync.awaitReceipts(ctx, epoch, wait)}
	wg.Wait()
	merged := map[receiptKey]VerifierReceipt{}
	var unreachable []string
	for _, a := range answers {
		if a.err != nil {
			unreachable = append(unreachable, a.node)
			continue
		}
		for _, rc := range a.recs {
			k := receiptKey{rc.SPIFFEID, rc.Instance}
			old, seen := merged[k]
			if !seen {
				merged[k] = rc
				continue
			}
			if rc.LastContact.After(old.LastContact) {
				old.LastContact, old.Node = rc.LastContact, rc.Node
			}
			old.Epoch = max(old.Epoch, rc.Epoch)
			old.Live = old.Live || rc.Live
			merged[k] = old
		}
	}
	out := make([]VerifierReceipt, 0, len(merged))
	for _, rc := range merged {
		out = append(out, rc)
	}
	slices.SortFunc(out, func(a, b VerifierReceipt) int {
		if c := strings.Compare(a.SPIFFEID, b.SPIFFEID); c != 0 {
			return c
		}
		return strings.Compare(a.Instance, b.Instance)
	})
	return out, unreachable
}

// awaitReceipts returns this node's receipts once every live verifier
// holds epoch, or after wait.
func (h *syncHub) awaitReceipts(ctx context.Context, epoch uint64, wait time.Duration) []VerifierReceipt {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		recs, wake := h.localReceipts(h.is.cfg.Now())
		done := true
		for _, rc := range recs {
			if rc.Live && rc.Epoch < epoch {
				done = false
				break
			}
		}
		if done || wait <= 0 {
			return recs
		}
		select {
		case <-ctx.Done():
			return recs
		case <-timer.C:
			recs, _ := h.localReceipts(h.is.cfg.Now())
			return recs
		case <-wake:
		}
	}
}

// maxReceiptsBody bounds a member's answer to /v1/internal/receipts.
const maxReceiptsBody = 16 << 20

func (is *Issuer) peerReceipts(ctx context.Context, addr string, epoch uint64, wait time.Duration) ([]VerifierReceipt, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+2*time.Second)
	defer cancel()
	u := "https://" + addr + "/v1/internal/receipts?epoch=" + strconv.FormatUint(epoch, 10) + "&wait=" + strconv.FormatInt(wait.Milliseconds(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := is.fwd.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("receipts: %s", resp.Status)
	}
	var recs []VerifierReceipt
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxReceiptsBody)).Decode(&recs); err != nil {
		return nil, err
	}
	return recs, nil
}

// handleInternalReceipts serves GET /v1/internal/receipts (issuer nodes
// only): this node's receipts, once all its live verifiers hold epoch or
// after wait milliseconds.
func (is *Issuer) handleInternalReceipts(w http.ResponseWriter, r *http.Request) {
	if !is.internalCaller(w, r) {
		return
	}
	q := r.URL.Query()
	epoch, err1 := strconv.ParseUint(q.Get("epoch"), 10, 64)
	ms, err2 := strconv.ParseInt(q.Get("wait"), 10, 64)
	if err1 != nil || err2 != nil || ms < 0 || time.Duration(ms)*time.Millisecond > maxWaitTimeout {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "want epoch and wait (ms)", nil)
		return
	}
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Duration(ms)*time.Millisecond + 30*time.Second))
	recs := is.sync.awaitReceipts(r.Context(), epoch, time.Duration(ms)*time.Millisecond)
	writeJSON(w, http.StatusOK, recs)
}
