package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.uber.org/goleak"

	"github.com/writ-dev/writ/internal/pki"
	"github.com/writ-dev/writ/issuer/client"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

// fixedRand makes jitter deterministic.
func fixedRand(v float64) func() float64 { return func() float64 { return v } }

func TestTokenEndToEnd(t *testing.T) {
	f := newFixture(t)
	jwtPath := filepath.Join(t.TempDir(), "jwt-svid")
	if err := os.WriteFile(jwtPath, []byte(f.jwt.sign(t, supportID, issuerID.String(), time.Now(), 2*time.Minute)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vcfg := verifier.DefaultConfig()
	vcfg.Keys, vcfg.Now, vcfg.Service = f.keys(), f.clock.Now, crmID.String()
	v, err := verifier.New(vcfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		credential string // as the issuer's audit record names it
		set        func(*client.Config)
	}{
		{"ok/x509-svid", "x509-svid", func(*client.Config) {}},
		{"ok/jwt-svid", "jwt-svid", func(c *client.Config) { c.X509SVID, c.JWTSVID = nil, f.jwt }},
		{"ok/jwt-svid-file", "jwt-svid", func(c *client.Config) { c.X509SVID, c.JWTSVID = nil, client.JWTFile(jwtPath) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			cfg := f.config(supportID, rec)
			cfg.Rights = []string{"crm/contacts:read", "crm/notes/7:read", "crm/contacts:write"}
			cfg.TTL = 5 * time.Minute
			tc.set(&cfg)
			c := newClient(t, cfg)
			tok, err := c.Token(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got, want := strings.Join(tok.Granted, ","), "crm/contacts:read,crm/notes/7:read"; got != want {
				t.Errorf("granted: got %s, want %s", got, want)
			}
			if len(tok.Denied) != 1 || tok.Denied[0].Right != "crm/contacts:write" || tok.Denied[0].Reason == "" {
				t.Errorf("denied: got %+v, want crm/contacts:write with a reason", tok.Denied)
			}
			if want := f.clock.Now().Add(5 * time.Minute); !tok.ExpiresAt.Equal(want) {
				t.Errorf("expires at: got %v, want %v", tok.ExpiresAt, want)
			}
			if _, ok := f.keys().RootKey(tok.KeyID); !ok || tok.PolicyVersion == "" {
				t.Errorf("key id %d in JWKS: %v; policy version %q", tok.KeyID, ok, tok.PolicyVersion)
			}
			rec0 := f.lastAudit()
			if rec0.TokenID != tok.ID || rec0.Credential != tc.credential || rec0.Caller != supportID.String() {
				t.Errorf("audit: got token %s credential %s caller %s, want %s %s %s", rec0.TokenID, rec0.Credential, rec0.Caller, tok.ID, tc.credential, supportID)
			}
			if strings.HasPrefix(tc.name, "ok/jwt") && rec.auth[0] == "" || tc.credential == "x509-svid" && rec.auth[0] != "" {
				t.Errorf("Authorization header to the issuer: got %.20q, want a bearer JWT-SVID only with a JWT source", rec.auth[0])
			}
			raw, err := verifier.DecodeToken(tok.Value)
			if err != nil {
				t.Fatal(err)
			}
			for _, vc := range []struct {
				req  verifier.Request
				want string
			}{
				{verifier.Request{Resource: "crm/contacts", Operation: "read", Presenter: supportID.String()}, spec.ReasonAllowed},
				{verifier.Request{Resource: "crm/notes/7", Operation: "read", Presenter: supportID.String()}, spec.ReasonAllowed},
				{verifier.Request{Resource: "crm/contacts", Operation: "write", Presenter: supportID.String()}, spec.ReasonNotGranted},
				{verifier.Request{Resource: "crm/contacts", Operation: "read", Presenter: billingID.String()}, spec.ReasonPresenterMismatch},
			} {
				if d := v.Authorize(t.Context(), raw, vc.req); d.Reason != vc.want || d.TokenID != tok.ID && d.Allowed {
					t.Errorf("%s %s by %s: got %s (%s), want %s", vc.req.Operation, vc.req.Resource, vc.req.Presenter, d.Reason, d.Message, vc.want)
				}
			}
		})
	}
}

func TestAudience(t *testing.T) {
	f := newFixture(t)
	cfg := f.config(supportID, nil)
	cfg.Audience = crmID
	tok, err := newClient(t, cfg).Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := verifier.DecodeToken(tok.Value)
	if err != nil {
		t.Fatal(err)
	}
	vcfg := verifier.DefaultConfig()
	vcfg.Keys, vcfg.Now = f.keys(), f.clock.Now
	v, err := verifier.New(vcfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		service spiffeid.ID
		want    string
	}{
		{"ok/named-audience", crmID, spec.ReasonAllowed},
		{"fail/other-service-the-policy-allows", notesID, spec.ReasonServiceMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := v.Authorize(t.Context(), raw, verifier.Request{Resource: "crm/contacts", Operation: "read", Presenter: supportID.String(), Service: tc.service.String()})
			if d.Reason != tc.want {
				t.Fatalf("got %s (%s), want %s", d.Reason, d.Message, tc.want)
			}
		})
	}
}

func TestTokenCachedUntilRenewal(t *testing.T) {
	f := newFixture(t)
	const ttl = 9 * time.Minute
	for _, tc := range []struct {
		name string
		rand float64
	}{
		{"ok/jitter-least-time-left", 0},
		{"ok/jitter-none", 0.5},
		{"ok/jitter-most-time-left", 0.999999},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			cfg := f.config(supportID, rec)
			cfg.TTL, cfg.Rand = ttl, fixedRand(tc.rand)
			c := newClient(t, cfg)
			f.clock.AlignSecond() // the issuer truncates issue times to the second
			start := f.clock.Now()
			tok1, err := c.Token(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !tok1.ExpiresAt.Equal(start.Add(ttl)) {
				t.Fatalf("expires at: got %v, want %v", tok1.ExpiresAt, start.Add(ttl))
			}
			// A third of the lifetime is left at renewal, ±10%.
			left := time.Duration(float64(ttl) / 3 * (1 + 0.1*(2*tc.rand-1)))
			renewAt := tok1.ExpiresAt.Add(-left)
			if lo, hi := start.Add(ttl*2/3-ttl/30), start.Add(ttl*2/3+ttl/30); renewAt.Before(lo) || renewAt.After(hi) {
				t.Fatalf("renewal at %v after issue, want within [%v, %v]", renewAt.Sub(start), lo.Sub(start), hi.Sub(start))
			}
			f.clock.Advance(renewAt.Sub(start) - time.Millisecond)
			for range 10 {
				if tok, err := c.Token(t.Context()); err != nil || tok != tok1 {
					t.Fatalf("before renewal: got %v %v, want the cached token", tok, err)
				}
			}
			if n, _ := rec.counts(); n != 1 {
				t.Fatalf("requests before renewal: got %d, want 1", n)
			}
			f.clock.Advance(2 * time.Millisecond) // past renewAt whatever the float rounding
			tok2, err := c.Token(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if tok2.ID == tok1.ID || !tok2.ExpiresAt.After(tok1.ExpiresAt) {
				t.Fatalf("at renewal: got token %s expiring %v, want a new one after %v", tok2.ID, tok2.ExpiresAt, tok1.ExpiresAt)
			}
			if n, _ := rec.counts(); n != 2 {
				t.Fatalf("requests after renewal: got %d, want 2", n)
			}
		})
	}
}

// TestConcurrentCallersShareOneRequest: callers that need a token while
// one is being fetched wait for that request; the issuer sees one.
func TestConcurrentCallersShareOneRequest(t *testing.T) {
	f := newFixture(t)
	rec := &recorder{}
	cfg := f.config(supportID, rec)
	c := newClient(t, cfg)
	const callers = 32
	round := func(t *testing.T) *client.Token {
		t.Helper()
		served := f.served()
		rec.hold()
		toks := make(chan *client.Token, callers)
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				tok, err := c.Token(t.Context())
				if err != nil {
					t.Error(err)
				}
				toks <- tok
			})
		}
		waitFor(t, "all callers to wait for the request", func() bool { return client.Waiters(c) == callers })
		rec.release()
		wg.Wait()
		close(toks)
		var first *client.Token
		for tok := range toks {
			if first == nil {
				first = tok
			}
			if tok == nil || tok.ID != first.ID {
				t.Fatalf("callers got different tokens: %v and %v", first, tok)
			}
		}
		f.waitServed(served + 1)
		return first
	}
	tok1 := round(t)
	f.clock.Advance(tok1.ExpiresAt.Sub(f.clock.Now()) * 3 / 4) // past renewal, still valid
	tok2 := round(t)
	if tok2.ID == tok1.ID {
		t.Fatal("renewal returned the old token")
	}
	if n, _ := rec.counts(); n != 2 {
		t.Fatalf("requests: got %d, want 2", n)
	}
}

