package mint

import (
	"context"
	"testing"
	"time"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

// Minted tokens, plain and attenuated, through the product verifier.
func TestMintThroughVerifier(t *testing.T) {
	key := testKey(t)
	tok, id, err := Mint(nil, key, fullClaims())
	if err != nil {
		t.Fatal(err)
	}
	child, err := attenuation.Restricter{Now: func() time.Time { return issuedAt }}.Restrict(tok,
		attenuation.OnlyRights(spec.Right{Resource: "crm/notes/*", Operation: "read"}),
		attenuation.MaxRecords(5))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := verifier.NewKeySet(verifier.RootKey{ID: key.ID, Public: key.public()})
	if err != nil {
		t.Fatal(err)
	}
	otherKeys, err := verifier.NewKeySet(verifier.RootKey{ID: key.ID + 1, Public: key.public()})
	if err != nil {
		t.Fatal(err)
	}
	var now time.Time
	newVerifier := func(ks verifier.KeySource) *verifier.Verifier {
		cfg := verifier.DefaultConfig()
		cfg.Keys = ks
		cfg.Now = func() time.Time { return now }
		cfg.Service = crmID
		v, err := verifier.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v, vOther := newVerifier(keys), newVerifier(otherKeys)
	inside := issuedAt.Add(time.Minute)
	base := verifier.Request{Resource: "crm/contacts", Operation: "read", Presenter: agentID, Records: 10, Fields: []string{"email"}}
	for _, tc := range []struct {
		name   string
		v      *verifier.Verifier
		token  []byte
		at     time.Time
		edit   func(*verifier.Request)
		reason string
	}{
		{"ok/exact-right", v, tok, inside, func(*verifier.Request) {}, spec.ReasonAllowed},
		{"ok/prefix-right", v, tok, inside, func(r *verifier.Request) { r.Resource = "crm/notes/9" }, spec.ReasonAllowed},
		{"fail/not-granted", v, tok, inside, func(r *verifier.Request) { r.Operation = "write" }, spec.ReasonNotGranted},
		{"fail/expired", v, tok, issuedAt.Add(6 * time.Minute), func(*verifier.Request) {}, spec.ReasonExpired},
		{"fail/presenter-mismatch", v, tok, inside, func(r *verifier.Request) { r.Presenter = td + "/agents/x" }, spec.ReasonPresenterMismatch},
		{"fail/outside-time-window", v, tok, issuedAt.Add(-3 * time.Hour), func(*verifier.Request) {}, spec.ReasonOutsideTimeWindow},
		{"fail/unknown-key-id", vOther, tok, inside, func(*verifier.Request) {}, spec.ReasonUnknownKey},
		{"ok/attenuated", v, child, inside, func(r *verifier.Request) { r.Resource = "crm/notes/9"; r.Records = 5 }, spec.ReasonAllowed},
		{"fail/attenuated-rights", v, child, inside, func(r *verifier.Request) { r.Records = 5 }, spec.ReasonCheckFailed},
		{"fail/attenuated-records", v, child, inside, func(r *verifier.Request) { r.Resource = "crm/notes/9"; r.Records = 6 }, spec.ReasonConstraintViolated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now = tc.at
			req := base
			tc.edit(&req)
			d := tc.v.Authorize(context.Background(), tc.token, req)
			if d.Reason != tc.reason {
				t.Fatalf("reason: got %s (%s), want %s", d.Reason, d.Message, tc.reason)
			}
			if d.Allowed {
				if d.TokenID != id || d.RootKeyID != key.ID || d.Agent != agentID || d.Issuer != issuerID {
					t.Errorf("decision: got token %q key %d agent %q issuer %q, want %q %d %q %q",
						d.TokenID, d.RootKeyID, d.Agent, d.Issuer, id, key.ID, agentID, issuerID)
				}
			}
		})
	}
}
