package verifier

import (
	"github.com/writ-dev/writ/spec"

	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"
	"github.com/biscuit-auth/biscuit-go/v2/pb"
	"google.golang.org/protobuf/proto"
)

// The benchmark token: the default authority block (8 facts, expiry)
// with presenter binding, and 3 attenuation blocks as an agent would add
// them: rights, expiry and presenter, records and fields. Verifying it
// from scratch costs 4 ed25519.Verify and one key derivation from the
// proof's seed: BenchmarkVerifyFloor.
func benchToken(b testing.TB) ([]byte, Request) {
	agent := "spiffe://acme.example/agents/support"
	tok := stdToken(b, authorityWith(setCheck("presenter", agent)),
		[]biscuit.Check{rightsCheck(mustRight("crm/contacts:read"), mustRight("crm/notes/*:read"))},
		[]biscuit.Check{expiryCheck(coreTestNow.Add(time.Minute)), setCheck("presenter", agent)},
		[]biscuit.Check{recordsCheck(50), setCheck("fields", "name", "email")},
	)
	return tok, Request{Resource: "crm/notes/42", Operation: "read", Presenter: agent}
}

// timed runs f b.N times and also reports the median of single runs
// (p50-ns), which the load of other processes disturbs less than the mean.
func timed(b *testing.B, f func()) {
	times := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		f()
		times[i] = time.Since(start)
	}
	b.StopTimer()
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "p50-ns")
}

func benchAuthorize(b *testing.B, v *Verifier, tok []byte, req Request) {
	ctx := context.Background()
	if d := v.Authorize(ctx, tok, req); !d.Allowed {
		b.Fatalf("got %q (%s), want allowed", d.Reason, d.Message)
	}
	timed(b, func() { v.Authorize(ctx, tok, req) })
}

// BenchmarkVerifyFirstSight: decode, limits, compile, 4 signatures, proof
// and evaluation of a token never seen (the cache is disabled).
func BenchmarkVerifyFirstSight(b *testing.B) {
	tok, req := benchToken(b)
	benchAuthorize(b, coreVerifier(b, func(c *Config) { c.CacheSize = 0 }), tok, req)
}

// BenchmarkVerifyFloor: the cryptography alone, the floor of first sight.
func BenchmarkVerifyFloor(b *testing.B) {
	tok, _ := benchToken(b)
	timed(b, cryptoFloor(b, tok))
}

// BenchmarkVerifyFirstSightOverFloor alternates one first-sight
// verification and one floor, timing each, so that both see the same
// machine load; it reports their ratio (x-floor), the number the first
// sight target is about.
func BenchmarkVerifyFirstSightOverFloor(b *testing.B) {
	tok, req := benchToken(b)
	floor := cryptoFloor(b, tok)
	v := coreVerifier(b, func(c *Config) { c.CacheSize = 0 })
	ctx := context.Background()
	var first, base time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		floor()
		t1 := time.Now()
		v.Authorize(ctx, tok, req)
		first += time.Since(t1)
		base += t1.Sub(t0)
	}
	b.ReportMetric(float64(first)/float64(base), "x-floor")
}

// cryptoFloor returns a function doing the cryptography of verifying tok
// from scratch: one ed25519.Verify per block and one key derivation from
// the proof's seed.
func cryptoFloor(b testing.TB, tok []byte) func() {
	var c pb.Biscuit
	if err := proto.Unmarshal(tok, &c); err != nil {
		b.Fatal(err)
	}
	signed := append([]*pb.SignedBlock{c.Authority}, c.Blocks...)
	msgs := make([][]byte, len(signed))
	keys := make([]ed25519.PublicKey, len(signed))
	keys[0] = coreRoot1.Public().(ed25519.PublicKey)
	for i, sb := range signed {
		msgs[i] = append(append(append([]byte{}, sb.Block...), 0, 0, 0, 0), sb.NextKey.Key...)
		if i > 0 {
			keys[i] = signed[i-1].NextKey.Key
		}
	}
	seed := c.Proof.GetNextSecret()
	if len(signed) != 4 {
		b.Fatalf("got %d blocks, want 4", len(signed))
	}
	return func() {
		for i := range signed {
			if !ed25519.Verify(keys[i], msgs[i], signed[i].Signature) {
				b.Fatal("signature does not verify")
			}
		}
		_ = ed25519.NewKeyFromSeed(seed).Public()
	}
}

// BenchmarkVerifySeen: a token already verified (cache hit): hashing,
// revocation of 4 blocks and the token id, ambient facts, 7 checks and the
// policy.
func BenchmarkVerifySeen(b *testing.B) {
	tok, req := benchToken(b)
	revs := coreRevocations{"00": true}
	v := coreVerifier(b, func(c *Config) { c.Revocations = revs })
	ctx := context.Background()
	if d := v.Authorize(ctx, tok, req); !d.Allowed {
		b.Fatalf("got %q (%s), want allowed", d.Reason, d.Message)
	}
	timed(b, func() { v.Authorize(ctx, tok, req) })
}

