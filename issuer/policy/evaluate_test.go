package policy

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/spec"
)

const evalPolicy = `version: 1
defaults:
  max_ttl: 15m
rules:
  - name: support-read
    subjects: ["spiffe://acme.example/agents/support", "spiffe://acme.example/agents/tier2/*"]
    rights: ["crm/contacts:read", "crm/notes/*:read"]
    max_ttl: 10m
    max_records: 100
    fields: [email, name, phone]
    services: ["spiffe://acme.example/services/crm"]
    delegate_to: ["spiffe://acme.example/agents/*"]
  - name: support-write-business-hours
    subjects: ["spiffe://acme.example/agents/support"]
    rights: ["crm/notes/*:write"]
    max_ttl: 5m
    max_records: 10
    fields: [body, email, name]
    time_windows: [{zone: Europe/Paris, days: [mon, tue, wed, thu, fri], from: "09:00", to: "18:00"}]
    services: ["spiffe://acme.example/services/crm"]
  - name: billing-invoices
    subjects: ["spiffe://acme.example/agents/billing"]
    rights: ["billing/invoices/*:read"]
    services: ["spiffe://acme.example/services/billing"]
    bind_presenter: false
  - name: billing-contacts
    subjects: ["spiffe://acme.example/agents/billing"]
    rights: ["crm/contacts:read"]
    services: ["spiffe://acme.example/services/crm"]
    bind_presenter: false
  - name: everyone-docs
    subjects: ["spiffe://acme.example/*"]
    rights: ["docs/*:read"]
    max_ttl: 1h
    bind_presenter: false
`

