package policy

import (
	"reflect"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TestStarterGrants checks the starter policy does what spec/policy.md
// says `writ dev` offers.
func TestStarterGrants(t *testing.T) {
	p := mustParse(t, string(Starter))
	support := spiffeid.RequireFromString("spiffe://writ.dev.local/agents/support")
	billing := spiffeid.RequireFromString("spiffe://writ.dev.local/agents/billing")
	weekday := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC) // Wednesday
	night := time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)

	cases := []struct {
		name        string
		subject     spiffeid.ID
		rights      []string
		now         time.Time
		wantGranted []string
		wantDenied  []string
		wantRules   []string
	}{
		{"ok/support-reads-crm", support, []string{"crm/contacts:read", "crm/notes/7:read"}, night,
			[]string{"crm/contacts:read", "crm/notes/7:read"}, nil, []string{"support-read-crm"}},
		{"ok/support-writes-notes-in-business-hours", support, []string{"crm/notes/7:write"}, weekday,
			[]string{"crm/notes/7:write"}, nil, []string{"support-write-notes-business-hours"}},
		{"fail/support-writes-notes-at-night", support, []string{"crm/notes/7:write"}, night,
			nil, []string{DenyOutsideTimeWindow}, nil},
		{"fail/support-reads-invoices", support, []string{"billing/invoices/1:read"}, weekday,
			nil, []string{DenyRightNotAllowed}, nil},
		{"ok/billing-reads-invoices", billing, []string{"billing/invoices/1:read"}, night,
			[]string{"billing/invoices/1:read"}, nil, []string{"billing-read-invoices"}},
		{"fail/billing-reads-contacts", billing, []string{"crm/contacts:read"}, weekday,
			nil, []string{DenyRightNotAllowed}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := p.Evaluate(Request{Subject: tc.subject, Rights: rights(t, tc.rights...), Now: tc.now})
			var granted, denied []string
			for _, g := range res.Granted {
				granted = append(granted, g.String())
			}
			for _, d := range res.Denied {
				denied = append(denied, d.Reason)
			}
			if !reflect.DeepEqual(granted, tc.wantGranted) || !reflect.DeepEqual(denied, tc.wantDenied) || !reflect.DeepEqual(res.Rules, tc.wantRules) {
				t.Errorf("got granted %v denied %v rules %v, want %v %v %v", granted, denied, res.Rules, tc.wantGranted, tc.wantDenied, tc.wantRules)
			}
			if len(res.Granted) > 0 && (res.MaxRecords != 100 || !res.BindPresenter) {
				t.Errorf("got max records %d bind %v, want 100 true", res.MaxRecords, res.BindPresenter)
			}
		})
	}
}
