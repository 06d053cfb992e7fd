package issuer_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/internal/syncwire"
	"github.com/writ-dev/writ/issuer"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

var serviceID = spiffeid.RequireFromPath(td, "/services/crm")

// poller is a minimal verifier-side sync client for tests: it polls
// /v1/sync, checks every signature against the keys it holds (bootstrap
// from the first snapshot) and applies snapshots and changes by the
// rules of spec/sync.md §1.
type poller struct {
	f        *fixture
	c        *http.Client
	instance string

	mu       sync.Mutex
	epoch    uint64
	keys     map[uint32]syncwire.Key
	entries  map[string]bool // entry identities
	hbEpoch  uint64
	hbTime   time.Time
	units    int
	lastErr  error
	applied  chan uint64 // every epoch applied, non-blocking
	snapshot int         // snapshots applied
	nodes    []string    // the node list of the last snapshot or change that set it
	// onApply, when set, is called (under mu) with each epoch applied.
	onApply func(epoch uint64, at time.Time)
}

func newPoller(f *fixture, instance string) *poller {
	return &poller{f: f, c: f.client(f.svid(serviceID)), instance: instance, keys: map[uint32]syncwire.Key{},
		entries: map[string]bool{}, applied: make(chan uint64, 1024)}
}

func entryID(e syncwire.Entry) string {
	if e.Kind == syncwire.EntryAgent {
		return fmt.Sprintf("agent:%s@%d", e.Agent, e.Before.UnixMilli())
	}
	return fmt.Sprintf("%d:%x", e.Kind, e.ID)
}

// poll runs one GET /v1/sync and applies what it gets.
func (p *poller) poll(ctx context.Context, wait time.Duration) (int, error) {
	p.mu.Lock()
	since := p.epoch
	p.mu.Unlock()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("%s/v1/sync?since=%d&instance=%s&wait=%d", p.f.url, since, p.instance, wait.Milliseconds()), nil)
	resp, err := p.c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, fmt.Errorf("sync: %s: %s", resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != syncwire.ContentType {
		return 200, fmt.Errorf("content type %q", ct)
	}
	rd := syncwire.NewReader(resp.Body)
	for {
		u, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return 200, nil
		}
		if err != nil {
			return 200, err
		}
		if err := p.apply(u); err != nil {
			return 200, err
		}
	}
}

func (p *poller) apply(u *syncwire.Unit) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.units++
	held := func(id uint32) (ed25519.PublicKey, bool) {
		k, ok := p.keys[id]
		return k.Public, ok && k.State.Verifies()
	}
	switch {
	case u.Snapshot != nil:
		if len(p.keys) == 0 {
			if err := u.VerifyBootstrap(); err != nil {
				return err
			}
		} else if err := u.VerifyWith(held); err != nil {
			return err
		}
		if u.Snapshot.Epoch < p.epoch {
			return fmt.Errorf("snapshot rollback %d < %d", u.Snapshot.Epoch, p.epoch)
		}
		p.epoch, p.keys, p.entries = u.Snapshot.Epoch, map[uint32]syncwire.Key{}, map[string]bool{}
		for _, k := range u.Snapshot.Keys {
			p.keys[k.ID] = k
		}
		for _, e := range u.Snapshot.Entries {
			p.entries[entryID(e)] = true
		}
		p.nodes = u.Snapshot.Nodes
		p.snapshot++
	case u.Change != nil:
		if err := u.VerifyWith(held); err != nil {
			return err
		}
		c := u.Change
		if c.Prev != p.epoch {
			return fmt.Errorf("gap: change %d→%d, holding %d", c.Prev, c.Epoch, p.epoch)
		}
		for _, e := range c.Add {
			p.entries[entryID(e)] = true
		}
		for _, e := range c.Remove {
			delete(p.entries, entryID(e))
		}
		if c.NodesChanged {
			p.nodes = c.Nodes
		}
		if c.Keys != nil {
			p.keys = map[uint32]syncwire.Key{}
			for _, k := range c.Keys {
				p.keys[k.ID] = k
			}
		}
		p.epoch = c.Epoch
	case u.Heartbeat != nil:
		if err := u.VerifyWith(held); err != nil {
			return err
		}
		if u.Heartbeat.Epoch != p.epoch {
			return fmt.Errorf("heartbeat epoch %d, holding %d", u.Heartbeat.Epoch, p.epoch)
		}
		p.hbEpoch, p.hbTime = u.Heartbeat.Epoch, u.Heartbeat.Time
		return nil
	}
	if p.onApply != nil {
		p.onApply(p.epoch, time.Now())
	}
	select {
	case p.applied <- p.epoch:
	default:
	}
	return nil
}

