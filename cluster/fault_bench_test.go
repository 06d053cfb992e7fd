package cluster_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ/cluster"
	"github.com/writ-dev/writ/cluster/clustertest"
)

// BenchmarkFailover measures how long clients cannot write when the
// leader of a three-node cluster crashes: from the kill (its connections
// drop at once) until the first acknowledged Apply, sent by a client that
// retries as Cluster.Apply does. Each iteration is one trial; after it
// the old leader is restarted and the cluster converges (not timed). It
// reports the median and the worst trial; ns/op is the mean. Run with a
// fixed trial count:
//
//	go test -run '^$' -bench BenchmarkFailover -benchtime 10x ./cluster/
func BenchmarkFailover(b *testing.B) {
	c := clustertest.Start(b, 3, clustertest.NewKVFSM)
	var (
		seq    int
		trials []time.Duration
		kills  []time.Duration
	)
	apply := func() {
		b.Helper()
		seq++
		ctx, cancel := context.WithTimeout(context.Background(), faultWait)
		defer cancel()
		op := clustertest.Op{ID: fmt.Sprintf("f%d", seq), Key: "k", Value: fmt.Sprint(seq)}
		if _, err := c.Apply(ctx, op.Encode()); err != nil {
			b.Fatalf("Apply: %v", err)
		}
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		leader := c.Leader(b)
		apply() // the client knows the leader
		b.StartTimer()

		start := time.Now()
		c.Kill(leader.ID())
		kills = append(kills, time.Since(start))
		apply()
		trials = append(trials, time.Since(start))

		b.StopTimer()
		c.Restart(leader.ID())
		ctx, cancel := context.WithTimeout(context.Background(), faultWait)
		err := c.WaitConverged(ctx)
		cancel()
		if err != nil {
			b.Fatalf("WaitConverged: %v", err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	c.AssertOneLeaderPerTerm(b)
	slices.Sort(trials)
	slices.Sort(kills)
	b.ReportMetric(float64(trials[len(trials)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(trials[len(trials)-1].Milliseconds()), "max-ms")
	b.ReportMetric(float64(kills[len(kills)-1].Milliseconds()), "max-kill-ms")
	b.Logf("failover over %d trials: %v", len(trials), trials)
}

// BenchmarkReplicatedApply measures concurrent Apply on the leader of a
// three-node cluster, with Config.DialHook nil (production), a hook that
// only dials, and clustertest's fault hook (every read and write checks
// the partition table). The hook is consulted once per new connection,
// never per RPC, so nil and pass-through must not differ beyond noise.
//
//	go test -run '^$' -bench BenchmarkReplicatedApply -benchtime 2000x ./cluster/
func BenchmarkReplicatedApply(b *testing.B) {
	passthrough := func(ctx context.Context, _ string, dial cluster.DialFunc) (net.Conn, error) { return dial(ctx) }
	for _, tc := range []struct {
		name string
		hook cluster.DialHook
	}{
		{"hook=nil", nil},
		{"hook=passthrough", passthrough},
	} {
		b.Run(tc.name, func(b *testing.B) {
			leader := startPlainCluster(b, tc.hook)
			benchApply(b, leader)
		})
	}
	b.Run("hook=clustertest", func(b *testing.B) {
		c := clustertest.Start(b, 3, func(string) cluster.FSM { return &countFSM{} })
		benchApply(b, c.Leader(b).Node())
	})
}

func benchApply(b *testing.B, leader *cluster.Node) {
	b.Helper()
	var failed atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		cmd := []byte("benchmark command")
		for pb.Next() {
			if _, err := leader.Apply(context.Background(), cmd); err != nil {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d Apply calls failed", n)
	}
}

// startPlainCluster starts three nodes with the given dial hook and no
// other harness, and returns the leader.
func startPlainCluster(b *testing.B, hook cluster.DialHook) *cluster.Node {
	b.Helper()
	ca := clustertest.NewCA(b, "writ.test")
	names := []string{"n1", "n2", "n3"}
	var nodes []*cluster.Node
	for _, name := range names {
		cfg := clustertest.Config(b, ca, name, names...)
		cfg.Bootstrap = name == "n1"
		cfg.DialHook = hook
		// The harness's timeouts, so that only the hook differs from
		// hook=clustertest.
		cfg.HeartbeatTimeout = clustertest.TestHeartbeatTimeout
		cfg.ElectionTimeout = clustertest.TestElectionTimeout
		cfg.LeaderLeaseTimeout = clustertest.TestLeaderLeaseTimeout
		cfg.CommitTimeout = clustertest.TestCommitTimeout
		node, err := cluster.New(cfg, &countFSM{})
		if err != nil {
			b.Fatalf("New(%s): %v", name, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- node.Run(ctx) }()
		b.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				b.Errorf("%s Run: %v", name, err)
			}
		})
		nodes = append(nodes, node)
	}
	ctx, cancel := context.WithTimeout(context.Background(), faultWait)
	defer cancel()
	if err := nodes[0].WaitLeader(ctx); err != nil {
		b.Fatal(err)
	}
	for _, n := range nodes[1:] {
		if err := nodes[0].AddVoter(ctx, n.ID(), n.Addr()); err != nil {
			b.Fatalf("AddVoter(%s): %v", n.ID(), err)
		}
	}
	// Leadership may have moved while the cluster grew.
	for {
		for _, n := range nodes {
			if n.IsLeader() && n.VerifyLeader(ctx) == nil {
				return n
			}
		}
		if ctx.Err() != nil {
			b.Fatal("no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