// TestAbandonedRequestIsCancelled: when the only caller waiting gives up,
// the request is cancelled and is not counted as an issuer failure.
func TestAbandonedRequestIsCancelled(t *testing.T) {
	f := newFixture(t)
	rec := &recorder{}
	c := newClient(t, f.config(supportID, rec))
	rec.hold()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Token(ctx)
		errc <- err
	}()
	waitFor(t, "the caller to wait", func() bool { return client.Waiters(c) == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	rec.release()
	if _, err := c.Token(t.Context()); err != nil {
		t.Fatalf("next caller: got %v, want a token without backoff", err)
	}
	if n, ok := rec.counts(); n != 2 || ok != 1 {
		t.Fatalf("requests: got %d (%d ok), want 2 (1 ok)", n, ok)
	}
}

// TestIssuerDownServesPreviousToken: while the issuer is down the
// previous token is served until ExpiryMargin before its expiry, then an
// error; once the issuer is back the client recovers.
func TestIssuerDownServesPreviousToken(t *testing.T) {
	f := newFixture(t)
	rec := &recorder{}
	cfg := f.config(supportID, rec)
	cfg.TTL, cfg.Rand = 9*time.Minute, fixedRand(0) // backoff exactly MinBackoff
	c := newClient(t, cfg)
	tok1, err := c.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	f.stop()
	expectRequests := func(want int) {
		t.Helper()
		if n, _ := rec.counts(); n != want {
			t.Fatalf("requests: got %d, want %d", n, want)
		}
	}
	f.clock.Advance(7 * time.Minute) // renewal due, 2 minutes left
	for i := range 5 {
		if tok, err := c.Token(t.Context()); err != nil || tok != tok1 {
			t.Fatalf("call %d with the issuer down: got %v %v, want the previous token", i, tok, err)
		}
	}
	expectRequests(2) // one failed renewal; the other calls fell in its backoff
	f.clock.Advance(cfg.MinBackoff)
	if tok, err := c.Token(t.Context()); err != nil || tok != tok1 {
		t.Fatalf("after backoff: got %v %v, want the previous token", tok, err)
	}
	expectRequests(3)

	f.clock.Advance(tok1.ExpiresAt.Add(-cfg.ExpiryMargin).Sub(f.clock.Now()))
	_, err = c.Token(t.Context())
	var pe *client.ProblemError
	if err == nil || errors.As(err, &pe) || errors.Is(err, client.ErrBackoff) {
		t.Fatalf("within the expiry margin: got %v, want the network error", err)
	}
	expectRequests(4)
	if _, err = c.Token(t.Context()); !errors.Is(err, client.ErrBackoff) {
		t.Fatalf("right after: got %v, want ErrBackoff", err)
	}
	expectRequests(4)

	f.start()
	f.clock.Advance(cfg.MinBackoff)
	tok2, err := c.Token(t.Context())
	if err != nil {
		t.Fatalf("issuer back: %v", err)
	}
	if tok2.ID == tok1.ID {
		t.Fatal("issuer back: got the old token")
	}
}

// TestRefusals: the issuer's refusals come back as *ProblemError, and
// permanent ones are not asked again before MaxBackoff.
func TestRefusals(t *testing.T) {
	f := newFixture(t)
	stranger := newJWTAuthority(t, supportID) // same kid, key not in the issuer's bundle
	for _, tc := range []struct {
		name      string
		set       func(*client.Config)
		status    int
		code      string
		detail    string
		denied    string
		temporary bool
	}{
		{"fail/not-granted", func(c *client.Config) { c.X509SVID = f.svid(billingID).X509SVID() }, 403, client.ProblemNotGranted, "", "crm/contacts:read", false},
		{"fail/audience-not-allowed", func(c *client.Config) { c.Audience = spiffeid.RequireFromPath(td, "/services/billing") }, 403, client.ProblemNotGranted, "audience", "", false},
		{"fail/jwt-svid-for-another-audience", func(c *client.Config) {
			c.X509SVID, c.JWTSVID = nil, &jwtAuthority{key: f.jwt.key, kid: f.jwt.kid, subject: supportID, audience: crmID.String()}
		}, 401, client.ProblemUnauthenticated, "jwt_audience", "", false},
		{"fail/jwt-svid-signed-by-stranger", func(c *client.Config) { c.X509SVID, c.JWTSVID = nil, stranger }, 401, client.ProblemUnauthenticated, "jwt_signature", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			cfg := f.config(supportID, rec)
			tc.set(&cfg)
			c := newClient(t, cfg)
			served := f.served()
			_, err := c.Token(t.Context())
			var pe *client.ProblemError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want a *ProblemError", err)
			}
			if pe.Status != tc.status || pe.Code != tc.code || pe.Temporary() != tc.temporary || !strings.Contains(pe.Detail, tc.detail) {
				t.Fatalf("got %d %q %q temporary=%v, want %d %q containing %q temporary=%v", pe.Status, pe.Code, pe.Detail, pe.Temporary(), tc.status, tc.code, tc.detail, tc.temporary)
			}
			if tc.denied != "" && (len(pe.Denied) != 1 || pe.Denied[0].Right != tc.denied || pe.PolicyVersion == "") {
				t.Fatalf("denied: got %+v policy %q, want %s and the policy version", pe.Denied, pe.PolicyVersion, tc.denied)
			}
			f.waitServed(served + 1)
			for range 100 {
				_, err := c.Token(t.Context())
				if !errors.Is(err, client.ErrBackoff) || !errors.As(err, &pe) || pe.Code != tc.code {
					t.Fatalf("repeated call: got %v, want ErrBackoff wrapping the %s problem", err, tc.code)
				}
			}
			f.clock.Advance(cfg.MaxBackoff - time.Millisecond)
			c.Token(t.Context())
			if n, _ := rec.counts(); n != 1 || f.served() != served+1 {
				t.Fatalf("requests before MaxBackoff: got %d (issuer served %d), want 1", n, f.served()-served)
			}
			f.clock.Advance(time.Millisecond)
			c.Token(t.Context())
			if n, _ := rec.counts(); n != 2 {
				t.Fatalf("requests after MaxBackoff: got %d, want 2", n)
			}
		})
	}
}

