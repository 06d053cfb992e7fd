package attenuation_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/attenuation/attenuationtest"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

// A two-window AnyWindow check, in the authority block and in an
// attenuation block, decided by the product verifier and by biscuit-go's
// authorizer: allowed inside either window, denied outside both.
func TestAnyWindowThroughVerifier(t *testing.T) {
	// Mon–Fri 09:00–18:00 in Paris (UTC+1 in November), or Saturday
	// 10:00–14:00 in Tokyo (UTC+9).
	hours := attenuation.AnyWindow(
		spec.TimeWindow{Zone: "Europe/Paris", Days: []time.Weekday{1, 2, 3, 4, 5}, From: 9 * 60, To: 18 * 60},
		spec.TimeWindow{Zone: "Asia/Tokyo", Days: []time.Weekday{time.Saturday}, From: 10 * 60, To: 14 * 60},
	)
	rights := []spec.Right{{Resource: "crm/contacts", Operation: "read"}}
	expiry := attenuation.ExpireBy(issuedAt.Add(8 * 24 * time.Hour))
	inAuthority := original{rootKeyID: ptr[uint32](7), rights: rights,
		checks: []attenuation.Restriction{expiry, hours}}.build(t, nil)
	attenuated, err := attenuation.Restrict(
		original{rootKeyID: ptr[uint32](7), rights: rights, checks: []attenuation.Restriction{expiry}}.build(t, nil),
		hours)
	if err != nil {
		t.Fatal(err)
	}

	keys, err := verifier.NewKeySet(verifier.RootKey{ID: 7, Public: rootPub})
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

	utc := func(day, hour, minute, sec int) time.Time {
		return time.Date(2026, 11, day, hour, minute, sec, 0, time.UTC)
	}
	cases := []struct {
		name  string
		at    time.Time
		allow bool
	}{
		{"ok/first-window", utc(27, 10, 0, 0), true},               // Fri 11:00 Paris
		{"ok/first-window-opens", utc(27, 8, 0, 0), true},          // Fri 09:00 Paris
		{"ok/first-window-last-minute", utc(27, 16, 59, 59), true}, // Fri 17:59 Paris
		{"fail/first-window-closed", utc(27, 17, 0, 0), false},     // Fri 18:00 Paris, Sat 02:00 Tokyo
		{"fail/before-first-window", utc(27, 7, 59, 59), false},    // Fri 08:59 Paris, Fri 16:59 Tokyo
		{"fail/between-windows", utc(27, 20, 0, 0), false},         // Fri 21:00 Paris, Sat 05:00 Tokyo
		{"ok/second-window-opens", utc(28, 1, 0, 0), true},         // Sat 10:00 Tokyo, Sat 02:00 Paris
		{"ok/second-window", utc(28, 3, 30, 0), true},              // Sat 12:30 Tokyo
		{"fail/second-window-closed", utc(28, 5, 0, 0), false},     // Sat 14:00 Tokyo, Sat 06:00 Paris
		{"fail/saturday-paris-hours", utc(28, 10, 0, 0), false},    // Sat 11:00 Paris, Sat 19:00 Tokyo
		{"fail/sunday-tokyo-hours", utc(29, 3, 0, 0), false},       // Sun 12:00 Tokyo
		{"ok/monday-paris-hours", utc(30, 9, 0, 0), true},          // Mon 10:00 Paris
	}
	for _, tok := range []struct {
		name  string
		bytes []byte
		block int
	}{{"authority", inAuthority, 0}, {"attenuated", attenuated, 1}} {
		blocks, _, err := attenuationtest.Datalog(tok.bytes)
		if err != nil {
			t.Fatal(err)
		}
		wantCheck := blocks[tok.block].Checks[len(blocks[tok.block].Checks)-1]
		for _, tc := range cases {
			t.Run(tok.name+"/"+tc.name, func(t *testing.T) {
				now = tc.at
				d := v.Authorize(context.Background(), tok.bytes, verifier.Request{Resource: "crm/contacts", Operation: "read"})
				if tc.allow {
					if !d.Allowed || d.Reason != spec.ReasonAllowed {
						t.Fatalf("got %s (%s) %v, want %s", d.Reason, d.Message, d.FailedChecks, spec.ReasonAllowed)
					}
				} else {
					if d.Allowed || d.Reason != spec.ReasonOutsideTimeWindow {
						t.Fatalf("got %s (%s), want %s", d.Reason, d.Message, spec.ReasonOutsideTimeWindow)
					}
					if len(d.FailedChecks) != 1 {
						t.Fatalf("failed checks: got %v, want the window check only", d.FailedChecks)
					}
					fc := d.FailedChecks[0]
					if fc.Block != tok.block || fc.Reason != spec.ReasonOutsideTimeWindow {
						t.Errorf("failed check: got block %d reason %s, want block %d reason %s",
							fc.Block, fc.Reason, tok.block, spec.ReasonOutsideTimeWindow)
					}
					if fc.Check != wantCheck {
						t.Errorf("failed check text:\ngot  %s\nwant %s", fc.Check, wantCheck)
					}
				}
				err := attenuationtest.Authorize(tok.bytes, rootPub, attenuationtest.Request{Time: tc.at, Resource: "crm/contacts", Operation: "read"})
				if tc.allow && err != nil {
					t.Errorf("biscuit-go: got %v, want allowed", err)
				}
				if !tc.allow && !errors.Is(err, attenuationtest.ErrDenied) {
					t.Errorf("biscuit-go: got %v, want %v", err, attenuationtest.ErrDenied)
				}
			})
		}
	}
}
