package issuer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ/issuer"
)

// BenchmarkMintHTTP measures tokens minted through the HTTP API of one
// node over keep-alive mTLS connections, audit committed through raft
// (pebble on disk, synced), with 32 concurrent clients. Compare its
// tokens/s with BenchmarkBareBiscuitMint in issuer/mint from the same run.
func BenchmarkMintHTTP(b *testing.B) {

	f := newFixture(b)
	c := f.client(f.svid(supportID))
	body := []byte(`{"rights":["crm/contacts:read","crm/notes/*:read"],"ttl":"5m"}`)
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() && mintOK(b, c, f.url, body) {
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tokens/s")
}

// BenchmarkMintByCredential compares the three ways to ask for a token on
// one node in the same run: JSON over mTLS (X.509-SVID), JSON with a
// JWT-SVID bearer header and no client certificate, and RFC 8693 token
// exchange with the JWT-SVID as subject_token. Each reports tokens/s and
// the p50/p99 latency of a request; 16 concurrent clients on keep-alive
// connections, audit committed through raft.
func BenchmarkMintByCredential(b *testing.B) {
	f := newFixture(b)
	jwt := f.jwtSVID(supportID, []string{issuerID.String()}, 5*time.Minute)
	jsonBody := []byte(`{"rights":["crm/contacts:read","crm/notes/*:read"],"ttl":"5m"}`)
	form := f.exchangeForm(jwt, "crm/contacts:read crm/notes/*:read").Encode()
	for _, tc := range []struct {
		name string
		c    *http.Client
		req  func() *http.Request
	}{
		{"mtls", f.client(f.svid(supportID)), func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, f.url+"/v1/token", bytes.NewReader(jsonBody))
			r.Header.Set("Content-Type", "application/json")
			return r
		}},
		{"jwt-bearer", f.client(nil), func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, f.url+"/v1/token", bytes.NewReader(jsonBody))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer "+jwt)
			return r
		}},
		{"token-exchange", f.client(nil), func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, f.url+"/v1/token", strings.NewReader(form))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var mu sync.Mutex
			lat := make([]time.Duration, 0, b.N)
			b.SetParallelism(8) // 16 clients on 2 cores
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					t0 := time.Now()
					resp, err := tc.c.Do(tc.req())
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "tokens/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}

