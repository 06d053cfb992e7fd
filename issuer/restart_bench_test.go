package issuer

import (
	"context"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	rtmetrics "runtime/metrics"
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
//	go test ./issuer/ -run '^$' -bench '^BenchmarkRestart$' -benchtime 1x -timeout 30m
func BenchmarkRestart(b *testing.B) {
	scaleBenchmark(b)
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

	check := func(b *testing.B, is *Issuer) {
		if seq, head := is.state.AuditHead(); seq < wantSeq || head == "" {
			b.Fatalf("after restart: audit head %d, want >= %d", seq, wantSeq)
		} else if seq == wantSeq && head != wantHead {
			b.Fatalf("after restart: audit head hash %s, want %s", head, wantHead)
		}
	}
	benchRestarts(b, cfg, setup, check)
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

// BenchmarkRestartRevocations is BenchmarkRestart for a node holding
// 1,000,000 revocations (WRIT_RESTART_REVOCATIONS overrides the number):
// 50 % token ids, 45 % block ids, 5 % agents, each with the audit record
// its revoke command carries, so also 1,000,000 audit records
// (WRIT_RESTART_EXTRA_AUDIT adds that many mint audit records, in
// audit.append commands of 1,000). The revocations are given to the
// stopped node by buildRevocations (real revoke commands in its raft log
// and applied by State.ApplyBatch, see revbuild_test.go), about 3 minutes
// here; the node then starts once (raft replays the whole log, no
// snapshot yet), snapshots, and takes a log tail of 1,000 revocations
// through Issuer.Revoke and raft (WRIT_RESTART_TAIL=n overrides it).
// Sub-benchmarks as in BenchmarkRestart, and count-revocations: counting
// every revocation key once (what start-up would cost without the stored
// count, kRevCount). It needs about 1.4 GB of disk, and the restore
// sub-benchmarks about 2.6 GB of memory. Run it alone:
//
//	go test ./issuer/ -run '^$' -bench '^BenchmarkRestartRevocations$' -benchtime 1x -timeout 60m
func BenchmarkRestartRevocations(b *testing.B) {
	scaleBenchmark(b)
	revocations := benchEnvInt(b, "WRIT_RESTART_REVOCATIONS", 1_000_000, 1000)
	extraAudit := benchEnvInt(b, "WRIT_RESTART_EXTRA_AUDIT", 0, 0)
	tail := benchEnvInt(b, "WRIT_RESTART_TAIL", 1000, 0)
	env := newTestEnv(b)
	n, built := newRevokedNode(b, env, revocations, extraAudit)
	t0 := time.Now()
	n.start()
	waitLong(b, "node ready after the build", 10*time.Minute, n.ready)
	firstStart := time.Since(t0)
	t0 = time.Now()
	if err := n.is.node.Snapshot(context.Background()); err != nil {
		b.Fatal(err)
	}
	snapTook := time.Since(t0)
	// A log tail after the snapshot, through raft: raft replays it on
	// every start.
	if err := revokeThroughRaft(n.is, revocations, tail, 4); err != nil {
		b.Fatal(err)
	}
	wantEpoch, wantRevs := n.is.state.SyncEpoch()
	wantSeq, wantHead := n.is.state.AuditHead()
	st := n.is.node.Stats()
	n.stop()
	cfg := n.cfg
	if wantRevs != revocations+tail {
		b.Fatalf("node holds %d revocations, want %d", wantRevs, revocations+tail)
	}
	setup := fmt.Sprintf("%s; first start %s (raft replays the log, no snapshot), snapshot %s; %d revocations after it; "+
		"now %d revocations, %d audit records, sync epoch %d; snapshot at %d, log %d..%d; disk: %s",
		built, firstStart.Round(time.Millisecond), snapTook.Round(time.Millisecond), tail,
		wantRevs, wantSeq, wantEpoch, st.LastSnapshotIndex, st.FirstLogIndex, st.LastLogIndex, diskUsage(cfg.DataDir))

	check := func(b *testing.B, is *Issuer) {
		if epoch, revs := is.state.SyncEpoch(); epoch != wantEpoch || revs != wantRevs {
			b.Fatalf("after restart: sync epoch %d with %d revocations, want %d with %d", epoch, revs, wantEpoch, wantRevs)
		}
		if seq, head := is.state.AuditHead(); seq < wantSeq || head == "" {
			b.Fatalf("after restart: audit head %d, want >= %d", seq, wantSeq)
		} else if seq == wantSeq && head != wantHead {
			b.Fatalf("after restart: audit head hash %s, want %s", head, wantHead)
		}
		// The first and the last built revocation are there.
		for _, i := range []int{0, revocations - 1} {
			r := benchRevocation(i, built.at)
			if _, ok, err := is.state.revocation(r.entryKey()); err != nil || !ok {
				b.Fatalf("after restart: revocation %d (%s) missing (%v)", i, r.subject(), err)
			}
		}
	}
	benchRestarts(b, cfg, setup, check)
	b.Run("count-revocations", func(b *testing.B) {
		s, err := OpenState(filepath.Join(cfg.DataDir, "state"), env.kek, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		b.ResetTimer()
		for range b.N {
			n, err := countPrefix(s.db, kRevEntry)
			if err != nil || n != uint64(wantRevs) {
				b.Fatalf("counted %d revocation keys (%v), want %d", n, err, wantRevs)
			}
		}
	})
}

// revokeThroughRaft revokes count token ids (benchRevocation-style ids
// from index from on, all token kind) with Issuer.Revoke, from workers
// goroutines: one revoke command each, through raft and the sync hub.
func revokeThroughRaft(is *Issuer, from, count, workers int) error {
	return inParallel(count, workers, func(i int) error {
		id := benchID(from + i)
		r := &revocationRecord{Kind: RevokeToken, ID: hex.EncodeToString(id[:16])}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, _, err := is.Revoke(ctx, benchRevokeAdmin, r); err != nil {
			return fmt.Errorf("revocation %d: %w", from+i, err)
		}
		return nil
	})
}

// inParallel runs do(0) … do(n-1) on workers goroutines and returns the
// first error; after one, no new index is started.
func inParallel(n, workers int, do func(i int) error) error {
	next := make(chan int)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := do(i); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range n {
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

// benchEnvInt reads a count from the environment variable name: def when
// it is unset, at least least.
func benchEnvInt(b *testing.B, name string, def, least int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < least {
		b.Fatalf("%s=%q: want a number >= %d", name, v, least)
	}
	return n
}

// benchRestarts runs the restart sub-benchmarks of the stopped node cfg
// describes: skip (the state stands in for the snapshot), restore (the
// snapshot is restored over the state on every start) and
// restore-wiped-state (the state directory is lost). Each start is timed
// from New to ready (ms-ready/op, and ms-new/op for New alone), with the
// peak of heap objects, live and not yet collected, while it ran
// (peak-heap-MB); check looks at the ready node.
func benchRestarts(b *testing.B, cfg Config, setup string, check func(*testing.B, *Issuer)) {
	restart := func(b *testing.B, before func()) {
		b.Log(setup)
		var newTime, readyTime time.Duration
		var peak uint64
		for range b.N {
			b.StopTimer()
			before()
			runtime.GC()
			stopPeak := watchHeapPeak()
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
			peak = max(peak, stopPeak())
			newTime += t1.Sub(t0)
			readyTime += t2.Sub(t0)
			check(b, is)
			b.Logf("restored %v (%s); New %s, ready %s", is.node.StartInfo().Restored, is.node.StartInfo().Reason,
				t1.Sub(t0).Round(time.Millisecond), t2.Sub(t0).Round(time.Millisecond))
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(newTime.Milliseconds())/float64(b.N), "ms-new/op")
		b.ReportMetric(float64(readyTime.Milliseconds())/float64(b.N), "ms-ready/op")
		b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
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
}

// watchHeapPeak samples the bytes of heap objects, live and not yet swept,
// every 10 ms until the returned function is called, which returns the
// highest sample.
func watchHeapPeak() (stop func() uint64) {
	sample := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		rtmetrics.Read(sample)
		if sample[0].Value.Kind() != rtmetrics.KindUint64 {
			return 0
		}
		return sample[0].Value.Uint64()
	}
	done, out := make(chan struct{}), make(chan uint64)
	go func() {
		peak := read()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				out <- max(peak, read())
				return
			case <-t.C:
				peak = max(peak, read())
			}
		}
	}()
	return func() uint64 {
		close(done)
		return <-out
	}
}

// buildAudit commits commands audit.append commands of per records each,
// from workers goroutines, through raft and the state machine.
func buildAudit(is *Issuer, commands, per, workers int) error {
	now := time.Now().UTC().Truncate(time.Second)
	return inParallel(commands, workers, func(i int) error {
		recs := make([]*AuditRecord, per)
		for j := range recs {
			recs[j] = &AuditRecord{Time: now, Node: is.cfg.NodeID, Kind: AuditMint, Caller: nodeTestAgent.String(),
				Credential: "x509-svid", Requested: []string{"crm/contacts:read"}, Granted: []string{"crm/contacts:read"},
				TokenID: fmt.Sprintf("%016x%016x", i, j), ExpiresAt: now.Add(5 * time.Minute), PolicyVersion: "sha256:0123456789abcdef", KeyID: 1}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := is.apply(ctx, &command{Type: cmdAuditAppend, Audit: recs}); err != nil {
			return fmt.Errorf("audit command %d: %w", i, err)
		}
		return nil
	})
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
