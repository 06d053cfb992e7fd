package issuer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/internal/pki"
	"github.com/writ-dev/writ/issuer"
	"github.com/writ-dev/writ/verifier"
)

// member is one issuer node of an in-process cluster.
type member struct {
	id     string
	cfg    issuer.Config
	is     *issuer.Issuer
	url    string
	cancel context.CancelFunc
	done   chan error
}

// restart starts the member again on its data directory and addresses.
func (m *member) restart(t testing.TB) {
	t.Helper()
	cfg := m.cfg
	cfg.ListenAddr, cfg.RaftAddr, cfg.Bootstrap = m.is.Addr(), m.is.RaftAddr(), false
	is, err := issuer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.is, m.cancel, m.done = is, cancel, make(chan error, 1)
	go func() { m.done <- is.Run(ctx) }()
}

func (m *member) stop(t testing.TB) {
	if m.cancel == nil {
		return
	}
	m.cancel()
	if err := <-m.done; err != nil {
		t.Errorf("node %s Run: %v", m.id, err)
	}
	m.cancel = nil
}

// startMember starts an issuer node sharing f's CA, KEK and identity;
// opts adjust its config (NodeID already set) before it starts.
func startMember(t testing.TB, f *fixture, id string, bootstrap bool, opts ...func(*issuer.Config)) *member {
	t.Helper()
	svid, err := f.ca.IssueSVID(issuerID, time.Now(), time.Hour, pki.WithIP(netip.MustParseAddr("127.0.0.1")))
	if err != nil {
		t.Fatal(err)
	}
	cfg := issuer.DefaultConfig()
	cfg.NodeID, cfg.Bootstrap = id, bootstrap
	cfg.ListenAddr, cfg.RaftAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir, cfg.KEK = t.TempDir(), f.kek
	cfg.SVID = svid.X509SVID()
	cfg.Bundles = x509bundle.NewSet(f.ca.Bundle(), f.other.Bundle())
	cfg.Admins = []spiffeid.ID{adminID}
	cfg.InitialPolicy = []byte(testPolicy)
	for _, o := range opts {
		o(&cfg)
	}
	is, err := issuer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{id: id, cfg: cfg, is: is, url: "https://" + is.Addr(), cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- is.Run(ctx) }()
	t.Cleanup(func() { m.stop(t) })
	return m
}

// startCluster starts n members sharing f's CA and KEK: writ-1
// bootstraps, the others join through the admin API; it returns once
// every member is ready. opts apply to every member (startMember).
func startCluster(t testing.TB, f *fixture, n int, opts ...func(*issuer.Config)) []*member {
	t.Helper()
	admin := f.client(f.svid(adminID))
	n1 := startMember(t, f, "writ-1", true, opts...)
	waitFor(t, "writ-1 ready", func() bool { return memberReady(f, n1) })
	members := []*member{n1}
	for i := 2; i <= n; i++ {
		id := fmt.Sprintf("writ-%d", i)
		m := startMember(t, f, id, false, opts...)
		body, _ := json.Marshal(issuer.JoinRequest{NodeID: id, RaftAddr: m.is.RaftAddr(), APIAddr: m.is.Addr()})
		if r, err := f.at(n1.url).do(admin, http.MethodPost, "/v1/admin/cluster/join", body, nil); err != nil || r.status != 200 {
			t.Fatalf("join %s: %v %d", id, err, r.status)
		}
		members = append(members, m)
	}
	for _, m := range members {
		waitFor(t, m.id+" ready", func() bool { return memberReady(f, m) })
	}
	return members
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *fixture) at(url string) *fixture { c := *f; c.url = url; return &c }

