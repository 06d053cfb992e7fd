package client_test

import (
	"testing"
	"time"

	"github.com/writ-dev/writ/issuer/client"
)

// BenchmarkToken measures Token: cached hits (the cost every outgoing
// request pays through Transport) and renewals (one mTLS request to a real
// in-process issuer over a kept-alive connection, audit commit included).
func BenchmarkToken(b *testing.B) {
	f := newFixture(b)
	cfg := f.config(supportID, nil)
	cfg.Now = time.Now // the fake clock's mutex would dominate cached hits
	c := newClient(b, cfg)
	if _, err := c.Token(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Token(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Token(b.Context()); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("renewal", func(b *testing.B) {
		// Each iteration renews once: a fresh client fetches its first
		// token (not timed, it opens the connection), the clock moves past
		// the renewal point, and the timed Token renews over the kept-alive
		// connection. The clock is rewound every iteration: advancing it
		// for ever would outlive the test certificates (make bench runs
		// thousands of iterations).
		base := f.clock.Now()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			f.clock.Set(base)
			c, err := client.New(f.config(supportID, nil))
			if err != nil {
				b.Fatal(err)
			}
			first, err := c.Token(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			f.clock.Advance(4 * time.Minute) // past renewal of a 5 minute token
			b.StartTimer()
			tok, err := c.Token(b.Context())
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if tok == first {
				b.Fatal("no renewal")
			}
			c.Close()
		}
	})
}
