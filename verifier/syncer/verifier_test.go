package syncer_test

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/syncwire"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

// TestVerifierEndToEnd: a verifier fed by a Syncer refuses a token as soon
// as a change revokes it, its agent or its root key, and refuses every
// token once its copy is stale. The token is the first golden vector of
// spec/testdata (root key 1).
func TestVerifierEndToEnd(t *testing.T) {
	var golden struct {
		RootPublicKey string `json:"root_public_key"`
		Cases         []struct {
			Token    string `json:"token"`
			Requests []struct {
				Resource, Operation string
				Time                time.Time
			} `json:"requests"`
		} `json:"cases"`
	}
	data, err := os.ReadFile("../../spec/testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	root, err := hex.DecodeString(golden.RootPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	gc := golden.Cases[0]
	tok, err := verifier.DecodeToken(gc.Token)
	if err != nil {
		t.Fatal(err)
	}
	in, err := verifier.Inspect(tok)
	if err != nil {
		t.Fatal(err)
	}
	var tokenEntryID syncwire.Entry
	tokenEntryID.Kind = syncwire.EntryToken
	if _, err := hex.Decode(tokenEntryID.ID[:], []byte(in.TokenID)); err != nil {
		t.Fatalf("token id %q: %v", in.TokenID, err)
	}
	req := verifier.Request{Resource: gc.Requests[0].Resource, Operation: gc.Requests[0].Operation}

	p, clk := newPKI(t), &clock{t: gc.Requests[0].Time}
	c := newCluster(clk.Now)
	// Key 1 is the golden root key (tokens only); key 2 signs the frames.
	c.keys = []syncwire.Key{{ID: 1, State: syncwire.KeyRetiring, Public: root}, key(2, syncwire.KeyActive)}
	c.signer = rootKey(2)
	n := p.startNode(t, c, "node-1")
	s := p.newSyncer(t, clk, []string{n.url})
	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	cfg := verifier.DefaultConfig()
	cfg.Keys, cfg.Revocations, cfg.Freshness, cfg.Now = s, s, s, clk.Now
	v, err := verifier.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	decide := func() verifier.Decision {
		if err := s.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		return v.Authorize(t.Context(), tok, req)
	}
	if d := decide(); !d.Allowed {
		t.Fatalf("fresh copy, nothing revoked: got %s (%s), want allowed", d.Reason, d.Message)
	}
	issued := clk.Now().Add(-time.Minute) // the golden token was issued before
	for _, tc := range []struct {
		name   string
		change syncwire.Change
		want   []string
	}{
		{"fail/token-revoked", syncwire.Change{Add: []syncwire.Entry{tokenEntryID}}, []string{spec.ReasonRevoked}},
		{"ok/token-unrevoked", syncwire.Change{Remove: []syncwire.Entry{tokenEntryID}}, []string{spec.ReasonAllowed}},
		{"fail/agent-revoked", syncwire.Change{Add: []syncwire.Entry{agentEntry(in.Agent, issued.Add(time.Hour))}}, []string{spec.ReasonRevoked}},
		{"ok/agent-revoked-before-issue", syncwire.Change{Remove: []syncwire.Entry{agentEntry(in.Agent, issued.Add(time.Hour))},
			Add: []syncwire.Entry{agentEntry(in.Agent, time.Unix(0, 0))}}, []string{spec.ReasonAllowed}},
		{"fail/root-key-revoked", syncwire.Change{Keys: []syncwire.Key{{ID: 1, State: syncwire.KeyRevoked, Public: root}, key(2, syncwire.KeyActive)}},
			[]string{spec.ReasonRevoked}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.commit(tc.change)
			d := decide()
			for _, w := range tc.want {
				if d.Reason == w {
					return
				}
			}
			t.Fatalf("got %s (%s), want one of %v", d.Reason, d.Message, tc.want)
		})
	}
	t.Run("fail/stale-copy", func(t *testing.T) {
		c.commit(syncwire.Change{Keys: []syncwire.Key{{ID: 1, State: syncwire.KeyRetiring, Public: root}, key(2, syncwire.KeyActive)}})
		if d := decide(); !d.Allowed {
			t.Fatalf("key 1 back: got %s (%s), want allowed", d.Reason, d.Message)
		}
		clk.Advance(verifier.DefaultMaxStaleness + time.Second) // no sync since
		if d := v.Authorize(t.Context(), tok, req); d.Reason != spec.ReasonRevocationStale {
			t.Fatalf("got %s (%s), want %s", d.Reason, d.Message, spec.ReasonRevocationStale)
		}
	})
}
