package attenuation_test

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

// golden is the subset of spec/testdata/golden.json this package reads.
type golden struct {
	Keys []struct {
		ID     uint32 `json:"id"`
		Public string `json:"public"`
	} `json:"keys"`
	Revoked []string `json:"revoked"`
	Cases   []struct {
		Name     string `json:"name"`
		Token    string `json:"token"`
		Requests []struct {
			Resource   string            `json:"resource"`
			Operation  string            `json:"operation"`
			Presenter  string            `json:"presenter"`
			Service    string            `json:"service"`
			Records    int               `json:"records"`
			Fields     []string          `json:"fields"`
			Attributes map[string]string `json:"attributes"`
			Time       string            `json:"time"`
		} `json:"requests"`
	} `json:"cases"`
}

// TestGoldenTokensNeverWiden attenuates every golden token and checks each
// golden request: a restriction never allows what the original denies, and
// restrictions the request satisfies keep an allowed request allowed.
func TestGoldenTokensNeverWiden(t *testing.T) {
	raw, err := os.ReadFile("../spec/testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	keys := make([]verifier.RootKey, len(g.Keys))
	for i, k := range g.Keys {
		pub, err := hex.DecodeString(k.Public)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = verifier.RootKey{ID: k.ID, Public: ed25519.PublicKey(pub)}
	}
	ks, err := verifier.NewKeySet(keys...)
	if err != nil {
		t.Fatal(err)
	}
	rl, err := verifier.NewRevocationList(g.Revoked...)
	if err != nil {
		t.Fatal(err)
	}
	attenuated, preserved := 0, 0
	for _, c := range g.Cases {
		tok, err := verifier.DecodeToken(c.Token)
		if err != nil {
			continue // deliberately undecodable cases
		}
		for _, gr := range c.Requests {
			now, err := time.Parse(time.RFC3339, gr.Time)
			if err != nil {
				t.Fatalf("%s: time %q: %v", c.Name, gr.Time, err)
			}
			cfg := verifier.DefaultConfig()
			cfg.Keys, cfg.Revocations, cfg.Now = ks, rl, func() time.Time { return now }
			v, err := verifier.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			req := verifier.Request{Resource: gr.Resource, Operation: gr.Operation, Presenter: gr.Presenter,
				Service: gr.Service, Records: gr.Records, Fields: gr.Fields, Attributes: gr.Attributes}
			orig := v.Authorize(context.Background(), tok, req)
			rr := attenuation.Restricter{Now: func() time.Time { return now }}
			// Satisfied by the request: must keep an allowed request allowed.
			keep := []attenuation.Restriction{
				attenuation.OnlyRights(spec.Right{Resource: gr.Resource, Operation: gr.Operation}),
				attenuation.ExpireIn(time.Hour),
			}
			// Not satisfied by the request: must deny.
			deny := []attenuation.Restriction{
				attenuation.OnlyRights(spec.Right{Resource: gr.Resource + "-other", Operation: gr.Operation}),
				attenuation.ExpireBy(now.Add(-time.Hour)),
				attenuation.OnlyServices("spiffe://nowhere.test/svc"),
			}
			for i, r := range append(keep, deny...) {
				out, err := rr.Restrict(tok, r)
				if err != nil {
					// Sealed, malformed or at a limit, or the request's
					// resource is not a valid right: nothing to compare.
					continue
				}
				attenuated++
				d := v.Authorize(context.Background(), out, req)
				if d.Allowed && !orig.Allowed {
					t.Fatalf("%s: restriction %d widened: original %s, attenuated allowed", c.Name, i, orig.Reason)
				}
				if i < len(keep) && orig.Allowed {
					preserved++
					if !d.Allowed {
						t.Fatalf("%s: satisfied restriction %d denied an allowed request: %s (%s)", c.Name, i, d.Reason, d.Message)
					}
				}
				if i >= len(keep) && d.Allowed {
					t.Fatalf("%s: unsatisfied restriction %d allowed the request", c.Name, i-len(keep))
				}
			}
		}
	}
	if attenuated < 100 || preserved < 20 {
		t.Fatalf("only %d attenuations (%d on allowed requests): the golden file lost its cases?", attenuated, preserved)
	}
	t.Logf("%d attenuations checked, %d on allowed requests", attenuated, preserved)
}
