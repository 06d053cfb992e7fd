package issuer

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// kKeyHigh holds the highest root key id ever added: ids are never
// reused, even after a key is pruned, so a verifier never mistakes a new
// key for an old one.
var kKeyHigh = []byte("meta/keyhigh")

func (v *view) loadKeyHigh(r pebble.Reader) error {
	b, ok, err := get(r, kKeyHigh)
	if err != nil || !ok {
		return err
	}
	if len(b) != 4 {
		return fmt.Errorf("issuer: stored key high-water mark has %d bytes", len(b))
	}
	v.keyHigh = binary.BigEndian.Uint32(b)
	return nil
}

// KeyInfo is a root key as the admin API shows it (no private half).
type KeyInfo struct {
	ID          uint32    `json:"id"`
	State       string    `json:"state"`
	Public      string    `json:"public"` // base64url, no padding
	CreatedAt   time.Time `json:"created_at"`
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	Epoch       uint64    `json:"epoch,omitempty"`
}

func keyInfo(k *keyRecord) KeyInfo {
	return KeyInfo{ID: k.ID, State: k.State, Public: base64.RawURLEncoding.EncodeToString(k.Public),
		CreatedAt: k.CreatedAt, ActivatedAt: k.ActivatedAt, NotAfter: k.NotAfter, Epoch: k.Epoch}
}

