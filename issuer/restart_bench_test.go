package issuer

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// BenchmarkRestart measures how long a single node holding 1,000,000 audit
// records (WRIT_RESTART_RECORDS overrides the number) takes from issuer.New
// to ready (/readyz), after a snapshot and a log tail of 1,000 one-record
// entries (WRIT_RESTART_TAIL=entries,records-per-entry overrides it):
//
//	skip:                the state directory stands in for the snapshot
//	restore:             the snapshot is restored over the state on every
//	                     start (the behaviour before cluster.Config.FSMApplied)
//	restore-wiped-state: the state directory is lost; the snapshot is
//	                     restored into an empty one (the fallback)
//	count-keys:          counting every audit key once (what a start-up
//	                     count of a prefix with that many keys costs)
//
// The records are written once, in audit.append commands of 1,000 records
// through raft and the state machine; building them takes a minute or
// more and about 1 GB of disk. Run it alone:
//
//	go test ./issuer/ -run '^$' -bench BenchmarkRestart -benchtime 1x -timeout 30m
func BenchmarkRestart(b *testing.B) {
	records := 1_000_000
	if v := os.Getenv("WRIT_RESTART_RECORDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			b.Fatalf("WRIT_RESTART_RECORDS=%q: want a number >= 1000", v)
		}
		records = n
	}
	const perCommand = 1000
	tail, tailPer := 1000, 1 // WRIT_RESTART_TAIL=entries,records-per-entry
	if v := os.Getenv("WRIT_RESTART_TAIL"); v != "" {
		if _, err := fmt.Sscanf(v, "%d,%d", &tail, &tailPer); err != nil || tail < 0 || tailPer < 1 || tailPer > perCommand {
			b.Fatalf("WRIT_RESTART_TAIL=%q: want entries,records-per-entry", v)
		}
	}
	env := newTestEnv(b)
	cfg := env.config(b, "writ-1", b.TempDir(), true)
	n := startTestNode(b, cfg)
	waitUntil(b, "node ready", n.ready)
	start := time.Now()
	if err := buildAudit(n.is, records/perCommand, perCommand, 4); err != nil {
		b.Fatal(err)
	}
	built := time.Since(start)
	if err := n.is.node.Snapshot(context.Background()); err != nil {
		b.Fatal(err)
	}
	// A log tail after the snapshot: raft replays it on every start.
	if err := buildAudit(n.is, tail, tailPer, 4); err != nil {
		b.Fatal(err)
	}
	wantSeq, wantHead := n.is.state.AuditHead()
	st := n.is.node.Stats()
	n.stop()
	cfg = n.cfg
	setup := fmt.Sprintf("%d audit records (%d after the snapshot) written in %s; snapshot at %d, log %d..%d; disk: %s",
		wantSeq, tail*tailPer, built.Round(time.Millisecond), st.LastSnapshotIndex, st.FirstLogIndex, st.LastLogIndex, diskUsage(cfg.DataDir))

	restart := func(b *testing.B, before func()) {
		b.Log(setup)
		var newTime, readyTime time.Duration
		for range b.N {
			b.StopTimer()
			before()
			b.StartTimer()
			t0 := time.Now()
			is, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- is.Run(ctx) }()
			for len(is.notReady()) > 0 {
				time.Sleep(time.Millisecond)
			}
			t2 := time.Now()
			b.StopTimer()
			newTime += t1.Sub(t0)
			readyTime += t2.Sub(t0)
			if seq, head := is.state.AuditHead(); seq < wantSeq || head == "" {
				b.Fatalf("after restart: audit head %d, want >= %d", seq, wantSeq)
			} else if seq == wantSeq && head != wantHead {
				b.Fatalf("after restart: audit head hash %s, want %s", head, wantHead)
			}
			b.Logf("restored %v (%s)", is.node.StartInfo().Restored, is.node.StartInfo().Reason)
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(newTime.Milliseconds())/float64(b.N), "ms-new/op")
		b.ReportMetric(float64(readyTime.Milliseconds())/float64(b.N), "ms-ready/op")
	}
	b.Run("skip", func(b *testing.B) { restart(b, func() {}) })
	b.Run("restore", func(b *testing.B) {
		restoreSnapshotOnStart = true
		defer func() { restoreSnapshotOnStart = false }()
		restart(b, func() {})
	})
	b.Run("restore-wiped-state", func(b *testing.B) {
		restart(b, func() {
			if err := os.RemoveAll(filepath.Join(cfg.DataDir, "state")); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("count-keys", func(b *testing.B) {
		s, err := OpenState(filepath.Join(cfg.DataDir, "state"), env.kek, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		b.ResetTimer()
		for range b.N {
			n, err := countPrefix(s.db, kAudPrefix)
			if err != nil || n != wantSeq {
				b.Fatalf("counted %d audit keys (%v), want %d", n, err, wantSeq)
			}
		}
	})
}

// buildAudit commits commands audit.append commands of per records each,
// from workers goroutines, through raft and the state machine.
func buildAudit(is *Issuer, commands, per, workers int) error {
	now := time.Now().UTC().Truncate(time.Second)
	next := make(chan int)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				recs := make([]*AuditRecord, per)
				for j := range recs {
					recs[j] = &AuditRecord{Time: now, Node: is.cfg.NodeID, Kind: AuditMint, Caller: nodeTestAgent.String(),
						Credential: "x509-svid", Requested: []string{"crm/contacts:read"}, Granted: []string{"crm/contacts:read"},
						TokenID: fmt.Sprintf("%016x%016x", i, j), ExpiresAt: now.Add(5 * time.Minute), PolicyVersion: "sha256:0123456789abcdef", KeyID: 1}
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				err := is.apply(ctx, &command{Type: cmdAuditAppend, Audit: recs})
				cancel()
				if err != nil {
					errc <- fmt.Errorf("audit command %d: %w", i, err)
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range commands {
		select {
		case next <- i:
		case err = <-errc:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return err
}

// diskUsage sums the sizes of the files under each top-level entry of dir.
func diskUsage(dir string) string {
	var out string
	var total int64
	for _, sub := range []string{"state", filepath.Join("raft", "log"), filepath.Join("raft", "snapshots")} {
		var n int64
		filepath.WalkDir(filepath.Join(dir, sub), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
		total += n
		out += fmt.Sprintf("%s %.0f MB, ", sub, float64(n)/1e6)
	}
	return out + fmt.Sprintf("total %.0f MB", float64(total)/1e6)
}
