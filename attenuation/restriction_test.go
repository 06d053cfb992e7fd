package attenuation_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/attenuation/attenuationtest"
	"github.com/writ-dev/writ/spec"
)

func TestRestrictionCheckShapes(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 1, 2, 900_000_000, time.UTC)
	for _, tc := range []struct {
		name string
		r    attenuation.Restriction
		want string
	}{
		{"ok/only-rights-exact",
			attenuation.OnlyRights(spec.Right{Resource: "crm/contacts", Operation: "read"}),
			`check if resource("crm/contacts"), operation("read")`},
		{"ok/only-rights-exact-and-prefix",
			attenuation.OnlyRights(spec.Right{Resource: "a", Operation: "read"}, spec.Right{Resource: "b/*", Operation: "read"}),
			`check if resource("a"), operation("read") or resource($r), operation("read"), $r.starts_with("b/")`},
		{"ok/only-rights-duplicates-dropped",
			attenuation.OnlyRights(spec.Right{Resource: "a", Operation: "read"}, spec.Right{Resource: "a", Operation: "read"}),
			`check if resource("a"), operation("read")`},
		{"ok/expire-by-rounds-down",
			attenuation.ExpireBy(time.Date(2026, 11, 27, 11, 4, 5, 999_999_999, time.FixedZone("CET", 3600))),
			`check if time($t), $t <= 2026-11-27T10:04:05Z`},
		{"ok/expire-in-from-now",
			attenuation.ExpireIn(90 * time.Second),
			`check if time($t), $t <= 2026-11-27T10:02:32Z`},
		{"ok/bind-presenters-sorted-unique",
			attenuation.BindPresenters(helperID, agentID, helperID),
			`check if presenter($p), ["spiffe://acme.example/agents/summarizer", "spiffe://acme.example/agents/support"].contains($p)`},
		{"ok/only-fields",
			attenuation.OnlyFields("name", "email", "name"),
			`check if fields($f), ["email", "name"].contains($f)`},
		{"ok/max-records",
			attenuation.MaxRecords(100),
			`check if records($n), $n <= 100`},
		{"ok/window-weekdays",
			attenuation.Window(spec.TimeWindow{Zone: "Europe/Paris", Days: []time.Weekday{time.Friday, time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Monday}, From: 540, To: 1080}),
			`check if local_time("Europe/Paris", $d, $m), [1, 2, 3, 4, 5].contains($d), $m >= 540, $m < 1080`},
		{"ok/window-every-day",
			attenuation.Window(spec.TimeWindow{Zone: "UTC", From: 0, To: 1440}),
			`check if local_time("UTC", $d, $m), [0, 1, 2, 3, 4, 5, 6].contains($d), $m >= 0, $m < 1440`},
		{"ok/any-window-two-zones",
			attenuation.AnyWindow(
				spec.TimeWindow{Zone: "Europe/Paris", Days: []time.Weekday{time.Friday, time.Monday, time.Tuesday, time.Wednesday, time.Thursday}, From: 540, To: 1080},
				spec.TimeWindow{Zone: "Asia/Tokyo", Days: []time.Weekday{time.Saturday}, From: 600, To: 840}),
			`check if local_time("Europe/Paris", $d, $m), [1, 2, 3, 4, 5].contains($d), $m >= 540, $m < 1080` +
				` or local_time("Asia/Tokyo", $d, $m), [6].contains($d), $m >= 600, $m < 840`},
		{"ok/any-window-same-zone-keeps-order",
			attenuation.AnyWindow(
				spec.TimeWindow{Zone: "UTC", Days: []time.Weekday{time.Saturday}, From: 600, To: 840},
				spec.TimeWindow{Zone: "UTC", From: 0, To: 60}),
			`check if local_time("UTC", $d, $m), [6].contains($d), $m >= 600, $m < 840` +
				` or local_time("UTC", $d, $m), [0, 1, 2, 3, 4, 5, 6].contains($d), $m >= 0, $m < 60`},
		{"ok/any-window-duplicates-dropped",
			attenuation.AnyWindow(
				spec.TimeWindow{Zone: "UTC", Days: []time.Weekday{time.Monday, time.Sunday}, From: 0, To: 60},
				spec.TimeWindow{Zone: "UTC", Days: []time.Weekday{time.Sunday, time.Monday, time.Sunday}, From: 0, To: 60}),
			`check if local_time("UTC", $d, $m), [0, 1].contains($d), $m >= 0, $m < 60`},
		{"ok/any-window-one-is-window",
			attenuation.AnyWindow(spec.TimeWindow{Zone: "Europe/Paris", Days: []time.Weekday{time.Monday}, From: 540, To: 1080}),
			`check if local_time("Europe/Paris", $d, $m), [1].contains($d), $m >= 540, $m < 1080`},
		{"ok/any-window-eight-windows-four-zones",
			attenuation.AnyWindow(manyWindows(attenuation.MaxWindows, "UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York")...),
			strings.Join([]string{
				`check if local_time("UTC", $d, $m), [0, 1, 2, 3, 4, 5, 6].contains($d), $m >= 0, $m < 1`,
				`local_time("Europe/Paris", $d, $m), [0, 1, 2, 3, 4, 5, 6].contains($d), $m >= 1, $m < 2`,
				`local_time("Asia/Tokyo", $d, $m), [0, 1, 2, 3, 4, 5, 6].contains($d), $m >= 2, $m < 3`,
				`local_time("America/New_York", $d, $m), [0, 1, 2, 3, 4, 5, 6].contains($d), $m >= 3, $m < 4`,
				`local_time("UTC", $d, $m), [0, 1, 2, 3, 4, 5, 6].contains($d), $m >= 4, $m < 5`,
				`local_time("Europe/Paris", $d, $m), [0, 1, 2, 3, 4, 5, 6].contains($d), $m >= 5, $m < 6`,
				`local_time("Asia/Tokyo", $d, $m), [0, 1, 2, 3, 4, 5, 6].contains($d), $m >= 6, $m < 7`,
				`local_time("America/New_York", $d, $m), [0, 1, 2, 3, 4, 5, 6].contains($d), $m >= 7, $m < 8`,
			}, " or ")},
		{"ok/only-services",
			attenuation.OnlyServices(crmID),
			`check if service($s), ["spiffe://acme.example/svc/crm"].contains($s)`},
		{"ok/max-staleness",
			attenuation.MaxStaleness(2 * time.Second),
			`check if revocation_age($a), $a <= 2000`},
		{"ok/max-staleness-rounds-down",
			attenuation.MaxStaleness(1500*time.Millisecond + 999*time.Microsecond),
			`check if revocation_age($a), $a <= 1500`},
		{"ok/max-staleness-longest",
			attenuation.MaxStaleness(attenuation.MaxStalenessBound),
			`check if revocation_age($a), $a <= 86400000`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.r.Err(); err != nil {
				t.Fatalf("Err: got %v, want nil", err)
			}
			out, err := attenuation.Restricter{Now: fixedClock(now)}.Restrict(baseToken(t), tc.r)
			if err != nil {
				t.Fatalf("Restrict: %v", err)
			}
			blocks, _, err := attenuationtest.Datalog(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(blocks) != 2 {
				t.Fatalf("blocks: got %d, want 2", len(blocks))
			}
			b := blocks[1]
			if len(b.Facts) != 0 || len(b.Rules) != 0 {
				t.Errorf("facts and rules: got %q %q, want none", b.Facts, b.Rules)
			}
			if want := []string{tc.want}; !slices.Equal(b.Checks, want) {
				t.Errorf("checks:\ngot  %q\nwant %q", b.Checks, want)
			}
		})
	}
}