// BenchmarkMintCluster compares mint throughput of one node with a
// three-node cluster in the same run (all nodes share this machine's
// cores and disk). clients=all-nodes spreads clients over the three nodes,
// so two thirds of the audit batches are forwarded to the leader;
// clients=leader-only sends all to the leader, isolating the cost of
// replication from the cost of forwarding. parallelism × GOMAXPROCS
// clients mint: at 16 (32 clients) the cluster is latency-bound (each
// audit commit waits for fsyncs of two nodes on one disk in turn), at 64
// (128 clients) both sides are closer to being bound by signing and TLS.
// It also reports the latency of policy writes (PUT /v1/admin/policy) sent to a
// follower.
func BenchmarkMintCluster(b *testing.B) {
	for _, bc := range []struct {
		nodes       int
		leaderOnly  bool
		parallelism int
	}{{1, false, 16}, {3, false, 16}, {3, true, 16}, {1, false, 64}, {3, false, 64}} {
		name := fmt.Sprintf("nodes=%d/clients=all-nodes", bc.nodes)
		if bc.leaderOnly {
			name = fmt.Sprintf("nodes=%d/clients=leader-only", bc.nodes)
		}
		name += fmt.Sprintf("/parallelism=%d", bc.parallelism)
		nodes := bc.nodes
		b.Run(name, func(b *testing.B) {
			f := newFixture(b)
			f.stop()
			members := []*member{startMember(b, f, "writ-1", true)}
			waitFor(b, "writ-1 ready", func() bool { return memberReady(f, members[0]) })
			admin := f.client(f.svid(adminID))
			for i := 2; i <= nodes; i++ {
				m := startMember(b, f, fmt.Sprintf("writ-%d", i), false)
				body, _ := json.Marshal(issuer.JoinRequest{NodeID: m.id, RaftAddr: m.is.RaftAddr(), APIAddr: m.is.Addr()})
				if r, err := f.at(members[0].url).do(admin, http.MethodPost, "/v1/admin/cluster/join", body, nil); err != nil || r.status != 200 {
					b.Fatalf("join: %v %d", err, r.status)
				}
				members = append(members, m)
			}
			for _, m := range members {
				waitFor(b, m.id+" ready", func() bool { return memberReady(f, m) })
			}
			clients := make([]*http.Client, len(members))
			for i := range members {
				clients[i] = f.client(f.svid(supportID))
			}
			body := []byte(`{"rights":["crm/contacts:read","crm/notes/*:read"],"ttl":"5m"}`)
			var next atomic.Int64
			b.SetParallelism(bc.parallelism)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1)) % len(members)
				if bc.leaderOnly {
					i = 0
				}
				c, url := clients[i], members[i].url
				for pb.Next() && mintOK(b, c, url, body) {
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tokens/s")
			b.StopTimer()
			// Policy writes at the last node (a follower when nodes > 1).
			var lat []time.Duration
			for i := 0; i < 100; i++ {
				t0 := time.Now()
				r, err := f.at(members[len(members)-1].url).do(admin, http.MethodPut, "/v1/admin/policy", []byte(fmt.Sprintf("%s  # %d\n", testPolicy, i)), nil)
				if err != nil || r.status != 200 {
					b.Fatalf("policy write: %v %d", err, r.status)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "policy-p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "policy-p99-µs")
		})
	}
}

func memberReady(f *fixture, m *member) bool {
	r, err := f.at(m.url).do(f.client(nil), http.MethodGet, "/readyz", nil, nil)
	return err == nil && r.status == 200
}

// mintOK posts one JSON token request and reports whether it got a token;
// a failure is reported on b.
func mintOK(b *testing.B, c *http.Client, url string, body []byte) bool {
	resp, err := c.Post(url+"/v1/token", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Error(err)
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("status %d", resp.StatusCode)
		return false
	}
	return true
}

// BenchmarkPropagation measures how long a revocation takes to reach 100
// verifiers polling /v1/sync over their own mTLS connections on
// loopback: from the admin API's acknowledgement of the revocation to
// each verifier having applied it (signature checked). Reports p50/p99
// over every (revocation, verifier) pair, and the time until the last of
// the 100 had it. One node; nodes=3 spreads the verifiers over a
// three-node cluster and revokes at a follower.
func BenchmarkPropagation(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d/verifiers=100", nodes), func(b *testing.B) {
			f := newFixture(b)
			urls := []string{f.url}
			if nodes > 1 {
				f.stop()
				urls = nil
				for _, m := range startCluster(b, f, nodes) {
					urls = append(urls, m.url)
				}
			}
			const n = 100
			var (
				mu      sync.Mutex
				applied = map[uint64][]time.Time{}
			)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var pollers []*poller
			for i := range n {
				p := newPoller(f.at(urls[i%len(urls)]), fmt.Sprintf("bench-%d", i))
				p.onApply = func(epoch uint64, at time.Time) {
					mu.Lock()
					applied[epoch] = append(applied[epoch], at)
					mu.Unlock()
				}
				pollers = append(pollers, p)
				go p.run(ctx)
			}
			for _, p := range pollers {
				waitFor(b, "verifier snapshot", func() bool { e, _, _ := p.state(); return e > 0 })
			}
			admin := f.at(urls[len(urls)-1]).client(f.svid(adminID))
			var lat, fromSent, last []float64
			b.ResetTimer()
			for range b.N {
				body := []byte(`{"kind":"token","id":"` + randHex(16) + `"}`)
				sent := time.Now()
				r, err := f.at(urls[len(urls)-1]).do(admin, http.MethodPost, "/v1/admin/revocations", body, nil)
				acked := time.Now()
				if err != nil || r.status != 200 {
					b.Fatalf("revoke: %v %d %s", err, r.status, r.body)
				}
				var res issuer.RevokeResult
				json.Unmarshal(r.body, &res)
				waitFor(b, "all verifiers", func() bool {
					mu.Lock()
					defer mu.Unlock()
					return len(applied[res.Epoch]) >= n
				})
				mu.Lock()
				worst := 0.0
				for _, at := range applied[res.Epoch] {
					ms := float64(at.Sub(acked).Microseconds()) / 1000
					lat = append(lat, ms)
					fromSent = append(fromSent, float64(at.Sub(sent).Microseconds())/1000)
					worst = max(worst, ms)
				}
				delete(applied, res.Epoch)
				mu.Unlock()
				last = append(last, worst)
			}
			b.StopTimer()
			slices.Sort(lat)
			slices.Sort(last)
			slices.Sort(fromSent)
			// From the acknowledgement: negative when a verifier applied
			// the change before the admin got its answer (at a follower,
			// the answer waits for the follower to apply; verifiers of the
			// leader may be faster).
			b.ReportMetric(lat[len(lat)/2], "p50-ms")
			b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
			b.ReportMetric(fromSent[len(fromSent)/2], "p50-from-request-ms")
			b.ReportMetric(fromSent[len(fromSent)*99/100], "p99-from-request-ms")
			b.ReportMetric(last[len(last)-1], "max-last-ms")
		})
	}
}