// TestThreeNodeIssuer: nodes join through the admin API, any node mints
// (its audit record forwarded to the leader), policy changes sent to a
// follower reach all, and losing the leader stops nothing.
func TestThreeNodeIssuer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	f := newFixture(t) // CA, KEK and clients; its own single node is not used
	f.stop()
	admin := f.client(f.svid(adminID))
	agent := f.client(f.svid(supportID))
	ready := func(m *member) bool {
		r, err := f.at(m.url).do(f.client(nil), http.MethodGet, "/readyz", nil, nil)
		return err == nil && r.status == 200
	}

	n1 := startMember(t, f, "writ-1", true)
	waitFor(t, "writ-1 ready", func() bool { return ready(n1) })
	n2 := startMember(t, f, "writ-2", false)
	n3 := startMember(t, f, "writ-3", false)
	for _, m := range []*member{n2, n3} {
		body, _ := json.Marshal(issuer.JoinRequest{NodeID: m.id, RaftAddr: m.is.RaftAddr(), APIAddr: m.is.Addr()})
		r, err := f.at(n1.url).do(admin, http.MethodPost, "/v1/admin/cluster/join", body, nil)
		if err != nil || r.status != 200 {
			t.Fatalf("join %s: %v %d %s", m.id, err, r.status, r.body)
		}
	}
	members := []*member{n1, n2, n3}
	for _, m := range members {
		waitFor(t, m.id+" ready", func() bool { return ready(m) })
	}

	// A follower mints; its audit record goes through the leader.
	r := f.at(n2.url).mint(agent, `{"rights":["crm/contacts:read"]}`)
	if r.status != 200 {
		t.Fatalf("mint on follower: %d %s", r.status, r.body)
	}
	raw, _ := verifier.DecodeToken(r.token.Token)
	v, _ := verifier.New(func() verifier.Config { c := verifier.DefaultConfig(); c.Keys = f.at(n3.url).keys(t); return c }())
	if d := v.Authorize(t.Context(), raw, verifier.Request{Resource: "crm/contacts", Operation: "read", Presenter: supportID.String()}); !d.Allowed {
		t.Fatalf("token minted by writ-2 under writ-3's keys: %s", d.Reason)
	}

	// Membership changes go to the leader.
	body, _ := json.Marshal(issuer.JoinRequest{NodeID: "writ-9", RaftAddr: "127.0.0.1:1", APIAddr: "127.0.0.1:2"})
	r, _ = f.at(n3.url).do(admin, http.MethodPost, "/v1/admin/cluster/join", body, nil)
	if r.status != 503 || r.problem.Leader != n1.is.Addr() {
		t.Fatalf("join at a follower: got %d leader %q, want 503 not_leader pointing at %s", r.status, r.problem.Leader, n1.is.Addr())
	}
	var st issuer.ClusterStatus
	r, _ = f.at(n3.url).do(admin, http.MethodGet, "/v1/admin/cluster", nil, nil)
	if err := json.Unmarshal(r.body, &st); err != nil || st.Voters != 3 || st.FailureTolerance != 1 || st.Leader != "writ-1" {
		t.Fatalf("status at writ-3: %v %+v", err, st)
	}
	for _, n := range st.Servers {
		if !n.Reachable || n.Self == nil || !n.Self.Ready || (n.Self.State == "Leader") != (n.ID == "writ-1") || n.Self.Term != st.Term {
			t.Errorf("status of %s as seen from writ-3: %+v %+v", n.ID, n, n.Self)
		}
	}

	// The leader dies; the others elect a new one and keep minting.
	n1.stop(t)
	deadline := time.Now().Add(30 * time.Second)
	start := time.Now()
	for {
		r = f.at(n3.url).mint(agent, `{"rights":["crm/contacts:read"]}`)
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mint 30s after the leader stopped: %d %s", r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("leader stopped → next acknowledged mint on a follower: %v", time.Since(start).Round(time.Millisecond))

	// A policy change sent to a follower reaches both survivors.
	r, _ = f.at(n3.url).do(admin, http.MethodPut, "/v1/admin/policy", []byte(testPolicy+"  # v2\n"), nil)
	if r.status != 200 {
		t.Fatalf("policy at a follower: %d %s", r.status, r.body)
	}
	waitFor(t, "same audit head on writ-2 and writ-3", func() bool {
		s2, h2 := n2.is.State().AuditHead()
		s3, h3 := n3.is.State().AuditHead()
		return s2 == s3 && h2 == h3
	})
	seq, _ := n2.is.State().AuditHead()
	recs, err := n2.is.State().AuditRecords(1, int(seq))
	if err != nil {
		t.Fatal(err)
	}
	if err := issuer.VerifyAuditChain("", 1, recs); err != nil {
		t.Fatalf("audit chain across the failover: %v", err)
	}
	kinds := map[string]int{}
	for _, rec := range recs {
		kinds[rec.Kind]++
	}
	if kinds[issuer.AuditNodeJoin] != 2 || kinds[issuer.AuditMint] != 2 || kinds[issuer.AuditKeyAdd] != 1 {
		t.Errorf("audit kinds: got %v, want 2 cluster.join, 2 token.mint, 1 key.add", kinds)
	}

	// The dead node is removed from the new leader; its id cannot join again.
	r, _ = f.at(n2.url).do(admin, http.MethodGet, "/v1/admin/cluster", nil, nil)
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Servers {
		if n.ID == "writ-1" && n.Reachable {
			t.Errorf("the stopped writ-1 is reported reachable")
		}
	}
	leader := map[string]*member{"writ-2": n2, "writ-3": n3}[st.Leader]
	if leader == nil {
		t.Fatalf("leader after failover: got %q, want writ-2 or writ-3", st.Leader)
	}
	rm, _ := json.Marshal(issuer.RemoveRequest{NodeID: "writ-1"})
	r, _ = f.at(leader.url).do(admin, http.MethodPost, "/v1/admin/cluster/remove", rm, nil)
	if err := json.Unmarshal(r.body, &st); r.status != 200 || err != nil || st.Voters != 2 || len(st.Removed) != 1 || st.Removed[0] != "writ-1" {
		t.Fatalf("remove writ-1: %d %s", r.status, r.body)
	}
	rejoin, _ := json.Marshal(issuer.JoinRequest{NodeID: "writ-1", RaftAddr: n1.is.RaftAddr(), APIAddr: n1.is.Addr()})
	if r, _ = f.at(leader.url).do(admin, http.MethodPost, "/v1/admin/cluster/join", rejoin, nil); r.status != 409 {
		t.Fatalf("rejoin of a removed id: got %d, want 409", r.status)
	}
}