func TestRestrictionRefusesBadInput(t *testing.T) {
	long := td + "/" + strings.Repeat("x", attenuation.MaxStringBytes)
	manyIDs := func(n int) []string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = td + "/agents/" + strings.Repeat("a", i+1)
		}
		return ids
	}
	manyRights := func(n int) []spec.Right {
		rs := make([]spec.Right, n)
		for i := range rs {
			rs[i] = spec.Right{Resource: strings.Repeat("r", i+1), Operation: "read"}
		}
		return rs
	}
	for _, tc := range []struct {
		name    string
		r       attenuation.Restriction
		wantIs  []error
		wantMsg string
	}{
		{"fail/zero-restriction", attenuation.Restriction{}, nil,
			"attenuation: bad restriction: zero Restriction"},
		{"fail/only-rights-none", attenuation.OnlyRights(), nil,
			"attenuation: bad restriction: OnlyRights: no rights"},
		{"fail/only-rights-bad-right", attenuation.OnlyRights(spec.Right{Resource: "a", Operation: "read"}, spec.Right{Resource: "*", Operation: "read"}),
			[]error{spec.ErrBadRight},
			`attenuation: bad restriction: OnlyRights: right 1: spec: bad right: resource "*": '*' is only allowed as a final "/*" after a non-empty prefix`},
		{"fail/only-rights-empty-operation", attenuation.OnlyRights(spec.Right{Resource: "a"}),
			[]error{spec.ErrBadRight}, `attenuation: bad restriction: OnlyRights: right 0: spec: bad right: "a": empty operation`},
		{"fail/only-rights-too-many", attenuation.OnlyRights(manyRights(attenuation.MaxRights + 1)...), nil,
			"attenuation: bad restriction: OnlyRights: 9 rights, at most 8"},
		{"fail/expire-by-zero", attenuation.ExpireBy(time.Time{}), nil,
			"attenuation: bad restriction: ExpireBy: time 0001-01-01T00:00:00Z is not after the Unix epoch"},
		{"fail/expire-by-epoch", attenuation.ExpireBy(time.Unix(0, 0)), nil,
			"attenuation: bad restriction: ExpireBy: time 1970-01-01T00:00:00Z is not after the Unix epoch"},
		{"fail/expire-in-zero", attenuation.ExpireIn(0), nil,
			"attenuation: bad restriction: ExpireIn: duration 0s is not positive"},
		{"fail/expire-in-negative", attenuation.ExpireIn(-time.Minute), nil,
			"attenuation: bad restriction: ExpireIn: duration -1m0s is not positive"},
		{"fail/bind-presenters-none", attenuation.BindPresenters(), nil,
			"attenuation: bad restriction: BindPresenters: no SPIFFE IDs"},
		{"fail/bind-presenters-not-spiffe", attenuation.BindPresenters(agentID, "https://acme.example/x"), nil,
			`attenuation: bad restriction: BindPresenters: SPIFFE ID 1 "https://acme.example/x": scheme is missing or invalid`},
		{"fail/bind-presenters-upper-case", attenuation.BindPresenters("spiffe://ACME.example/x"), nil,
			`attenuation: bad restriction: BindPresenters: SPIFFE ID 0 "spiffe://ACME.example/x": trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores`},
		{"fail/bind-presenters-too-long", attenuation.BindPresenters(long), nil,
			"attenuation: bad restriction: BindPresenters: SPIFFE ID 0 longer than 1024 bytes"},
		{"fail/bind-presenters-too-many", attenuation.BindPresenters(manyIDs(attenuation.MaxSetElements + 1)...), nil,
			"attenuation: bad restriction: BindPresenters: 65 elements, at most 64"},
		{"fail/only-services-empty-id", attenuation.OnlyServices(""), nil,
			`attenuation: bad restriction: OnlyServices: SPIFFE ID 0 "": cannot be empty`},
		{"fail/only-fields-none", attenuation.OnlyFields(), nil,
			"attenuation: bad restriction: OnlyFields: no fields"},
		{"fail/only-fields-empty-name", attenuation.OnlyFields("name", ""), nil,
			"attenuation: bad restriction: OnlyFields: field 1 is empty"},
		{"fail/only-fields-control", attenuation.OnlyFields("a\nb"), nil,
			`attenuation: bad restriction: OnlyFields: field 0 "a\nb" has a control character`},
		{"fail/only-fields-not-utf8", attenuation.OnlyFields("\xff"), nil,
			"attenuation: bad restriction: OnlyFields: field 0 is not UTF-8"},
		{"fail/only-fields-too-long", attenuation.OnlyFields(strings.Repeat("f", attenuation.MaxStringBytes+1)), nil,
			"attenuation: bad restriction: OnlyFields: field 0 longer than 1024 bytes"},
		{"fail/max-records-zero", attenuation.MaxRecords(0), nil,
			"attenuation: bad restriction: MaxRecords: limit 0, want at least 1"},
		{"fail/max-records-negative", attenuation.MaxRecords(-5), nil,
			"attenuation: bad restriction: MaxRecords: limit -5, want at least 1"},
		{"fail/max-staleness-zero", attenuation.MaxStaleness(0), nil,
			"attenuation: bad restriction: MaxStaleness: bound 0s, want 1ms to 24h0m0s"},
		{"fail/max-staleness-below-a-millisecond", attenuation.MaxStaleness(time.Millisecond - 1), nil,
			"attenuation: bad restriction: MaxStaleness: bound 999.999µs, want 1ms to 24h0m0s"},
		{"fail/max-staleness-negative", attenuation.MaxStaleness(-time.Second), nil,
			"attenuation: bad restriction: MaxStaleness: bound -1s, want 1ms to 24h0m0s"},
		{"fail/max-staleness-too-long", attenuation.MaxStaleness(25 * time.Hour), nil,
			"attenuation: bad restriction: MaxStaleness: bound 25h0m0s, want 1ms to 24h0m0s"},
		{"fail/window-unknown-zone", attenuation.Window(spec.TimeWindow{Zone: "Mars/Olympus", From: 0, To: 60}),
			[]error{spec.ErrBadWindow}, `attenuation: bad restriction: Window: spec: bad time window: zone "Mars/Olympus": unknown time zone Mars/Olympus`},
		{"fail/window-empty", attenuation.Window(spec.TimeWindow{Zone: "UTC", From: 60, To: 60}),
			[]error{spec.ErrBadWindow}, "attenuation: bad restriction: Window: spec: bad time window: want 0 <= from < to <= 1440, got 60..60"},
		{"fail/window-bad-day", attenuation.Window(spec.TimeWindow{Zone: "Europe/Paris", Days: []time.Weekday{7}, From: 0, To: 60}),
			[]error{spec.ErrBadWindow}, "attenuation: bad restriction: Window: spec: bad time window: weekday 7 out of range"},
		{"fail/window-known-zone-bad-bounds", attenuation.Window(spec.TimeWindow{Zone: "Europe/Paris", From: -1, To: 60}),
			[]error{spec.ErrBadWindow}, "attenuation: bad restriction: Window: spec: bad time window: want 0 <= from < to <= 1440, got -1..60"},
		{"fail/any-window-none", attenuation.AnyWindow(), nil,
			"attenuation: bad restriction: AnyWindow: no windows"},
		{"fail/any-window-too-many", attenuation.AnyWindow(manyWindows(attenuation.MaxWindows+1, "UTC")...), nil,
			"attenuation: bad restriction: AnyWindow: 9 windows, at most 8"},
		{"fail/any-window-unknown-zone", attenuation.AnyWindow(spec.TimeWindow{Zone: "UTC", From: 0, To: 60}, spec.TimeWindow{Zone: "Mars/Olympus", From: 0, To: 60}),
			[]error{spec.ErrBadWindow}, `attenuation: bad restriction: AnyWindow: window 1: spec: bad time window: zone "Mars/Olympus": unknown time zone Mars/Olympus`},
		{"fail/any-window-empty-zone", attenuation.AnyWindow(spec.TimeWindow{From: 0, To: 60}),
			[]error{spec.ErrBadWindow}, "attenuation: bad restriction: AnyWindow: window 0: spec: bad time window: empty zone"},
		{"fail/any-window-zone-too-long", attenuation.AnyWindow(spec.TimeWindow{Zone: "UTC", From: 0, To: 60}, spec.TimeWindow{Zone: strings.Repeat("z", attenuation.MaxStringBytes+1), From: 0, To: 60}), nil,
			"attenuation: bad restriction: AnyWindow: window 1: zone longer than 1024 bytes"},
		{"fail/any-window-bad-bounds", attenuation.AnyWindow(spec.TimeWindow{Zone: "UTC", From: 0, To: 60}, spec.TimeWindow{Zone: "UTC", From: 60, To: 0}),
			[]error{spec.ErrBadWindow}, "attenuation: bad restriction: AnyWindow: window 1: spec: bad time window: want 0 <= from < to <= 1440, got 60..0"},
		{"fail/any-window-five-zones", attenuation.AnyWindow(manyWindows(5, "UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York", "Europe/London")...), nil,
			"attenuation: bad restriction: AnyWindow: 5 distinct time zones, at most 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Err()
			if err == nil {
				t.Fatal("Err: got nil, want an error")
			}
			for _, want := range append(tc.wantIs, attenuation.ErrBadRestriction) {
				if !errors.Is(err, want) {
					t.Errorf("got %v, want it to wrap %v", err, want)
				}
			}
			if err.Error() != tc.wantMsg {
				t.Errorf("got message\n%s\nwant\n%s", err, tc.wantMsg)
			}
			if _, cerr := tc.r.Check(issuedAt); cerr == nil || cerr.Error() != tc.wantMsg {
				t.Errorf("Check: got %v, want %s", cerr, tc.wantMsg)
			}
			tok := baseToken(t)
			out, rerr := attenuation.Restrict(tok, attenuation.MaxRecords(5), tc.r)
			if out != nil || !errors.Is(rerr, attenuation.ErrBadRestriction) {
				t.Fatalf("Restrict: got %d bytes, %v; want nil, %v", len(out), rerr, attenuation.ErrBadRestriction)
			}
			if want := "restriction 1: " + tc.wantMsg; rerr.Error() != want {
				t.Errorf("Restrict: got message\n%s\nwant\n%s", rerr, want)
			}
		})
	}
}

