package clustertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/writ-dev/writ/cluster"
)

// Timeouts of a test cluster's nodes: a failover takes a few hundred
// milliseconds, yet a loaded two-core machine running -race does not keep
// electing leaders. WithConfig can change them.
const (
	TestHeartbeatTimeout   = 100 * time.Millisecond
	TestElectionTimeout    = 100 * time.Millisecond
	TestLeaderLeaseTimeout = 50 * time.Millisecond
	TestCommitTimeout      = 10 * time.Millisecond
)

const (
	// waitTimeout bounds the harness's own waits (Leader, AddNode, ...):
	// it only limits how long a broken build hangs.
	waitTimeout = 30 * time.Second
	// applyAttemptTimeout bounds one Node.Apply inside Cluster.Apply.
	applyAttemptTimeout = time.Second
	// pollInterval is how often the harness re-checks a condition.
	pollInterval = 10 * time.Millisecond
	// rebindTimeout bounds retrying a restart whose port is still held.
	rebindTimeout = 5 * time.Second
)

// ErrDiverged is wrapped by WaitConverged's error when two nodes applied
// the same commands but report different state hashes: a replication or
// FSM determinism bug, not slowness.
var ErrDiverged = errors.New("clustertest: nodes diverged")

// StateHasher is implemented by FSMs that WaitConverged can compare
// across nodes (KV does).
type StateHasher interface {
	// StateHash returns the log index of the last command applied and a
	// digest of the state. FSMs that applied the same commands must return
	// the same digest. It is called concurrently with Apply and must read
	// both values atomically.
	StateHash() (index uint64, digest []byte)
}

// Option configures Start.
type Option func(*options)

type options struct {
	mutate      []func(*cluster.Config)
	logger      *slog.Logger
	trustDomain string
}

// WithConfig adjusts every node's cluster.Config (cfg.NodeID names the
// node) after the harness has filled it in and before the node starts.
// Leave DataDir, BindAddr, DialHook and OnLeaderChange alone: the harness
// owns them.
func WithConfig(mutate func(cfg *cluster.Config)) Option {
	return func(o *options) { o.mutate = append(o.mutate, mutate) }
}

// WithLogger sends every node's raft, transport and pebble logs to l
// (default: discarded).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// LeaderEvent is one observation of a leader: node Observer saw LeaderID
// become leader in Term (LeaderID == Observer when it won the election).
type LeaderEvent struct {
	Observer string
	Term     uint64
	LeaderID string
	At       time.Time
}

// ClientStats counts what Cluster.Apply went through.
type ClientStats struct {
	Attempts  int // Node.Apply calls
	NotLeader int // attempts refused by a non-leader (nothing applied)
	Unknown   int // attempts with an unknown outcome (timeout, lost leadership, node stopped), retried with the same command
}

// Cluster is a set of real cluster.Nodes in one process: mutual TLS from a
// throwaway CA over TCP on 127.0.0.1, pebble logs on disk under the test's
// temporary directory, and a fault-injecting dial hook on every node so
// that tests can kill, restart, partition and heal them. Start creates it;
// everything is stopped when the test ends.
//
// Methods that can fail call tb.Fatal and must be called from the test's
// goroutine: Leader, Kill, Restart, Partition, PartitionOneWay, AddNode,
// RemoveNode. The others (Apply, WaitLeader, WaitConverged, Heal,
// Members, Member, LeaderHistory, Stats) are safe from any goroutine.
type Cluster struct {
	tb     testing.TB
	ca     *CA
	newFSM func(id string) cluster.FSM
	opts   options
	net    *network
	base   string // parent of the members' data dirs

	mu      sync.Mutex
	members map[string]*Member
	order   []string // member IDs in creation order
	hint    string   // the leader Apply tries first
	stats   ClientStats

	evMu   sync.Mutex
	events []LeaderEvent
	evWake chan struct{} // closed and replaced on every leader event
}

// Member is one node of a Cluster across its incarnations: it keeps its
// ID, address and data directory when killed and restarted.
type Member struct {
	c       *Cluster
	id      string
	dataDir string

	mu      sync.Mutex
	addr    string
	node    *cluster.Node
	fsm     cluster.FSM
	stopCh  chan struct{} // closed when the running incarnation stops
	cancel  context.CancelFunc
	runErr  chan error
	removed bool
}

