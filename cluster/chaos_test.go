package cluster_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/writ-dev/writ/cluster"
	"github.com/writ-dev/writ/cluster/clustertest"
)

// TestChaos runs a five-node cluster under client traffic through random
// faults — kills and restarts, partitions, one-way cuts, snapshots,
// membership changes — with a recovery checkpoint every 15 s that demands
// progress, then checks the invariants of the fault tests. It is long, so
// it only runs with WRIT_CHAOS=1 (make test-chaos):
//
//	WRIT_CHAOS=1 go test -race -run '^TestChaos$' -timeout 30m -v ./cluster/
//
// WRIT_CHAOS_DURATION (a Go duration, default 2m) sets how long faults are
// injected; WRIT_CHAOS_SEED replays a run (its seed is logged).
func TestChaos(t *testing.T) {
	if os.Getenv("WRIT_CHAOS") == "" {
		t.Skip("chaos test skipped: set WRIT_CHAOS=1 to run it (make test-chaos); WRIT_CHAOS_DURATION and WRIT_CHAOS_SEED tune it")
	}
	duration := 2 * time.Minute
	if s := os.Getenv("WRIT_CHAOS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("WRIT_CHAOS_DURATION %q: want a positive Go duration", s)
		}
		duration = d
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WRIT_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WRIT_CHAOS_SEED %q: want an unsigned integer", s)
		}
		seed = v
	}
	t.Logf("chaos: seed %d, duration %s (replay with WRIT_CHAOS_SEED=%d)", seed, duration, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))

	c := startFaultCluster(t, 5, clustertest.WithConfig(func(cfg *cluster.Config) {
		// Snapshot often so that restarts and lagging nodes need them.
		cfg.SnapshotInterval = 200 * time.Millisecond
		cfg.SnapshotThreshold = 256
		cfg.TrailingLogs = 64
	}))
	w := startWorkload(t, c, 6)
	w.progress(t, faultProgress, "before the chaos")

	const checkpointEvery = 15 * time.Second
	end := time.Now().Add(duration)
	nextCheckpoint := time.Now().Add(checkpointEvery)
	added := 0
	counts := make(map[string]int)
	for time.Now().Before(end) {
		if time.Now().After(nextCheckpoint) {
			recoverAll(t, c)
			w.progress(t, faultProgress, "at a checkpoint")
			nextCheckpoint = time.Now().Add(checkpointEvery)
			counts["checkpoint"]++
		}
		members := c.Members()
		ids := make([]string, len(members))
		for i, m := range members {
			ids[i] = m.ID()
		}
		running := c.Running()
		var down []string
		for _, m := range members {
			if !m.Running() {
				down = append(down, m.ID())
			}
		}
		pick := func(from []string) string { return from[rng.IntN(len(from))] }

		switch action := rng.IntN(100); {
		case action < 15 && len(running) > len(members)/2+1:
			// Kill, keeping a majority up (partitions may still stall it).
			id := running[rng.IntN(len(running))].ID()
			c.Kill(id)
			counts["kill"]++
		case action < 30 && len(down) > 0:
			c.Restart(pick(down))
			counts["restart"]++
		case action < 50:
			// A random split into two groups.
			var side []string
			for _, id := range ids {
				if rng.IntN(2) == 0 {
					side = append(side, id)
				}
			}
			c.Partition(side)
			counts["partition"]++
		case action < 62:
			a := pick(ids)
			b := pick(slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return s == a }))
			c.PartitionOneWay(a, b)
			counts["one-way"]++
		case action < 80:
			c.Heal()
			counts["heal"]++
		case action < 88 && len(running) > 0:
			m := running[rng.IntN(len(running))]
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = m.Node().Snapshot(ctx) // may fail while partitioned; not the point
			cancel()
			counts["snapshot"]++
		case action < 94 && len(down) == 0 && len(members) == 5:
			// Replace a member: remove one, add a fresh one. Needs a
			// healthy cluster, so heal first.
			c.Heal()
			w.progress(t, faultProgress, "before a membership change")
			c.RemoveNode(pick(ids))
			added++
			c.AddNode(fmt.Sprintf("x%d", added))
			counts["replace"]++
		default:
			counts["pause"]++
		}
		time.Sleep(time.Duration(200+rng.IntN(1000)) * time.Millisecond)
	}
	recoverAll(t, c)
	w.progress(t, faultProgress, "after the chaos")
	t.Logf("chaos actions: %v", counts)
	w.check(t)
}

// recoverAll heals every partition and restarts every killed member.
func recoverAll(t *testing.T, c *clustertest.Cluster) {
	t.Helper()
	c.Heal()
	for _, m := range c.Members() {
		if !m.Running() {
			c.Restart(m.ID())
		}
	}
}
