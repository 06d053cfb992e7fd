package issuer_test

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
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
		for pb.Next() {
			resp, err := c.Post(f.url+"/v1/token", "application/json", bytes.NewReader(body))
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
