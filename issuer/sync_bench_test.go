package issuer

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/writ-dev/writ/internal/pki"
	"github.com/writ-dev/writ/internal/syncwire"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
	"github.com/writ-dev/writ/verifier/syncer"
)

// benchServiceID is the verifier that syncs in BenchmarkSyncSnapshot.
var benchServiceID = spiffeid.RequireFromPath(nodeTestTD, "/services/crm")

// BenchmarkSyncSnapshot measures what a new verifier's first sync costs
// against a real node (TLS, raft, pebble on disk) holding 1,000,000
// revocations (WRIT_SYNC_REVOCATIONS overrides the number): 50 % token
// ids, 45 % block ids, 5 % agents, given to the stopped node by
// buildRevocations (revbuild_test.go; about 3 minutes here).
//
//	issuer-build:  the node encoding its snapshot: first (uncached, after
//	               dropping the cache) and cached; bytes allocated and the
//	               peak of live heap above the idle node while building
//	wire:          GET /v1/sync?since=0 over mTLS: body bytes and bytes
//	               read from the TCP connection (TLS and HTTP included),
//	               time to the last byte; the frames are decoded and the
//	               snapshot's signature checked
//	verifier/*:    a new verifier/syncer.Syncer (real mTLS) doing its
//	               first Sync, until it holds the snapshot (signature
//	               checked, tables built) and the closing heartbeat, with
//	               the node's snapshot cache warm or dropped first; the
//	               Syncer's heap after it (live heap before and after,
//	               collected), per entry
//	authorize:     verifier.Verifier.Authorize of one minted token (cached
//	               decode) with the Syncer holding every revocation as its
//	               revocation source, against the same verifier with an
//	               empty verifier.RevocationList, alternated call by call
//	               in the same run; p50 of each and the ratio
//
// Every sub-benchmark checks what it measured (entry counts, sample
// revocations held, the token allowed; in the end a revocation through
// the admin path reaches the Syncer and denies the token). Run it alone:
//
//	go test ./issuer/ -run '^$' -bench '^BenchmarkSyncSnapshot$' -benchtime 1x -timeout 30m
func BenchmarkSyncSnapshot(b *testing.B) {
	scaleBenchmark(b)
	revocations := benchEnvInt(b, "WRIT_SYNC_REVOCATIONS", 1_000_000, 1000)
	env := newTestEnv(b)
	n, built := newRevokedNode(b, env, revocations, 0)
	t0 := time.Now()
	n.start()
	waitLong(b, "node ready after the build", 10*time.Minute, n.ready)
	is := n.is
	epoch, held := is.state.SyncEpoch()
	if held != revocations {
		b.Fatalf("node holds %d revocations, want %d", held, revocations)
	}
	waitLong(b, "a heartbeat", time.Minute, func() bool {
		_, hb, _ := is.sync.view()
		return hb != nil && hb.epoch == epoch
	})
	setup := fmt.Sprintf("%s; node ready in %s; disk: %s", built, time.Since(t0).Round(time.Millisecond), diskUsage(n.cfg.DataDir))
	url := "https://" + is.Addr()
	dropCache := func() {
		is.sync.mu.Lock()
		is.sync.snap = nil
		is.sync.mu.Unlock()
	}

	b.Run("issuer-build", func(b *testing.B) {
		b.Log(setup)
		var cold, cached time.Duration
		var alloc, above uint64
		var size int
		for range b.N {
			dropCache()
			runtime.GC()
			base := liveHeap()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			stopPeak := watchHeapPeak()
			t0 := time.Now()
			s, err := is.sync.snapshot()
			cold += time.Since(t0)
			peak := stopPeak()
			runtime.ReadMemStats(&m1)
			if err != nil {
				b.Fatal(err)
			}
			alloc += m1.TotalAlloc - m0.TotalAlloc
			above = max(above, peak-min(peak, base))
			t0 = time.Now()
			again, err := is.sync.snapshot()
			cached += time.Since(t0)
			if err != nil || again != s {
				b.Fatalf("second snapshot at the same epoch: %v, cached %v", err, again == s)
			}
			if s.epoch != epoch || s.entries != revocations {
				b.Fatalf("snapshot at epoch %d with %d entries, want %d with %d", s.epoch, s.entries, epoch, revocations)
			}
			size = len(s.frames)
		}
		b.ReportMetric(float64(cold.Microseconds())/1000/float64(b.N), "ms-first/op")
		b.ReportMetric(float64(cached.Nanoseconds())/1000/float64(b.N), "µs-cached/op")
		b.ReportMetric(float64(alloc)/1e6/float64(b.N), "alloc-MB/op")
		b.ReportMetric(float64(above)/1e6, "peak-heap-MB")
		b.ReportMetric(float64(size)/1e6, "snapshot-MB")
		b.ReportMetric(float64(size)/float64(revocations), "B/entry")
	})

	b.Run("wire", func(b *testing.B) {
		svid := benchSVID(b, env, benchServiceID)
		var took time.Duration
		var body, tcp int64
		for i := range b.N {
			var read atomic.Int64
			c := &http.Client{Transport: &http.Transport{
				TLSClientConfig:   tlsconfig.MTLSClientConfig(svid.X509SVID(), x509bundle.NewSet(env.ca.Bundle()), tlsconfig.AuthorizeID(nodeTestID)),
				DisableKeepAlives: true,
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					return &countingConn{Conn: conn, read: &read}, nil
				},
			}}
			t0 := time.Now()
			resp, err := c.Get(fmt.Sprintf("%s/v1/sync?since=0&instance=bench-wire-%d", url, i))
			if err != nil {
				b.Fatal(err)
			}
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			took += time.Since(t0)
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("GET /v1/sync: %v %s", err, resp.Status)
			}
			checkSnapshotAnswer(b, raw, epoch, revocations)
			body += int64(len(raw))
			tcp += read.Load()
		}
		b.ReportMetric(float64(took.Microseconds())/1000/float64(b.N), "ms/op")
		b.ReportMetric(float64(body)/1e6/float64(b.N), "body-MB")
		b.ReportMetric(float64(tcp)/1e6/float64(b.N), "tcp-read-MB")
		b.ReportMetric(float64(body)/float64(b.N)/float64(revocations), "body-B/entry")
	})

	instances := 0
	newSyncer := func(b *testing.B) *syncer.Syncer {
		instances++
		cfg := syncer.DefaultConfig()
		cfg.Issuers, cfg.IssuerID = []string{url}, nodeTestID
		cfg.SVID, cfg.Bundle = benchSVID(b, env, benchServiceID).X509SVID(), x509bundle.NewSet(env.ca.Bundle())
		cfg.Instance = fmt.Sprintf("bench-%d", instances)
		s, err := syncer.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	for _, cache := range []string{"cache-warm", "cache-dropped"} {
		b.Run("verifier/"+cache, func(b *testing.B) {
			if _, err := is.sync.snapshot(); err != nil { // warm, and kept out of the heap baseline
				b.Fatal(err)
			}
			var took time.Duration
			var grew int64
			for range b.N {
				before := liveHeap() // the node's snapshot cache is warm
				if cache == "cache-dropped" {
					dropCache() // and rebuilt by the Sync: the same size again
				}
				s := newSyncer(b)
				t0 := time.Now()
				err := s.Sync(context.Background())
				took += time.Since(t0)
				if err != nil {
					b.Fatal(err)
				}
				s.Close()
				grew += int64(liveHeap()) - int64(before)
				checkSynced(b, s, epoch, revocations, built.at)
				runtime.KeepAlive(s)
			}
			b.ReportMetric(float64(took.Microseconds())/1000/float64(b.N), "ms-e2e/op")
			b.ReportMetric(float64(grew)/1e6/float64(b.N), "verifier-MB")
			b.ReportMetric(float64(grew)/float64(b.N)/float64(revocations), "verifier-B/entry")
		})
	}

	b.Run("authorize", func(b *testing.B) {
		s := newSyncer(b)
		if err := s.Sync(context.Background()); err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		tok, tokenID := benchMint(b, env, url)
		now := time.Now() // after the heartbeat: the copy is fresh at this time
		empty, err := verifier.NewRevocationList()
		if err != nil {
			b.Fatal(err)
		}
		mk := func(rev verifier.RevocationSource, fresh verifier.FreshnessSource) *verifier.Verifier {
			cfg := verifier.DefaultConfig()
			cfg.Keys, cfg.Revocations, cfg.Freshness = s, rev, fresh
			cfg.Now = func() time.Time { return now }
			v, err := verifier.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			return v
		}
		variants := []struct {
			name string
			v    *verifier.Verifier
		}{
			{"empty-list", mk(empty, nil)},
			{"syncer", mk(s, s)},                // as deployed: revocations and freshness from the Syncer
			{"syncer-no-freshness", mk(s, nil)}, // the revocation lookups alone
		}
		ctx := context.Background()
		req := verifier.Request{Resource: "crm/contacts", Operation: "read", Presenter: nodeTestAgent.String()}
		for _, vr := range variants {
			if d := vr.v.Authorize(ctx, tok, req); !d.Allowed {
				b.Fatalf("%s: got %s (%s), want allowed", vr.name, d.Reason, d.Message)
			}
		}
		const rounds = 100_000
		times := make([][]time.Duration, len(variants))
		for range b.N {
			for r := range rounds {
				for k := range variants {
					j := (k + r) % len(variants) // each variant first in turn
					t0 := time.Now()
					d := variants[j].v.Authorize(ctx, tok, req)
					times[j] = append(times[j], time.Since(t0))
					if !d.Allowed {
						b.Fatalf("%s: got %s, want allowed", variants[j].name, d.Reason)
					}
				}
			}
		}
		p50 := make([]float64, len(variants))
		for k := range variants {
			slices.Sort(times[k])
			p50[k] = float64(times[k][len(times[k])/2].Nanoseconds())
			b.ReportMetric(p50[k], "p50-ns-"+variants[k].name)
		}
		b.ReportMetric(p50[1]/p50[0], "x-syncer/empty")
		b.ReportMetric(p50[2]/p50[0], "x-syncer-no-freshness/empty")

		// The list is enforced: a revocation through the admin path
		// reaches the Syncer and denies the token.
		if _, _, err := is.Revoke(ctx, benchRevokeAdmin, &revocationRecord{Kind: RevokeToken, ID: tokenID}); err != nil {
			b.Fatal(err)
		}
		if err := s.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		if _, held := is.state.SyncEpoch(); held != revocations+1 {
			b.Fatalf("node holds %d revocations, want %d", held, revocations+1)
		}
		if d := variants[1].v.Authorize(ctx, tok, req); d.Reason != spec.ReasonRevoked {
			b.Fatalf("after revoking the token: got %s (%s), want %s", d.Reason, d.Message, spec.ReasonRevoked)
		}
		if d := variants[0].v.Authorize(ctx, tok, req); !d.Allowed {
			b.Fatalf("empty list after revoking the token: got %s, want allowed", d.Reason)
		}
	})
}

