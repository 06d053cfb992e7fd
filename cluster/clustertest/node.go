package clustertest

import (
	"context"
	"testing"
	"time"

	"github.com/writ-dev/writ/cluster"
)

// startTimeout bounds how long StartNode waits for the node to elect
// itself; generous because CI machines are slow and shared.
const startTimeout = 30 * time.Second

// Config returns a cluster.Config for the node named name: DefaultConfig
// with a fresh t.TempDir() as DataDir, Bootstrap set, and mTLS configs
// from ca that accept the node itself and the named peers.
func Config(tb testing.TB, ca *CA, name string, peers ...string) cluster.Config {
	tb.Helper()
	cfg := cluster.DefaultConfig()
	cfg.NodeID = name
	cfg.DataDir = tb.TempDir()
	cfg.Bootstrap = true
	cfg.ServerTLS, cfg.ClientTLS = ca.NodeTLS(tb, name, append([]string{name}, peers...)...)
	return cfg
}

// StartNode starts a single-voter node named name running fsm, waits
// until it is leader, and stops it when the test ends (failing the test if
// Run returns an error). mutate, if not nil, adjusts the config from
// Config before the node starts.
func StartNode(tb testing.TB, ca *CA, name string, fsm cluster.FSM, mutate func(*cluster.Config)) *cluster.Node {
	tb.Helper()
	cfg := Config(tb, ca, name)
	if mutate != nil {
		mutate(&cfg)
	}
	return Run(tb, cfg, fsm)
}

// Run starts a node from cfg, runs it until the test ends, and waits until
// it knows a leader. Run's error at the end fails the test.
func Run(tb testing.TB, cfg cluster.Config, fsm cluster.FSM) *cluster.Node {
	tb.Helper()
	node, err := cluster.New(cfg, fsm)
	if err != nil {
		tb.Fatalf("cluster.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- node.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil {
			tb.Errorf("node %s Run: %v", cfg.NodeID, err)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, startTimeout)
	defer wcancel()
	if err := node.WaitLeader(wctx); err != nil {
		tb.Fatalf("node %s WaitLeader: %v", cfg.NodeID, err)
	}
	return node
}