// ID returns the member's node ID.
func (m *Member) ID() string { return m.id }

// Addr returns the member's raft address, the same across restarts.
func (m *Member) Addr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addr
}

// DataDir returns the member's data directory.
func (m *Member) DataDir() string { return m.dataDir }

// Node returns the running node, or nil while the member is killed or
// after it was removed. A returned node may be killed at any moment by
// another goroutine; its methods then fail with cluster.ErrShutdown.
func (m *Member) Node() *cluster.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.node
}

// FSM returns the running incarnation's FSM, or nil while the member is
// not running: a killed node's memory is gone, and a restart builds a new
// FSM from the factory and the data directory.
func (m *Member) FSM() cluster.FSM {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fsm
}

// Running reports whether the member has a running node.
func (m *Member) Running() bool { return m.Node() != nil }

// Start starts n nodes named n1..nN, each with an FSM from newFSM: n1
// bootstraps a cluster and the others join it as voters. It returns once
// all n are voters, and stops every node when the test ends.
func Start(tb testing.TB, n int, newFSM func(id string) cluster.FSM, opts ...Option) *Cluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("clustertest.Start: n = %d, want at least 1", n)
	}
	c := &Cluster{
		tb:      tb,
		newFSM:  newFSM,
		net:     newNetwork(),
		base:    tb.TempDir(),
		members: make(map[string]*Member),
		evWake:  make(chan struct{}),
	}
	c.opts.trustDomain = "writ.test"
	for _, o := range opts {
		o(&c.opts)
	}
	c.ca = NewCA(tb, c.opts.trustDomain)
	// Registered after TempDir, so it runs before the directory goes.
	tb.Cleanup(c.stopAll)

	first := c.newMember("n1")
	if err := c.start(first, true); err != nil {
		tb.Fatalf("start n1: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.WaitLeader(ctx); err != nil {
		tb.Fatalf("first leader: %v", err)
	}
	for i := 2; i <= n; i++ {
		c.AddNode(fmt.Sprintf("n%d", i))
	}
	return c
}

func (c *Cluster) newMember(id string) *Member {
	c.tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.members[id]; dup {
		c.tb.Fatalf("clustertest: member %s already exists", id)
	}
	dir, err := os.MkdirTemp(c.base, id+"-")
	if err != nil {
		c.tb.Fatalf("clustertest: data dir for %s: %v", id, err)
	}
	m := &Member{c: c, id: id, dataDir: dir}
	c.members[id] = m
	c.order = append(c.order, id)
	return m
}

func (c *Cluster) config(m *Member) cluster.Config {
	cfg := cluster.DefaultConfig()
	cfg.NodeID = m.id
	cfg.DataDir = m.dataDir
	cfg.BindAddr = "127.0.0.1:0"
	if a := m.Addr(); a != "" {
		cfg.BindAddr = a
	}
	cfg.HeartbeatTimeout = TestHeartbeatTimeout
	cfg.ElectionTimeout = TestElectionTimeout
	cfg.LeaderLeaseTimeout = TestLeaderLeaseTimeout
	cfg.CommitTimeout = TestCommitTimeout
	cfg.Logger = c.opts.logger
	cfg.ServerTLS, cfg.ClientTLS = c.ca.ClusterTLS(c.tb, m.id)
	for _, f := range c.opts.mutate {
		f(&cfg)
	}
	return cfg
}

// start runs a new incarnation of m on its data directory and address.
func (c *Cluster) start(m *Member, bootstrap bool) error {
	cfg := c.config(m)
	cfg.Bootstrap = bootstrap
	stopCh := make(chan struct{})
	cfg.DialHook = c.net.hook(m.id, stopCh)
	cfg.OnLeaderChange = func(lc cluster.LeaderChange) { c.observe(m.id, lc) }
	fsm := c.newFSM(m.id)

	var (
		node *cluster.Node
		err  error
	)
	deadline := time.Now().Add(rebindTimeout)
	for {
		node, err = cluster.New(cfg, fsm)
		// A restart reuses the port; the old listener's socket can take a
		// moment to go, and another process may briefly hold the port.
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- node.Run(ctx) }()

	m.mu.Lock()
	m.addr = node.Addr()
	m.node, m.fsm, m.stopCh, m.cancel, m.runErr = node, fsm, stopCh, cancel, runErr
	m.mu.Unlock()
	c.net.register(node.Addr(), m.id)
	c.net.setUp(m.id)
	return nil
}