// manyWindows returns n distinct windows, window i one minute long at
// minute i of every day, cycling through zones.
func manyWindows(n int, zones ...string) []spec.TimeWindow {
	ws := make([]spec.TimeWindow, n)
	for i := range ws {
		ws[i] = spec.TimeWindow{Zone: zones[i%len(zones)], From: i, To: i + 1}
	}
	return ws
}

// A Restriction does not keep the caller's slices.
func TestRestrictionCopiesInput(t *testing.T) {
	fields := []string{"name", "email"}
	rights := []spec.Right{{Resource: "a", Operation: "read"}}
	days := []time.Weekday{time.Monday}
	rf, rr := attenuation.OnlyFields(fields...), attenuation.OnlyRights(rights...)
	rw := attenuation.Window(spec.TimeWindow{Zone: "UTC", Days: days, From: 0, To: 60})
	ws := []spec.TimeWindow{{Zone: "UTC", Days: days, From: 0, To: 60}, {Zone: "Asia/Tokyo", From: 60, To: 120}}
	ra := attenuation.AnyWindow(ws...)
	before := func() []string {
		var out []string
		for _, r := range []attenuation.Restriction{rf, rr, rw, ra} {
			c, err := r.Check(issuedAt)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.TrimSpace(strings.ReplaceAll(fmtCheck(t, c), "\n", " ")))
		}
		return out
	}
	want := before()
	fields[0], rights[0].Resource, days[0] = "ssn", "b", time.Sunday
	ws[1].Zone, ws[1].From = "UTC", 0
	if got := before(); !slices.Equal(got, want) {
		t.Errorf("after editing the caller's slices:\ngot  %q\nwant %q", got, want)
	}
	if fields[1] != "email" {
		t.Errorf("OnlyFields sorted the caller's slice: got %q", fields)
	}
}
