package clustertest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/writ-dev/writ/cluster"
	"github.com/writ-dev/writ/cluster/clustertest"
)

// divergentKV reports a hash that differs per node, as an FSM that is not
// deterministic would.
type divergentKV struct {
	*clustertest.KV
	id string
}

func (d divergentKV) StateHash() (uint64, []byte) {
	i, h := d.KV.StateHash()
	return i, append(h, d.id...)
}

func TestWaitConvergedDetectsDivergence(t *testing.T) {
	c := clustertest.Start(t, 3, func(id string) cluster.FSM { return divergentKV{clustertest.NewKV(), id} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Apply(ctx, clustertest.Op{ID: "a", Key: "k", Value: "v"}.Encode()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if err := c.WaitConverged(ctx); !errors.Is(err, clustertest.ErrDiverged) {
		t.Fatalf("WaitConverged: got %v, want ErrDiverged", err)
	}
}

func TestClusterBasics(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.NewKVFSM)
	if got := len(c.Members()); got != 3 {
		t.Fatalf("Members: got %d, want 3", got)
	}
	leader := c.Leader(t)
	servers, err := leader.Node().Servers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 3 {
		t.Fatalf("configuration: got %v, want 3 voters", servers)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := c.Apply(ctx, clustertest.Op{ID: "a", Key: "k", Value: "v"}.Encode())
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if res := v.(clustertest.Result); res.Dup || res.Err != nil || res.Index == 0 {
		t.Fatalf("Apply: got %+v, want a first application", res)
	}
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatalf("WaitConverged: %v", err)
	}
	for _, m := range c.Running() {
		if _, ok := m.FSM().(*clustertest.KV).Lookup("a"); !ok {
			t.Errorf("%s did not apply the op", m.ID())
		}
	}
	c.AssertOneLeaderPerTerm(t)
	if len(c.LeaderHistory()) == 0 {
		t.Error("no leader observations recorded")
	}
}
