package attenuation_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/attenuation/attenuationtest"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

// The security invariant of attenuation (STYLE: property tests for
// security invariants): an attenuated token is never allowed where its
// original is denied. Random originals (exact and prefix rights, random
// constraints), random restrictions in 1 to 3 appended blocks, random
// requests, decided by the product verifier. Every decision is also
// compared with a model written from spec/token.md, and the first cases
// with biscuit-go's own authorizer, so that "never allowed" cannot hold
// because nothing is ever allowed.

const (
	propertyPairs       = 1250 // token pairs (original, attenuated)
	requestsPerPair     = 8    // 10,000 cases
	referenceCheckCases = 200  // cases also decided by biscuit-go
	propertySeed        = 0x5eed
)

var (
	propResources = []string{"crm", "crm/contacts", "crm/contacts/1", "crm/notes/1", "crm/notes/2", "crm/notes/a/b", "hr/people", "hr/pay/1"}
	propPrefixes  = []string{"crm/*", "crm/notes/*", "crm/notes/a/*", "hr/*", "hr/pay/*"}
	propOps       = []string{"read", "write"}
	propAgents    = []string{agentID, helperID, td + "/agents/third"}
	propServices  = []string{crmID, hrID}
	propFields    = []string{"name", "email", "phone"}
	propZones     = []string{"UTC", "Europe/Paris", "Asia/Tokyo", "America/Los_Angeles"}
	propEpoch     = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
)

// propRequest is one request and the verifier clock at that moment.
type propRequest struct {
	at                  time.Time // whole seconds
	resource, operation string
	presenter, service  string
	records             int
	fields              []string
}

func (r propRequest) String() string {
	return fmt.Sprintf("{time %s, %s:%s, presenter %q, service %q, records %d, fields %q}",
		r.at.Format(time.RFC3339), r.resource, r.operation, r.presenter, r.service, r.records, r.fields)
}

// modelCheck is the meaning of one check per token.md §3–§5.
type modelCheck func(propRequest) bool

// propToken is a token and the model of what it allows.
type propToken struct {
	bytes  []byte
	rights []spec.Right
	checks []modelCheck
}

func (p propToken) allows(r propRequest) bool {
	if !slices.ContainsFunc(p.rights, func(rt spec.Right) bool { return rt.Covers(r.resource, r.operation) }) {
		return false
	}
	for _, c := range p.checks {
		if !c(r) {
			return false
		}
	}
	return true
}

type gen struct{ *rand.Rand }

func (g gen) pick(xs []string) string { return xs[g.IntN(len(xs))] }
func (g gen) chance(p float64) bool   { return g.Float64() < p }

// subset returns a random subset of xs, non-empty when nonEmpty.
func (g gen) subset(xs []string, nonEmpty bool) []string {
	for {
		var out []string
		for _, x := range xs {
			if g.chance(0.5) {
				out = append(out, x)
			}
		}
		if len(out) > 0 || !nonEmpty {
			return out
		}
	}
}

func (g gen) right() spec.Right {
	if g.chance(0.5) {
		return spec.Right{Resource: g.pick(propPrefixes), Operation: g.pick(propOps)}
	}
	return spec.Right{Resource: g.pick(propResources), Operation: g.pick(propOps)}
}

// covering returns a right that covers (res, op): exact or one of the
// prefixes, when one applies.
func (g gen) covering(res, op string) spec.Right {
	var ps []string
	for _, p := range propPrefixes {
		if (spec.Right{Resource: p, Operation: op}).Covers(res, op) {
			ps = append(ps, p)
		}
	}
	if len(ps) > 0 && g.chance(0.5) {
		return spec.Right{Resource: g.pick(ps), Operation: op}
	}
	return spec.Right{Resource: res, Operation: op}
}