// BenchmarkEd25519Verify: one signature, the unit the targets compare to.
func BenchmarkEd25519Verify(b *testing.B) {
	tok, _ := benchToken(b)
	var c pb.Biscuit
	if err := proto.Unmarshal(tok, &c); err != nil {
		b.Fatal(err)
	}
	msg := append(append(append([]byte{}, c.Authority.Block...), 0, 0, 0, 0), c.Authority.NextKey.Key...)
	pub := coreRoot1.Public().(ed25519.PublicKey)
	timed(b, func() {
		if !ed25519.Verify(pub, msg, c.Authority.Signature) {
			b.Fatal("signature does not verify")
		}
	})
}

// BenchmarkAdversarial measures the time to deny each hostile token of the
// reason table (limit violations: join and fact bombs, huge blocks, deep
// expressions, 64 KiB regexes, …), first sight every time (the cache only
// holds verified tokens, so a hostile token is decoded again on each call).
// The target is ≤ 10 ms per denial; TestAuthorizeReasons checks that no
// goroutine is left behind.
func BenchmarkAdversarial(b *testing.B) {
	for _, tc := range coreAuthCases() {
		if tc.want != spec.ReasonLimitsExceeded || tc.req != nil {
			continue
		}
		b.Run(strings.TrimPrefix(tc.name, "fail/"), func(b *testing.B) {
			tok := tc.token(b)
			v := coreVerifier(b, tc.cfg)
			for b.Loop() {
				if d := v.Authorize(context.Background(), tok, coreReq); d.Reason != tc.want {
					b.Fatalf("reason %s, want %s", d.Reason, tc.want)
				}
			}
		})
	}
}

// benchAgentRevocations is a RevocationList that also revokes agents, as
// the sync client's state does: a read-locked map from agent to the time
// before which its tokens are revoked, in Unix milliseconds.
type benchAgentRevocations struct {
	*RevocationList
	mu     sync.RWMutex
	agents map[string]int64
}

func (r *benchAgentRevocations) AgentRevoked(agent string, issuedAt time.Time) bool {
	r.mu.RLock()
	before, ok := r.agents[agent]
	r.mu.RUnlock()
	return ok && issuedAt.UnixMilli() < before
}

// benchRevocableKeys adds key revocation to a KeySource.
type benchRevocableKeys struct {
	KeySource
	mu      sync.RWMutex
	revoked map[uint32]bool
}

func (k *benchRevocableKeys) KeyRevoked(id uint32) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.revoked[id]
}

// benchFreshness is current as of an atomically stored Unix millisecond.
type benchFreshness struct{ asOf atomic.Int64 }

func (f *benchFreshness) CurrentAsOf() (time.Time, bool) {
	return time.UnixMilli(f.asOf.Load()), true
}

// BenchmarkAuthorizeRevocationSources compares a cached Authorize with
// the sources of a synced verifier (agent revocations among 1,000
// revoked agents, key revocation, freshness and its revocation_age fact)
// with one with a plain revocation list, alternating the two on every
// iteration so both see the same machine load. It reports both times and
// their ratio (x-base).
func BenchmarkAuthorizeRevocationSources(b *testing.B) {
	tok, req := benchToken(b)
	list := func() *RevocationList {
		l, err := NewRevocationList(strings.Repeat("ab", 16), strings.Repeat("cd", 64))
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	base := coreVerifier(b, func(c *Config) { c.Revocations = list() })
	agents := &benchAgentRevocations{RevocationList: list(), agents: make(map[string]int64)}
	for i := range 1000 {
		agents.agents[fmt.Sprintf("spiffe://acme.example/agents/revoked-%d", i)] = coreTestNow.UnixMilli()
	}
	fresh := &benchFreshness{}
	fresh.asOf.Store(coreTestNow.Add(-800 * time.Millisecond).UnixMilli())
	synced := coreVerifier(b, func(c *Config) {
		c.Revocations = agents
		c.Keys = &benchRevocableKeys{KeySource: coreKeys(), revoked: map[uint32]bool{7: true}}
		c.Freshness = fresh
	})
	ctx := context.Background()
	for _, v := range []*Verifier{base, synced} {
		if d := v.Authorize(ctx, tok, req); !d.Allowed {
			b.Fatalf("got %q (%s), want allowed", d.Reason, d.Message)
		}
	}
	var tBase, tSynced time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		first, second, t1st, t2nd := base, synced, &tBase, &tSynced
		if i%2 == 1 { // alternate which runs first: the second one finds warmer caches
			first, second, t1st, t2nd = synced, base, &tSynced, &tBase
		}
		t0 := time.Now()
		first.Authorize(ctx, tok, req)
		t1 := time.Now()
		second.Authorize(ctx, tok, req)
		*t2nd += time.Since(t1)
		*t1st += t1.Sub(t0)
	}
	b.StopTimer()
	b.ReportMetric(float64(tBase.Nanoseconds())/float64(b.N), "base-ns")
	b.ReportMetric(float64(tSynced.Nanoseconds())/float64(b.N), "synced-ns")
	b.ReportMetric(float64(tSynced)/float64(tBase), "x-base")
}
