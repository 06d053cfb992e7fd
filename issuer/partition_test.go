package issuer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/writ-dev/writ/cluster"
	"github.com/writ-dev/writ/issuer"
)

// Partition tests: a real three-node issuer cluster (mutual TLS on
// 127.0.0.1, pebble on disk) under concurrent minting, revocations and
// policy changes at every node, with the network between the nodes cut
// in various ways and then healed. Every operation a client got a 200 for
// is recorded; after the heal every node must hold every one of them,
// all nodes must hold the same state, the audit chains must verify, no
// term may have had two leaders, and no linearizable read may have
// answered without a revocation acknowledged before it was sent.
//
// The cuts act on both node-to-node paths: the raft transport
// (Config.RaftDialHook) and the HTTPS client a node uses to forward
// writes and read-index requests to the leader (Config.ForwardDialContext).
// Clients reach every node throughout, as clients on either side of a
// real partition would. Tests wait on conditions, never on sleeps;
// partWait only bounds how long a broken build hangs.

const (
	partWait = 30 * time.Second
	// partProgress acknowledged mints prove that nodes serve (again);
	// partHold is how many the majority must acknowledge while a fault
	// lasts, well past raft's timeouts and redials.
	partProgress = 20
	partHold     = 60
	// partRequestTimeout bounds one client request: a request stuck on
	// the wrong side of a partition is given up (not acknowledged).
	partRequestTimeout = 10 * time.Second
	// partInterval is how often the random scenario changes the cuts, and
	// partRounds how many times.
	partInterval = 500 * time.Millisecond
	partRounds   = 10
)

// partLink is the direction from one node to another.
type partLink struct{ from, to string }

// partNet is the fault state of an issuer cluster, consulted by every
// node's raft dial hook and forward dialer and by every connection they
// return. Traffic from A to B is dropped while the link A→B is cut. Both
// raft and HTTP/1.1 send requests on connections the requester dialled
// and responses on the same connections, so — as in package clustertest
// — the dialling end applies both directions: on connections A dialled
// to B, A's writes vanish while A→B is cut and what A reads is discarded
// while B→A is cut, and A's new dials to B wait while A→B is cut. A
// connection that lost bytes is closed when its link heals (its byte
// stream has a hole, as a TCP connection that timed out would be dead);
// one that carried nothing resumes. A peer closing or resetting a
// connection is not seen across a cut either: the read waits as for
// lost bytes.
type partNet struct {
	mu      sync.Mutex
	cut     map[partLink]bool
	ids     map[string]string // raft and API address -> node ID
	conns   map[*partConn]struct{}
	changed chan struct{} // closed and replaced on every change

	evMu   sync.Mutex
	events []partLeaderEvent
}

// partLeaderEvent is one node's observation of a leader in a term.
type partLeaderEvent struct {
	observer, leader string
	term             uint64
}

func newPartNet() *partNet {
	return &partNet{cut: map[partLink]bool{}, ids: map[string]string{}, conns: map[*partConn]struct{}{}, changed: make(chan struct{})}
}

// option wires a member's fault-injection hooks to the network.
func (n *partNet) option(cfg *issuer.Config) {
	id := cfg.NodeID
	// One audit worker: a worker stuck on a forward that will never be
	// answered then stops the node's minting instead of only lowering its
	// throughput, so that the tests see it.
	cfg.AuditWorkers = 1
	cfg.RaftDialHook = n.raftHook(id)
	cfg.ForwardDialContext = n.forwardDial(id)
	cfg.RaftOnLeaderChange = func(lc cluster.LeaderChange) {
		if lc.LeaderID == "" {
			return
		}
		n.evMu.Lock()
		n.events = append(n.events, partLeaderEvent{observer: id, leader: lc.LeaderID, term: lc.Term})
		n.evMu.Unlock()
	}
}

// register makes m's raft and API addresses subject to faults.
func (n *partNet) register(m *member) {
	n.mu.Lock()
	n.ids[m.is.RaftAddr()] = m.id
	n.ids[m.is.Addr()] = m.id
	n.mu.Unlock()
}

// setCut replaces the cut links; heal is setCut().
func (n *partNet) setCut(links ...partLink) {
	n.mu.Lock()
	n.cut = map[partLink]bool{}
	for _, l := range links {
		n.cut[l] = true
	}
	close(n.changed)
	n.changed = make(chan struct{})
	var doomed []*partConn
	for c := range n.conns {
		to := n.ids[c.addr]
		if c.lostOut.Load() && !n.cut[partLink{c.from, to}] || c.lostIn.Load() && !n.cut[partLink{to, c.from}] {
			doomed = append(doomed, c)
		}
	}
	n.mu.Unlock()
	for _, c := range doomed {
		_ = c.Close()
	}
}