func (g gen) request(issued time.Time) propRequest {
	r := propRequest{
		at:        issued.Add(time.Duration(g.IntN(150*60)-10*60) * time.Second),
		resource:  g.pick(propResources),
		operation: g.pick(propOps),
		presenter: g.pick(propAgents),
		service:   g.pick(propServices),
		records:   g.IntN(41),
		fields:    g.subset(propFields, false),
	}
	if g.chance(0.1) {
		r.presenter = ""
	}
	if g.chance(0.1) {
		r.service = ""
	}
	return r
}

// mutate changes one or two aspects of r.
func (g gen) mutate(r propRequest, issued time.Time) propRequest {
	o := g.request(issued)
	for range 1 + g.IntN(2) {
		switch g.IntN(7) {
		case 0:
			r.at = o.at
		case 1:
			r.resource = o.resource
		case 2:
			r.operation = o.operation
		case 3:
			r.presenter = o.presenter
		case 4:
			r.service = o.service
		case 5:
			r.records = o.records
		case 6:
			r.fields = o.fields
		}
	}
	return r
}

// restriction returns a random restriction and its model. When near, it
// is built to let target through most of the time. now is the moment of
// attenuation (ExpireIn).
func (g gen) restriction(target propRequest, now time.Time, near bool) (attenuation.Restriction, modelCheck) {
	ids := func(all []string, want string) []string {
		s := g.subset(all, true)
		if near && want != "" && !slices.Contains(s, want) {
			s = append(s, want)
		}
		return s
	}
	switch g.IntN(8) {
	case 0:
		rs := make([]spec.Right, 1+g.IntN(3))
		for i := range rs {
			rs[i] = g.right()
		}
		if near {
			rs[0] = g.covering(target.resource, target.operation)
		}
		return attenuation.OnlyRights(rs...), func(r propRequest) bool {
			return slices.ContainsFunc(rs, func(rt spec.Right) bool { return rt.Covers(r.resource, r.operation) })
		}
	case 1:
		at := now.Add(time.Duration(g.IntN(120*60)) * time.Second)
		if near && !at.After(target.at) {
			at = target.at.Add(time.Duration(g.IntN(3600)) * time.Second)
		}
		return attenuation.ExpireBy(at), func(r propRequest) bool { return r.at.Unix() <= at.Unix() }
	case 2:
		d := time.Duration(1+g.IntN(120*60)) * time.Second
		if near && !now.Add(d).After(target.at) {
			d = target.at.Sub(now) + time.Duration(g.IntN(3600))*time.Second
		}
		at := now.Add(d)
		return attenuation.ExpireIn(d), func(r propRequest) bool { return r.at.Unix() <= at.Unix() }
	case 3:
		s := ids(propAgents, target.presenter)
		return attenuation.BindPresenters(s...), func(r propRequest) bool {
			return r.presenter != "" && slices.Contains(s, r.presenter)
		}
	case 4:
		s := ids(propServices, target.service)
		return attenuation.OnlyServices(s...), func(r propRequest) bool {
			return r.service != "" && slices.Contains(s, r.service)
		}
	case 5:
		s := g.subset(propFields, true)
		if near {
			for _, f := range target.fields {
				if !slices.Contains(s, f) {
					s = append(s, f)
				}
			}
		}
		return attenuation.OnlyFields(s...), func(r propRequest) bool {
			for _, f := range r.fields {
				if !slices.Contains(s, f) {
					return false
				}
			}
			return true
		}
	case 6:
		n := 1 + g.IntN(40)
		if near && n < target.records {
			n = target.records + g.IntN(5)
		}
		return attenuation.MaxRecords(n), func(r propRequest) bool { return r.records <= n }
	default:
		// One window, or (a third of the time) AnyWindow with two, of
		// which a near restriction opens one at target.
		ws := []spec.TimeWindow{g.window()}
		if g.chance(1.0 / 3) {
			ws = append(ws, g.window())
		}
		if near {
			i := g.IntN(len(ws))
			ws[i] = g.widen(ws[i], target.at)
		}
		contains := func(r propRequest) bool {
			return slices.ContainsFunc(ws, func(w spec.TimeWindow) bool { return w.Contains(r.at) })
		}
		if len(ws) == 1 {
			return attenuation.Window(ws[0]), contains
		}
		return attenuation.AnyWindow(ws...), contains
	}
}