// checkSnapshotAnswer decodes a GET /v1/sync answer: a snapshot of want
// entries at epoch, signed by a key inside it, then a heartbeat.
func checkSnapshotAnswer(b *testing.B, raw []byte, epoch uint64, want int) {
	b.Helper()
	r := syncwire.NewReader(bytes.NewReader(raw))
	got := 0
	r.Entries = func(batch []syncwire.Entry) error { got += len(batch); return nil }
	u, err := r.Next()
	if err != nil || u.Snapshot == nil {
		b.Fatalf("first unit: %v (snapshot %v)", err, u != nil && u.Snapshot != nil)
	}
	if err := u.VerifyBootstrap(); err != nil {
		b.Fatal(err)
	}
	if u.Snapshot.Epoch != epoch || got != want {
		b.Fatalf("snapshot at epoch %d with %d entries, want %d with %d", u.Snapshot.Epoch, got, epoch, want)
	}
	if u, err = r.Next(); err != nil || u.Heartbeat == nil || u.Heartbeat.Epoch != epoch {
		b.Fatalf("closing unit: %v, want a heartbeat at epoch %d", err, epoch)
	}
}

// checkSynced checks that s holds the built list at epoch: samples of
// each kind revoked, an id never revoked not.
func checkSynced(b *testing.B, s *syncer.Syncer, epoch uint64, revocations int, at time.Time) {
	b.Helper()
	if s.Epoch() != epoch {
		b.Fatalf("syncer at epoch %d, want %d", s.Epoch(), epoch)
	}
	for _, i := range []int{0, 49, 50, 94, 95, 99, revocations - 1} {
		r := benchRevocation(i, at)
		ok := false
		switch r.Kind {
		case RevokeAgent:
			ok = s.AgentRevoked(r.Agent, at.Add(-time.Second)) && !s.AgentRevoked(r.Agent, at.Add(time.Second))
		default:
			ok = s.Revoked(r.ID)
		}
		if !ok {
			b.Fatalf("syncer does not hold revocation %d (%s)", i, r.subject())
		}
	}
	id := benchID(revocations + 1_000_000) // never built
	if s.Revoked(hex.EncodeToString(id[:16])) || s.Revoked(hex.EncodeToString(id[:])) {
		b.Fatal("syncer holds an id never revoked")
	}
}

