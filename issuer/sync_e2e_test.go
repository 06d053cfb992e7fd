package issuer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/issuer"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
	"github.com/writ-dev/writ/verifier/syncer"
)

// syncedVerifier is a resource service's verifier fed by a real Syncer
// polling the issuer over mTLS with the service's SVID.
type syncedVerifier struct {
	s      *syncer.Syncer
	v      *verifier.Verifier
	cancel context.CancelFunc
	done   chan struct{}
}

func newSyncedVerifier(t testing.TB, f *fixture, maxStale time.Duration, mod func(*syncer.Config)) *syncedVerifier {
	t.Helper()
	cfg := syncer.DefaultConfig()
	cfg.Issuers = []string{f.url}
	cfg.IssuerID = issuerID
	cfg.SVID = f.svid(serviceID).X509SVID()
	cfg.Bundle = x509bundle.NewSet(f.ca.Bundle())
	cfg.MaxStaleness = maxStale
	cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	cfg.Timeout = time.Second
	if mod != nil {
		mod(&cfg)
	}
	s, err := syncer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vc := verifier.DefaultConfig()
	vc.Keys, vc.Revocations, vc.Freshness, vc.MaxStaleness = s, s, s, maxStale
	vc.Service = serviceID.String()
	v, err := verifier.New(vc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sv := &syncedVerifier{s: s, v: v, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(sv.done); s.Run(ctx) }()
	t.Cleanup(sv.stop)
	select {
	case <-s.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("syncer holds no copy after 20 s")
	}
	return sv
}

func (sv *syncedVerifier) stop() {
	sv.cancel()
	<-sv.done
}

func (sv *syncedVerifier) decide(tok []byte) verifier.Decision {
	return sv.v.Authorize(context.Background(), tok, verifier.Request{Resource: "crm/contacts", Operation: "read", Presenter: supportID.String()})
}

// mintRaw mints a token for the support agent and returns its bytes.
func (f *fixture) mintRaw(t testing.TB, c *http.Client) []byte {
	t.Helper()
	r := f.mint(c, `{"rights":["crm/contacts:read"]}`)
	if r.status != 200 {
		t.Fatalf("mint: %d %s", r.status, r.body)
	}
	raw, err := verifier.DecodeToken(r.token.Token)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestRevokeDelegationChains: revoking block i of a delegation chain of
// depth 1 to 5 denies the token carrying it and every token attenuated
// from it, and nothing above it, at a verifier fed by the sync stream.
func TestRevokeDelegationChains(t *testing.T) {
	f := newFixture(t)
	sv := newSyncedVerifier(t, f, 30*time.Second, nil)
	agent := f.client(f.svid(supportID))
	for depth := 1; depth <= 5; depth++ {
		for cut := 0; cut <= depth; cut++ {
			t.Run(fmt.Sprintf("depth-%d/revoke-block-%d", depth, cut), func(t *testing.T) {
				chain := [][]byte{f.mintRaw(t, agent)}
				for i := 1; i <= depth; i++ {
					child, err := attenuation.Restrict(chain[i-1], attenuation.ExpireIn(time.Duration(10-i)*time.Minute))
					if err != nil {
						t.Fatal(err)
					}
					chain = append(chain, child)
				}
				info, err := verifier.Inspect(chain[depth])
				if err != nil {
					t.Fatal(err)
				}
				r := f.admin(t, http.MethodPost, "/v1/admin/revocations", map[string]any{"kind": "block", "id": info.Blocks[cut].RevocationID,
					"wait": map[string]any{"share": 1, "timeout_ms": 10000}})
				if r.status != 200 {
					t.Fatalf("revoke: %d %s", r.status, r.body)
				}
				for i, tok := range chain {
					d := sv.decide(tok)
					wantRevoked := i >= cut
					if got := d.Reason == spec.ReasonRevoked; got != wantRevoked || (!wantRevoked && !d.Allowed) {
						t.Errorf("token at depth %d: got %s (%s), want revoked %v", i, d.Reason, d.Message, wantRevoked)
					}
				}
			})
		}
	}
}

// TestStalenessBoundAcrossAnOutage: during a full issuer outage tokens are
// honoured until the verifier's bound, then refused revocation_stale;
// once the issuer is back they are honoured again. A verifier restarted
// from its state file with no issuer reachable serves from the file.
func TestStalenessBoundAcrossAnOutage(t *testing.T) {
	f := newFixture(t)
	stateFile := filepath.Join(t.TempDir(), "sync.state")
	const bound = 2 * time.Second
	sv := newSyncedVerifier(t, f, bound, func(c *syncer.Config) { c.StateFile, c.PersistEvery = stateFile, 10*time.Millisecond })
	tok := f.mintRaw(t, f.client(f.svid(supportID)))
	if d := sv.decide(tok); !d.Allowed {
		t.Fatalf("issuer up: got %s %s, want allowed", d.Reason, d.Message)
	}
	f.stop()
	asOf, ok := sv.s.CurrentAsOf()
	if d := sv.decide(tok); !ok || (!d.Allowed && time.Since(asOf) < bound) {
		t.Fatalf("right after the outage began: got %s, want allowed (copy current as of %v ago, bound %v)", d.Reason, time.Since(asOf), bound)
	}
	waitFor(t, "revocation_stale", func() bool { return sv.decide(tok).Reason == spec.ReasonRevocationStale })
	if stale := time.Since(asOf); stale < bound {
		t.Fatalf("refused stale with a copy %v old, under the %v bound", stale, bound)
	}
	// A second verifier starts from the file while the issuer is down:
	// it holds the keys and revocations, and is stale (the file is older
	// than the bound).
	cold := newSyncedVerifier(t, f, bound, func(c *syncer.Config) { c.StateFile = stateFile })
	if d := cold.decide(tok); d.Reason != spec.ReasonRevocationStale {
		t.Fatalf("verifier from its file, issuer down: got %s, want revocation_stale", d.Reason)
	}
	f.start()
	waitFor(t, "allowed again after the issuer is back", func() bool { return sv.decide(tok).Allowed && cold.decide(tok).Allowed })
}

// TestRotationDrill: under steady minting and verification at a syncing
// verifier, the root key goes prepared → active → retiring → revoked;
// not one valid token is refused on the way, and every token of the
// revoked key is refused once the revocation is acknowledged.
func TestRotationDrill(t *testing.T) {
	f := newFixture(t)
	sv := newSyncedVerifier(t, f, 30*time.Second, nil)
	agent := f.client(f.svid(supportID))
	var (
		mu       sync.Mutex
		byKey    = map[uint32][][]byte{}
		refused  []string
		verified atomic.Int64
		revoked  atomic.Uint32 // key id revoked and acknowledged; 0 none
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := f.mint(agent, `{"rights":["crm/contacts:read"]}`)
				if r.status != 200 {
					continue // e.g. a request in flight at shutdown
				}
				tok, err := verifier.DecodeToken(r.token.Token)
				if err != nil {
					t.Error(err)
					return
				}
				info, _ := verifier.Inspect(tok)
				kid := *info.RootKeyID
				d := sv.decide(tok)
				verified.Add(1)
				mu.Lock()
				byKey[kid] = append(byKey[kid], tok)
				if !d.Allowed && !(revoked.Load() == kid && d.Reason == spec.ReasonRevoked) {
					refused = append(refused, fmt.Sprintf("key %d: %s %s", kid, d.Reason, d.Message))
				}
				mu.Unlock()
			}
		}()
	}
	waitTraffic := func(n int64) {
		start := verified.Load()
		waitFor(t, "traffic", func() bool { return verified.Load() >= start+n })
	}
	waitTraffic(50)
	var keys issuer.KeysPage
	json.Unmarshal(f.admin(t, http.MethodGet, "/v1/admin/keys", nil).body, &keys)
	old := keys.Keys[0].ID
	// prepare → (every live verifier holds it) → active; old → retiring
	r := f.admin(t, http.MethodPost, "/v1/admin/keys/rotate", map[string]any{"activate": "never"})
	var rr issuer.RotateResult
	json.Unmarshal(r.body, &rr)
	waitTraffic(50)
	r = f.admin(t, http.MethodPost, "/v1/admin/keys/rotate", map[string]any{"timeout_ms": 10000})
	json.Unmarshal(r.body, &rr)
	if r.status != 200 || !rr.Activated || rr.Retired != old || rr.Propagation == nil || !rr.Propagation.Complete {
		t.Fatalf("activate: %d %+v", r.status, rr)
	}
	waitTraffic(100)
	// revoke the retiring key, waiting for the verifier
	revoked.Store(old)
	r = f.admin(t, http.MethodPost, fmt.Sprintf("/v1/admin/keys/%d/revoke", old), map[string]any{"reason": "drill",
		"wait": map[string]any{"share": 1, "timeout_ms": 10000}})
	if r.status != 200 {
		t.Fatalf("revoke %d: %d %s", old, r.status, r.body)
	}
	waitTraffic(50)
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(refused) > 0 {
		t.Fatalf("%d valid tokens refused during the drill, first: %s", len(refused), refused[0])
	}
	if len(byKey[old]) == 0 || len(byKey[rr.Prepared.ID]) == 0 {
		t.Fatalf("tokens by key: %d of the old key, %d of the new; want both", len(byKey[old]), len(byKey[rr.Prepared.ID]))
	}
	for _, tok := range byKey[old] {
		if d := sv.decide(tok); d.Reason != spec.ReasonRevoked {
			t.Fatalf("token of revoked key %d: got %s, want revoked", old, d.Reason)
		}
	}
	for _, tok := range byKey[rr.Prepared.ID] {
		if d := sv.decide(tok); !d.Allowed {
			t.Fatalf("token of the active key: got %s, want allowed", d.Reason)
		}
	}
	t.Logf("drill: %d tokens verified (%d of key %d, %d of key %d), 0 valid ones refused", verified.Load(), len(byKey[old]), old, len(byKey[rr.Prepared.ID]), rr.Prepared.ID)
}
