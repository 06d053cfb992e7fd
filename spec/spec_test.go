package spec

import (
	"errors"
	"testing"
	"time"
)

func TestParseRight(t *testing.T) {
	for _, tc := range []struct {
		in     string
		ok     bool
		prefix string
	}{
		{"crm/contacts:read", true, ""},
		{"crm/notes/*:read", true, "crm/notes/"},
		{"urn:x:y:read", true, ""},
		{"crm*:read", false, ""},
		{"/*:read", false, ""},
		{"crm/*/x:read", false, ""},
		{"crm:", false, ""},
		{":read", false, ""},
		{"crm:re*d", false, ""},
		{"crm\n:read", false, ""},
		{"nocolon", false, ""},
	} {
		r, err := ParseRight(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseRight(%q): got err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil && !errors.Is(err, ErrBadRight) {
			t.Errorf("ParseRight(%q): error does not wrap ErrBadRight", tc.in)
		}
		if tc.ok && r.Prefix() != tc.prefix {
			t.Errorf("ParseRight(%q).Prefix(): got %q, want %q", tc.in, r.Prefix(), tc.prefix)
		}
	}
}

func TestRightCoversAndWithin(t *testing.T) {
	p := Right{Resource: "crm/*", Operation: "read"}
	e := Right{Resource: "crm/contacts", Operation: "read"}
	for _, tc := range []struct {
		r        Right
		res, op  string
		want     bool
		withinOf Right
		within   bool
	}{
		{p, "crm/contacts/1", "read", true, Right{Resource: "*x/*", Operation: "read"}, false},
		{p, "crmx", "read", false, p, true},
		{p, "crm/a", "write", false, Right{Resource: "crm/a/*", Operation: "read"}, false},
		{e, "crm/contacts", "read", true, p, true},
		{e, "crm/contacts/1", "read", false, e, true},
		{Right{Resource: "crm/a/*", Operation: "read"}, "crm/a/b", "read", true, p, true},
	} {
		if got := tc.r.Covers(tc.res, tc.op); got != tc.want {
			t.Errorf("%v.Covers(%s, %s): got %v, want %v", tc.r, tc.res, tc.op, got, tc.want)
		}
		if got := tc.r.Within(tc.withinOf); got != tc.within {
			t.Errorf("%v.Within(%v): got %v, want %v", tc.r, tc.withinOf, got, tc.within)
		}
	}
}

func TestCanonicalZoneAndWindow(t *testing.T) {
	for name, want := range map[string]bool{
		"UTC": true, "Europe/Paris": true, "America/Argentina/Buenos_Aires": true, "Etc/GMT+5": true,
		"": false, "Local": false, "Europe/./Paris": false, "Europe//Paris": false, "/Europe/Paris": false,
		"Europe/Paris/": false, "posix/Europe/Paris": false, "right/UTC": false, "Europe/Par is": false,
	} {
		if got := CanonicalZone(name); got != want {
			t.Errorf("CanonicalZone(%q): got %v, want %v", name, got, want)
		}
	}
	w := TimeWindow{Zone: "Europe/Paris", Days: []time.Weekday{time.Monday}, From: 540, To: 1080}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	monday10 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC) // 10:00 in Paris
	if !w.Contains(monday10) || w.Contains(monday10.Add(8*time.Hour)) || w.Contains(monday10.Add(24*time.Hour)) {
		t.Error("Contains: wrong inside/outside decisions")
	}
	for _, bad := range []TimeWindow{
		{Zone: "Local", From: 0, To: 60},
		{Zone: "Mars/Olympus", From: 0, To: 60},
		{Zone: "UTC", From: 60, To: 60},
		{Zone: "UTC", From: 0, To: 1441},
		{Zone: "UTC", Days: []time.Weekday{7}, From: 0, To: 60},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrBadWindow) {
			t.Errorf("Validate(%+v): got %v, want ErrBadWindow", bad, err)
		}
	}
}
