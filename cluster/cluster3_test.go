package cluster_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/writ-dev/writ/cluster"
	"github.com/writ-dev/writ/cluster/clustertest"
)

// TestThreeNodeCluster grows a bootstrapped node into a three-voter
// cluster over the real mTLS transport, replicates commands, and shrinks
// it again.
func TestThreeNodeCluster(t *testing.T) {
	ca := clustertest.NewCA(t, "writ.test")
	names := []string{"n1", "n2", "n3"}
	nodes := make(map[string]*cluster.Node)
	fsms := make(map[string]*testFSM)
	for _, name := range names {
		cfg := clustertest.Config(t, ca, name, names...)
		cfg.Bootstrap = name == "n1"
		fsms[name] = &testFSM{}
		nodes[name], _ = runNode(t, cfg, fsms[name])
	}
	leader := nodes["n1"]
	waitLeader(t, leader)
	if !leader.IsLeader() {
		t.Fatal("n1 is not leader after bootstrap")
	}
	for _, name := range names[1:] {
		if err := leader.AddVoter(t.Context(), name, nodes[name].Addr()); err != nil {
			t.Fatalf("AddVoter(%s): %v", name, err)
		}
	}
	servers, err := leader.Servers(t.Context())
	if err != nil {
		t.Fatalf("Servers: %v", err)
	}
	if len(servers) != 3 {
		t.Fatalf("Servers: got %v, want 3 voters", servers)
	}
	for _, s := range servers {
		if !s.Voter || s.Addr != nodes[s.ID].Addr() {
			t.Fatalf("Servers: got %+v, want voter at %s", s, nodes[s.ID].Addr())
		}
	}

	// Leadership can move during membership changes on a loaded machine:
	// find the current leader.
	leader = currentLeader(t, nodes)
	for i := range 20 {
		if _, err := leader.Apply(t.Context(), fmt.Appendf(nil, "cmd-%d", i)); err != nil {
			t.Fatalf("Apply on leader: %v", err)
		}
	}
	want := fsms[leader.ID()].applied()
	for _, name := range names {
		eventually(t, name+" to apply all commands", func() bool { return len(fsms[name].applied()) >= len(want) })
		if got := fsms[name].applied(); !slices.Equal(got, want) {
			t.Fatalf("%s applied %v, want %v", name, got, want)
		}
	}

	// A follower refuses Apply and names the leader.
	for _, name := range names {
		if name == leader.ID() {
			continue
		}
		_, err := nodes[name].Apply(t.Context(), []byte("on follower"))
		var nl *cluster.NotLeaderError
		if !errors.As(err, &nl) || !errors.Is(err, cluster.ErrNotLeader) {
			t.Fatalf("Apply on follower %s: got %v, want *NotLeaderError", name, err)
		}
		if nl.LeaderID != leader.ID() || nl.LeaderAddr != leader.Addr() {
			t.Fatalf("NotLeaderError on %s: got leader (%q, %q), want (%q, %q)",
				name, nl.LeaderID, nl.LeaderAddr, leader.ID(), leader.Addr())
		}
	}

	// Remove a follower; the two left keep committing.
	var removed string
	for _, name := range names {
		if name != leader.ID() {
			removed = name
			break
		}
	}
	if err := leader.RemoveServer(t.Context(), removed); err != nil {
		t.Fatalf("RemoveServer(%s): %v", removed, err)
	}
	servers, err = leader.Servers(t.Context())
	if err != nil {
		t.Fatalf("Servers: %v", err)
	}
	if len(servers) != 2 || slices.ContainsFunc(servers, func(s cluster.Server) bool { return s.ID == removed }) {
		t.Fatalf("Servers after removing %s: got %v", removed, servers)
	}
	if _, err := leader.Apply(t.Context(), []byte("after removal")); err != nil {
		t.Fatalf("Apply after removal: %v", err)
	}
}

func currentLeader(t *testing.T, nodes map[string]*cluster.Node) *cluster.Node {
	t.Helper()
	var leader *cluster.Node
	eventually(t, "a leader", func() bool {
		for _, n := range nodes {
			if n.IsLeader() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}