// TestFollowerReadsAreLinearizable: a policy written through the leader is
// what an admin reads at a follower immediately after, and the internal
// endpoints admit issuer nodes only.
func TestFollowerReadsAreLinearizable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a two-node cluster")
	}
	f := newFixture(t)
	f.stop()
	admin := f.client(f.svid(adminID))
	n1 := startMember(t, f, "writ-1", true)
	waitFor(t, "writ-1 ready", func() bool {
		r, err := f.at(n1.url).do(f.client(nil), http.MethodGet, "/readyz", nil, nil)
		return err == nil && r.status == 200
	})
	n2 := startMember(t, f, "writ-2", false)
	body, _ := json.Marshal(issuer.JoinRequest{NodeID: "writ-2", RaftAddr: n2.is.RaftAddr(), APIAddr: n2.is.Addr()})
	if r, err := f.at(n1.url).do(admin, http.MethodPost, "/v1/admin/cluster/join", body, nil); err != nil || r.status != 200 {
		t.Fatalf("join: %v %d %s", err, r.status, r.body)
	}
	for i := 0; i < 20; i++ {
		src := fmt.Sprintf("%s  # revision %d\n", testPolicy, i)
		r, err := f.at(n1.url).do(admin, http.MethodPut, "/v1/admin/policy", []byte(src), nil)
		if err != nil || r.status != 200 {
			t.Fatalf("put: %v %d", err, r.status)
		}
		r, err = f.at(n2.url).do(admin, http.MethodGet, "/v1/admin/policy", nil, nil)
		if err != nil || r.status != 200 || string(r.body) != src {
			t.Fatalf("read %d at the follower right after the write: got %d %q, want the new source", i, r.status, r.body)
		}
	}
	for _, path := range []string{"/v1/internal/apply", "/v1/internal/read-index"} {
		r, err := f.at(n1.url).do(f.client(f.svid(supportID)), http.MethodPost, path, []byte(`{}`), nil)
		if err != nil || r.status != 403 {
			t.Errorf("agent at %s: got %d, want 403", path, r.status)
		}
		r, _ = f.at(n1.url).do(f.client(nil), http.MethodPost, path, []byte(`{}`), nil)
		if r.status != 401 {
			t.Errorf("no certificate at %s: got %d, want 401", path, r.status)
		}
	}
}