// benchSVID issues an X.509-SVID for id.
func benchSVID(b *testing.B, env *testEnv, id spiffeid.ID) *pki.SVID {
	b.Helper()
	svid, err := env.ca.IssueSVID(id, time.Now(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	return svid
}

// benchMint mints a token for the test agent at the node at url over
// mTLS and returns its bytes and id.
func benchMint(b *testing.B, env *testEnv, url string) ([]byte, string) {
	b.Helper()
	svid := benchSVID(b, env, nodeTestAgent)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: tlsconfig.MTLSClientConfig(svid.X509SVID(), x509bundle.NewSet(env.ca.Bundle()), tlsconfig.AuthorizeID(nodeTestID))}}
	defer c.CloseIdleConnections()
	resp, err := c.Post(url+"/v1/token", "application/json", bytes.NewReader([]byte(`{"rights":["crm/contacts:read"],"ttl":"5m"}`)))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var tr TokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("mint: %v %s", err, resp.Status)
	}
	tok, err := verifier.DecodeToken(tr.Token)
	if err != nil {
		b.Fatal(err)
	}
	return tok, tr.TokenID
}

// liveHeap returns the bytes of heap objects after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// scaleBenchmark skips the million-entry benchmarks (minutes each, over a
// GB of disk) unless WRIT_BENCH_SCALE is set, as `make bench-scale` does.
func scaleBenchmark(b *testing.B) {
	b.Helper()
	if os.Getenv("WRIT_BENCH_SCALE") == "" {
		b.Skip("million-entry benchmark: run `make bench-scale` (WRIT_BENCH_SCALE=1)")
	}
}