// stop ends m's running incarnation the way a crash would, as far as a
// process can crash part of itself: its links go dark and its connections
// are dropped first, then the node is closed without handing over
// leadership. removed tolerates Run's error of a leader that removed
// itself.
func (c *Cluster) stop(m *Member, removed bool) {
	m.mu.Lock()
	node, stopCh, cancel, runErr := m.node, m.stopCh, m.cancel, m.runErr
	m.node, m.fsm, m.stopCh, m.cancel, m.runErr = nil, nil, nil, nil, nil
	m.mu.Unlock()
	if node == nil {
		return
	}
	c.net.stop(m.id, stopCh)
	cancel()
	if err := <-runErr; err != nil && !(removed && errors.Is(err, cluster.ErrShutdown)) {
		c.tb.Errorf("clustertest: node %s stopped with error: %v", m.id, err)
	}
}

// stopAll stops every running node at the end of the test.
func (c *Cluster) stopAll() {
	c.Heal()
	var wg sync.WaitGroup
	for _, m := range c.Members() {
		wg.Go(func() { c.stop(m, true) })
	}
	wg.Wait()
}

// Members returns every member, running or not, in creation order;
// removed members are left out.
func (c *Cluster) Members() []*Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Member, 0, len(c.order))
	for _, id := range c.order {
		if m := c.members[id]; !m.isRemoved() {
			out = append(out, m)
		}
	}
	return out
}

// Running returns the members with a running node.
func (c *Cluster) Running() []*Member {
	var out []*Member
	for _, m := range c.Members() {
		if m.Running() {
			out = append(out, m)
		}
	}
	return out
}

// Member returns the member named id, or nil.
func (c *Cluster) Member(id string) *Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[id]
}

func (m *Member) isRemoved() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.removed
}

func (c *Cluster) mustMember(id string) *Member {
	c.tb.Helper()
	m := c.Member(id)
	if m == nil || m.isRemoved() {
		c.tb.Fatalf("clustertest: no member %q", id)
	}
	return m
}

// Leader waits for a leader (see WaitLeader) and returns it; it fails the
// test after 30 s.
func (c *Cluster) Leader(tb testing.TB) *Member {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	m, err := c.WaitLeader(ctx)
	if err != nil {
		tb.Fatalf("clustertest: %v", err)
	}
	return m
}

// WaitLeader waits until a running member is leader and confirms it with
// a quorum (Node.VerifyLeader), so that a deposed leader that has not
// noticed yet is not returned. It returns ctx's error if that does not
// happen in time.
func (c *Cluster) WaitLeader(ctx context.Context) (*Member, error) {
	for {
		for _, m := range c.Running() {
			node := m.Node()
			if node == nil || !node.IsLeader() {
				continue
			}
			vctx, cancel := context.WithTimeout(ctx, applyAttemptTimeout)
			err := node.VerifyLeader(vctx)
			cancel()
			if err == nil {
				return m, nil
			}
		}
		if err := c.pause(ctx); err != nil {
			return nil, fmt.Errorf("clustertest: wait leader: %w", err)
		}
	}
}

// pause waits for a leader event or pollInterval, or returns ctx's error.
func (c *Cluster) pause(ctx context.Context) error {
	c.evMu.Lock()
	wake := c.evWake
	c.evMu.Unlock()
	t := time.NewTimer(pollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-wake:
	case <-t.C:
	}
	return nil
}

// Kill stops member id abruptly, like a crashed process: its connections
// are dropped, peers' dials to it hang as if its host were unreachable,
// raft is shut down without handing over leadership (pending requests
// fail with an unknown outcome), and its in-memory FSM is discarded. Its
// data directory and address are kept for Restart.
func (c *Cluster) Kill(id string) {
	c.tb.Helper()
	m := c.mustMember(id)
	if !m.Running() {
		c.tb.Fatalf("clustertest: Kill(%s): not running", id)
	}
	c.stop(m, false)
	c.tb.Logf("clustertest: killed %s", id)
}