// window returns a random time window in one of propZones.
func (g gen) window() spec.TimeWindow {
	w := spec.TimeWindow{Zone: g.pick(propZones)}
	for d := time.Sunday; d <= time.Saturday; d++ {
		if g.chance(0.6) {
			w.Days = append(w.Days, d)
		}
	}
	w.From = g.IntN(1440)
	w.To = w.From + 1 + g.IntN(1440-w.From)
	return w
}

// widen returns w grown to be open at t.
func (g gen) widen(w spec.TimeWindow, t time.Time) spec.TimeWindow {
	loc, _ := time.LoadLocation(w.Zone)
	lt := t.In(loc)
	if len(w.Days) > 0 && !slices.Contains(w.Days, lt.Weekday()) {
		w.Days = append(slices.Clone(w.Days), lt.Weekday())
	}
	m := lt.Hour()*60 + lt.Minute()
	w.From = min(w.From, m)
	w.To = max(w.To, m+1)
	return w
}

// decider decides one request; ok is true when allowed. reason explains.
type decider func(token []byte, r propRequest) (ok bool, reason string)

func TestPropertyAttenuationNeverWidens(t *testing.T) {
	var now time.Time
	keys, err := verifier.NewKeySet(verifier.RootKey{ID: 7, Public: rootPub})
	if err != nil {
		t.Fatal(err)
	}
	cfg := verifier.DefaultConfig()
	cfg.Keys = keys
	cfg.Now = func() time.Time { return now }
	v, err := verifier.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	product := func(token []byte, r propRequest) (bool, string) {
		now = r.at
		d := v.Authorize(ctx, token, verifier.Request{
			Resource: r.resource, Operation: r.operation,
			Presenter: r.presenter, Service: r.service,
			Records: r.records, Fields: r.fields,
		})
		return d.Allowed, d.Reason + ": " + d.Message
	}
	runProperty(t, product)
}

