package cluster_test

import (
	"io"
	"sync/atomic"
	"testing"

	"github.com/writ-dev/writ/cluster"
	"github.com/writ-dev/writ/cluster/clustertest"
)

// countFSM is the cheapest possible BatchFSM, so that benchmarks measure
// raft, the pebble log and the Apply path. It counts commands and batches.
type countFSM struct{ n, batches atomic.Uint64 }

func (f *countFSM) Apply(uint64, []byte) any { return f.n.Add(1) }

func (f *countFSM) ApplyBatch(entries []cluster.Entry) []any {
	f.batches.Add(1)
	out := make([]any, len(entries))
	for i := range entries {
		out[i] = f.n.Add(1)
	}
	return out
}

func (f *countFSM) Snapshot() (cluster.Snapshot, error) { return emptySnapshot{}, nil }

func (f *countFSM) Restore(io.Reader) error { return nil }

type emptySnapshot struct{}

func (emptySnapshot) WriteTo(io.Writer) (int64, error) { return 0, nil }
func (emptySnapshot) Release()                         {}

// BenchmarkApply measures committed, durably logged and applied commands
// per second on a single on-disk node. Raft gathers the commands that
// queue up while the previous batch is being synced into one StoreLogs
// call — one pebble batch and one fsync — so throughput grows with the
// number of concurrent appliers while a serial applier pays one fsync per
// command. cmds/batch reports the commands per ApplyBatch call.
func BenchmarkApply(b *testing.B) {
	for _, bc := range []struct {
		name        string
		parallelism int // goroutines per GOMAXPROCS; 0 means one goroutine
	}{
		{"serial", 0},
		{"parallel-8x", 8},
		{"parallel-32x", 32},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ca := clustertest.NewCA(b, "writ.test")
			fsm := &countFSM{}
			node := clustertest.StartNode(b, ca, "n1", fsm, func(c *cluster.Config) {
				// Keep snapshots out of the measurement.
				c.SnapshotThreshold = 1 << 40
			})
			cmd := make([]byte, 128) // about one audit record
			b.SetBytes(int64(len(cmd)))
			startN, startBatches := fsm.n.Load(), fsm.batches.Load()
			b.ResetTimer()
			if bc.parallelism == 0 {
				for range b.N {
					if _, err := node.Apply(b.Context(), cmd); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(bc.parallelism)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := node.Apply(b.Context(), cmd); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			// Commands per ApplyBatch call: how many commands raft handed to
			// the FSM together. It tracks the leader's write batching (one
			// StoreLogs, one fsync, per group of queued commands) but is not
			// the same count.
			n, batches := fsm.n.Load()-startN, fsm.batches.Load()-startBatches
			if n < uint64(b.N) {
				b.Fatalf("FSM applied %d commands, want %d", n, b.N)
			}
			b.ReportMetric(float64(n)/float64(max(batches, 1)), "cmds/batch")
		})
	}
}