// TestUnavailableIsRetried: 503 is temporary: retried after MinBackoff,
// and the client recovers once the issuer can mint.
func TestUnavailableIsRetried(t *testing.T) {
	f := newFixture(t, withoutPolicy())
	rec := &recorder{}
	cfg := f.config(supportID, rec)
	cfg.Rand = fixedRand(0)
	c := newClient(t, cfg)
	_, err := c.Token(t.Context())
	var pe *client.ProblemError
	if !errors.As(err, &pe) || pe.Status != 503 || pe.Code != client.ProblemUnavailable || !pe.Temporary() {
		t.Fatalf("got %v, want a temporary 503 unavailable problem", err)
	}
	if _, err := c.Token(t.Context()); !errors.Is(err, client.ErrBackoff) {
		t.Fatalf("within backoff: got %v, want ErrBackoff", err)
	}
	if _, err := f.is.SetPolicy(t.Context(), issuerID, []byte(testPolicy)); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(cfg.MinBackoff)
	if _, err := c.Token(t.Context()); err != nil {
		t.Fatalf("after MinBackoff with a policy: got %v, want a token", err)
	}
	if n, ok := rec.counts(); n != 2 || ok != 1 {
		t.Fatalf("requests: got %d (%d ok), want 2 (1 ok)", n, ok)
	}
}