func (n *partNet) heal() { n.setCut() }

// isolation cuts id off from others in both directions.
func isolation(id string, others []string) []partLink {
	var out []partLink
	for _, o := range others {
		out = append(out, partLink{id, o}, partLink{o, id})
	}
	return out
}

// oneWay cuts the links from each of froms to each of tos.
func oneWay(froms, tos []string) []partLink {
	var out []partLink
	for _, f := range froms {
		for _, t := range tos {
			out = append(out, partLink{f, t})
		}
	}
	return out
}

// blocked reports whether local's traffic to the node at addr (out) and
// that node's traffic to local (in) are dropped. Unknown addresses are
// never cut.
func (n *partNet) blocked(local, addr string) (out, in bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	to, ok := n.ids[addr]
	if !ok {
		return false, false
	}
	return n.cut[partLink{local, to}], n.cut[partLink{to, local}]
}

// awaitLink blocks while local's traffic to addr is dropped.
func (n *partNet) awaitLink(ctx context.Context, local, addr string) error {
	for {
		n.mu.Lock()
		to, ok := n.ids[addr]
		cut := ok && n.cut[partLink{local, to}]
		changed := n.changed
		n.mu.Unlock()
		if !cut {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("partition: %s cannot reach %s: %w", local, to, ctx.Err())
		}
	}
}

func (n *partNet) track(c net.Conn, local, addr string) *partConn {
	pc := &partConn{Conn: c, pn: n, from: local, addr: addr, closed: make(chan struct{})}
	n.mu.Lock()
	n.conns[pc] = struct{}{}
	n.mu.Unlock()
	return pc
}

func (n *partNet) raftHook(local string) cluster.DialHook {
	return func(ctx context.Context, addr string, dial cluster.DialFunc) (net.Conn, error) {
		if err := n.awaitLink(ctx, local, addr); err != nil {
			return nil, err
		}
		c, err := dial(ctx)
		if err != nil {
			return nil, err
		}
		return n.track(c, local, addr), nil
	}
}

func (n *partNet) forwardDial(local string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if err := n.awaitLink(ctx, local, addr); err != nil {
			return nil, err
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return n.track(c, local, addr), nil
	}
}

// leadersPerTerm checks the leader observations: no two nodes may report
// winning an election in the same term, and every node another one saw
// leading must have won an election in that term or an earlier one. The
// term of an observation by a follower is not exact: raft v1.8 handles
// heartbeats (which set the leader) on the transport's goroutine while
// its main goroutine may move to the next term, so a follower can report
// the previous leader under the new term. Only the winners' own reports,
// made on raft's main goroutine, name the term they were elected in.
// skewed counts the follower observations so affected.
func (n *partNet) leadersPerTerm() (terms, skewed int, bad []string) {
	n.evMu.Lock()
	defer n.evMu.Unlock()
	won := map[uint64][]string{} // term -> nodes that reported winning it
	first := map[string]uint64{} // node -> first term it won
	for _, e := range n.events {
		if e.observer != e.leader {
			continue
		}
		if !slices.Contains(won[e.term], e.leader) {
			won[e.term] = append(won[e.term], e.leader)
		}
		if t, ok := first[e.leader]; !ok || e.term < t {
			first[e.leader] = e.term
		}
	}
	for term, ls := range won {
		if len(ls) > 1 {
			bad = append(bad, fmt.Sprintf("term %d was won by %v", term, ls))
		}
	}
	for _, e := range n.events {
		if e.observer == e.leader {
			continue
		}
		if t, ok := first[e.leader]; !ok || t > e.term {
			bad = append(bad, fmt.Sprintf("%s saw %s lead in term %d, which it did not win then or before", e.observer, e.leader, e.term))
		} else if !slices.Contains(won[e.term], e.leader) {
			skewed++
		}
	}
	sort.Strings(bad)
	return len(won), skewed, bad
}

// errLostBytes: the connection dropped bytes in a partition that healed.
var errLostBytes = errors.New("partition: connection lost bytes while cut")

// partConn is a connection dialled by node from to the node at addr,
// subject to the network's cuts. For raft it wraps the authenticated
// *tls.Conn; for the forwarding client the TCP connection under TLS
// (whose records then fail to decrypt if bytes were lost, so such a
// connection is killed at the heal too).
type partConn struct {
	net.Conn
	pn       *partNet
	from     string
	addr     string
	lostOut  atomic.Bool
	lostIn   atomic.Bool
	readBy   atomic.Pointer[time.Time] // read deadline; nil or zero: none
	closed   chan struct{}
	once     sync.Once
	closeErr error
}

