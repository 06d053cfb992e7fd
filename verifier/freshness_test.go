package verifier_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/issuer/mint"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

// Revocation of agents and root keys and the freshness of the revocation
// list (spec/sync.md §3, §5; token.md §2, §7), with tokens minted by
// issuer/mint and narrowed by attenuation, through the product verifier.

var (
	fNow    = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC) // the verifier's clock
	fIssued = fNow.Add(-time.Minute)                         // issued_at of the tokens
	fAgent  = "spiffe://acme.example/agents/support"
	fOther  = "spiffe://acme.example/agents/billing"
	fReq    = verifier.Request{Resource: "crm/contacts", Operation: "read"}
)

func fKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("writ freshness test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

var (
	fRoot1 = fKey("root 1") // id 1
	fRoot2 = fKey("root 2") // id 2
)

// fClaims are the claims of a plain token of fAgent: crm/contacts:read,
// issued at fIssued, expiring 5 minutes after fNow.
func fClaims() mint.Claims {
	return mint.Claims{
		Issuer:        "spiffe://acme.example/writ",
		Agent:         fAgent,
		IssuedAt:      fIssued,
		Expiry:        fNow.Add(5 * time.Minute),
		PolicyVersion: "sha256:" + strings.Repeat("9c", 32),
		Rights:        []spec.Right{{Resource: "crm/contacts", Operation: "read"}},
	}
}

func fMint(t testing.TB, key ed25519.PrivateKey, id uint32, c mint.Claims) []byte {
	t.Helper()
	tok, _, err := mint.Mint(nil, mint.Key{ID: id, Private: key}, c)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}

func fRestrict(t testing.TB, tok []byte, rs ...attenuation.Restriction) []byte {
	t.Helper()
	out, err := attenuation.Restricter{Now: func() time.Time { return fIssued }}.Restrict(tok, rs...)
	if err != nil {
		t.Fatalf("restrict: %v", err)
	}
	return out
}

// revocableKeys is a KeySet whose keys can be revoked: a
// KeyRevocationSource, as the sync client's key set is.
type revocableKeys struct {
	*verifier.KeySet
	mu      sync.Mutex
	revoked map[uint32]bool
	// hide: RootKey does not return revoked keys (as the sync client's
	// key set does), so only KeyRevoked can tell revoked from unknown.
	hide bool
}

func (k *revocableKeys) RootKey(id uint32) (verifier.RootKey, bool) {
	if k.hide && k.KeyRevoked(id) {
		return verifier.RootKey{}, false
	}
	return k.KeySet.RootKey(id)
}

func newRevocableKeys(t testing.TB) *revocableKeys {
	t.Helper()
	ks, err := verifier.NewKeySet(
		verifier.RootKey{ID: 1, Public: fRoot1.Public().(ed25519.PublicKey)},
		verifier.RootKey{ID: 2, Public: fRoot2.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	return &revocableKeys{KeySet: ks, revoked: map[uint32]bool{}}
}

func (k *revocableKeys) KeyRevoked(id uint32) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.revoked[id]
}

func (k *revocableKeys) set(id uint32, revoked bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.revoked[id] = revoked
}

// agentList is a RevocationList that also revokes agents: every token of
// an agent issued before the agent's time (sync.md §3, entry kind 3).
type agentList struct {
	*verifier.RevocationList
	mu     sync.RWMutex
	agents map[string]time.Time
}

func newAgentList(t testing.TB, ids ...string) *agentList {
	t.Helper()
	l, err := verifier.NewRevocationList(ids...)
	if err != nil {
		t.Fatal(err)
	}
	return &agentList{RevocationList: l, agents: map[string]time.Time{}}
}

func (l *agentList) AgentRevoked(agent string, issuedAt time.Time) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	before, ok := l.agents[agent]
	return ok && issuedAt.Before(before)
}

// freshness is a FreshnessSource: current as of asOf, or never when !ok.
type freshness struct {
	mu   sync.Mutex
	asOf time.Time
	ok   bool
}

func (f *freshness) CurrentAsOf() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asOf, f.ok
}

