package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ/cluster"
	"github.com/writ-dev/writ/cluster/clustertest"
)

// Fault tests: a real three-node cluster (mutual TLS over 127.0.0.1, pebble
// on disk) under concurrent client traffic, hit with one kind of fault
// each. Afterwards, every acknowledged op must be applied exactly once on
// every node, all FSMs must be identical, and no term may have had two
// leaders. Tests wait on conditions (progress, convergence), never on
// sleeps; faultWait only bounds how long a broken build hangs.

const (
	faultWait    = 30 * time.Second
	faultWriters = 4
	// faultProgress is how many acknowledged ops prove that the cluster
	// serves clients (again).
	faultProgress = 30
	// faultHold is how many ops the cluster must acknowledge while a fault
	// lasts: long enough (about a second) for raft's timeouts, failed
	// heartbeats and redials to play out.
	faultHold = 300
	// writerPause spaces each writer's ops so that four writers do not
	// saturate a two-core machine running -race.
	writerPause = 2 * time.Millisecond
)

// workload is a set of client goroutines proposing KV ops through
// Cluster.Apply, which retries an op with the same ID until it is
// acknowledged. It records every acknowledged op.
type workload struct {
	c      *clustertest.Cluster
	cancel context.CancelFunc
	wg     sync.WaitGroup
	n      atomic.Int64 // ops acknowledged

	mu      sync.Mutex
	acked   map[string]clustertest.Entry // op ID -> op and the index it was applied at
	dups    int                          // acks answered as duplicates: an earlier attempt had been applied
	errs    []error
	pending map[string]bool // op IDs in flight when the workload stopped: outcome unknown
}

func startWorkload(t *testing.T, c *clustertest.Cluster, writers int) *workload {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &workload{c: c, cancel: cancel, acked: make(map[string]clustertest.Entry), pending: make(map[string]bool)}
	for i := range writers {
		w.wg.Go(func() { w.writer(ctx, i) })
	}
	t.Cleanup(w.stop)
	return w
}

func (w *workload) writer(ctx context.Context, id int) {
	for seq := 0; ; seq++ {
		op := clustertest.Op{
			ID:    fmt.Sprintf("w%d-%d", id, seq),
			Key:   fmt.Sprintf("k%d", seq%5),
			Value: fmt.Sprintf("w%d-%d", id, seq),
		}
		v, err := w.c.Apply(ctx, op.Encode())
		if err != nil {
			w.mu.Lock()
			if ctx.Err() != nil {
				w.pending[op.ID] = true
			} else {
				w.errs = append(w.errs, fmt.Errorf("op %s: %w", op.ID, err))
			}
			w.mu.Unlock()
			return
		}
		res, ok := v.(clustertest.Result)
		w.mu.Lock()
		switch {
		case !ok:
			w.errs = append(w.errs, fmt.Errorf("op %s: got value %T, want clustertest.Result", op.ID, v))
		case res.Err != nil:
			w.errs = append(w.errs, fmt.Errorf("op %s: %w", op.ID, res.Err))
		default:
			w.acked[op.ID] = clustertest.Entry{Index: res.Index, Op: op}
			if res.Dup {
				w.dups++
			}
		}
		w.mu.Unlock()
		w.n.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(writerPause):
		}
	}
}