var (
	// Tuesday 10:00 in Paris (CET, UTC+1), and Saturday at the same hour.
	tuesday  = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	saturday = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

	paris = spec.TimeWindow{Zone: "Europe/Paris", Days: []time.Weekday{1, 2, 3, 4, 5}, From: 540, To: 1080}
)

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func rights(t testing.TB, ss ...string) []spec.Right {
	t.Helper()
	out := make([]spec.Right, len(ss))
	for i, s := range ss {
		r, err := spec.ParseRight(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = r
	}
	return out
}

func TestEvaluate(t *testing.T) {
	p := mustParse(t, evalPolicy)
	const (
		support = "spiffe://acme.example/agents/support"
		billing = "spiffe://acme.example/agents/billing"
		crm     = "spiffe://acme.example/services/crm"
	)
	supportRead := Result{TTL: 10 * time.Minute, MaxRecords: 100, Fields: []string{"email", "name", "phone"},
		Services: []string{crm}, BindPresenter: true, Rules: []string{"support-read"}}
	granted := func(r Result, rs ...spec.Right) Result { r.Granted = rs; return r }
	denied := func(reason string, q spec.Right, alts ...spec.Right) Denial {
		return Denial{Right: q, Reason: reason, Alternatives: alts}
	}
	r := func(s string) spec.Right { return rights(t, s)[0] }

	cases := []struct {
		name    string
		subject string
		rights  []spec.Right
		ttl     time.Duration
		now     time.Time
		want    Result
	}{
		{name: "ok/exact", subject: support, rights: rights(t, "crm/contacts:read"),
			want: granted(supportRead, r("crm/contacts:read"))},
		{name: "ok/prefix-subject", subject: "spiffe://acme.example/agents/tier2/alice", rights: rights(t, "crm/contacts:read"),
			want: granted(supportRead, r("crm/contacts:read"))},
		{name: "ok/prefix-subject-deeper", subject: "spiffe://acme.example/agents/tier2/eu/alice", rights: rights(t, "crm/contacts:read"),
			want: granted(supportRead, r("crm/contacts:read"))},
		{name: "fail/prefix-subject-is-not-its-parent", subject: "spiffe://acme.example/agents/tier2", rights: rights(t, "crm/contacts:read"),
			want: Result{Denied: []Denial{denied(DenyRightNotAllowed, r("crm/contacts:read"))}}},
		{name: "fail/prefix-subject-sibling-name", subject: "spiffe://acme.example/agents/tier2x/alice", rights: rights(t, "crm/contacts:read"),
			want: Result{Denied: []Denial{denied(DenyRightNotAllowed, r("crm/contacts:read"))}}},
		{name: "fail/other-trust-domain", subject: "spiffe://evil.example/agents/support", rights: rights(t, "crm/contacts:read"),
			want: Result{Denied: []Denial{denied(DenyNoMatchingRule, r("crm/contacts:read"))}}},
		{name: "fail/trust-domain-with-same-prefix", subject: "spiffe://acme.example.evil/agents/support", rights: rights(t, "docs/a:read"),
			want: Result{Denied: []Denial{denied(DenyNoMatchingRule, r("docs/a:read"))}}},
		{name: "fail/zero-subject", rights: rights(t, "docs/a:read"),
			want: Result{Denied: []Denial{denied(DenyNoMatchingRule, r("docs/a:read"))}}},
		{name: "ok/narrower-than-prefix-right", subject: support, rights: rights(t, "crm/notes/42:read", "crm/notes/archive/*:read"),
			want: granted(supportRead, r("crm/notes/42:read"), r("crm/notes/archive/*:read"))},
		{name: "ok/same-prefix-right", subject: support, rights: rights(t, "crm/notes/*:read"),
			want: granted(supportRead, r("crm/notes/*:read"))},
		{name: "fail/wider-than-right", subject: support, rights: rights(t, "crm/*:read"),
			want: Result{Denied: []Denial{denied(DenyRightNotAllowed, r("crm/*:read"), r("crm/contacts:read"), r("crm/notes/*:read"))}}},
		{name: "fail/prefix-right-does-not-cover-its-parent", subject: support, rights: rights(t, "crm/notes:read"),
			want: Result{Denied: []Denial{denied(DenyRightNotAllowed, r("crm/notes:read"))}}},
		{name: "fail/other-operation", subject: support, rights: rights(t, "crm/contacts:write"),
			want: Result{Denied: []Denial{denied(DenyRightNotAllowed, r("crm/contacts:write"))}}},
		{name: "fail/prefix-subject-lacks-exact-subject-rights", subject: "spiffe://acme.example/agents/tier2/alice", rights: rights(t, "crm/notes/1:write"), now: tuesday,
			want: Result{Denied: []Denial{denied(DenyRightNotAllowed, r("crm/notes/1:write"))}}},
		{name: "ok/ttl-capped", subject: support, rights: rights(t, "crm/contacts:read"), ttl: time.Hour,
			want: granted(supportRead, r("crm/contacts:read"))},
		{name: "ok/ttl-shorter-kept", subject: support, rights: rights(t, "crm/contacts:read"), ttl: 2 * time.Minute,
			want: func() Result { w := granted(supportRead, r("crm/contacts:read")); w.TTL = 2 * time.Minute; return w }()},
		{name: "ok/constraints-combined", subject: support, rights: rights(t, "crm/contacts:read", "crm/notes/1:write"), now: tuesday,
			want: Result{Granted: rights(t, "crm/contacts:read", "crm/notes/1:write"), TTL: 5 * time.Minute, MaxRecords: 10,
				Fields: []string{"email", "name"}, Windows: []WindowSet{{paris}}, Services: []string{crm}, BindPresenter: true,
				Rules: []string{"support-read", "support-write-business-hours"}}},
		{name: "ok/unrestricted-rule-adds-nothing", subject: support, rights: rights(t, "docs/guide:read", "crm/contacts:read"),
			want: func() Result {
				w := granted(supportRead, rights(t, "docs/guide:read", "crm/contacts:read")...)
				w.Rules = []string{"support-read", "everyone-docs"}
				return w
			}()},
		{name: "ok/trust-domain-wide-subject", subject: "spiffe://acme.example/x", rights: rights(t, "docs/a/b:read"), ttl: 2 * time.Hour,
			want: Result{Granted: rights(t, "docs/a/b:read"), TTL: time.Hour, Rules: []string{"everyone-docs"}}},
		{name: "fail/outside-time-window", subject: support, rights: rights(t, "crm/contacts:read", "crm/notes/1:write"), now: saturday,
			want: func() Result {
				w := granted(supportRead, r("crm/contacts:read"))
				w.Denied = []Denial{denied(DenyOutsideTimeWindow, r("crm/notes/1:write"))}
				return w
			}()},
		{name: "fail/constraint-conflict", subject: billing, rights: rights(t, "billing/invoices/1:read", "crm/contacts:read"),
			want: Result{Granted: rights(t, "billing/invoices/1:read"), TTL: 15 * time.Minute,
				Services: []string{"spiffe://acme.example/services/billing"}, Rules: []string{"billing-invoices"},
				Denied: []Denial{denied(DenyConstraintConflict, r("crm/contacts:read"))}}},
		{name: "ok/conflict-avoided-alone", subject: billing, rights: rights(t, "crm/contacts:read"),
			want: Result{Granted: rights(t, "crm/contacts:read"), TTL: 15 * time.Minute, Services: []string{crm}, Rules: []string{"billing-contacts"}}},
		{name: "ok/duplicate-right-granted-once", subject: support, rights: rights(t, "crm/contacts:read", "crm/contacts:read"),
			want: granted(supportRead, r("crm/contacts:read"))},
		{name: "fail/bad-right", subject: support, rights: []spec.Right{{Resource: "crm*", Operation: "read"}},
			want: Result{Denied: []Denial{denied(DenyBadRight, spec.Right{Resource: "crm*", Operation: "read"})}}},
		{name: "fail/too-many-rights", subject: support, rights: slices.Repeat(rights(t, "crm/contacts:read"), MaxRequestRights+1),
			want: Result{Denied: slices.Repeat([]Denial{denied(DenyTooManyRights, r("crm/contacts:read"))}, MaxRequestRights+1)}},
		{name: "fail/no-rights", subject: support, want: Result{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := Request{Rights: tc.rights, TTL: tc.ttl, Now: tc.now}
			if tc.now.IsZero() {
				req.Now = tuesday
			}
			if tc.subject != "" {
				req.Subject = spiffeid.RequireFromString(tc.subject)
			}
			got := p.Evaluate(req)
			tc.want.PolicyVersion = p.Version()
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestEvaluateResultIsCallersCopy(t *testing.T) {
	p := mustParse(t, evalPolicy)
	req := Request{Subject: spiffeid.RequireFromString("spiffe://acme.example/agents/support"),
		Rights: rights(t, "crm/notes/1:write"), Now: tuesday}
	first := p.Evaluate(req)
	first.Fields[0] = "mutated"
	first.Services[0] = "mutated"
	first.Windows[0][0].Days[0] = time.Sunday
	second := p.Evaluate(req)
	if second.Fields[0] != "body" || second.Services[0] != "spiffe://acme.example/services/crm" || second.Windows[0][0].Days[0] != time.Monday {
		t.Fatalf("got %+v after mutating an earlier result, want the policy unchanged", second)
	}
}

func TestMayDelegate(t *testing.T) {
	p := mustParse(t, evalPolicy)
	id := spiffeid.RequireFromString
	cases := []struct {
		name     string
		from, to string
		rights   []spec.Right
		want     bool
	}{
		{"ok/listed-target", "spiffe://acme.example/agents/support", "spiffe://acme.example/agents/helper", rights(t, "crm/contacts:read"), true},
		{"ok/narrower-right", "spiffe://acme.example/agents/tier2/bob", "spiffe://acme.example/agents/helper", rights(t, "crm/notes/7:read"), true},
		{"fail/target-is-pattern-parent", "spiffe://acme.example/agents/support", "spiffe://acme.example/agents", rights(t, "crm/contacts:read"), false},
		{"fail/target-sibling-name", "spiffe://acme.example/agents/support", "spiffe://acme.example/agentsx/helper", rights(t, "crm/contacts:read"), false},
		{"fail/target-not-listed", "spiffe://acme.example/agents/support", "spiffe://acme.example/services/crm", rights(t, "crm/contacts:read"), false},
		{"fail/target-other-trust-domain", "spiffe://acme.example/agents/support", "spiffe://partner.example/agents/helper", rights(t, "crm/contacts:read"), false},
		{"fail/rule-without-delegate-to", "spiffe://acme.example/agents/support", "spiffe://acme.example/agents/helper", rights(t, "crm/notes/1:write"), false},
		{"fail/one-right-not-delegable", "spiffe://acme.example/agents/support", "spiffe://acme.example/agents/helper", rights(t, "crm/contacts:read", "docs/a:read"), false},
		{"fail/from-not-subject", "spiffe://acme.example/agents/billing", "spiffe://acme.example/agents/helper", rights(t, "crm/contacts:read"), false},
		{"fail/no-rights", "spiffe://acme.example/agents/support", "spiffe://acme.example/agents/helper", nil, false},
		{"fail/bad-right", "spiffe://acme.example/agents/support", "spiffe://acme.example/agents/helper", []spec.Right{{Resource: "crm/contacts"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.MayDelegate(id(tc.from), id(tc.to), tc.rights); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if p.MayDelegate(spiffeid.ID{}, id("spiffe://acme.example/agents/helper"), rights(t, "crm/contacts:read")) {
		t.Error("got true for the zero from ID, want false")
	}
}

// randomPolicy builds a policy over small alphabets so that subjects,
// rights and constraints overlap often.
func randomPolicy(rng *rand.Rand, nRules int) string {
	segs := []string{"a", "b", "c"}
	pick := func(n int) string { return segs[rng.IntN(n)] }
	ops := []string{"read", "write"}
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	for i := 0; i < nRules; i++ {
		fmt.Fprintf(&b, "  - name: r%d\n    subjects:\n", i)
		subs := map[string]bool{}
		for k := 0; k < 1+rng.IntN(2); k++ {
			s := "spiffe://td/" + pick(3)
			switch rng.IntN(4) {
			case 0:
				s += "/*"
			case 1:
				s = "spiffe://td/*"
			case 2:
				s += "/" + pick(3)
			}
			subs[s] = true
		}
		for s := range subs {
			fmt.Fprintf(&b, "      - %q\n", s)
		}
		b.WriteString("    rights:\n")
		rs := map[string]bool{}
		for k := 0; k < 1+rng.IntN(3); k++ {
			res := "x/" + pick(3)
			if rng.IntN(2) == 0 {
				res += "/" + pick(3)
			}
			if rng.IntN(2) == 0 {
				res += "/*"
			}
			rs[res+":"+ops[rng.IntN(2)]] = true
		}
		for s := range rs {
			fmt.Fprintf(&b, "      - %q\n", s)
		}
		fmt.Fprintf(&b, "    max_ttl: %dm\n", 1+rng.IntN(30))
		if rng.IntN(2) == 0 {
			fmt.Fprintf(&b, "    max_records: %d\n", 1+rng.IntN(100))
		}
		if rng.IntN(2) == 0 {
			fmt.Fprintf(&b, "    fields: [%s]\n", strings.Join(slices.Compact(slices.Sorted(slices.Values([]string{pick(3), pick(3)}))), ", "))
		}
		if rng.IntN(2) == 0 {
			fmt.Fprintf(&b, "    services: [\"spiffe://td/svc/%s\"]\n", pick(2))
		}
		if rng.IntN(3) == 0 {
			zones := []string{"UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York", "Australia/Sydney", "Asia/Kolkata"}
			from := rng.IntN(23)
			fmt.Fprintf(&b, "    time_windows: [{zone: %s, from: \"%02d:00\", to: \"%02d:00\"}]\n", zones[rng.IntN(len(zones))], from, from+1+rng.IntN(24-from))
		}
		if rng.IntN(2) == 0 {
			fmt.Fprintf(&b, "    bind_presenter: %v\n", rng.IntN(2) == 0)
		}
	}
	return b.String()
}

func randomRight(rng *rand.Rand) spec.Right {
	segs := []string{"a", "b", "c", "d"}
	res := "x/" + segs[rng.IntN(4)]
	for rng.IntN(2) == 0 {
		res += "/" + segs[rng.IntN(4)]
	}
	if rng.IntN(3) == 0 {
		res += "/*"
	}
	return spec.Right{Resource: res, Operation: []string{"read", "write"}[rng.IntN(2)]}
}

// TestEvaluateNeverWidens is the security property of Evaluate: every
// granted right is contained in a right of a chosen rule that names the
// subject and is open now, and the result is at least as strict as every
// chosen rule. It also checks the index against a scan of all rules.
func TestEvaluateNeverWidens(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 200; iter++ {
		src := randomPolicy(rng, 1+rng.IntN(12))
		p, err := Parse([]byte(src))
		if err != nil {
			t.Fatalf("random policy: %v\n%s", err, src)
		}
		for k := 0; k < 20; k++ {
			subj := spiffeid.RequireFromString("spiffe://td/" + []string{"a", "b", "c"}[rng.IntN(3)] + []string{"", "/a", "/b/c"}[rng.IntN(3)])
			var rs []spec.Right
			for n := rng.IntN(5); n >= 0; n-- {
				rs = append(rs, randomRight(rng))
			}
			now := time.Unix(1_800_000_000+rng.Int64N(7*86400), 0)
			res := p.Evaluate(Request{Subject: subj, Rights: rs, Now: now, TTL: time.Duration(rng.IntN(40)) * time.Minute})
			checkResult(t, p, subj, rs, now, res, src)
		}
	}
}

func checkResult(t *testing.T, p *Policy, subj spiffeid.ID, rs []spec.Right, now time.Time, res Result, src string) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\nsubject %s rights %v now %s\nresult %+v\npolicy:\n%s", fmt.Sprintf(format, args...), subj, rs, now, res, src)
	}
	var chosen []*rule
	for _, name := range res.Rules {
		i := slices.IndexFunc(p.rules, func(r *rule) bool { return r.name == name })
		if i < 0 {
			fail("unknown rule %q", name)
		}
		r := p.rules[i]
		if !slices.ContainsFunc(r.subjects, func(s idPattern) bool { return s.matches(subj.String()) }) {
			fail("rule %s does not name the subject", name)
		}
		if !r.openAt(now) {
			fail("rule %s is closed now", name)
		}
		if res.TTL > r.maxTTL || res.TTL <= 0 {
			fail("TTL %s outside (0, %s] of rule %s", res.TTL, r.maxTTL, name)
		}
		if r.maxRecords > 0 && (res.MaxRecords == 0 || res.MaxRecords > r.maxRecords) {
			fail("max records %d looser than %d of rule %s", res.MaxRecords, r.maxRecords, name)
		}
		for _, pair := range []struct{ got, rule []string }{{res.Fields, r.fields}, {res.Services, r.services}} {
			if pair.rule == nil {
				continue
			}
			if pair.got == nil {
				fail("rule %s restricts %v, result does not", name, pair.rule)
			}
			for _, f := range pair.got {
				if !slices.Contains(pair.rule, f) {
					fail("%q not allowed by rule %s", f, name)
				}
			}
		}
		if len(r.windows) > 0 && !slices.ContainsFunc(res.Windows, func(ws WindowSet) bool {
			return len(ws) == len(r.windows) && slices.EqualFunc(ws, r.windows, func(a spec.TimeWindow, b window) bool {
				return a.Zone == b.Zone && a.From == b.From && a.To == b.To && slices.Equal(a.Days, b.Days)
			})
		}) {
			fail("windows of rule %s missing", name)
		}
		if r.bindPresenter && !res.BindPresenter {
			fail("rule %s binds the presenter, result does not", name)
		}
		chosen = append(chosen, r)
	}
	for _, q := range res.Granted {
		if !slices.ContainsFunc(chosen, func(r *rule) bool {
			return slices.ContainsFunc(r.rights, func(o spec.Right) bool { return q.Within(o) })
		}) {
			fail("granted %s is within no chosen rule", q)
		}
	}
	distinct := map[spec.Right]bool{}
	for _, q := range rs {
		distinct[q] = true
	}
	if got := len(res.Granted) + len(res.Denied); got != len(distinct) {
		fail("got %d decisions, want one per distinct right (%d)", got, len(distinct))
	}
	// Reasons must agree with a scan of every rule.
	for _, d := range res.Denied {
		var named, covers, open bool
		for _, r := range p.rules {
			if !slices.ContainsFunc(r.subjects, func(s idPattern) bool { return s.matches(subj.String()) }) {
				continue
			}
			named = true
			if slices.ContainsFunc(r.rights, func(o spec.Right) bool { return d.Right.Within(o) }) {
				covers = true
				open = open || r.openAt(now)
			}
		}
		want := DenyConstraintConflict
		switch {
		case !named:
			want = DenyNoMatchingRule
		case !covers:
			want = DenyRightNotAllowed
		case !open:
			want = DenyOutsideTimeWindow
		}
		if d.Reason != want {
			fail("denial of %s: got reason %s, want %s", d.Right, d.Reason, want)
		}
	}
}

// TestWindowContainsAgreesWithSpec holds the evaluator's time-window test
// to spec.TimeWindow.Contains, the reference semantics.
func TestWindowContainsAgreesWithSpec(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, zone := range []string{"UTC", "Europe/Paris", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2000; i++ {
			from := rng.IntN(1440)
			w := window{TimeWindow: spec.TimeWindow{Zone: zone, From: from, To: from + 1 + rng.IntN(1440-from)}, loc: loc}
			if rng.IntN(2) == 0 {
				w.Days = []time.Weekday{time.Weekday(rng.IntN(7)), time.Weekday(rng.IntN(7))}
			}
			at := time.Unix(1_700_000_000+rng.Int64N(400*86400), 0)
			if got, want := w.contains(at), w.TimeWindow.Contains(at); got != want {
				t.Fatalf("window %+v at %s: got %v, want %v", w.TimeWindow, at, got, want)
			}
		}
	}
}

// TestConcurrentUse exercises the documented concurrency safety under -race.
func TestConcurrentUse(t *testing.T) {
	p := mustParse(t, evalPolicy)
	req := Request{Subject: spiffeid.RequireFromString("spiffe://acme.example/agents/support"),
		Rights: rights(t, "crm/contacts:read", "crm/notes/1:write", "crm/*:read"), Now: tuesday}
	want := p.Evaluate(req)
	done := make(chan Result)
	for range 4 {
		go func() {
			var last Result
			for range 200 {
				last = p.Evaluate(req)
				p.MayDelegate(req.Subject, spiffeid.RequireFromString("spiffe://acme.example/agents/x"), req.Rights[:1])
				_ = p.Canonical()
			}
			done <- last
		}()
	}
	for range 4 {
		if got := <-done; !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
}

// TestEvaluateMaxStaleness: the token's max_staleness is the smallest of
// the chosen rules' (defaults applied); rules without one add none.
func TestEvaluateMaxStaleness(t *testing.T) {
	const withDefault = `version: 1
defaults: {max_staleness: 30s}
rules:
  - {name: crm, subjects: ["spiffe://td/a"], rights: ["crm/contacts:read"]}
  - {name: pay, subjects: ["spiffe://td/a"], rights: ["pay/*:write"], max_staleness: 2s}
`
	const noDefault = `version: 1
rules:
  - {name: docs, subjects: ["spiffe://td/a"], rights: ["docs/*:read"]}
  - {name: pay, subjects: ["spiffe://td/a"], rights: ["pay/*:write"], max_staleness: 5m}
`
	for _, tc := range []struct {
		name, policy string
		rights       []string
		want         time.Duration
	}{
		{"ok/default-applies", withDefault, []string{"crm/contacts:read"}, 30 * time.Second},
		{"ok/rule-overrides-default", withDefault, []string{"pay/x:write"}, 2 * time.Second},
		{"ok/smallest-of-rules", withDefault, []string{"crm/contacts:read", "pay/x:write"}, 2 * time.Second},
		{"ok/smallest-of-rules-reversed", withDefault, []string{"pay/x:write", "crm/contacts:read"}, 2 * time.Second},
		{"ok/none", noDefault, []string{"docs/a:read"}, 0},
		{"ok/unbounded-rule-adds-none", noDefault, []string{"docs/a:read", "pay/x:write"}, 5 * time.Minute},
		{"fail/nothing-granted", noDefault, []string{"hr/x:read"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, tc.policy)
			res := p.Evaluate(Request{Subject: spiffeid.RequireFromString("spiffe://td/a"), Rights: rights(t, tc.rights...), Now: tuesday})
			if got := res.MaxStaleness; got != tc.want {
				t.Errorf("got MaxStaleness %v, want %v (granted %v, denied %v)", got, tc.want, res.Granted, res.Denied)
			}
		})
	}
}