// fVerifier returns a verifier at fNow (cache on) over keys and revs,
// with fresh as its FreshnessSource when it is not nil.
func fVerifier(t testing.TB, keys verifier.KeySource, revs verifier.RevocationSource, fresh verifier.FreshnessSource, mod func(*verifier.Config)) *verifier.Verifier {
	t.Helper()
	cfg := verifier.DefaultConfig()
	cfg.Keys = keys
	cfg.Revocations = revs
	cfg.Freshness = fresh
	cfg.Now = func() time.Time { return fNow }
	if mod != nil {
		mod(&cfg)
	}
	v, err := verifier.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// authorizeTwice decides tok at first sight and again from the cache and
// returns the second decision; both must agree.
func authorizeTwice(t *testing.T, v *verifier.Verifier, tok []byte, req verifier.Request) verifier.Decision {
	t.Helper()
	first := v.Authorize(context.Background(), tok, req)
	second := v.Authorize(context.Background(), tok, req)
	if first.Reason != second.Reason || len(first.FailedChecks) != len(second.FailedChecks) {
		t.Fatalf("first sight %s (%d failed checks), from the cache %s (%d): want the same", first.Reason, len(first.FailedChecks), second.Reason, len(second.FailedChecks))
	}
	return second
}

func TestAgentRevocation(t *testing.T) {
	keys := newRevocableKeys(t)
	plain := fMint(t, fRoot1, 1, fClaims())
	late := fClaims()
	late.IssuedAt = fIssued.Add(700 * time.Millisecond) // issued_at is rounded down to fIssued
	lateTok := fMint(t, fRoot1, 1, late)
	for _, tc := range []struct {
		name   string
		agent  string
		before time.Time
		token  []byte
		want   string
	}{
		{"fail/revoked-after-issue", fAgent, fIssued.Add(time.Second), plain, spec.ReasonRevoked},
		{"fail/revoked-after-issue-attenuated", fAgent, fIssued.Add(time.Second), fRestrict(t, plain, attenuation.MaxRecords(5)), spec.ReasonRevoked},
		{"fail/issued-within-the-revocation-second", fAgent, fIssued.Add(500 * time.Millisecond), lateTok, spec.ReasonRevoked},
		{"ok/revoked-at-issue-instant", fAgent, fIssued, plain, spec.ReasonAllowed},
		{"ok/revoked-before-issue", fAgent, fIssued.Add(-time.Second), plain, spec.ReasonAllowed},
		{"ok/other-agent-revoked", fOther, fNow, plain, spec.ReasonAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			revs := newAgentList(t)
			revs.agents[tc.agent] = tc.before
			d := authorizeTwice(t, fVerifier(t, keys, revs, nil, nil), tc.token, fReq)
			if d.Reason != tc.want {
				t.Fatalf("got %s (%s), want %s", d.Reason, d.Message, tc.want)
			}
			if d.Reason == spec.ReasonRevoked && (d.Agent != fAgent || d.TokenID == "") {
				t.Errorf("got agent %q, token id %q in the decision, want %q and the token's id", d.Agent, d.TokenID, fAgent)
			}
		})
	}
}

