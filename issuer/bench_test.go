package issuer_test

import (
	"bytes"
	"io"
	"net/http"
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