// TestIssuerAuthentication: a server that is not the configured issuer
// fails the TLS handshake; no request reaches it.
func TestIssuerAuthentication(t *testing.T) {
	f := newFixture(t)
	stranger, err := pki.NewCA(td, time.Now(), time.Hour) // same trust domain name, other keys
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		set  func(*client.Config)
		want string
	}{
		{"fail/other-spiffe-id", func(c *client.Config) { c.IssuerID = spiffeid.RequireFromPath(td, "/not-writ") }, "unexpected ID"},
		{"fail/other-ca-same-trust-domain", func(c *client.Config) { c.Bundles = stranger.Bundle() }, "x509svid"},
		{"fail/issuer-of-other-trust-domain", func(c *client.Config) {
			c.IssuerID = spiffeid.RequireFromString("spiffe://other.test/writ")
		}, ""},
		{"fail/jwt-svid-other-spiffe-id", func(c *client.Config) {
			c.X509SVID, c.JWTSVID, c.IssuerID = nil, f.jwt, spiffeid.RequireFromPath(td, "/not-writ")
		}, "unexpected ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			served := f.served()
			cfg := f.config(supportID, nil)
			tc.set(&cfg)
			_, err := newClient(t, cfg).Token(t.Context())
			var pe *client.ProblemError
			if !errors.Is(err, client.ErrIssuerUnverified) || errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrIssuerUnverified mentioning %q", err, tc.want)
			}
			if got := f.served() - served; got != 0 {
				t.Fatalf("token requests served: got %d, want 0", got)
			}
		})
	}
}