// Restart starts a new incarnation of the killed member id on the same
// data directory and address, with a fresh FSM from the factory.
func (c *Cluster) Restart(id string) {
	c.tb.Helper()
	m := c.mustMember(id)
	if m.Running() {
		c.tb.Fatalf("clustertest: Restart(%s): already running", id)
	}
	if err := c.start(m, false); err != nil {
		c.tb.Fatalf("clustertest: Restart(%s): %v", id, err)
	}
	c.tb.Logf("clustertest: restarted %s", id)
}

// Partition splits the members into groups that cannot reach one
// another; members named in no group form one more group together. It
// replaces earlier partitions and one-way cuts. Members added later are
// not cut off from anyone.
func (c *Cluster) Partition(groups ...[]string) {
	c.tb.Helper()
	group := make(map[string]int)
	for i, g := range groups {
		for _, id := range g {
			c.mustMember(id)
			if _, dup := group[id]; dup {
				c.tb.Fatalf("clustertest: Partition: %s is in two groups", id)
			}
			group[id] = i + 1
		}
	}
	cut := make(map[link]bool)
	members := c.Members()
	for _, a := range members {
		for _, b := range members {
			if a != b && group[a.id] != group[b.id] {
				cut[link{a.id, b.id}] = true
			}
		}
	}
	c.net.setCut(cut)
	c.tb.Logf("clustertest: partitioned %v", groups)
}

// PartitionOneWay drops everything from sends to to, in addition to the
// current partitions: from's requests never reach to, and neither do
// from's responses to to's requests, while to's messages still reach
// from.
func (c *Cluster) PartitionOneWay(from, to string) {
	c.tb.Helper()
	c.mustMember(from)
	c.mustMember(to)
	if from == to {
		c.tb.Fatalf("clustertest: PartitionOneWay(%s, %s): same node", from, to)
	}
	c.net.addCut(link{from, to})
	c.tb.Logf("clustertest: cut %s -> %s", from, to)
}

// Heal removes every partition and one-way cut. Killed members stay
// unreachable until restarted. Connections that lost bytes are closed;
// raft redials.
func (c *Cluster) Heal() {
	c.net.setCut(make(map[link]bool))
	c.tb.Logf("clustertest: healed")
}

// AddNode starts a new member named id (on a new data directory and port)
// and adds it to the cluster as a voter through the leader, retrying
// across leader changes for up to 30 s.
func (c *Cluster) AddNode(id string) *Member {
	c.tb.Helper()
	m := c.newMember(id)
	if err := c.start(m, false); err != nil {
		c.tb.Fatalf("clustertest: AddNode(%s): %v", id, err)
	}
	err := c.onLeader(func(ctx context.Context, leader *cluster.Node) error {
		return leader.AddVoter(ctx, id, m.Addr())
	})
	if err != nil {
		c.tb.Fatalf("clustertest: AddNode(%s): %v", id, err)
	}
	c.tb.Logf("clustertest: added %s", id)
	return m
}

// RemoveNode removes member id from the cluster configuration through
// the leader (retrying across leader changes for up to 30 s), then stops
// it. Removing the leader is allowed: it steps down once the change
// commits.
func (c *Cluster) RemoveNode(id string) {
	c.tb.Helper()
	m := c.mustMember(id)
	err := c.onLeader(func(ctx context.Context, leader *cluster.Node) error {
		return leader.RemoveServer(ctx, id)
	})
	if err != nil {
		c.tb.Fatalf("clustertest: RemoveNode(%s): %v", id, err)
	}
	c.stop(m, true)
	m.mu.Lock()
	m.removed = true
	m.mu.Unlock()
	c.tb.Logf("clustertest: removed %s", id)
}