// A root key revoked after a token was cached revokes the cached token:
// key revocation is asked on every call, not only at first sight.
func TestKeyRevocationReachesCachedTokens(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		hide bool
	}{{"no-cache", 0, false}, {"cache", verifier.DefaultCacheSize, false}, {"cache/source-hides-revoked-keys", verifier.DefaultCacheSize, true}} {
		size := tc.size
		t.Run(tc.name, func(t *testing.T) {
			keys := newRevocableKeys(t)
			keys.hide = tc.hide
			v := fVerifier(t, keys, nil, nil, func(c *verifier.Config) { c.CacheSize = size })
			tok1 := fMint(t, fRoot1, 1, fClaims())
			tok2 := fMint(t, fRoot2, 2, fClaims())
			child := fRestrict(t, tok1, attenuation.MaxRecords(5))
			ctx := context.Background()
			step := func(name string, tok []byte, want string) {
				t.Helper()
				if d := v.Authorize(ctx, tok, fReq); d.Reason != want {
					t.Errorf("%s: got %s (%s), want %s", name, d.Reason, d.Message, want)
				}
			}
			step("ok/key-1-before-revocation", tok1, spec.ReasonAllowed)
			step("ok/key-2-before-revocation", tok2, spec.ReasonAllowed)
			keys.set(1, true)
			step("fail/key-1-revoked-cached-token", tok1, spec.ReasonRevoked)
			step("fail/key-1-revoked-first-sight-attenuated", child, spec.ReasonRevoked)
			step("ok/key-2-unaffected", tok2, spec.ReasonAllowed)
			keys.set(1, false)
			step("ok/key-1-trusted-again", tok1, spec.ReasonAllowed)
		})
	}
}

