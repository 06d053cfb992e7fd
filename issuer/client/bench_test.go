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
		c := newClient(b, f.config(supportID, nil))
		b.ReportAllocs()
		var last *client.Token
		for b.Loop() {
			f.clock.Advance(4 * time.Minute) // past renewal of a 5 minute token
			tok, err := c.Token(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			if tok == last {
				b.Fatal("no renewal")
			}
			last = tok
		}
	})
}