// NetConn returns the wrapped connection (cluster.DialHook requires it).
func (c *partConn) NetConn() net.Conn { return c.Conn }

func (c *partConn) Write(p []byte) (int, error) {
	if out, _ := c.pn.blocked(c.from, c.addr); out {
		c.lostOut.Store(true)
		return len(p), nil
	}
	if c.lostOut.Load() {
		return 0, errLostBytes
	}
	return c.Conn.Write(p)
}

func (c *partConn) Read(p []byte) (int, error) {
	for {
		_, in := c.pn.blocked(c.from, c.addr)
		if c.lostIn.Load() && !in {
			return 0, errLostBytes
		}
		k, err := c.Conn.Read(p)
		_, in = c.pn.blocked(c.from, c.addr)
		switch {
		case k > 0 && in:
			c.lostIn.Store(true)
			if err != nil {
				return 0, c.holdRead(err)
			}
			continue
		case k > 0 && c.lostIn.Load():
			return 0, errLostBytes
		case k == 0 && err != nil && in && !isTimeout(err):
			// The peer closed or reset the connection: across a cut that
			// would never arrive.
			c.lostIn.Store(true)
			return 0, c.holdRead(err)
		}
		return k, err
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// holdRead blocks a read whose connection ended while the peer's traffic
// is dropped, as a blackholed connection would: until the read deadline,
// a local Close or the heal (which closes the connection, as it lost
// bytes).
func (c *partConn) holdRead(err error) error {
	for {
		c.pn.mu.Lock()
		changed := c.pn.changed
		c.pn.mu.Unlock()
		if _, in := c.pn.blocked(c.from, c.addr); !in {
			return err
		}
		var timeout <-chan time.Time // nil: no deadline
		if by := c.readBy.Load(); by != nil && !by.IsZero() {
			timeout = time.After(time.Until(*by)) // collected once unreferenced
		}
		select {
		case <-changed:
		case <-c.closed:
			return net.ErrClosed
		case <-timeout:
			return os.ErrDeadlineExceeded
		}
	}
}

func (c *partConn) SetDeadline(t time.Time) error {
	c.readBy.Store(&t)
	return c.Conn.SetDeadline(t)
}

func (c *partConn) SetReadDeadline(t time.Time) error {
	c.readBy.Store(&t)
	return c.Conn.SetReadDeadline(t)
}

func (c *partConn) Close() error {
	c.once.Do(func() {
		c.pn.mu.Lock()
		delete(c.pn.conns, c)
		c.pn.mu.Unlock()
		close(c.closed)
		c.closeErr = c.Conn.Close()
	})
	return c.closeErr
}

// partAck is one acknowledged operation.
type partAck struct {
	kind, id, node string
	sent, done     time.Time
}

// partRead is one completed read-back: the node read at, and when.
type partRead struct {
	node string
	sent time.Time
}

// partTraffic is the client load of a partition test: two minters per
// node, a revoker per node that reads each acknowledged revocation back
// at the next node (a linearizable read), and a policy writer cycling
// through the nodes. It records every operation acknowledged with a 200.
type partTraffic struct {
	f       *fixture
	members []*member
	agent   *http.Client
	admin   *http.Client
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu        sync.Mutex
	acks      []partAck
	mints     map[string]int // acknowledged mints per node
	reads     int            // linearizable reads that answered
	readFails int            // ... that gave no answer
	stale     []string       // revocations an answer left out
	readLog   []partRead     // every read-back that answered or failed
	errs      []string       // answers no client should get
}

func startPartTraffic(t *testing.T, f *fixture, members []*member) *partTraffic {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &partTraffic{f: f, members: members, agent: f.client(f.svid(supportID)), admin: f.client(f.svid(adminID)),
		cancel: cancel, mints: map[string]int{}}
	for i, m := range members {
		tr.wg.Go(func() { tr.mint(ctx, m) })
		tr.wg.Go(func() { tr.mint(ctx, m) })
		tr.wg.Go(func() { tr.revoke(ctx, i) })
	}
	tr.wg.Go(func() { tr.setPolicies(ctx) })
	t.Cleanup(tr.stop)
	return tr
}

// stop ends the clients and waits for them; idempotent.
func (tr *partTraffic) stop() {
	tr.cancel()
	tr.wg.Wait()
	tr.agent.CloseIdleConnections()
	tr.admin.CloseIdleConnections()
}

// call sends one request with partRequestTimeout.
func (tr *partTraffic) call(ctx context.Context, c *http.Client, m *member, method, path string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, partRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, m.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (tr *partTraffic) record(a partAck) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.acks = append(tr.acks, a)
	if a.kind == "mint" {
		tr.mints[a.node]++
	}
}

func (tr *partTraffic) unexpected(format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.errs) < 10 {
		tr.errs = append(tr.errs, fmt.Sprintf(format, args...))
	}
}

func pause(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func (tr *partTraffic) mint(ctx context.Context, m *member) {
	for pause(ctx, 5*time.Millisecond) {
		sent := time.Now()
		status, body, err := tr.call(ctx, tr.agent, m, http.MethodPost, "/v1/token", []byte(`{"rights":["crm/contacts:read"]}`))
		if err != nil || status != http.StatusOK {
			if err == nil && status != http.StatusServiceUnavailable {
				tr.unexpected("mint at %s: %d %s", m.id, status, body)
			}
			continue
		}
		var tok issuer.TokenResponse
		if err := json.Unmarshal(body, &tok); err != nil || tok.TokenID == "" {
			tr.unexpected("mint at %s: answer %q: %v", m.id, body, err)
			continue
		}
		tr.record(partAck{kind: "mint", id: tok.TokenID, node: m.id, sent: sent, done: time.Now()})
	}
}

// revoke revokes random token ids at member i; after each acknowledged
// revocation it reads the list at the next member, which must either fail
// or include it.
func (tr *partTraffic) revoke(ctx context.Context, i int) {
	m, reader := tr.members[i], tr.members[(i+1)%len(tr.members)]
	for pause(ctx, 10*time.Millisecond) {
		id := randHex(16)
		sent := time.Now()
		status, body, err := tr.call(ctx, tr.admin, m, http.MethodPost, "/v1/admin/revocations", []byte(`{"kind":"token","id":"`+id+`"}`))
		if err != nil || status != http.StatusOK {
			if err == nil && status != http.StatusServiceUnavailable {
				tr.unexpected("revoke at %s: %d %s", m.id, status, body)
			}
			continue
		}
		tr.record(partAck{kind: "revoke", id: id, node: m.id, sent: sent, done: time.Now()})
		readAt := time.Now()
		answered, listed := tr.listed(ctx, reader, id)
		if ctx.Err() != nil {
			return // the read was cut short by the end of the test, not by the cluster
		}
		tr.mu.Lock()
		tr.readLog = append(tr.readLog, partRead{node: reader.id, sent: readAt})
		switch {
		case !answered:
			tr.readFails++
		case !listed:
			tr.reads++
			tr.stale = append(tr.stale, fmt.Sprintf("%s acknowledged at %s, missing from %s's list", id, m.id, reader.id))
		default:
			tr.reads++
		}
		tr.mu.Unlock()
	}
}

// listed reads every revocation at m (GET /v1/admin/revocations, a
// linearizable read); answered is false when any page fails.
func (tr *partTraffic) listed(ctx context.Context, m *member, id string) (answered, found bool) {
	after := ""
	for {
		status, body, err := tr.call(ctx, tr.admin, m, http.MethodGet, "/v1/admin/revocations?limit=1000&after="+after, nil)
		if err != nil || status != http.StatusOK {
			return false, false
		}
		var p issuer.RevocationPage
		if json.Unmarshal(body, &p) != nil {
			return false, false
		}
		for _, rv := range p.Revocations {
			if rv.ID == id {
				found = true
			}
		}
		if p.Next == "" {
			return true, found
		}
		after = p.Next
	}
}

// probePolicy is testPolicy plus a rule only for probe agent i, so that
// every change has its own version.
func probePolicy(i int) []byte {
	return fmt.Appendf(nil, "%s  - name: probe-%d\n    subjects: [\"spiffe://acme.test/agents/probe-%d\"]\n    rights: [\"crm/contacts:read\"]\n    max_ttl: 1m\n", testPolicy, i, i)
}

func (tr *partTraffic) setPolicies(ctx context.Context) {
	for i := 0; pause(ctx, 50*time.Millisecond); i++ {
		m := tr.members[i%len(tr.members)]
		sent := time.Now()
		status, body, err := tr.call(ctx, tr.admin, m, http.MethodPut, "/v1/admin/policy", probePolicy(i))
		if err != nil || status != http.StatusOK {
			if err == nil && status != http.StatusServiceUnavailable {
				tr.unexpected("policy at %s: %d %s", m.id, status, body)
			}
			continue
		}
		var out struct {
			Version string `json:"policy_version"`
		}
		if json.Unmarshal(body, &out) != nil || out.Version == "" {
			tr.unexpected("policy at %s: answer %q", m.id, body)
			continue
		}
		tr.record(partAck{kind: "policy", id: out.Version, node: m.id, sent: sent, done: time.Now()})
	}
}

func (tr *partTraffic) mintsAt(ids []string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, id := range ids {
		n += tr.mints[id]
	}
	return n
}

// progress waits until the nodes ids have acknowledged n more mints
// between them.
func (tr *partTraffic) progress(t *testing.T, n int, what string, ids ...string) {
	t.Helper()
	if len(ids) == 0 {
		for _, m := range tr.members {
			ids = append(ids, m.id)
		}
	}
	want := tr.mintsAt(ids) + n
	deadline := time.Now().Add(partWait)
	for tr.mintsAt(ids) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d mints acknowledged at %v in %v, want %d", what, tr.mintsAt(ids)-(want-n), ids, partWait, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readsAt counts the read-backs at node sent at or after from that have
// answered or failed.
func (tr *partTraffic) readsAt(node string, from time.Time) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, r := range tr.readLog {
		if r.node == node && !r.sent.Before(from) {
			n++
		}
	}
	return n
}

// ackedAt returns the operations node acknowledged for requests sent at
// or after from and answered before until.
func (tr *partTraffic) ackedAt(node string, from, until time.Time) []partAck {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []partAck
	for _, a := range tr.acks {
		if a.node == node && !a.sent.Before(from) && a.done.Before(until) {
			out = append(out, a)
		}
	}
	return out
}

// partRun is one scenario's cluster, network and traffic.
type partRun struct {
	f       *fixture
	net     *partNet
	members []*member
	tr      *partTraffic
}

func startPartRun(t *testing.T) *partRun {
	t.Helper()
	// Registered first, so it runs last: once the members have stopped,
	// nothing the run started may be left running.
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	f := newFixture(t)
	f.stop()
	pn := newPartNet()
	members := startCluster(t, f, 3, pn.option)
	for _, m := range members {
		pn.register(m)
	}
	t.Cleanup(pn.heal) // before the members stop
	r := &partRun{f: f, net: pn, members: members}
	r.tr = startPartTraffic(t, f, members)
	return r
}

func (r *partRun) ids() []string {
	out := make([]string, len(r.members))
	for i, m := range r.members {
		out[i] = m.id
	}
	return out
}

func (r *partRun) others(id string) []string {
	return slices.DeleteFunc(r.ids(), func(s string) bool { return s == id })
}

func (r *partRun) member(id string) *member {
	for _, m := range r.members {
		if m.id == id {
			return m
		}
	}
	return nil
}

// leader waits until exactly one of the nodes ids (all when none) believes
// it leads, and returns it.
func (r *partRun) leader(t *testing.T, ids ...string) *member {
	t.Helper()
	if len(ids) == 0 {
		ids = r.ids()
	}
	var l *member
	waitFor(t, fmt.Sprintf("one leader among %v", ids), func() bool {
		l = nil
		for _, id := range ids {
			if m := r.member(id); m.is.IsLeader() {
				if l != nil {
					return false
				}
				l = m
			}
		}
		return l != nil
	})
	return l
}

// heal restores the network and waits until every node has acknowledged
// mints again; it returns how long that took.
func (r *partRun) heal(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	r.net.heal()
	for _, id := range r.ids() {
		r.tr.progress(t, partProgress/4, "after healing, at "+id, id)
	}
	return time.Since(start)
}

// partState is what must be identical on every node after the heal.
type partState struct {
	seq     uint64 // audit head
	head    string
	epoch   uint64 // sync epoch and revocation count
	count   int
	policy  string
	revoked []string // revocation ids, in the state's key order
}

func (p partState) String() string {
	return fmt.Sprintf("audit head %d %.12s…, sync epoch %d with %d revocations (%d listed), policy %.19s…", p.seq, p.head, p.epoch, p.count, len(p.revoked), p.policy)
}

func (p partState) equal(q partState) bool {
	return p.seq == q.seq && p.head == q.head && p.epoch == q.epoch && p.count == q.count && p.policy == q.policy && slices.Equal(p.revoked, q.revoked)
}

func readPartState(m *member) (partState, error) {
	st := m.is.State()
	var p partState
	p.seq, p.head = st.AuditHead()
	p.epoch, p.count = st.SyncEpoch()
	p.policy, _, _ = st.PolicySource()
	for after := []byte(nil); ; {
		page, next, err := st.Revocations(after, 1000)
		if err != nil {
			return p, fmt.Errorf("%s: revocations: %w", m.id, err)
		}
		for _, rv := range page {
			p.revoked = append(p.revoked, rv.ID)
		}
		if next == nil {
			return p, nil
		}
		after = next
	}
}

// converge waits until every node holds the same state and returns it,
// one per member. The states are read together in each round, so a
// command still committing after the clients stopped (one whose client
// gave up) cannot make identical nodes look different.
func (r *partRun) converge(t *testing.T) []partState {
	t.Helper()
	deadline := time.Now().Add(partWait)
	for {
		states := make([]partState, len(r.members))
		same := true
		for i, m := range r.members {
			var err error
			if states[i], err = readPartState(m); err != nil {
				t.Fatal(err)
			}
			same = same && states[i].equal(states[0])
		}
		if same {
			return states
		}
		if time.Now().After(deadline) {
			for i, m := range r.members {
				t.Errorf("%s: %v", m.id, states[i])
			}
			t.Fatalf("nodes hold different states %v after the heal", partWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// check stops the traffic, waits until every node holds the same state
// and verifies the invariants on each.
func (r *partRun) check(t *testing.T) {
	t.Helper()
	tr := r.tr
	tr.stop()
	start := time.Now()
	states := r.converge(t)
	converged := time.Since(start)

	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, e := range tr.errs {
		t.Errorf("client got: %s", e)
	}
	for i, s := range tr.stale {
		if i < 5 {
			t.Errorf("stale linearizable read: %s", s)
		}
	}
	if len(tr.stale) > 0 {
		t.Errorf("%d of %d linearizable reads answered without a revocation acknowledged before them", len(tr.stale), tr.reads)
	}
	want := map[string]map[string]bool{"mint": {}, "revoke": {}, "policy": {}}
	for _, a := range tr.acks {
		want[a.kind][a.id] = true
	}
	if len(want["mint"]) == 0 || len(want["revoke"]) == 0 || len(want["policy"]) == 0 {
		t.Fatalf("acknowledged: %d mints, %d revocations, %d policies; want some of each", len(want["mint"]), len(want["revoke"]), len(want["policy"]))
	}
	for i, m := range r.members {
		st, ps := m.is.State(), states[i]
		var recs []issuer.AuditRecord
		for from := uint64(1); from <= ps.seq; from += 1000 {
			page, err := st.AuditRecords(from, int(min(1000, ps.seq-from+1)))
			if err != nil {
				t.Fatalf("%s: audit records from %d: %v", m.id, from, err)
			}
			recs = append(recs, page...)
		}
		if err := issuer.VerifyAuditChain("", 1, recs); err != nil {
			t.Errorf("%s: audit chain: %v", m.id, err)
		} else if uint64(len(recs)) != ps.seq || recs[len(recs)-1].Hash != ps.head {
			t.Errorf("%s: audit chain of %d records does not end at head %d %s", m.id, len(recs), ps.seq, ps.head)
		}
		have := map[string]map[string]bool{"mint": {}, "revoke": {}, "policy": {}}
		for _, rec := range recs {
			switch rec.Kind {
			case issuer.AuditMint:
				have["mint"][rec.TokenID] = true
			case issuer.AuditPolicySet:
				have["policy"][rec.PolicyVersion] = true
			}
		}
		for _, id := range ps.revoked {
			have["revoke"][id] = true
		}
		for _, kind := range []string{"mint", "revoke", "policy"} {
			var lost []string
			for id := range want[kind] {
				if !have[kind][id] {
					lost = append(lost, id)
				}
			}
			if len(lost) > 0 {
				t.Errorf("%s lost %d of %d acknowledged %s operations, e.g. %v", m.id, len(lost), len(want[kind]), kind, lost[:min(3, len(lost))])
			}
		}
	}
	terms, skewed, bad := r.net.leadersPerTerm()
	for _, b := range bad {
		t.Errorf("leaders: %s", b)
	}
	t.Logf("acknowledged %d mints, %d revocations, %d policy changes; identical on 3 nodes: %v; "+
		"%d linearizable read-backs answered, %d gave no answer; %d elections won (%d follower observations under a later term); "+
		"identical state %v after the traffic stopped",
		len(want["mint"]), len(want["revoke"]), len(want["policy"]), states[0], tr.reads, tr.readFails, terms, skewed,
		converged.Round(time.Millisecond))
}

// cutOff cuts links (old, the leader, on one side), waits until the
// others elect a new leader and acknowledge partHold mints and until a
// linearizable read at old has ended, then heals. Once the others have
// moved on, old must acknowledge nothing, and, cut both ways, apply
// nothing. It returns how long every node took to mint again after the
// heal.
func (r *partRun) cutOff(t *testing.T, old *member, links []partLink, twoWay bool) time.Duration {
	t.Helper()
	rest := r.others(old.id)
	before := r.tr.mintsAt(rest)
	r.net.setCut(links...)
	cutAt := time.Now()
	nl := r.leader(t, rest...)
	elected := time.Since(cutAt)
	r.tr.progress(t, partProgress, "with the old leader cut off", rest...)
	from := time.Now()
	seq, head := old.is.State().AuditHead()
	r.tr.progress(t, partHold, "with the old leader cut off", rest...)
	// A linearizable read at the cut-off node must end without an answer
	// (at its deadline) rather than answer from the node's stale state:
	// keep the cut until one has ended.
	waitFor(t, "a read-back at "+old.id+" to end while it is cut off", func() bool { return r.tr.readsAt(old.id, cutAt) > 0 })
	healAt := time.Now()
	t.Logf("cut for %v: %s led after %v; the others acknowledged %d mints meanwhile",
		healAt.Sub(cutAt).Round(time.Millisecond), nl.id, elected.Round(time.Millisecond), r.tr.mintsAt(rest)-before)
	if twoWay {
		if s, h := old.is.State().AuditHead(); s != seq || h != head {
			t.Errorf("isolated %s applied audit records while cut off: head %d → %d", old.id, seq, s)
		}
	}
	if a := r.tr.ackedAt(old.id, from, healAt); len(a) > 0 {
		t.Errorf("cut-off %s acknowledged %d operations sent after the others moved on (e.g. %s %s); it cannot reach a quorum", old.id, len(a), a[0].kind, a[0].id)
	}
	return r.heal(t)
}

// TestPartition: three scenarios cut the leader off — both ways, and each
// way alone — for longer than an election and a linearizable read's
// deadline; the fourth changes the cuts at random every partInterval.
// After the heal every node holds every acknowledged operation and the
// same state (check).
func TestPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three-node clusters")
	}
	cases := []struct {
		name  string
		fault func(t *testing.T, r *partRun) time.Duration
	}{
		{"ok/leader-isolated", func(t *testing.T, r *partRun) time.Duration {
			old := r.leader(t)
			return r.cutOff(t, old, isolation(old.id, r.others(old.id)), true)
		}},
		{"ok/one-way/leader-cannot-receive", func(t *testing.T, r *partRun) time.Duration {
			// The leader's messages reach the followers, their answers are
			// lost: its lease runs out, and the others elect a leader that
			// it never hears of.
			old := r.leader(t)
			return r.cutOff(t, old, oneWay(r.others(old.id), []string{old.id}), false)
		}},
		{"ok/one-way/leader-cannot-send", func(t *testing.T, r *partRun) time.Duration {
			// The followers hear nothing from the leader and elect another;
			// the old leader hears the new term and steps down.
			old := r.leader(t)
			return r.cutOff(t, old, oneWay([]string{old.id}, r.others(old.id)), false)
		}},
		{"ok/random-then-heal", func(t *testing.T, r *partRun) time.Duration {
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, seed))
			ids := r.ids()
			var plan []string
			tick := time.NewTicker(partInterval)
			defer tick.Stop()
			for range partRounds {
				leader := ""
				for _, m := range r.members {
					if m.is.IsLeader() {
						leader = m.id
					}
				}
				a := ids[rng.IntN(len(ids))]
				if leader != "" && rng.IntN(2) == 0 {
					a = leader
				}
				b := r.others(a)[rng.IntN(len(ids)-1)]
				switch rng.IntN(5) {
				case 0, 1:
					r.net.setCut(isolation(a, r.others(a))...)
					plan = append(plan, "isolate "+a)
				case 2:
					r.net.setCut(partLink{a, b})
					plan = append(plan, a+"↛"+b)
				case 3:
					r.net.setCut(oneWay([]string{a}, r.others(a))...)
					plan = append(plan, a+"↛all")
				default:
					r.net.heal()
					plan = append(plan, "heal")
				}
				<-tick.C
			}
			t.Logf("cuts every %v: %s", partInterval, strings.Join(plan, ", "))
			return r.heal(t)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := startPartRun(t)
			r.tr.progress(t, partProgress, "before the fault")
			recovered := tc.fault(t, r)
			t.Logf("every node minting again %v after the heal", recovered.Round(time.Millisecond))
			r.check(t)
		})
	}
}

// stepDown posts `writ cluster step-down` to m and returns the status and
// how long the answer took. The handler bounds the transfer at 30 s
// (hashicorp/raft#696 is a transfer that never completes); the client
// waits a little longer, so that a hang shows as a 503, not a client
// timeout.
func (r *partRun) stepDown(t *testing.T, m *member) (int, []byte, time.Duration) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.url+"/v1/admin/cluster/step-down", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := r.tr.admin.Do(req)
	if err != nil {
		t.Fatalf("step-down at %s: %v after %v", m.id, err, time.Since(start))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body, time.Since(start)
}

// TestStepDownUnderTraffic: `writ cluster step-down` under minting,
// revocations and policy changes at every node. Leadership moves and
// nothing acknowledged is lost, also when the leader is cut off while it
// hands leadership over and later leads again (hashicorp/raft#696: a
// transfer interrupted that way can leave the old leader refusing writes
// once re-elected).
func TestStepDownUnderTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three-node clusters")
	}
	t.Run("ok/three-transfers", func(t *testing.T) {
		r := startPartRun(t)
		r.tr.progress(t, partProgress, "before stepping down")
		for i := range 3 {
			old := r.leader(t)
			status, body, took := r.stepDown(t, old)
			if status != http.StatusOK {
				t.Fatalf("step-down %d at %s: got %d %s after %v, want 200", i, old.id, status, body, took)
			}
			nl := r.leader(t)
			if nl.id == old.id {
				t.Fatalf("step-down %d: %s still leads", i, old.id)
			}
			t.Logf("step-down %d: %s → %s, answered in %v", i, old.id, nl.id, took.Round(time.Millisecond))
			r.tr.progress(t, partProgress, fmt.Sprintf("after step-down %d", i))
		}
		r.check(t)
	})
	t.Run("ok/leader-cut-off-mid-transfer", func(t *testing.T) {
		r := startPartRun(t)
		r.tr.progress(t, partProgress, "before stepping down")
		old := r.leader(t)
		rest := r.others(old.id)
		// Nothing the leader sends arrives: it cannot catch the target up
		// nor tell it to take over, and loses its lease during the transfer.
		r.net.setCut(oneWay([]string{old.id}, rest)...)
		status, body, took := r.stepDown(t, old)
		t.Logf("step-down at the cut-off %s: %d %s in %v", old.id, status, bytes.TrimSpace(body[:min(len(body), 120)]), took.Round(time.Millisecond))
		r.leader(t, rest...)
		r.tr.progress(t, partProgress, "with the old leader cut off", rest...)
		healed := r.heal(t)
		t.Logf("every node minting again %v after the heal", healed.Round(time.Millisecond))
		// Hand leadership around until the old leader leads again; it must
		// then accept writes.
		for i := 0; i < 10 && !old.is.IsLeader(); i++ {
			l := r.leader(t)
			if status, body, took := r.stepDown(t, l); status != http.StatusOK {
				t.Fatalf("step-down at %s: got %d %s after %v, want 200", l.id, status, body, took)
			}
			r.leader(t)
		}
		if !old.is.IsLeader() {
			t.Logf("%s was not elected again in 10 transfers; its leading again is not exercised", old.id)
		} else {
			start := time.Now()
			r.tr.progress(t, partProgress, "with "+old.id+" leading again", old.id)
			t.Logf("%s leads again and serves (%d mints in %v)", old.id, partProgress, time.Since(start).Round(time.Millisecond))
		}
		r.check(t)
	})
}