// onLeader runs op on the current leader until it succeeds. op must be
// idempotent: after an unknown outcome it runs again.
func (c *Cluster) onLeader(op func(ctx context.Context, leader *cluster.Node) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var last error
	for {
		leader, err := c.WaitLeader(ctx)
		if err != nil {
			return errors.Join(err, last)
		}
		if node := leader.Node(); node != nil {
			actx, acancel := context.WithTimeout(ctx, 5*applyAttemptTimeout)
			last = op(actx, node)
			acancel()
			if last == nil {
				return nil
			}
		}
		if err := c.pause(ctx); err != nil {
			return errors.Join(err, last)
		}
	}
}

// Apply proposes cmd like a client of the cluster would: on the member it
// believes is leader, following NotLeaderError hints, and retrying the
// same cmd after an unknown outcome (timeout, lost leadership, node
// stopped) until it succeeds or ctx ends. It therefore relies on the FSM
// to apply a command carrying an already applied idempotency key at most
// once (KV does, by Op.ID). It returns the FSM's value, or ctx's error
// (the outcome then unknown), or a cluster.ErrCommandTooLarge error.
func (c *Cluster) Apply(ctx context.Context, cmd []byte) (any, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("clustertest: apply: %w", err)
		}
		m := c.pickLeader()
		if m == nil {
			if err := c.pause(ctx); err != nil {
				return nil, fmt.Errorf("clustertest: apply: %w", err)
			}
			continue
		}
		node := m.Node()
		if node == nil {
			c.setHint(m.id, "")
			continue
		}
		actx, cancel := context.WithTimeout(ctx, applyAttemptTimeout)
		v, err := node.Apply(actx, cmd)
		cancel()
		var nl *cluster.NotLeaderError
		switch {
		case err == nil:
			c.count(func(s *ClientStats) { s.Attempts++ })
			c.setHint("", m.id)
			return v, nil
		case errors.Is(err, cluster.ErrCommandTooLarge):
			return nil, err
		case errors.As(err, &nl):
			c.count(func(s *ClientStats) { s.Attempts++; s.NotLeader++ })
			c.setHint(m.id, nl.LeaderID)
		default:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("clustertest: apply: %w", err)
			}
			c.count(func(s *ClientStats) { s.Attempts++; s.Unknown++ })
			c.setHint(m.id, "")
		}
		if err := c.pause(ctx); err != nil {
			return nil, fmt.Errorf("clustertest: apply: %w", err)
		}
	}
}

func (c *Cluster) count(f func(*ClientStats)) {
	c.mu.Lock()
	f(&c.stats)
	c.mu.Unlock()
}

// Stats returns Apply's counters so far.
func (c *Cluster) Stats() ClientStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// setHint replaces the hint if it still names old ("" matches anything).
func (c *Cluster) setHint(old, next string) {
	c.mu.Lock()
	if old == "" || c.hint == old {
		c.hint = next
	}
	c.mu.Unlock()
}

// pickLeader returns the hinted member if running, else a running member
// that believes it leads, else nil.
func (c *Cluster) pickLeader() *Member {
	c.mu.Lock()
	hint := c.members[c.hint]
	c.mu.Unlock()
	if hint != nil && hint.Running() {
		return hint
	}
	for _, m := range c.Running() {
		if n := m.Node(); n != nil && n.IsLeader() {
			c.setHint("", m.id)
			return m
		}
	}
	return nil
}