// TestRunRenewsBeforeExpiry drives Run with the fake clock: every wait
// ends while the current token is still valid, at its renewal time.
func TestRunRenewsBeforeExpiry(t *testing.T) {
	f := newFixture(t)
	rec := &recorder{}
	cfg := f.config(supportID, rec)
	cfg.TTL = 6 * time.Minute
	c := newClient(t, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var seen []string
	const renewals = 4
	client.SetSleep(c, func(ctx context.Context, d time.Duration) error {
		now := f.clock.Now()
		tok, err := c.Token(ctx) // cached: no request while Run waits
		if err != nil {
			t.Errorf("Token while Run waits: %v", err)
			return err
		}
		seen = append(seen, tok.ID)
		life := tok.ExpiresAt.Sub(now)
		if wake := now.Add(d); wake.Before(now.Add(life*2/3-life/30)) || wake.After(now.Add(life*2/3+life/30)) || !wake.Before(tok.ExpiresAt.Add(-cfg.ExpiryMargin)) {
			t.Errorf("Run wakes %v after a token with %v to live, want about 2/3 of it (±1/30), before the expiry margin", d, life)
		}
		f.clock.Advance(d)
		if len(seen) == renewals {
			cancel()
			return ctx.Err()
		}
		return nil
	})
	if err := c.Run(ctx); err != nil {
		t.Fatalf("Run: got %v, want nil when ctx ends", err)
	}
	slices.Sort(seen)
	if len(slices.Compact(seen)) != renewals {
		t.Fatalf("tokens: got %v, want %d distinct", seen, renewals)
	}
	if n, ok := rec.counts(); n != renewals || ok != renewals {
		t.Fatalf("requests: got %d (%d ok), want %d", n, ok, renewals)
	}
}

// TestRunBacksOff: after temporary failures Run's waits grow from
// MinBackoff toward MaxBackoff; after a permanent refusal it waits
// MaxBackoff.
func TestRunBacksOff(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name      string
		agent     spiffeid.ID
		stop      bool
		permanent bool
	}{
		{"temporary/issuer-down", supportID, true, false},
		{"permanent/not-granted", billingID, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.stop {
				f.stop()
				defer f.start()
			}
			cfg := f.config(tc.agent, nil)
			cfg.MinBackoff, cfg.MaxBackoff = 100*time.Millisecond, 3*time.Second
			c := newClient(t, cfg)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var waits []time.Duration
			client.SetSleep(c, func(ctx context.Context, d time.Duration) error {
				waits = append(waits, d)
				f.clock.Advance(d)
				if len(waits) == 10 {
					cancel()
					return ctx.Err()
				}
				return nil
			})
			if err := c.Run(ctx); err != nil {
				t.Fatal(err)
			}
			for i, d := range waits {
				lo, hi := cfg.MinBackoff, min(cfg.MaxBackoff, cfg.MinBackoff<<i)
				if tc.permanent {
					lo, hi = cfg.MaxBackoff, cfg.MaxBackoff
				}
				if d < lo || d > hi {
					t.Errorf("wait %d: got %v, want within [%v, %v]", i+1, d, lo, hi)
				}
			}
		})
	}
}

