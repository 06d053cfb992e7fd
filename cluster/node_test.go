package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/cluster"
	"github.com/writ-dev/writ/cluster/clustertest"
)

// waitTimeout bounds waits for things that happen eventually (elections,
// automatic snapshots). It only limits how long a broken build hangs.
const waitTimeout = 30 * time.Second

// runNode starts a node and returns a stop function that shuts it down
// and fails the test if Run reports an error. stop is safe to call twice;
// it is also registered as cleanup.
func runNode(t *testing.T, cfg cluster.Config, fsm cluster.FSM) (*cluster.Node, func()) {
	t.Helper()
	node, err := cluster.New(cfg, fsm)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("node %s Run: %v", cfg.NodeID, err)
			}
		})
	}
	t.Cleanup(stop)
	return node, stop
}

func waitLeader(t *testing.T, n *cluster.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := n.WaitLeader(ctx); err != nil {
		t.Fatalf("WaitLeader: %v", err)
	}
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func apply(t *testing.T, n *cluster.Node, cmd string) uint64 {
	t.Helper()
	v, err := n.Apply(t.Context(), []byte(cmd))
	if err != nil {
		t.Fatalf("Apply(%q): %v", cmd, err)
	}
	idx, ok := v.(uint64)
	if !ok {
		t.Fatalf("Apply(%q): got value %T, want uint64 index", cmd, v)
	}
	return idx
}

func TestNodeSingleVoterAppliesCommands(t *testing.T) {
	ca := clustertest.NewCA(t, "writ.test")
	fsm := &testFSM{}
	node := clustertest.StartNode(t, ca, "n1", fsm, nil)

	if !node.IsLeader() {
		t.Fatal("IsLeader: got false after electing itself, want true")
	}
	if id, addr := node.Leader(); id != "n1" || addr != node.Addr() {
		t.Fatalf("Leader: got (%q, %q), want (n1, %q)", id, addr, node.Addr())
	}
	if strings.HasSuffix(node.Addr(), ":0") || !strings.HasPrefix(node.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr: got %q, want 127.0.0.1 with the bound port", node.Addr())
	}

	var want []applied
	var last uint64
	for _, cmd := range []string{"alpha", "beta", "", "gamma"} {
		idx := apply(t, node, cmd)
		if idx <= last {
			t.Fatalf("Apply(%q): got index %d, want > %d", cmd, idx, last)
		}
		last = idx
		want = append(want, applied{Index: idx, Cmd: cmd})
	}
	if got := fsm.applied(); !slices.Equal(got, want) {
		t.Fatalf("FSM applied %v, want %v", got, want)
	}

	if err := node.Barrier(t.Context()); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	if err := node.VerifyLeader(t.Context()); err != nil {
		t.Fatalf("VerifyLeader: %v", err)
	}
	if !node.Ready() {
		t.Fatal("Ready: got false after Barrier, want true")
	}
	st := node.Stats()
	if st.State != "Leader" || st.Term < 1 || st.AppliedIndex < last || st.CommitIndex < last ||
		st.LastLogIndex < last || st.FirstLogIndex != 1 {
		t.Fatalf("Stats: got %+v, want leader with indexes >= %d and first index 1", st, last)
	}
	servers, err := node.Servers(t.Context())
	if err != nil {
		t.Fatalf("Servers: %v", err)
	}
	if want := []cluster.Server{{ID: "n1", Addr: node.Addr(), Voter: true}}; !slices.Equal(servers, want) {
		t.Fatalf("Servers: got %v, want %v", servers, want)
	}
}

func TestNodeRestartReappliesLog(t *testing.T) {
	ca := clustertest.NewCA(t, "writ.test")
	cfg := clustertest.Config(t, ca, "n1")

	fsm1 := &testFSM{}
	node, stop := runNode(t, cfg, fsm1)
	waitLeader(t, node)
	for i := range 10 {
		apply(t, node, fmt.Sprintf("cmd-%d", i))
	}
	stop()

	// Bootstrap is still set: it must be a no-op on existing state.
	fsm2 := &testFSM{}
	node, _ = runNode(t, cfg, fsm2)
	waitLeader(t, node)
	if err := node.Barrier(t.Context()); err != nil {
		t.Fatalf("Barrier after restart: %v", err)
	}
	if got, want := fsm2.applied(), fsm1.applied(); !slices.Equal(got, want) {
		t.Fatalf("after restart FSM applied %v, want %v", got, want)
	}
	if n := fsm2.restoreCount(); n != 0 {
		t.Fatalf("Restore called %d times without a snapshot, want 0", n)
	}
	idx := apply(t, node, "after-restart")
	if last := fsm1.applied()[9].Index; idx <= last {
		t.Fatalf("index after restart: got %d, want > %d", idx, last)
	}
}

func TestNodeRestartRestoresSnapshot(t *testing.T) {
	ca := clustertest.NewCA(t, "writ.test")
	cfg := clustertest.Config(t, ca, "n1")
	cfg.TrailingLogs = 2

	fsm1 := &testFSM{}
	node, stop := runNode(t, cfg, fsm1)
	waitLeader(t, node)
	for i := range 20 {
		apply(t, node, fmt.Sprintf("cmd-%d", i))
	}
	if err := node.Snapshot(t.Context()); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	st := node.Stats()
	if st.LastSnapshotIndex < fsm1.applied()[19].Index || st.FirstLogIndex <= 1 {
		t.Fatalf("Stats after Snapshot: got %+v, want snapshot at >= %d and a compacted log",
			st, fsm1.applied()[19].Index)
	}
	for i := range 3 {
		apply(t, node, fmt.Sprintf("after-snapshot-%d", i))
	}
	stop()

	fsm2 := &testFSM{}
	node, _ = runNode(t, cfg, fsm2)
	waitLeader(t, node)
	if err := node.Barrier(t.Context()); err != nil {
		t.Fatalf("Barrier after restart: %v", err)
	}
	if n := fsm2.restoreCount(); n != 1 {
		t.Fatalf("Restore called %d times, want 1", n)
	}
	if got, want := fsm2.applied(), fsm1.applied(); !slices.Equal(got, want) {
		t.Fatalf("after restart FSM holds %v, want %v", got, want)
	}
}

func TestNodeSnapshotsAndCompactsAfterThreshold(t *testing.T) {
	ca := clustertest.NewCA(t, "writ.test")
	cfg := clustertest.Config(t, ca, "n1")
	cfg.SnapshotInterval = 10 * time.Millisecond
	cfg.SnapshotThreshold = 16
	cfg.TrailingLogs = 4

	fsm1 := &testFSM{}
	node, stop := runNode(t, cfg, fsm1)
	waitLeader(t, node)
	for i := range 64 {
		apply(t, node, fmt.Sprintf("cmd-%d", i))
	}
	eventually(t, "an automatic snapshot and log compaction", func() bool {
		st := node.Stats()
		return st.LastSnapshotIndex > 0 && st.FirstLogIndex > 1
	})
	st := node.Stats()
	if st.FirstLogIndex > st.LastSnapshotIndex+1 {
		t.Fatalf("Stats: first log index %d beyond snapshot %d: entries lost", st.FirstLogIndex, st.LastSnapshotIndex)
	}
	if kept := st.LastLogIndex - st.FirstLogIndex + 1; kept < cfg.TrailingLogs {
		t.Fatalf("Stats: %d entries kept, want at least TrailingLogs=%d", kept, cfg.TrailingLogs)
	}
	stop()

	// Snapshot plus remaining log rebuild the full state.
	fsm2 := &testFSM{}
	node, _ = runNode(t, cfg, fsm2)
	waitLeader(t, node)
	if err := node.Barrier(t.Context()); err != nil {
		t.Fatalf("Barrier after restart: %v", err)
	}
	if got, want := fsm2.applied(), fsm1.applied(); !slices.Equal(got, want) {
		t.Fatalf("after restart FSM holds %d entries, want %d (%v)", len(got), len(want), got)
	}
}

func TestNodeApplyContext(t *testing.T) {
	cases := []struct {
		name    string
		ctx     func(t *testing.T) (context.Context, func())
		wantErr []error
	}{
		{"fail/canceled-while-waiting", func(t *testing.T) (context.Context, func()) {
			ctx, cancel := context.WithCancel(t.Context())
			return ctx, cancel
		}, []error{context.Canceled}},
		{"fail/deadline-while-waiting", func(t *testing.T) (context.Context, func()) {
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			return ctx, func() { <-ctx.Done(); cancel() }
		}, []error{context.DeadlineExceeded, cluster.ErrTimeout}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ca := clustertest.NewCA(t, "writ.test")
			gate := make(chan struct{})
			fsm := &testFSM{gate: gate}
			node := clustertest.StartNode(t, ca, "n1", fsm, nil)
			// The FSM holds the first command until gate closes, so Apply
			// cannot finish before its context ends.
			defer close(gate)

			ctx, end := tc.ctx(t)
			errc := make(chan error, 1)
			go func() {
				_, err := node.Apply(ctx, []byte("held"))
				errc <- err
			}()
			end()
			err := <-errc
			for _, want := range tc.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("Apply: got error %v, want it to match %v", err, want)
				}
			}
		})
	}
	t.Run("fail/already-canceled", func(t *testing.T) {
		ca := clustertest.NewCA(t, "writ.test")
		fsm := &testFSM{}
		node := clustertest.StartNode(t, ca, "n1", fsm, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := node.Apply(ctx, []byte("never")); !errors.Is(err, context.Canceled) {
			t.Fatalf("Apply: got %v, want context.Canceled", err)
		}
		if err := node.Barrier(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := fsm.applied(); len(got) != 0 {
			t.Fatalf("FSM applied %v for a canceled Apply, want nothing", got)
		}
	})
}

func TestNodeApplyRefusesOversizeCommand(t *testing.T) {
	ca := clustertest.NewCA(t, "writ.test")
	fsm := &testFSM{}
	node := clustertest.StartNode(t, ca, "n1", fsm, func(c *cluster.Config) { c.MaxCommandBytes = 1024 })

	_, err := node.Apply(t.Context(), make([]byte, 1025))
	var tooLarge *cluster.CommandTooLargeError
	if !errors.As(err, &tooLarge) || !errors.Is(err, cluster.ErrCommandTooLarge) {
		t.Fatalf("Apply(1025 bytes): got %v, want *CommandTooLargeError", err)
	}
	if tooLarge.Size != 1025 || tooLarge.Max != 1024 {
		t.Fatalf("CommandTooLargeError: got %+v, want Size 1025 Max 1024", *tooLarge)
	}
	apply(t, node, string(make([]byte, 1024)))
	if got := fsm.applied(); len(got) != 1 || len(got[0].Cmd) != 1024 {
		t.Fatalf("FSM applied %d commands, want only the 1024-byte one", len(got))
	}
}

func TestNodeAfterClose(t *testing.T) {
	ca := clustertest.NewCA(t, "writ.test")
	node, err := cluster.New(clustertest.Config(t, ca, "n1"), &testFSM{})
	if err != nil {
		t.Fatal(err)
	}
	waitLeader(t, node)
	apply(t, node, "before")
	if err := node.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := node.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := node.Run(t.Context()); err != nil {
		t.Fatalf("Run after Close: got %v, want nil", err)
	}
	if _, err := node.Apply(t.Context(), []byte("after")); !errors.Is(err, cluster.ErrShutdown) {
		t.Errorf("Apply after Close: got %v, want ErrShutdown", err)
	}
	if err := node.Barrier(t.Context()); !errors.Is(err, cluster.ErrShutdown) {
		t.Errorf("Barrier after Close: got %v, want ErrShutdown", err)
	}
	if err := node.WaitLeader(t.Context()); !errors.Is(err, cluster.ErrShutdown) {
		t.Errorf("WaitLeader after Close: got %v, want ErrShutdown", err)
	}
	if node.Ready() || node.IsLeader() {
		t.Error("Ready/IsLeader after Close: got true, want false")
	}
	if st := node.Stats(); st.State != "Shutdown" {
		t.Errorf("Stats after Close: got state %q, want Shutdown", st.State)
	}
}

func TestNodeWithoutBootstrapHasNoLeader(t *testing.T) {
	ca := clustertest.NewCA(t, "writ.test")
	cfg := clustertest.Config(t, ca, "n1")
	cfg.Bootstrap = false
	node, _ := runNode(t, cfg, &testFSM{})
	// Several heartbeat timeouts: a node with no configuration must not
	// elect itself.
	ctx, cancel := context.WithTimeout(t.Context(), 5*cfg.HeartbeatTimeout)
	defer cancel()
	if err := node.WaitLeader(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitLeader: got %v, want context.DeadlineExceeded", err)
	}
	var notLeader *cluster.NotLeaderError
	if _, err := node.Apply(t.Context(), []byte("x")); !errors.As(err, &notLeader) || notLeader.LeaderID != "" {
		t.Fatalf("Apply: got %v, want *NotLeaderError with no leader", err)
	}
}

func TestNodeConcurrentApply(t *testing.T) {
	const workers, perWorker = 64, 16
	ca := clustertest.NewCA(t, "writ.test")
	fsm := &testFSM{}
	node := clustertest.StartNode(t, ca, "n1", fsm, nil)

	got := make(map[string]uint64) // command -> index Apply returned
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				cmd := fmt.Sprintf("w%02d-%02d", w, i)
				v, err := node.Apply(t.Context(), []byte(cmd))
				if err != nil {
					errs <- fmt.Errorf("Apply(%s): %w", cmd, err)
					return
				}
				mu.Lock()
				got[cmd] = v.(uint64)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	entries := fsm.applied()
	if len(entries) != workers*perWorker {
		t.Fatalf("FSM applied %d commands, want %d", len(entries), workers*perWorker)
	}
	seen := make(map[string]bool)
	for i, e := range entries {
		if seen[e.Cmd] {
			t.Fatalf("command %s applied twice", e.Cmd)
		}
		seen[e.Cmd] = true
		if i > 0 && e.Index <= entries[i-1].Index {
			t.Fatalf("entry %d: index %d not after %d", i, e.Index, entries[i-1].Index)
		}
		if got[e.Cmd] != e.Index {
			t.Fatalf("command %s: Apply returned index %d, FSM applied it at %d", e.Cmd, got[e.Cmd], e.Index)
		}
	}
}

func TestNodeBatchFSM(t *testing.T) {
	const workers, perWorker = 16, 8
	ca := clustertest.NewCA(t, "writ.test")
	fsm := &batchFSM{}
	node := clustertest.StartNode(t, ca, "n1", fsm, nil)

	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				v, err := node.Apply(t.Context(), fmt.Appendf(nil, "w%d-%d", w, i))
				if err != nil {
					errs <- err
					return
				}
				if _, ok := v.(uint64); !ok {
					errs <- fmt.Errorf("Apply returned %T, want uint64", v)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	batch, single, _ := fsm.calls()
	if batch == 0 || single != 0 {
		t.Fatalf("got %d ApplyBatch and %d Apply calls, want only ApplyBatch", batch, single)
	}
	if n := len(fsm.applied()); n != workers*perWorker {
		t.Fatalf("FSM applied %d commands, want %d", n, workers*perWorker)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestNodeLogsThroughSlog(t *testing.T) {
	ca := clustertest.NewCA(t, "writ.test")
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	node := clustertest.StartNode(t, ca, "n1", &testFSM{}, func(c *cluster.Config) { c.Logger = logger })
	// Barrier runs through the leader loop, which raft enters after
	// logging "entering leader state".
	if err := node.Barrier(t.Context()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{`"logger":"raft"`, `"node":"n1"`, `"msg":"entering leader state"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %s:\n%s", want, out)
		}
	}
}