// WaitConverged waits until the running members agree: they know the same
// running leader in the same term, have the same last log index, have committed
// and applied all of it, and — for FSMs implementing StateHasher — report
// the same state hash at the same index. Call it when no commands are
// being proposed. It returns an error wrapping ErrDiverged as soon as two
// FSMs report different hashes at the same index, and ctx's error,
// describing what still differed, if they do not converge in time.
func (c *Cluster) WaitConverged(ctx context.Context) error {
	for {
		err := c.converged()
		if err == nil || errors.Is(err, ErrDiverged) {
			return err
		}
		t := time.NewTimer(pollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("clustertest: not converged: %w (%v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

func (c *Cluster) converged() error {
	type view struct {
		id     string
		stats  cluster.Stats
		leader string
		index  uint64
		digest []byte
		hashed bool
	}
	var views []view
	for _, m := range c.Running() {
		node, fsm := m.Node(), m.FSM()
		if node == nil {
			continue
		}
		v := view{id: m.id, stats: node.Stats()}
		v.leader, _ = node.Leader()
		if h, ok := fsm.(StateHasher); ok {
			v.index, v.digest = h.StateHash()
			v.hashed = true
		}
		views = append(views, v)
	}
	if len(views) == 0 {
		return errors.New("no running members")
	}
	ref := views[0]
	if ref.leader == "" {
		return fmt.Errorf("%s knows no leader", ref.id)
	}
	if l := c.Member(ref.leader); l == nil || l.Node() == nil || !l.Node().IsLeader() {
		return fmt.Errorf("%s follows %s, which is not a running leader", ref.id, ref.leader)
	}
	var hashed []view
	for _, v := range views {
		switch s, r := v.stats, ref.stats; {
		case v.leader != ref.leader || s.Term != r.Term:
			return fmt.Errorf("%s follows %q in term %d, %s follows %q in term %d", v.id, v.leader, s.Term, ref.id, ref.leader, r.Term)
		case s.LastLogIndex != r.LastLogIndex:
			return fmt.Errorf("%s has last index %d, %s has %d", v.id, s.LastLogIndex, ref.id, r.LastLogIndex)
		case s.CommitIndex != s.LastLogIndex || s.AppliedIndex != s.LastLogIndex:
			return fmt.Errorf("%s has last index %d, committed %d, applied %d", v.id, s.LastLogIndex, s.CommitIndex, s.AppliedIndex)
		}
		if v.hashed {
			hashed = append(hashed, v)
		}
	}
	for _, v := range hashed {
		if v.index == hashed[0].index && !bytes.Equal(v.digest, hashed[0].digest) {
			return fmt.Errorf("%w: %s and %s applied up to index %d with state hashes %x and %x",
				ErrDiverged, v.id, hashed[0].id, v.index, v.digest, hashed[0].digest)
		}
	}
	for _, v := range hashed {
		if v.index != hashed[0].index {
			return fmt.Errorf("%s's FSM is at index %d, %s's at %d", v.id, v.index, hashed[0].id, hashed[0].index)
		}
	}
	return nil
}

// observe records a leader event; it runs on raft's goroutine.
func (c *Cluster) observe(observer string, lc cluster.LeaderChange) {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if lc.LeaderID != "" {
		c.events = append(c.events, LeaderEvent{Observer: observer, Term: lc.Term, LeaderID: lc.LeaderID, At: time.Now()})
	}
	close(c.evWake)
	c.evWake = make(chan struct{})
}

// LeaderHistory returns every leader observation so far, in the order
// they were recorded.
func (c *Cluster) LeaderHistory() []LeaderEvent {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	return slices.Clone(c.events)
}

// AssertOneLeaderPerTerm fails the test if two different nodes claimed
// leadership of the same term — the election safety property of raft.
// Only each winner's own report counts: raft v1.8 handles heartbeats off
// its main goroutine, so a follower can report the previous leader under
// the term it has just moved to.
func (c *Cluster) AssertOneLeaderPerTerm(tb testing.TB) {
	tb.Helper()
	if err := checkOneLeaderPerTerm(c.LeaderHistory()); err != nil {
		tb.Error(err)
	}
}

// checkOneLeaderPerTerm reports every term with more than one leader.
func checkOneLeaderPerTerm(events []LeaderEvent) error {
	leaders := make(map[uint64]map[string][]string) // term -> leader -> observers
	for _, e := range events {
		if e.Observer != e.LeaderID {
			continue // see AssertOneLeaderPerTerm
		}
		if leaders[e.Term] == nil {
			leaders[e.Term] = make(map[string][]string)
		}
		leaders[e.Term][e.LeaderID] = append(leaders[e.Term][e.LeaderID], e.Observer)
	}
	var bad []string
	for term, ls := range leaders {
		if len(ls) < 2 {
			continue
		}
		var parts []string
		for l, obs := range ls {
			parts = append(parts, fmt.Sprintf("%s (seen by %s)", l, strings.Join(obs, ",")))
		}
		sort.Strings(parts)
		bad = append(bad, fmt.Sprintf("term %d: %s", term, strings.Join(parts, "; ")))
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("clustertest: more than one leader in a term: %s", strings.Join(bad, " | "))
}
