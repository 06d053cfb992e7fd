package mint

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/attenuation/attenuationtest"
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

// Window sets through the product verifier: within a set any window may be
// open, and every set must hold.
func TestMintWindowSetsThroughVerifier(t *testing.T) {
	key := testKey(t)
	tok, _, err := Mint(nil, key, windowSetsClaims())
	if err != nil {
		t.Fatal(err)
	}
	blocks, _, err := attenuationtest.Datalog(tok)
	if err != nil {
		t.Fatal(err)
	}
	anyOf, utcDay := blocks[0].Checks[1], blocks[0].Checks[2]
	keys, err := verifier.NewKeySet(verifier.RootKey{ID: key.ID, Public: key.public()})
	if err != nil {
		t.Fatal(err)
	}
	var now time.Time
	cfg := verifier.DefaultConfig()
	cfg.Keys = keys
	cfg.Now = func() time.Time { return now }
	v, err := verifier.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	utc := func(day, hour, minute int) time.Time { return time.Date(2026, 11, day, hour, minute, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name   string
		at     time.Time
		failed []string // checks that fail, in order
	}{
		{"ok/paris-hours", utc(27, 10, 0), nil},                               // Fri 11:00 Paris, 10:00 UTC
		{"ok/tokyo-saturday", utc(28, 3, 30), nil},                            // Sat 12:30 Tokyo, 03:30 UTC
		{"fail/second-set", utc(27, 16, 30), []string{utcDay}},                // Fri 17:30 Paris, 16:30 UTC
		{"fail/first-set", utc(28, 6, 0), []string{anyOf}},                    // Sat 07:00 Paris, 15:00 Tokyo
		{"fail/both-sets", utc(27, 20, 0), []string{anyOf, utcDay}},           // Fri 21:00 Paris, Sat 05:00 Tokyo
		{"fail/sunday-tokyo-hours", utc(29, 3, 0), []string{anyOf}},           // Sun 12:00 Tokyo
		{"ok/monday-paris-opens", utc(30, 8, 0), nil},                         // Mon 09:00 Paris
		{"fail/monday-paris-before-opening", utc(30, 7, 59), []string{anyOf}}, // Mon 08:59 Paris
	} {
		t.Run(tc.name, func(t *testing.T) {
			now = tc.at
			d := v.Authorize(context.Background(), tok, verifier.Request{Resource: "crm/contacts", Operation: "read"})
			want := spec.ReasonAllowed
			if len(tc.failed) > 0 {
				want = spec.ReasonOutsideTimeWindow
			}
			if d.Reason != want || d.Allowed != (len(tc.failed) == 0) {
				t.Fatalf("got allowed=%t %s (%s), want %s", d.Allowed, d.Reason, d.Message, want)
			}
			var got []string
			for _, fc := range d.FailedChecks {
				if fc.Block != 0 || fc.Reason != spec.ReasonOutsideTimeWindow {
					t.Errorf("failed check %q: got block %d reason %s, want block 0 reason %s", fc.Check, fc.Block, fc.Reason, spec.ReasonOutsideTimeWindow)
				}
				got = append(got, fc.Check)
			}
			if !slices.Equal(got, tc.failed) {
				t.Errorf("failed checks:\ngot  %q\nwant %q", got, tc.failed)
			}
		})
	}
}