// TestPartitionLeaderCheck: the leader-per-term check of the partition
// tests flags two winners of one term and leaders nobody elected, and
// tolerates a follower reporting the previous leader under the next term.
func TestPartitionLeaderCheck(t *testing.T) {
	ev := func(observer, leader string, term uint64) partLeaderEvent {
		return partLeaderEvent{observer: observer, leader: leader, term: term}
	}
	cases := []struct {
		name   string
		events []partLeaderEvent
		won    int
		skewed int
		bad    int
	}{
		{"ok/one-leader-per-term", []partLeaderEvent{ev("a", "a", 2), ev("b", "a", 2), ev("b", "b", 3), ev("a", "b", 3)}, 2, 0, 0},
		{"ok/previous-leader-seen-under-next-term", []partLeaderEvent{ev("a", "a", 2), ev("b", "b", 3), ev("c", "a", 3)}, 2, 1, 0},
		{"fail/two-winners", []partLeaderEvent{ev("a", "a", 2), ev("b", "b", 2)}, 1, 0, 1},
		{"fail/leader-never-elected", []partLeaderEvent{ev("a", "a", 2), ev("c", "b", 2)}, 1, 0, 1},
		{"fail/seen-before-elected", []partLeaderEvent{ev("b", "b", 5), ev("c", "b", 3)}, 1, 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newPartNet()
			n.events = tc.events
			won, skewed, bad := n.leadersPerTerm()
			if won != tc.won || skewed != tc.skewed || len(bad) != tc.bad {
				t.Errorf("got %d terms won, %d skewed, problems %q; want %d, %d, %d problems", won, skewed, bad, tc.won, tc.skewed, tc.bad)
			}
		})
	}
}