// TestRunWallClock runs the renewal loop on real timers with 3 s tokens,
// then checks that Run and Close leave no goroutine behind.
func TestRunWallClock(t *testing.T) {
	f := newFixture(t, withWallClock())
	leaks := goleak.IgnoreCurrent()
	rec := &recorder{}
	cfg := f.config(supportID, rec)
	cfg.TTL, cfg.ExpiryMargin = 3*time.Second, 200*time.Millisecond
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, "two renewals", func() bool { _, ok := rec.counts(); return ok >= 3 })
	tok, err := c.Token(t.Context())
	if err != nil || time.Until(tok.ExpiresAt) <= cfg.ExpiryMargin {
		t.Fatalf("Token during Run: got %v %v, want a valid token", tok, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: got %v, want nil", err)
	}
	c.Close()
	if _, err := c.Token(t.Context()); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Token after Close: got %v, want ErrClosed", err)
	}
	goleak.VerifyNone(t, leaks)
}

// TestClose: Close cancels the request in progress; afterwards Token and
// Run report ErrClosed.
func TestClose(t *testing.T) {
	f := newFixture(t)
	rec := &recorder{}
	c := newClient(t, f.config(supportID, rec))
	rec.hold()
	defer rec.release()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Token(t.Context())
		errc <- err
	}()
	waitFor(t, "the caller to wait", func() bool { return client.Waiters(c) == 1 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("waiting caller: got %v, want ErrClosed", err)
	}
	if _, err := c.Token(t.Context()); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Token: got %v, want ErrClosed", err)
	}
	if err := c.Run(t.Context()); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Run: got %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	t.Run("ok/close-wakes-run", func(t *testing.T) {
		c := newClient(t, f.config(supportID, nil))
		done := make(chan error, 1)
		go func() { done <- c.Run(t.Context()) }() // real timers: Run waits minutes for the renewal
		waitFor(t, "the first token", func() bool { _, err := c.Token(t.Context()); return err == nil })
		c.Close()
		if err := <-done; !errors.Is(err, client.ErrClosed) {
			t.Fatalf("Run: got %v, want ErrClosed", err)
		}
	})
}

// syncBuffer is a log sink for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNoSecretsInLogs: logs and the formatted Token carry the token id,
// never the token, a JWT-SVID or a key.
func TestNoSecretsInLogs(t *testing.T) {
	f := newFixture(t)
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var toks []*client.Token
	for _, set := range []func(*client.Config){
		func(c *client.Config) {},
		func(c *client.Config) { c.X509SVID, c.JWTSVID = nil, f.jwt },
		func(c *client.Config) { c.X509SVID = f.svid(billingID).X509SVID() }, // refused
	} {
		cfg := f.config(supportID, nil)
		cfg.Logger = logger
		set(&cfg)
		c := newClient(t, cfg)
		if tok, err := c.Token(t.Context()); err == nil {
			toks = append(toks, tok)
			logger.Info("agent log", "token", tok, "token_ptr", *tok)
		}
	}
	if len(toks) != 2 {
		t.Fatalf("tokens: got %d, want 2", len(toks))
	}
	out := logs.String()
	secrets := f.jwt.tokens()
	for _, tok := range toks {
		secrets = append(secrets, tok.Value, tok.Value[:40])
		for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%+v", tok), fmt.Sprintf("%#v", *tok), fmt.Sprintf("%v", *tok)} {
			if strings.Contains(s, tok.Value[:40]) || !strings.Contains(s, tok.ID) {
				t.Errorf("formatted token %q: want the id and not the value", s)
			}
		}
		if !strings.Contains(out, tok.ID) {
			t.Errorf("logs do not name token %s", tok.ID)
		}
	}
	if len(secrets) < 3 {
		t.Fatal("no JWT-SVID was fetched")
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatalf("logs contain a secret: %.16s…", s)
		}
	}
	if !strings.Contains(out, "not_granted") {
		t.Errorf("logs do not report the refusal: %s", out)
	}
}