// run polls until ctx ends.
func (p *poller) run(ctx context.Context) {
	for ctx.Err() == nil {
		if _, err := p.poll(ctx, time.Second); err != nil && ctx.Err() == nil {
			p.mu.Lock()
			p.lastErr = err
			p.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func (p *poller) state() (uint64, map[string]bool, map[uint32]syncwire.Key) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epoch, maps.Clone(p.entries), maps.Clone(p.keys)
}

func (f *fixture) admin(t testing.TB, method, path string, body any) reply {
	t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	r, err := f.do(f.client(f.svid(adminID)), method, path, b, map[string]string{"Content-Type": "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func TestRevokeRequests(t *testing.T) {
	f := newFixture(t)
	tokenID := randHex(16)
	blockID := randHex(64)
	cases := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"ok/token", `{"kind":"token","id":"` + tokenID + `","reason":"leaked in a log"}`, 200, ""},
		{"ok/token-uppercase-is-the-same", `{"kind":"token","id":"` + strings.ToUpper(tokenID) + `"}`, 200, ""},
		{"ok/block", `{"kind":"block","id":"` + blockID + `"}`, 200, ""},
		{"ok/agent-before-now", `{"kind":"agent","agent":"spiffe://acme.test/agents/support"}`, 200, ""},
		{"fail/unknown-kind", `{"kind":"user","id":"` + tokenID + `"}`, 400, issuer.ProblemBadRequest},
		{"fail/token-id-short", `{"kind":"token","id":"abcd"}`, 400, issuer.ProblemBadRequest},
		{"fail/token-id-not-hex", `{"kind":"token","id":"` + strings.Repeat("g", 32) + `"}`, 400, issuer.ProblemBadRequest},
		{"fail/block-id-is-a-token-id", `{"kind":"block","id":"` + tokenID + `"}`, 400, issuer.ProblemBadRequest},
		{"fail/agent-not-spiffe", `{"kind":"agent","agent":"https://acme.test/x"}`, 400, issuer.ProblemBadRequest},
		{"fail/agent-before-in-future", `{"kind":"agent","agent":"spiffe://acme.test/a","before":"2999-01-01T00:00:00Z"}`, 400, issuer.ProblemBadRequest},
		{"fail/token-with-agent", `{"kind":"token","id":"` + tokenID + `","agent":"spiffe://acme.test/a"}`, 400, issuer.ProblemBadRequest},
		{"fail/unknown-field", `{"kind":"token","id":"` + tokenID + `","actor":"x"}`, 400, issuer.ProblemBadRequest},
		{"fail/reason-too-long", `{"kind":"token","id":"` + tokenID + `","reason":"` + strings.Repeat("x", 513) + `"}`, 400, issuer.ProblemBadRequest},
		{"fail/key-unknown", `{"kind":"key","key_id":999}`, 400, issuer.ProblemBadRequest},
		{"fail/key-with-id", `{"kind":"key","key_id":1,"id":"` + tokenID + `"}`, 400, issuer.ProblemBadRequest},
		{"fail/wait-share-zero", `{"kind":"token","id":"` + tokenID + `","wait":{"share":0}}`, 400, issuer.ProblemBadRequest},
		{"fail/wait-too-long", `{"kind":"token","id":"` + tokenID + `","wait":{"share":1,"timeout_ms":300001}}`, 400, issuer.ProblemBadRequest},
	}
	admin := f.client(f.svid(adminID))
	var firstEpoch uint64
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := f.do(admin, http.MethodPost, "/v1/admin/revocations", []byte(c.body), nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.status != c.status || (c.code != "" && r.problem.Type != spec.ProblemType(c.code)) {
				t.Fatalf("got %d %s %s, want %d %s", r.status, r.problem.Type, r.problem.Detail, c.status, c.code)
			}
			if c.status != 200 {
				return
			}
			var res issuer.RevokeResult
			if err := json.Unmarshal(r.body, &res); err != nil {
				t.Fatal(err)
			}
			if res.Epoch == 0 || res.Revocation == nil || res.Revocation.By != adminID.String() {
				t.Fatalf("got %+v, want an epoch and the stored revocation by the admin", res)
			}
			if c.name == "ok/token" {
				firstEpoch = res.Epoch
			}
			if c.name == "ok/token-uppercase-is-the-same" && res.Epoch != firstEpoch {
				t.Fatalf("revoking again moved the epoch from %d to %d", firstEpoch, res.Epoch)
			}
		})
	}
	r := f.admin(t, http.MethodGet, "/v1/admin/revocations", nil)
	var page issuer.RevocationPage
	if err := json.Unmarshal(r.body, &page); err != nil || r.status != 200 {
		t.Fatalf("list: %d %v", r.status, err)
	}
	if page.Total != 3 || len(page.Revocations) != 3 {
		t.Fatalf("got %d revocations (total %d), want 3: %+v", len(page.Revocations), page.Total, page.Revocations)
	}
	// Paging: one at a time, all three, in order.
	var seen []string
	after := ""
	for range 4 {
		r := f.admin(t, http.MethodGet, "/v1/admin/revocations?limit=1&after="+after, nil)
		var p issuer.RevocationPage
		json.Unmarshal(r.body, &p)
		for _, rv := range p.Revocations {
			seen = append(seen, rv.Kind)
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if len(seen) != 3 {
		t.Fatalf("paging saw %v, want 3 revocations", seen)
	}
	// Every revocation is on the audit record, once.
	audit := f.admin(t, http.MethodGet, "/v1/admin/audit?limit=1000", nil)
	var ap issuer.AuditPage
	json.Unmarshal(audit.body, &ap)
	n := 0
	for _, rec := range ap.Records {
		if rec.Kind == issuer.AuditRevoke {
			n++
			if rec.Caller != adminID.String() || rec.Subject == "" {
				t.Errorf("audit record %+v lacks caller or subject", rec)
			}
		}
	}
	// Four requests succeeded (one repeated), four are on the record;
	// the state holds three.
	if n != 4 || !ap.Verified {
		t.Fatalf("got %d revocation audit records (verified %v), want 4", n, ap.Verified)
	}
}

func TestSyncSnapshotChangesAndReceipts(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := newPoller(f, "crm-1")
	if status, err := p.poll(ctx, 2*time.Second); err != nil {
		t.Fatalf("first poll: %d %v", status, err)
	}
	epoch, _, keys := p.state()
	if p.snapshot != 1 || len(keys) != 1 || p.hbEpoch != epoch { // p is not running yet
		t.Fatalf("got %d snapshots, %d keys, heartbeat epoch %d (holding %d); want a snapshot with the key and a heartbeat", p.snapshot, len(keys), p.hbEpoch, epoch)
	}
	// The snapshot's keys are the JWKS's keys.
	for _, k := range f.keys(t).RootKeys() {
		if got := keys[k.ID]; !got.Public.Equal(k.Public) || got.State != syncwire.KeyActive {
			t.Fatalf("key %d: got %+v, want the JWKS key, active", k.ID, got)
		}
	}
	go p.run(ctx)
	tokenID := randHex(16)
	res := f.admin(t, http.MethodPost, "/v1/admin/revocations", map[string]any{"kind": "token", "id": tokenID,
		"wait": map[string]any{"share": 1, "timeout_ms": 10000}})
	if res.status != 200 {
		t.Fatalf("revoke with wait: %d %s", res.status, res.body)
	}
	var rr issuer.RevokeResult
	json.Unmarshal(res.body, &rr)
	if pr := rr.Propagation; pr == nil || !pr.Complete || pr.Verifiers != 1 || pr.Acknowledged != 1 {
		t.Fatalf("propagation: got %+v, want 1 of 1 verifiers", rr.Propagation)
	}
	e, entries, _ := p.state()
	raw, _ := hex.DecodeString(tokenID)
	var want syncwire.Entry
	want.Kind = syncwire.EntryToken
	copy(want.ID[:], raw)
	if e < rr.Epoch || !entries[entryID(want)] {
		t.Fatalf("after wait the poller holds epoch %d (want ≥ %d) and entries %v", e, rr.Epoch, entries)
	}
	p.mu.Lock()
	snaps := p.snapshot
	p.mu.Unlock()
	if snaps != 1 {
		t.Fatalf("got %d snapshots; the change should have come as a change", snaps)
	}
	// Status lists the verifier at the current epoch.
	st := f.admin(t, http.MethodGet, "/v1/admin/revocations/status", nil)
	var ss issuer.SyncStatus
	if err := json.Unmarshal(st.body, &ss); err != nil {
		t.Fatal(err)
	}
	if len(ss.Verifiers) != 1 || ss.Verifiers[0].SPIFFEID != serviceID.String() || ss.Verifiers[0].Instance != "crm-1" || !ss.Verifiers[0].Live || ss.Revocations != 1 {
		t.Fatalf("status: got %+v", ss)
	}
	// A verifier ahead of the node (e.g. it came from a node further
	// along) is told sync_behind; garbage is 400.
	c := f.client(f.svid(serviceID))
	for _, q := range []struct {
		query  string
		status int
		code   string
	}{
		{"since=999999&instance=x&wait=100", 503, issuer.ProblemSyncBehind},
		{"since=-1&instance=x", 400, issuer.ProblemBadRequest},
		{"since=0&instance=", 400, issuer.ProblemBadRequest},
		{"since=0&instance=a/b", 400, issuer.ProblemBadRequest},
		{"since=0&instance=x&wait=30001", 400, issuer.ProblemBadRequest},
	} {
		r, err := f.do(c, http.MethodGet, "/v1/sync?"+q.query, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != q.status || r.problem.Type != spec.ProblemType(q.code) {
			t.Errorf("%s: got %d %s, want %d %s", q.query, r.status, r.problem.Type, q.status, q.code)
		}
	}
	// Who may sync: any SVID of an accepted trust domain; none → 401.
	if r, _ := f.do(f.client(nil), http.MethodGet, "/v1/sync?since=0&instance=x", nil, nil); r.status != 401 {
		t.Errorf("no certificate: got %d, want 401", r.status)
	}
	if r, _ := f.do(f.client(f.svid(spiffeid.RequireFromPath(otherTD, "/svc"))), http.MethodGet, "/v1/sync?since=0&instance=x", nil, nil); r.status != 403 {
		t.Errorf("foreign trust domain: got %d, want 403", r.status)
	}
}

// clock is a settable clock for the issuer under test.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

// shortHorizon makes every token expire within 2 minutes, so revocations
// and retired keys are pruned 3 minutes after (well within the test
// certificates' hour).
func shortHorizon(clk *clock) func(*issuer.Config) {
	return func(c *issuer.Config) {
		c.Now, c.MaintainInterval = clk.Now, 50*time.Millisecond
		c.DefaultTTL, c.MaxTTL = time.Minute, 2*time.Minute
		c.KeyLifetime = 0
	}
}

func TestKeyRotationAndRevocation(t *testing.T) {
	var clk clock
	f := newFixture(t, shortHorizon(&clk))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := newPoller(f, "crm-rot")
	go p.run(ctx)
	waitFor(t, "poller snapshot", func() bool { e, _, k := p.state(); return e > 0 && len(k) == 1 })

	agent := f.client(f.svid(supportID))
	mintKey := func() (uint32, []byte) {
		t.Helper()
		r := f.mint(agent, `{"rights":["crm/contacts:read"]}`)
		if r.status != 200 {
			t.Fatalf("mint: %d %s", r.status, r.body)
		}
		raw, err := verifier.DecodeToken(r.token.Token)
		if err != nil {
			t.Fatal(err)
		}
		info, err := verifier.Inspect(raw)
		if err != nil || info.RootKeyID == nil {
			t.Fatalf("inspect: %v (root key id %v)", err, info.RootKeyID)
		}
		return *info.RootKeyID, raw
	}
	k1, tok1 := mintKey()

	rot := f.admin(t, http.MethodPost, "/v1/admin/keys/rotate", map[string]any{"timeout_ms": 10000})
	if rot.status != 200 {
		t.Fatalf("rotate: %d %s", rot.status, rot.body)
	}
	var rr issuer.RotateResult
	json.Unmarshal(rot.body, &rr)
	if !rr.Activated || rr.Retired != k1 || rr.Prepared.ID == k1 || rr.Propagation == nil || !rr.Propagation.Complete {
		t.Fatalf("rotate: got %+v, want the new key active after every verifier held it, %d retired", rr, k1)
	}
	k2, tok2 := mintKey()
	if k2 != rr.Prepared.ID {
		t.Fatalf("minted with key %d, want the new key %d", k2, rr.Prepared.ID)
	}
	// Both tokens verify against the JWKS (the retiring key is published).
	for _, tok := range [][]byte{tok1, tok2} {
		v, err := verifier.New(verifier.Config{Keys: f.keys(t), Now: time.Now, Limits: verifier.DefaultLimits()})
		if err != nil {
			t.Fatal(err)
		}
		if d := v.Authorize(context.Background(), tok, verifier.Request{Resource: "crm/contacts", Operation: "read", Presenter: supportID.String()}); !d.Allowed {
			t.Fatalf("token of key %d after rotation: %s %s", k1, d.Reason, d.Message)
		}
	}
	waitFor(t, "poller sees the rotation", func() bool {
		_, _, keys := p.state()
		return keys[k1].State == syncwire.KeyRetiring && keys[k2].State == syncwire.KeyActive
	})

	// Revoke the retiring key: the JWKS drops it, syncing verifiers see it revoked.
	rv := f.admin(t, http.MethodPost, fmt.Sprintf("/v1/admin/keys/%d/revoke", k1), map[string]any{"reason": "drill",
		"wait": map[string]any{"share": 1, "timeout_ms": 10000}})
	if rv.status != 200 {
		t.Fatalf("revoke key: %d %s", rv.status, rv.body)
	}
	if _, ok := f.keys(t).RootKey(k1); ok {
		t.Fatal("revoked key still in the JWKS")
	}
	if _, _, keys := p.state(); keys[k1].State != syncwire.KeyRevoked {
		t.Fatalf("after --wait the poller holds key %d as %v, want revoked", k1, keys[k1].State)
	}
	// Revoking the active key activates a replacement in the same step.
	rv = f.admin(t, http.MethodPost, "/v1/admin/revocations", map[string]any{"kind": "key", "key_id": k2})
	if rv.status != 200 {
		t.Fatalf("revoke active key: %d %s", rv.status, rv.body)
	}
	k3, _ := mintKey()
	if k3 == k1 || k3 == k2 {
		t.Fatalf("after revoking the active key %d, minted with %d", k2, k3)
	}
	// Past every token's horizon the leader prunes the revoked keys; the
	// poller follows as a change, and key ids are never reused.
	clk.advance(4 * time.Minute)
	waitFor(t, "revoked keys pruned", func() bool {
		_, _, keys := p.state()
		_, has1 := keys[k1]
		_, has2 := keys[k2]
		return !has1 && !has2 && len(keys) == 1
	})
	rot = f.admin(t, http.MethodPost, "/v1/admin/keys/rotate", map[string]any{"activate": "now"})
	json.Unmarshal(rot.body, &rr)
	if rr.Prepared.ID <= k3 {
		t.Fatalf("new key id %d reuses an id ≤ %d", rr.Prepared.ID, k3)
	}
	p.mu.Lock()
	snaps := p.snapshot
	p.mu.Unlock()
	if snaps != 1 {
		t.Fatalf("poller needed %d snapshots; every change should have come as a change", snaps)
	}
}

func TestRevocationsPrunedAfterHorizon(t *testing.T) {
	var clk clock
	f := newFixture(t, shortHorizon(&clk))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := newPoller(f, "crm-prune")
	go p.run(ctx)
	for i := range 5 {
		r := f.admin(t, http.MethodPost, "/v1/admin/revocations", map[string]any{"kind": "token", "id": fmt.Sprintf("%032x", i+1)})
		if r.status != 200 {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
	}
	waitFor(t, "poller holds 5", func() bool { _, e, _ := p.state(); return len(e) == 5 })
	clk.advance(time.Minute) // not yet: max_ttl 2m + 1m
	time.Sleep(300 * time.Millisecond)
	if _, n := f.is.State().SyncEpoch(); n != 5 {
		t.Fatalf("pruned early: %d left", n)
	}
	clk.advance(150 * time.Second)
	waitFor(t, "pruned on the issuer and the poller", func() bool {
		_, n := f.is.State().SyncEpoch()
		_, e, _ := p.state()
		return n == 0 && len(e) == 0
	})
	audit := f.admin(t, http.MethodGet, "/v1/admin/audit?limit=1000", nil)
	var ap issuer.AuditPage
	json.Unmarshal(audit.body, &ap)
	pruned := 0
	for _, rec := range ap.Records {
		if rec.Kind == issuer.AuditPrune {
			pruned++
		}
	}
	if pruned != 1 || !ap.Verified {
		t.Fatalf("got %d prune audit records, want 1", pruned)
	}
}

// TestSyncAcrossCluster: verifiers polling different nodes all receive a
// revocation written at a follower; --wait counts the verifiers of every
// node; status merges them; after the leader stops, the others go on.
func TestSyncAcrossCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	f := newFixture(t)
	f.stop()
	members := startCluster(t, f, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var pollers []*poller
	for i, m := range members {
		p := newPoller(f.at(m.url), fmt.Sprintf("v%d", i))
		pollers = append(pollers, p)
		go p.run(ctx)
	}
	for _, p := range pollers {
		waitFor(t, "snapshot at "+p.f.url, func() bool { e, _, _ := p.state(); return e > 0 })
	}
	leader := -1
	for i, m := range members {
		if m.is.IsLeader() {
			leader = i
		}
	}
	follower := members[(leader+1)%3]
	revoke := func(at *member, id string) issuer.RevokeResult {
		t.Helper()
		r := f.at(at.url).admin(t, http.MethodPost, "/v1/admin/revocations", map[string]any{"kind": "token", "id": id,
			"wait": map[string]any{"share": 1, "timeout_ms": 15000}})
		if r.status != 200 {
			t.Fatalf("revoke at %s: %d %s", at.id, r.status, r.body)
		}
		var res issuer.RevokeResult
		json.Unmarshal(r.body, &res)
		return res
	}
	res := revoke(follower, randHex(16))
	if p := res.Propagation; p == nil || p.Verifiers != 3 || p.Acknowledged != 3 {
		t.Fatalf("propagation: got %+v, want 3 of 3 verifiers across the nodes", res.Propagation)
	}
	for _, p := range pollers {
		if e, entries, _ := p.state(); e < res.Epoch || len(entries) != 1 {
			t.Fatalf("poller %s holds epoch %d and %d entries after --wait; want ≥ %d and 1", p.instance, e, len(entries), res.Epoch)
		}
	}
	st := f.at(follower.url).admin(t, http.MethodGet, "/v1/admin/revocations/status", nil)
	var ss issuer.SyncStatus
	json.Unmarshal(st.body, &ss)
	nodes := map[string]bool{}
	for _, v := range ss.Verifiers {
		nodes[v.Node] = true
	}
	if len(ss.Verifiers) != 3 || len(nodes) != 3 || len(ss.Unreachable) != 0 {
		t.Fatalf("status: got %+v, want 3 verifiers on 3 nodes", ss)
	}
	// The leader goes away; its verifier cannot poll anymore and is not
	// waited for; the others get the next revocation.
	members[leader].stop(t)
	rest := []*member{}
	for i, m := range members {
		if i != leader {
			rest = append(rest, m)
		}
	}
	waitFor(t, "a new leader", func() bool { return rest[0].is.IsLeader() || rest[1].is.IsLeader() })
	res = revoke(rest[0], randHex(16))
	if p := res.Propagation; p == nil || p.Acknowledged < 2 {
		t.Fatalf("after failover: got %+v, want the 2 remaining verifiers", res.Propagation)
	}
	for i, p := range pollers {
		if i == leader {
			continue
		}
		if e, entries, _ := p.state(); e < res.Epoch || len(entries) != 2 {
			t.Fatalf("poller %s: epoch %d, %d entries; want ≥ %d, 2", p.instance, e, len(entries), res.Epoch)
		}
		p.mu.Lock()
		snaps := p.snapshot
		p.mu.Unlock()
		if snaps != 1 {
			t.Errorf("poller %s took %d snapshots; changes should have resumed across the failover", p.instance, snaps)
		}
	}
}

// TestSyncNodeListFollowsMembership: a verifier that synced with a
// single node learns of the nodes that join from a change, without a new
// snapshot, and of a removal too.
func TestSyncNodeListFollowsMembership(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a two-node cluster")
	}
	f := newFixture(t)
	f.stop()
	n1 := startCluster(t, f, 1)[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := newPoller(f.at(n1.url), "nodes")
	go p.run(ctx)
	nodesNow := func() []string { p.mu.Lock(); defer p.mu.Unlock(); return slices.Clone(p.nodes) }
	waitFor(t, "snapshot with one node", func() bool { return slices.Equal(nodesNow(), []string{n1.is.Addr()}) })
	n2 := startMember(t, f, "writ-2", false)
	body, _ := json.Marshal(issuer.JoinRequest{NodeID: "writ-2", RaftAddr: n2.is.RaftAddr(), APIAddr: n2.is.Addr()})
	if r := f.at(n1.url).admin(t, http.MethodPost, "/v1/admin/cluster/join", json.RawMessage(body)); r.status != 200 {
		t.Fatalf("join: %d %s", r.status, r.body)
	}
	want := []string{n1.is.Addr(), n2.is.Addr()}
	slices.Sort(want)
	waitFor(t, "the joined node in the verifier's list", func() bool { return slices.Equal(nodesNow(), want) })
	if r := f.at(n1.url).admin(t, http.MethodPost, "/v1/admin/cluster/remove", issuer.RemoveRequest{NodeID: "writ-2"}); r.status != 200 {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(nodesNow(), []string{n1.is.Addr()}) {
		if time.Now().After(deadline) {
			p.mu.Lock()
			recs, _ := n1.is.State().AuditRecords(1, 1000)
			for _, r := range recs {
				if strings.HasPrefix(r.Kind, "node") || strings.HasPrefix(r.Kind, "cluster") {
					t.Logf("audit %d %s %s by %s at %s", r.Seq, r.Kind, r.Subject, r.Caller, r.Time)
				}
			}
			t.Fatalf("after the removal the verifier holds nodes %v (epoch %d, last error %v); state: %+v", p.nodes, p.epoch, p.lastErr, n1.is.State().Nodes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.snapshot != 1 {
		t.Fatalf("took %d snapshots; node list changes should come as changes", p.snapshot)
	}
}