// runProperty generates the cases and checks them with decide.
func runProperty(t *testing.T, decide decider) {
	g := gen{rand.New(rand.NewPCG(propertySeed, propertySeed))}
	keyRand := rand.NewChaCha8([32]byte{0x5e, 0xed})
	var cases, origAllowed, attAllowed, refChecked int
	structural := []string{spec.ReasonMalformed, spec.ReasonLimitsExceeded, spec.ReasonUnsupported,
		spec.ReasonUnknownKey, spec.ReasonBadSignature}

	for pair := range propertyPairs {
		issued := propEpoch.Add(time.Duration(g.IntN(14*24*3600)) * time.Second)
		target := g.request(issued)

		// The original, as the issuer mints it.
		o := original{issued: issued, rootKeyID: ptr[uint32](7)}
		ot := propToken{}
		for range 1 + g.IntN(4) {
			o.rights = append(o.rights, g.right())
		}
		if g.chance(0.7) {
			o.rights[0] = g.covering(target.resource, target.operation)
		}
		ot.rights = o.rights
		expiry := issued.Add(time.Duration(30*60+g.IntN(90*60)) * time.Second)
		o.checks = append(o.checks, attenuation.ExpireBy(expiry))
		ot.checks = append(ot.checks, func(r propRequest) bool { return r.at.Unix() <= expiry.Unix() })
		for range g.IntN(3) {
			r, m := g.restriction(target, issued, g.chance(0.8))
			o.checks = append(o.checks, r)
			ot.checks = append(ot.checks, m)
		}
		// Rights are a set: the issuer drops duplicates.
		var uniq []spec.Right
		for _, rt := range o.rights {
			if !slices.Contains(uniq, rt) {
				uniq = append(uniq, rt)
			}
		}
		o.rights, ot.rights = uniq, uniq
		ot.bytes = o.build(t, keyRand)

		// 1 to 3 attenuation blocks.
		at := ot
		at.checks = slices.Clone(ot.checks)
		attNow := issued.Add(time.Duration(g.IntN(30*60)) * time.Second)
		res := attenuation.Restricter{Now: fixedClock(attNow), Rand: keyRand}
		for range 1 + g.IntN(3) {
			var rs []attenuation.Restriction
			for range 1 + g.IntN(3) {
				r, m := g.restriction(target, attNow, g.chance(0.8))
				rs = append(rs, r)
				at.checks = append(at.checks, m)
			}
			b, err := res.Restrict(at.bytes, rs...)
			if err != nil {
				t.Fatalf("pair %d: Restrict: %v", pair, err)
			}
			at.bytes = b
		}

		for i := range requestsPerPair {
			r := target
			if i > 0 {
				r = g.mutate(target, issued)
			}
			cases++
			okO, whyO := decide(ot.bytes, r)
			okA, whyA := decide(at.bytes, r)
			if okO {
				origAllowed++
			}
			if okA {
				attAllowed++
			}
			fail := func(what string) {
				t.Helper()
				t.Errorf("pair %d request %d: %s\nrequest %s\noriginal: allowed=%t (%s)\n%s\nattenuated: allowed=%t (%s)\n%s",
					pair, i, what, r, okO, whyO, dump(ot.bytes), okA, whyA, dump(at.bytes))
			}
			if okA && !okO {
				fail("the attenuated token is allowed where the original is denied")
			}
			if want := ot.allows(r); okO != want {
				fail(fmt.Sprintf("original: got allowed=%t, model says %t", okO, want))
			}
			if want := at.allows(r); okA != want {
				fail(fmt.Sprintf("attenuated: got allowed=%t, model says %t", okA, want))
			}
			for _, why := range []string{whyO, whyA} {
				for _, s := range structural {
					if strings.HasPrefix(why, s+":") {
						fail("refused for its structure: " + why)
					}
				}
			}
			if refChecked < referenceCheckCases {
				refChecked++
				for _, tok := range [][]byte{ot.bytes, at.bytes} {
					got, _ := decide(tok, r)
					err := attenuationtest.Authorize(tok, rootPub, attenuationtest.Request{
						Time: r.at, Resource: r.resource, Operation: r.operation,
						Presenter: r.presenter, Service: r.service, Records: r.records, Fields: r.fields,
					})
					if want := err == nil; got != want {
						fail(fmt.Sprintf("got allowed=%t, biscuit-go's authorizer says %t (%v)", got, want, err))
					}
				}
			}
			if t.Failed() {
				t.FailNow()
			}
		}
	}
	t.Logf("%d cases: original allowed %d (%.1f%%), attenuated allowed %d (%.1f%%)",
		cases, origAllowed, pct(origAllowed, cases), attAllowed, pct(attAllowed, cases))
	if cases < 10000 {
		t.Errorf("cases: got %d, want at least 10000", cases)
	}
	// Not vacuous: both tokens must be allowed often enough for "never
	// wider" to mean something.
	if pct(origAllowed, cases) < 10 || pct(attAllowed, cases) < 10 {
		t.Errorf("allowed: original %.1f%%, attenuated %.1f%%; want both above 10%%",
			pct(origAllowed, cases), pct(attAllowed, cases))
	}
}

func pct(n, of int) float64 { return 100 * float64(n) / float64(of) }

func dump(tok []byte) string {
	blocks, _, err := attenuationtest.Datalog(tok)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for i, bl := range blocks {
		fmt.Fprintf(&b, "  block %d:\n", i)
		for _, s := range append(bl.Facts, bl.Checks...) {
			fmt.Fprintf(&b, "    %s;\n", s)
		}
	}
	return b.String()
}