func TestConfigValidate(t *testing.T) {
	ca, err := pki.NewCA(td, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := ca.IssueSVID(supportID, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	good := func() client.Config {
		c := client.DefaultConfig()
		c.IssuerURL, c.IssuerID, c.Bundles, c.X509SVID = "https://writ.acme.test:8443", issuerID, x509bundle.NewSet(ca.Bundle()), svid.X509SVID()
		c.Rights = []string{"crm/contacts:read"}
		return c
	}
	for _, tc := range []struct {
		name string
		set  func(*client.Config)
		want string // "" = valid
	}{
		{"ok/default", func(*client.Config) {}, ""},
		{"ok/path-prefix", func(c *client.Config) { c.IssuerURL = "https://gw.acme.test/writ/" }, ""},
		{"ok/jwt-svid", func(c *client.Config) { c.X509SVID, c.JWTSVID = nil, client.JWTFile("/run/jwt") }, ""},
		{"ok/audience-and-ttl", func(c *client.Config) { c.Audience, c.TTL = crmID, time.Minute }, ""},
		{"fail/no-url", func(c *client.Config) { c.IssuerURL = "" }, "IssuerURL is required"},
		{"fail/http-url", func(c *client.Config) { c.IssuerURL = "http://writ.acme.test" }, "https"},
		{"fail/url-with-query", func(c *client.Config) { c.IssuerURL = "https://writ.acme.test/?x=1" }, "without user, query"},
		{"fail/url-with-user", func(c *client.Config) { c.IssuerURL = "https://u:p@writ.acme.test" }, "without user"},
		{"fail/no-issuer-id", func(c *client.Config) { c.IssuerID = spiffeid.ID{} }, "IssuerID"},
		{"fail/no-bundles", func(c *client.Config) { c.Bundles = nil }, "Bundles"},
		{"fail/no-credential", func(c *client.Config) { c.X509SVID = nil }, "set X509SVID"},
		{"fail/two-credentials", func(c *client.Config) { c.JWTSVID = client.JWTFile("/run/jwt") }, "only one"},
		{"fail/no-rights", func(c *client.Config) { c.Rights = nil }, "Rights"},
		{"fail/too-many-rights", func(c *client.Config) { c.Rights = slices.Repeat([]string{"a:b"}, 65) }, "1 to 64"},
		{"fail/bad-right", func(c *client.Config) { c.Rights = []string{"crm*:read"} }, "Rights[0]"},
		{"fail/negative-ttl", func(c *client.Config) { c.TTL = -time.Second }, "TTL"},
		{"fail/renew-fraction", func(c *client.Config) { c.RenewFraction = 0.9 }, "RenewFraction"},
		{"fail/renew-fraction-nan", func(c *client.Config) { c.RenewFraction = nan() }, "RenewFraction"},
		{"fail/jitter", func(c *client.Config) { c.RenewJitter = 0.5 }, "RenewJitter"},
		{"fail/margin", func(c *client.Config) { c.ExpiryMargin = -1 }, "ExpiryMargin"},
		{"fail/backoff-order", func(c *client.Config) { c.MinBackoff, c.MaxBackoff = time.Second, time.Millisecond }, "backoff"},
		{"fail/backoff-zero", func(c *client.Config) { c.MinBackoff = 0 }, "backoff"},
		{"fail/timeout", func(c *client.Config) { c.Timeout = 0 }, "Timeout"},
		{"fail/no-clock", func(c *client.Config) { c.Now = nil }, "Now"},
		{"fail/no-rand", func(c *client.Config) { c.Rand = nil }, "Rand"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.set(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				if _, err := client.New(c); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, client.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidConfig mentioning %q", err, tc.want)
			}
			if _, err := client.New(c); !errors.Is(err, client.ErrInvalidConfig) {
				t.Fatalf("New: got %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func nan() float64 { z := 0.0; return z / z }