// progress waits until n more ops than now are acknowledged.
func (w *workload) progress(t *testing.T, n int64, what string) {
	t.Helper()
	want := w.n.Load() + n
	deadline := time.Now().Add(faultWait)
	for w.n.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d ops acknowledged in %s, want %d more", what, w.n.Load()-(want-n), faultWait, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop ends the writers and waits for them. It is idempotent.
func (w *workload) stop() {
	w.cancel()
	w.wg.Wait()
}

// check stops the workload, heals the cluster, waits for convergence and
// verifies the invariants on every running member.
func (w *workload) check(t *testing.T) {
	t.Helper()
	w.stop()
	c := w.c
	c.Heal()
	ctx, cancel := context.WithTimeout(context.Background(), faultWait)
	defer cancel()
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatalf("WaitConverged: %v", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, err := range w.errs {
		t.Errorf("client: %v", err)
	}
	if len(w.acked) == 0 {
		t.Fatal("no op was acknowledged")
	}
	for _, m := range c.Running() {
		kv := m.FSM().(*clustertest.KV)
		seen := make(map[string]int)
		for _, e := range kv.Entries() {
			seen[e.Op.Value]++
			if a, ok := w.acked[e.Op.ID]; ok && a.Index != e.Index {
				t.Errorf("%s applied op %s at index %d, acknowledged at %d", m.ID(), e.Op.ID, e.Index, a.Index)
			}
			if _, ok := w.acked[e.Op.ID]; !ok && !w.pending[e.Op.ID] {
				t.Errorf("%s applied op %s that no client sent", m.ID(), e.Op.ID)
			}
		}
		for v, n := range seen {
			if n != 1 {
				t.Errorf("%s applied value %s %d times, want once", m.ID(), v, n)
			}
		}
		lost := 0
		for id := range w.acked {
			if seen[id] == 0 {
				lost++
				if lost <= 5 {
					t.Errorf("%s lost acknowledged op %s", m.ID(), id)
				}
			}
		}
		if lost > 0 {
			t.Errorf("%s lost %d of %d acknowledged ops", m.ID(), lost, len(w.acked))
		}
	}
	c.AssertOneLeaderPerTerm(t)
	st := c.Stats()
	t.Logf("%d ops acknowledged (%d as duplicates of an earlier attempt), %d in flight at stop; client: %d attempts, %d not-leader, %d unknown outcome; %d leader observations",
		len(w.acked), w.dups, len(w.pending), st.Attempts, st.NotLeader, st.Unknown, len(c.LeaderHistory()))
}

func startFaultCluster(t *testing.T, n int, opts ...clustertest.Option) *clustertest.Cluster {
	t.Helper()
	return clustertest.Start(t, n, clustertest.NewKVFSM, opts...)
}

func others(c *clustertest.Cluster, id string) []string {
	var out []string
	for _, m := range c.Members() {
		if m.ID() != id {
			out = append(out, m.ID())
		}
	}
	return out
}

func TestFaultLeaderKilled(t *testing.T) {
	c := startFaultCluster(t, 3)
	w := startWorkload(t, c, faultWriters)
	w.progress(t, faultProgress, "before the fault")
	old := c.Leader(t)
	c.Kill(old.ID())
	w.progress(t, faultHold, "after killing the leader")
	if l := c.Leader(t); l.ID() == old.ID() {
		t.Fatalf("leader after the kill: got %s, want another node", l.ID())
	}
	c.Restart(old.ID())
	w.progress(t, faultProgress, "after restarting the old leader")
	w.check(t)
}

func TestFaultFollowerKilled(t *testing.T) {
	c := startFaultCluster(t, 3)
	w := startWorkload(t, c, faultWriters)
	w.progress(t, faultProgress, "before the fault")
	leader := c.Leader(t)
	victim := others(c, leader.ID())[0]
	c.Kill(victim)
	w.progress(t, faultHold, "after killing a follower")
	c.Restart(victim)
	w.progress(t, faultProgress, "after restarting the follower")
	w.check(t)
}

func TestFaultLeaderIsolated(t *testing.T) {
	c := startFaultCluster(t, 3)
	w := startWorkload(t, c, faultWriters)
	w.progress(t, faultProgress, "before the fault")
	old := c.Leader(t)
	c.Partition([]string{old.ID()})
	w.progress(t, faultProgress, "with the old leader isolated")
	if l := c.Leader(t); l.ID() == old.ID() {
		t.Fatalf("leader in the majority: got %s, want another node", l.ID())
	}
	// The isolated node learns nothing of what the majority commits.
	isolated := old.FSM().(*clustertest.KV)
	before := isolated.Len()
	w.progress(t, faultHold, "with the old leader isolated")
	if got := isolated.Len(); got != before {
		t.Fatalf("isolated %s applied %d ops while cut off, want none", old.ID(), got-before)
	}
	c.Heal()
	w.progress(t, faultProgress, "after healing")
	w.check(t)
}

func TestFaultOneWayPartition(t *testing.T) {
	t.Run("leader-cannot-send", func(t *testing.T) {
		// The leader hears everyone but nobody hears it: the followers
		// elect a new leader, whose higher term reaches the old one.
		c := startFaultCluster(t, 3)
		w := startWorkload(t, c, faultWriters)
		w.progress(t, faultProgress, "before the fault")
		old := c.Leader(t)
		for _, f := range others(c, old.ID()) {
			c.PartitionOneWay(old.ID(), f)
		}
		w.progress(t, faultProgress, "with the leader's messages dropped")
		l := c.Leader(t)
		if l.ID() == old.ID() {
			t.Fatalf("leader: got %s, want another node", l.ID())
		}
		// Messages to the old leader still arrive: it learns the new term
		// while the cut lasts (a two-way partition would keep it behind).
		term := l.Node().Stats().Term
		waitFor(t, old.ID()+" to learn term "+fmt.Sprint(term), func() bool { return old.Node().Stats().Term >= term })
		w.progress(t, faultHold, "with the leader's messages dropped")
		c.Heal()
		w.progress(t, faultProgress, "after healing")
		w.check(t)
	})
	t.Run("follower-cannot-send", func(t *testing.T) {
		// A follower hears the leader but its answers are lost: the leader
		// keeps its quorum with the other follower.
		c := startFaultCluster(t, 3)
		w := startWorkload(t, c, faultWriters)
		w.progress(t, faultProgress, "before the fault")
		leader := c.Leader(t)
		f := others(c, leader.ID())[0]
		// The leader's messages still arrive: the follower keeps applying.
		// (Each AppendEntries now waits for its lost answer until raft's
		// 10 s transport timeout, so the follower gets one batch right
		// after the cut and the next only 10 s later.)
		kv := c.Member(f).FSM().(*clustertest.KV)
		before := kv.Len()
		c.PartitionOneWay(f, leader.ID())
		w.progress(t, faultHold, "with a follower's messages to the leader dropped")
		waitFor(t, f+" to apply ops while its answers are dropped", func() bool { return kv.Len() > before })
		if l := c.Leader(t); l.ID() != leader.ID() {
			t.Errorf("leader changed from %s to %s, want it kept", leader.ID(), l.ID())
		}
		c.Heal()
		w.progress(t, faultProgress, "after healing")
		w.check(t)
	})
}

func TestFaultRandomPartitions(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	c := startFaultCluster(t, 3)
	w := startWorkload(t, c, faultWriters)
	w.progress(t, faultProgress, "before the faults")
	ids := others(c, "")
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for range 10 {
		switch rng.IntN(4) {
		case 0, 1:
			// A random node alone on one side.
			c.Partition([]string{ids[rng.IntN(len(ids))]})
		case 2:
			// A random one-way cut.
			a := rng.IntN(len(ids))
			b := (a + 1 + rng.IntN(len(ids)-1)) % len(ids)
			c.Heal()
			c.PartitionOneWay(ids[a], ids[b])
		default:
			c.Heal()
		}
		<-tick.C
	}
	c.Heal()
	w.progress(t, faultProgress, "after healing")
	w.check(t)
}

func TestFaultRestartWithDataDir(t *testing.T) {
	c := startFaultCluster(t, 3)
	w := startWorkload(t, c, faultWriters)
	w.progress(t, faultProgress, "before the fault")
	victim := c.Member(others(c, c.Leader(t).ID())[0])
	before := victim.Node().Stats().LastLogIndex
	c.Kill(victim.ID())
	w.progress(t, faultHold, "with a follower down")
	c.Restart(victim.ID())
	// The restarted node reads its log back from disk.
	if got := victim.Node().Stats().LastLogIndex; got < before {
		t.Fatalf("%s after restart: last log index %d, want at least %d from its data dir", victim.ID(), got, before)
	}
	w.progress(t, faultProgress, "after the restart")
	w.check(t)
}

func TestFaultRestartFromSnapshot(t *testing.T) {
	const trailing = 8
	c := startFaultCluster(t, 3, clustertest.WithConfig(func(cfg *cluster.Config) {
		cfg.TrailingLogs = trailing
	}))
	w := startWorkload(t, c, faultWriters)
	w.progress(t, faultProgress, "before the fault")
	snapshotAll(t, c) // so the victim also restores its own snapshot at restart
	victim := c.Member(others(c, c.Leader(t).ID())[0])
	killedAt := victim.Node().Stats().LastLogIndex
	c.Kill(victim.ID())
	// Leave the victim far behind, then compact every other log past it.
	w.progress(t, faultHold, "with a follower down")
	snapshotAll(t, c)
	for _, m := range c.Running() {
		if first := m.Node().Stats().FirstLogIndex; first <= killedAt+1 {
			t.Fatalf("%s's log starts at %d, want after %d so that %s needs a snapshot", m.ID(), first, killedAt+1, victim.ID())
		}
	}
	c.Restart(victim.ID())
	restoredAtStart := victim.FSM().(*clustertest.KV).Restores()
	if restoredAtStart != 1 {
		t.Errorf("%s restored %d snapshots at start-up, want its own one", victim.ID(), restoredAtStart)
	}
	w.progress(t, faultProgress, "after the restart")
	w.check(t)
	if got := victim.FSM().(*clustertest.KV).Restores(); got <= restoredAtStart {
		t.Errorf("%s restored %d snapshots, want a leader's snapshot installed after its own %d", victim.ID(), got, restoredAtStart)
	}
}

// snapshotAll snapshots every running node, compacting its log down to
// TrailingLogs entries.
func snapshotAll(t *testing.T, c *clustertest.Cluster) {
	t.Helper()
	for _, m := range c.Running() {
		ctx, cancel := context.WithTimeout(context.Background(), faultWait)
		err := m.Node().Snapshot(ctx)
		cancel()
		if err != nil {
			t.Fatalf("Snapshot on %s: %v", m.ID(), err)
		}
	}
}

func TestFaultRollingRestart(t *testing.T) {
	c := startFaultCluster(t, 3)
	w := startWorkload(t, c, faultWriters)
	w.progress(t, faultProgress, "before the restarts")
	for _, m := range c.Members() {
		c.Kill(m.ID())
		w.progress(t, faultHold/3, "with "+m.ID()+" down")
		c.Restart(m.ID())
		// Let it catch up before taking the next node down, as an operator
		// would: otherwise two nodes are behind and the cluster stalls.
		waitCaughtUp(t, c, m)
	}
	w.progress(t, faultProgress, "after the rolling restart")
	w.check(t)
}

// waitFor polls cond until it holds, failing the test after faultWait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(faultWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitCaughtUp waits until m has applied what the leader had committed
// when the wait began.
func waitCaughtUp(t *testing.T, c *clustertest.Cluster, m *clustertest.Member) {
	t.Helper()
	target := c.Leader(t).Node().Stats().CommitIndex
	waitFor(t, fmt.Sprintf("%s to catch up to index %d", m.ID(), target), func() bool {
		return m.Node().Stats().AppliedIndex >= target
	})
}

func TestFaultMembershipChange(t *testing.T) {
	c := startFaultCluster(t, 3)
	w := startWorkload(t, c, faultWriters)
	w.progress(t, faultProgress, "before the changes")
	n4 := c.AddNode("n4")
	w.progress(t, faultHold/3, "after adding n4")
	waitCaughtUp(t, c, n4)
	c.RemoveNode(others(c, c.Leader(t).ID())[0])
	w.progress(t, faultHold/3, "after removing a follower")
	c.RemoveNode(c.Leader(t).ID())
	w.progress(t, faultHold/3, "after removing the leader")
	if got := len(c.Running()); got != 2 {
		t.Fatalf("running members: got %d, want 2", got)
	}
	servers, err := c.Leader(t).Node().Servers(t.Context())
	if err != nil {
		t.Fatalf("Servers: %v", err)
	}
	if len(servers) != 2 {
		t.Fatalf("configuration: got %v, want the 2 remaining nodes", servers)
	}
	w.check(t)
}

// TestFaultRetryAfterUnknownOutcome makes an Apply time out although its
// command commits — the leader's FSM is held, so the leader cannot answer
// — then retries the same op: the FSM must recognise it and not apply it
// twice.
func TestFaultRetryAfterUnknownOutcome(t *testing.T) {
	c := startFaultCluster(t, 3)
	leader := c.Leader(t)
	op := clustertest.Op{ID: "retried-op", Key: "k", Value: "retried-op"}

	release := leader.FSM().(*clustertest.KV).Hold()
	t.Cleanup(release)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err := leader.Node().Apply(ctx, op.Encode())
	cancel()
	if !errors.Is(err, cluster.ErrTimeout) {
		t.Fatalf("Apply with the leader's FSM held: got %v, want ErrTimeout", err)
	}
	// The outcome is unknown to the client, but the op did commit: the
	// followers apply it.
	var first uint64
	for _, id := range others(c, leader.ID()) {
		kv := c.Member(id).FSM().(*clustertest.KV)
		waitFor(t, id+" to apply the timed-out op", func() bool {
			idx, ok := kv.Lookup(op.ID)
			first = idx
			return ok
		})
	}
	release()

	ctx, cancel = context.WithTimeout(context.Background(), faultWait)
	defer cancel()
	v, err := c.Apply(ctx, op.Encode())
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	res := v.(clustertest.Result)
	if !res.Dup || res.Index != first {
		t.Fatalf("retry: got %+v, want Dup at the first attempt's index %d", res, first)
	}
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatalf("WaitConverged: %v", err)
	}
	for _, m := range c.Running() {
		if got := m.FSM().(*clustertest.KV).Values(op.Key); len(got) != 1 || got[0] != op.Value {
			t.Errorf("%s: values at %q: got %v, want [%s] once", m.ID(), op.Key, got, op.Value)
		}
	}
	c.AssertOneLeaderPerTerm(t)
}