func TestFreshness(t *testing.T) {
	plain := fMint(t, fRoot1, 1, fClaims())
	withBound := func(d time.Duration) []byte {
		c := fClaims()
		c.MaxStaleness = d
		return fMint(t, fRoot1, 1, c)
	}
	bound2s, bound10s := withBound(2*time.Second), withBound(10*time.Second)
	revokedClaims := fClaims()
	revokedClaims.TokenID = strings.Repeat("ab", 16)
	revokedTok := fMint(t, fRoot1, 1, revokedClaims)

	const (
		allowed = spec.ReasonAllowed
		stale   = spec.ReasonRevocationStale
	)
	none := time.Duration(-1) // no FreshnessSource
	for _, tc := range []struct {
		name   string
		token  []byte
		age    time.Duration // staleness; none: no FreshnessSource
		never  bool          // the source was never current
		bound  time.Duration // Config.MaxStaleness; 0: the default
		at     time.Time     // the clock; zero: fNow
		want   string
		failed int // failed checks listed
	}{
		{name: "fail/never-current", token: plain, never: true, want: stale},
		{name: "ok/fresh", token: plain, age: time.Second, want: allowed},
		{name: "ok/at-verifier-bound", token: plain, age: verifier.DefaultMaxStaleness, want: allowed},
		{name: "fail/beyond-verifier-bound", token: plain, age: verifier.DefaultMaxStaleness + time.Millisecond, want: stale},
		{name: "fail/beyond-configured-bound", token: plain, age: 6 * time.Second, bound: 5 * time.Second, want: stale},
		{name: "ok/configured-bound-wider", token: plain, age: 2 * time.Minute, bound: 5 * time.Minute, want: allowed},
		{name: "ok/clock-behind-issuer", token: bound2s, age: -5 * time.Second, want: allowed},
		{name: "ok/no-freshness-source-static-list", token: plain, age: none, want: allowed},

		// The token's own bound (max_staleness, token.md §2).
		{name: "ok/token-bound-fresh", token: bound2s, age: time.Second, want: allowed},
		{name: "ok/token-bound-exact", token: bound2s, age: 2 * time.Second, want: allowed},
		{name: "fail/token-bound-by-a-microsecond", token: bound2s, age: 2*time.Second + time.Microsecond, want: stale, failed: 1},
		{name: "fail/token-bound-exceeded", token: bound2s, age: 3 * time.Second, want: stale, failed: 1},
		{name: "ok/token-without-bound-same-staleness", token: plain, age: 3 * time.Second, want: allowed},
		{name: "fail/token-bound-without-freshness-source", token: bound2s, age: none, want: stale, failed: 1},
		{name: "fail/verifier-bound-tighter-than-token", token: bound10s, age: 6 * time.Second, bound: 5 * time.Second, want: stale},

		// Attenuation can add a bound, never remove or widen one.
		{name: "ok/parent-bound-10s", token: bound10s, age: 3 * time.Second, want: allowed},
		{name: "fail/attenuation-narrows-to-2s", token: fRestrict(t, bound10s, attenuation.MaxStaleness(2*time.Second)), age: 3 * time.Second, want: stale, failed: 1},
		{name: "fail/attenuation-adds-bound", token: fRestrict(t, plain, attenuation.MaxStaleness(2*time.Second)), age: 3 * time.Second, want: stale, failed: 1},
		{name: "fail/attenuation-cannot-widen", token: fRestrict(t, bound2s, attenuation.MaxStaleness(20*time.Second)), age: 3 * time.Second, want: stale, failed: 1},
		{name: "ok/attenuated-bound-met", token: fRestrict(t, bound10s, attenuation.MaxStaleness(2*time.Second)), age: 1500 * time.Millisecond, want: allowed},

		// Order: revoked before stale, stale before the checks' reasons.
		{name: "fail/revoked-wins-over-never-current", token: revokedTok, never: true, want: spec.ReasonRevoked},
		{name: "fail/stale-wins-over-expired", token: bound2s, age: 3 * time.Second, at: fNow.Add(time.Hour), want: stale, failed: 2},
		{name: "fail/expired-when-fresh", token: bound2s, age: time.Second, at: fNow.Add(time.Hour), want: spec.ReasonExpired, failed: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.at
			if now.IsZero() {
				now = fNow
			}
			var src verifier.FreshnessSource
			if tc.age != none || tc.never {
				src = &freshness{asOf: now.Add(-tc.age), ok: !tc.never}
			}
			v := fVerifier(t, newRevocableKeys(t), newAgentList(t, revokedClaims.TokenID), src, func(c *verifier.Config) {
				c.Now = func() time.Time { return now }
				if tc.bound != 0 {
					c.MaxStaleness = tc.bound
				}
			})
			d := authorizeTwice(t, v, tc.token, fReq)
			if d.Reason != tc.want || len(d.FailedChecks) != tc.failed {
				t.Fatalf("got %s with %d failed checks (%s), want %s with %d", d.Reason, len(d.FailedChecks), d.Message, tc.want, tc.failed)
			}
			if d.Allowed != (tc.want == allowed) {
				t.Errorf("got allowed %v with reason %s", d.Allowed, d.Reason)
			}
			for _, fc := range d.FailedChecks {
				if strings.Contains(fc.Check, spec.AmbientRevocationAge) && fc.Reason != stale {
					t.Errorf("failed check %q: got reason %s, want %s", fc.Check, fc.Reason, stale)
				}
			}
		})
	}
}

// The freshness source is asked on every call: a verifier that falls
// behind refuses the tokens it accepted a moment ago, cached or not, and
// accepts them again once current.
func TestFreshnessFollowsSource(t *testing.T) {
	src := &freshness{asOf: fNow, ok: true}
	v := fVerifier(t, newRevocableKeys(t), nil, src, nil)
	c := fClaims()
	c.MaxStaleness = 2 * time.Second
	tok := fMint(t, fRoot1, 1, c)
	ctx := context.Background()
	for i, step := range []struct {
		asOf time.Time
		want string
	}{
		{fNow, spec.ReasonAllowed},
		{fNow.Add(-3 * time.Second), spec.ReasonRevocationStale},
		{fNow.Add(-time.Hour), spec.ReasonRevocationStale},
		{fNow.Add(-time.Second), spec.ReasonAllowed},
	} {
		src.mu.Lock()
		src.asOf = step.asOf
		src.mu.Unlock()
		if d := v.Authorize(ctx, tok, fReq); d.Reason != step.want {
			t.Errorf("step %d (staleness %v): got %s (%s), want %s", i, fNow.Sub(step.asOf), d.Reason, d.Message, step.want)
		}
	}
}