// Keys returns every published root key, by id.
func (s *State) Keys() []KeyInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]KeyInfo, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, keyInfo(k))
	}
	slices.SortFunc(out, func(a, b KeyInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// key returns the published root key id.
func (s *State) key(id uint32) (KeyInfo, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[id]
	if !ok {
		return KeyInfo{}, false
	}
	return keyInfo(k), true
}

// KeysPage is the body of GET /v1/admin/keys.
type KeysPage struct {
	Keys  []KeyInfo `json:"keys"`
	Epoch uint64    `json:"epoch"`
}

func (is *Issuer) handleListKeys(w http.ResponseWriter, r *http.Request, _ spiffeid.ID) {
	if err := is.linearize(r.Context()); err != nil {
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "cannot read a linearizable view", nil)
		return
	}
	epoch, _ := is.state.SyncEpoch()
	writeJSON(w, http.StatusOK, &KeysPage{Keys: is.state.Keys(), Epoch: epoch})
}

// RotateRequest is the body of POST /v1/admin/keys/rotate.
type RotateRequest struct {
	// Activate: "after_propagation" (default: once every live verifier
	// holds the new key, or after Timeout), "now" (verifiers that have not
	// learnt the key refuse its tokens until they do) or "never" (prepare
	// only; a later rotate activates it).
	Activate string `json:"activate,omitempty"`
	// TimeoutMS bounds the wait for verifiers (default 30,000).
	TimeoutMS int    `json:"timeout_ms,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// RotateResult is the answer of POST /v1/admin/keys/rotate.
type RotateResult struct {
	Prepared    KeyInfo      `json:"prepared"`
	Activated   bool         `json:"activated"`
	Retired     uint32       `json:"retired,omitempty"`
	Propagation *Propagation `json:"propagation,omitempty"`
	Epoch       uint64       `json:"epoch"`
}

func (is *Issuer) handleRotate(w http.ResponseWriter, r *http.Request, admin spiffeid.ID) {
	body, ok := is.readBody(w, r)
	if !ok {
		return
	}
	var req RotateRequest
	if len(body) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "body: "+err.Error(), nil)
			return
		}
	}
	timeout := 30 * time.Second
	if req.TimeoutMS != 0 {
		if req.TimeoutMS < 0 || time.Duration(req.TimeoutMS)*time.Millisecond > maxWaitTimeout {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "timeout_ms: want 1 to 300000", nil)
			return
		}
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	switch req.Activate {
	case "", "after_propagation", "now", "never":
	default:
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "activate: want after_propagation, now or never", nil)
		return
	}
	if len(req.Reason) > maxRevocationReason {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "reason: too long", nil)
		return
	}
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout + 30*time.Second))
	res, err := is.RotateKey(r.Context(), admin, req.Activate, timeout, req.Reason)
	if err != nil {
		is.log.Error("key rotation failed", "err", err)
		if errors.Is(err, ErrBadCommand) {
			writeProblem(w, http.StatusConflict, ProblemConflict, err.Error(), nil)
			return
		}
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "cannot rotate: "+err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// RotateKey prepares a new root key (or reuses a prepared one) and, per
// activate, activates it: "now", "never", or "after_propagation"/"" once
// every live verifier holds it or timeout passed.
func (is *Issuer) RotateKey(ctx context.Context, admin spiffeid.ID, activate string, timeout time.Duration, reason string) (*RotateResult, error) {
	prep, epoch, err := is.prepareKey(ctx, admin, reason)
	if err != nil {
		return nil, err
	}
	res := &RotateResult{Prepared: prep, Epoch: epoch}
	switch activate {
	case "never":
		return res, nil
	case "now":
	default:
		p := is.waitPropagation(ctx, prep.Epoch, 1, timeout)
		res.Propagation = &p
	}
	old, _, _ := is.state.ActiveKey()
	if res.Epoch, err = is.setKeyState(ctx, admin, prep.ID, keyActive, 0, reason); err != nil {
		return nil, err
	}
	res.Activated, res.Retired = true, old
	res.Prepared.State = keyActive
	return res, nil
}

// prepareKey returns the prepared key, adding one if there is none.
func (is *Issuer) prepareKey(ctx context.Context, admin spiffeid.ID, reason string) (KeyInfo, uint64, error) {
	if err := is.linearize(ctx); err != nil {
		return KeyInfo{}, 0, err
	}
	for _, k := range is.state.Keys() {
		if k.State == keyPrepared {
			epoch, _ := is.state.SyncEpoch()
			return k, epoch, nil
		}
	}
	id, err := is.addKey(ctx, admin, keyPrepared, reason)
	if err != nil {
		return KeyInfo{}, 0, err
	}
	// Read it back at a linearizable point: on a follower the forwarded
	// command may not be applied here yet.
	if err := is.linearize(ctx); err != nil {
		return KeyInfo{}, 0, err
	}
	k, ok := is.state.key(id)
	if !ok {
		return KeyInfo{}, 0, fmt.Errorf("issuer: prepared key %d not found after commit", id)
	}
	epoch, _ := is.state.SyncEpoch()
	return k, epoch, nil
}

// addKey generates a root key, seals it and replicates it in state.
func (is *Issuer) addKey(ctx context.Context, caller spiffeid.ID, state, note string) (uint32, error) {
	pub, priv, err := ed25519.GenerateKey(is.cfg.Rand)
	if err != nil {
		return 0, err
	}
	id := is.state.nextKeyID()
	sealed, err := is.cfg.KEK.seal(id, priv)
	if err != nil {
		return 0, err
	}
	now := is.cfg.Now().UTC()
	rec := &AuditRecord{Time: now, Node: is.cfg.NodeID, Kind: AuditKeyAdd, Caller: caller.String(), KeyID: id, Note: note}
	kr := &keyRecord{ID: id, Public: pub, Sealed: sealed, State: state, CreatedAt: now}
	if state == keyActive {
		kr.ActivatedAt = now
	}
	if err := is.apply(ctx, &command{Type: cmdKeyAdd, Key: kr, Audit: []*AuditRecord{rec}}); err != nil {
		return 0, fmt.Errorf("issuer: add root key: %w", err)
	}
	is.log.Info("root key added", "key_id", id, "state", state)
	return id, nil
}

// nextKeyID is the id the next key gets.
func (s *State) nextKeyID() uint32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id := s.keyHigh + 1
	for kid := range s.keys {
		id = max(id, kid+1)
	}
	return id
}

// setKeyState commits a key state change and returns the sync epoch after it.
func (is *Issuer) setKeyState(ctx context.Context, caller spiffeid.ID, id uint32, state string, activate uint32, note string) (uint64, error) {
	now := is.cfg.Now().UTC()
	ks := &keyStateRecord{ID: id, State: state, Activate: activate, At: now, NotAfter: now.Add(is.cfg.MaxTTL + skewMargin)}
	rec := &AuditRecord{Time: now, Node: is.cfg.NodeID, Kind: AuditKeyState, Caller: caller.String(), KeyID: id, Subject: state, Note: note}
	epoch, err := is.applyEpoch(ctx, &command{Type: cmdKeyState, KeyState: ks, Audit: []*AuditRecord{rec}})
	if err != nil {
		return 0, fmt.Errorf("issuer: key %d → %s: %w", id, state, err)
	}
	is.log.Info("root key state changed", "key_id", id, "state", state, "by", caller.String())
	return epoch, nil
}

// RevokeKey revokes root key id: verifiers refuse every token it signed
// as soon as they hold the returned epoch. Revoking the active key first
// prepares a replacement (if none is prepared) and activates it in the
// same step, so the cluster never stops minting.
func (is *Issuer) RevokeKey(ctx context.Context, admin spiffeid.ID, id uint32, reason string) (*KeyInfo, uint64, error) {
	if len(reason) > maxRevocationReason {
		return nil, 0, &badRequestError{"reason: too long"}
	}
	if err := is.linearize(ctx); err != nil {
		return nil, 0, err
	}
	k, ok := is.state.key(id)
	if !ok {
		return nil, 0, &badRequestError{"no published key " + strconv.FormatUint(uint64(id), 10)}
	}
	target := &k
	var activate uint32
	if target.State == keyActive {
		prep, _, err := is.prepareKey(ctx, admin, "replaces revoked key "+strconv.FormatUint(uint64(id), 10))
		if err != nil {
			return nil, 0, err
		}
		activate = prep.ID
	}
	epoch, err := is.setKeyState(ctx, admin, id, keyRevoked, activate, reason)
	if err != nil {
		return nil, 0, err
	}
	target.State = keyRevoked
	return target, epoch, nil
}

func (is *Issuer) handleRevokeKey(w http.ResponseWriter, r *http.Request, admin spiffeid.ID) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 32)
	if err != nil || id == 0 {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "key id: want a positive integer", nil)
		return
	}
	body, ok := is.readBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Reason string    `json:"reason,omitempty"`
		Wait   *WaitSpec `json:"wait,omitempty"`
	}
	if len(body) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "body: "+err.Error(), nil)
			return
		}
	}
	rr := RevokeRequest{Kind: "key", KeyID: uint32(id), Reason: req.Reason, Wait: req.Wait}
	is.serveRevoke(w, r, admin, &rr)
}

// maintain runs the leader's housekeeping until ctx ends: pruning expired
// revocations and keys, and the automatic key rotation schedule.
func (is *Issuer) maintain(ctx context.Context) {
	t := time.NewTicker(is.cfg.MaintainInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !is.node.IsLeader() || !is.booted.Load() {
			continue
		}
		if err := is.Prune(ctx); err != nil && ctx.Err() == nil {
			is.log.Warn("prune failed", "err", err)
		}
		if err := is.rotateOnSchedule(ctx); err != nil && ctx.Err() == nil {
			is.log.Warn("scheduled key rotation failed", "err", err)
		}
	}
}

// rotateOnSchedule prepares a key at half the active key's lifetime and
// activates it once every live verifier holds it (or, failing that, when
// the active key reaches its full lifetime).
func (is *Issuer) rotateOnSchedule(ctx context.Context) error {
	life := is.cfg.KeyLifetime
	if life <= 0 {
		return nil
	}
	now := is.cfg.Now()
	var active, prepared *KeyInfo
	for _, k := range is.state.Keys() {
		switch k.State {
		case keyActive:
			active = &k
		case keyPrepared:
			prepared = &k
		}
	}
	if active == nil {
		return nil
	}
	since := active.ActivatedAt
	if since.IsZero() {
		since = active.CreatedAt
	}
	age := now.Sub(since)
	switch {
	case prepared == nil && age >= life/2:
		_, err := is.addKey(ctx, is.id, keyPrepared, "scheduled rotation")
		return err
	case prepared != nil && now.Sub(prepared.CreatedAt) >= is.cfg.KeyPublishDelay:
		if age < life {
			recs, _ := is.allReceipts(ctx, prepared.Epoch, 0)
			for _, rc := range recs {
				if rc.Live && rc.Epoch < prepared.Epoch {
					return nil // someone has not learnt the key yet
				}
			}
		} else {
			is.log.Warn("activating the prepared key at the end of the active key's lifetime although some verifiers have not acknowledged it", "key_id", prepared.ID)
		}
		_, err := is.setKeyState(ctx, is.id, prepared.ID, keyActive, 0, "scheduled rotation")
		return err
	}
	return nil
}