// TestClusterLosesNothing: under concurrent minting on every node and
// policy changes, the leader is stopped and later restarted on its data;
// every token acknowledged to a client has its audit record on every
// node, the chains are identical and verify, and the restarted node
// catches up.
func TestClusterLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	f := newFixture(t)
	f.stop()
	admin := f.client(f.svid(adminID))
	members := startCluster(t, f, 3)
	n1 := members[0]

	var (
		mu       sync.Mutex
		acked    []string
		policies int
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	for i := 0; i < 9; i++ {
		wg.Add(1)
		go func(m *member) {
			defer wg.Done()
			c := f.client(f.svid(supportID))
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := f.at(m.url).do(c, http.MethodPost, "/v1/token", []byte(`{"rights":["crm/contacts:read"]}`), nil)
				if err == nil && r.status == 200 {
					mu.Lock()
					acked = append(acked, r.token.TokenID)
					mu.Unlock()
				}
			}
		}(members[i%3])
	}
	wg.Add(1)
	go func() { // policy changes at followers and leader alike
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			r, err := f.at(members[i%3].url).do(admin, http.MethodPut, "/v1/admin/policy", []byte(fmt.Sprintf("%s  # %d\n", testPolicy, i)), nil)
			if err == nil && r.status == 200 {
				mu.Lock()
				policies++
				mu.Unlock()
			}
		}
	}()
	var revoked []string
	staleReads := 0
	wg.Add(1)
	go func() { // revocations at every node; each acknowledged one is then
		// read back (linearizable) at another node and must be there
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			id := randHex(16)
			r, err := f.at(members[i%3].url).do(admin, http.MethodPost, "/v1/admin/revocations", []byte(`{"kind":"token","id":"`+id+`"}`), nil)
			if err != nil || r.status != 200 {
				continue
			}
			mu.Lock()
			revoked = append(revoked, id)
			mu.Unlock()
			if !revocationListed(f, members[(i+1)%3], id) {
				mu.Lock()
				staleReads++
				mu.Unlock()
			}
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitFor(t, "100 tokens before the fault", func() bool { return count() >= 100 })
	n1.stop(t) // the bootstrap node leads at this point
	before := count()
	waitFor(t, "100 more tokens after the leader stopped", func() bool { return count() >= before+100 })
	n1.restart(t)
	waitFor(t, "restarted writ-1 ready", func() bool { return memberReady(f, n1) })
	waitFor(t, "100 more tokens after the restart", func() bool { return count() >= before+200 })
	close(stop)
	wg.Wait()

	// Converged: same audit head everywhere, every acknowledged token on it.
	var seq uint64
	var head string
	waitFor(t, "identical audit heads", func() bool {
		s0, h0 := members[0].is.State().AuditHead()
		for _, m := range members[1:] {
			if s, h := m.is.State().AuditHead(); s != s0 || h != h0 {
				return false
			}
		}
		seq, head = s0, h0
		return true
	})
	for _, m := range members {
		var recs []issuer.AuditRecord
		for from := uint64(1); from <= seq; from += 1000 {
			page, err := m.is.State().AuditRecords(from, 1000)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, page...)
		}
		if err := issuer.VerifyAuditChain("", 1, recs); err != nil {
			t.Fatalf("%s: audit chain: %v", m.id, err)
		}
		minted := map[string]bool{}
		for _, r := range recs {
			minted[r.TokenID] = true
		}
		for _, id := range acked {
			if !minted[id] {
				t.Fatalf("%s: acknowledged token %s has no audit record", m.id, id)
			}
		}
	}
	// Every acknowledged revocation is on every node, and no read after an
	// acknowledgement missed it (reads that failed outright, e.g. at the
	// stopped node, are not answers and do not count).
	if staleReads > 0 {
		t.Fatalf("%d linearizable reads answered without an acknowledged revocation", staleReads)
	}
	waitFor(t, "identical sync epochs", func() bool {
		e0, _ := members[0].is.State().SyncEpoch()
		for _, m := range members[1:] {
			if e, _ := m.is.State().SyncEpoch(); e != e0 {
				return false
			}
		}
		return true
	})
	for _, m := range members {
		have := map[string]bool{}
		var after []byte
		for {
			page, next, err := m.is.State().Revocations(after, 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page {
				have[r.ID] = true
			}
			if next == nil {
				break
			}
			after = next
		}
		for _, id := range revoked {
			if !have[id] {
				t.Fatalf("%s: acknowledged revocation %s missing", m.id, id)
			}
		}
	}
	t.Logf("%d tokens, %d policy changes and %d revocations acknowledged across a leader stop and restart; %d audit records, head %s… identical on 3 nodes",
		len(acked), policies, len(revoked), seq, head[:12])
}

// revocationListed reads the revocations at m through the admin API
// (linearizable) and reports whether token id is among them; a failed
// read counts as listed (it is no answer).
func revocationListed(f *fixture, m *member, id string) bool {
	admin := f.client(f.svid(adminID))
	after := ""
	for {
		r, err := f.at(m.url).do(admin, http.MethodGet, "/v1/admin/revocations?limit=1000&after="+after, nil, nil)
		if err != nil || r.status != 200 {
			return true
		}
		var p issuer.RevocationPage
		if json.Unmarshal(r.body, &p) != nil {
			return true
		}
		for _, rv := range p.Revocations {
			if rv.ID == id {
				return true
			}
		}
		if p.Next == "" {
			return false
		}
		after = p.Next
	}
}
