package verifier_test

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"
	"github.com/biscuit-auth/biscuit-go/v2/datalog"
	"github.com/biscuit-auth/biscuit-go/v2/pb"
	"go.uber.org/goleak"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/attenuation/attenuationtest"
	"github.com/writ-dev/writ/issuer/mint"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

// Differential tests: the product verifier and biscuit-go's own
// authorizer (attenuationtest.Authorize, the one allow policy of token.md
// §4 built from structs) must reach the same allow/deny decision on every
// token the verifier accepts structurally. biscuit-go only ever sees such
// tokens: it evaluates without limits, leaks a goroutine on timeout and
// panics on deny policies, so a token the verifier refused as malformed,
// limits_exceeded, unsupported, unknown_key or bad_signature is never
// handed to it. Revocation is outside Datalog: these verifiers have none.
// Freshness is inside it: a request with a staleness is decided by a
// verifier that tracks freshness (with a 24 h bound of its own, so that
// only the tokens' max_staleness checks decide) and by a reference given
// the same revocation_age fact; without one, neither has the fact.

// notEvaluated are the reasons decided before any Datalog is evaluated.
var notEvaluated = map[string]bool{
	spec.ReasonMalformed:      true,
	spec.ReasonLimitsExceeded: true,
	spec.ReasonUnsupported:    true,
	spec.ReasonUnknownKey:     true,
	spec.ReasonBadSignature:   true,
}

type outcome int

const (
	outAgree          outcome = iota
	outNotEvaluated           // the verifier refused the token or request before evaluation
	outNoReference            // the reference cannot express the request (see differ.compare)
	outKnownDifferent         // a documented difference, see knownDifference
	outDisagree
)

// differ runs both authorizers on one token and request at a time.
type differ struct {
	t    testing.TB
	vs   goldenVerifiers
	clk  *goldenClock
	keys map[uint32]ed25519.PublicKey
}

func newDiffer(t testing.TB, f *goldenFile) *differ {
	t.Helper()
	clk := &goldenClock{}
	d := &differ{t: t, vs: newGoldenVerifiers(t, f, false, clk, 24*time.Hour), clk: clk, keys: make(map[uint32]ed25519.PublicKey)}
	for _, k := range f.Keys {
		pub, err := hex.DecodeString(k.Public)
		if err != nil {
			t.Fatalf("key %d: %v", k.ID, err)
		}
		d.keys[k.ID] = pub
	}
	return d
}

// goldenKeysFile is the key material of the corpus tokens, which are
// signed with the golden root keys.
func goldenKeysFile() *goldenFile {
	return &goldenFile{Keys: []goldenKey{{ID: 1, Public: pubHex(goldenRoot1)}, {ID: 2, Public: pubHex(goldenRoot2)}}}
}

// diffToken is a token under differential test.
type diffToken struct {
	raw      []byte
	usesAttr bool // a check names attr(…), which the reference cannot supply
}

func newDiffToken(raw []byte) diffToken {
	dt := diffToken{raw: raw}
	if blocks, _, err := attenuationtest.Datalog(raw); err == nil {
		for _, b := range blocks {
			for _, c := range b.Checks {
				if strings.Contains(c, spec.AmbientAttr+"(") {
					dt.usesAttr = true
				}
			}
		}
	}
	return dt
}

// compare decides tok for req at both authorizers, the revocation list
// ageMS milliseconds old (nil: freshness not tracked). detail explains a
// disagreement or a skip.
func (df *differ) compare(tok diffToken, req verifier.Request, at time.Time, ageMS *int64) (outcome, verifier.Decision, string) {
	df.clk.set(at, ageMS)
	d := df.vs.pick(ageMS).Authorize(context.Background(), tok.raw, req)
	if notEvaluated[d.Reason] {
		return outNotEvaluated, d, d.Reason
	}
	if tok.usesAttr && len(req.Attributes) > 0 {
		return outNoReference, d, "attributes"
	}
	root, ok := df.keys[d.RootKeyID]
	if !ok {
		df.t.Fatalf("decision names root key %d, which is not a golden key", d.RootKeyID)
	}
	ref := attenuationtest.Request{
		Time:      at,
		Resource:  req.Resource,
		Operation: req.Operation,
		Presenter: req.Presenter,
		Service:   req.Service,
		Records:   req.Records,
		Fields:    req.Fields,
	}
	if ageMS != nil {
		ref.HasRevocationAge, ref.RevocationAgeMS = true, *ageMS
	}
	err := quietly(func() error { return attenuationtest.Authorize(tok.raw, root, ref) })
	refAllowed := err == nil
	if err != nil && !errors.Is(err, attenuationtest.ErrDenied) {
		if strings.Contains(err.Error(), "attenuationtest: zone") {
			// The reference scaffolding refuses a local_time zone that
			// does not load; the verifier supplies no fact for it.
			return outNoReference, d, "zone: " + err.Error()
		}
		return outDisagree, d, "reference refused a token the verifier evaluated: " + err.Error()
	}
	if refAllowed == d.Allowed {
		return outAgree, d, ""
	}
	if knownDifference(d, req, refAllowed) {
		return outKnownDifferent, d, "constraint the decision cannot carry"
	}
	refSays := "denied: " + fmt.Sprint(err)
	if refAllowed {
		refSays = "allowed"
	}
	return outDisagree, d, fmt.Sprintf("verifier: %s (%s); biscuit-go: %s", d.Reason, d.Message, refSays)
}

// quietly runs fn with os.Stdout discarded: biscuit-go's evaluator prints
// every expression error (type mismatch, overflow) to standard output.
// Only sequential tests call it, and only around the reference.
func quietly(fn func() error) error {
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return fn()
	}
	defer devNull.Close()
	saved := os.Stdout
	os.Stdout = devNull
	defer func() { os.Stdout = saved }()
	return fn()
}

// knownDifference reports the documented difference (verifier Authorize
// doc, token.md §7): when the request reports records 0 (fields []), a
// token whose record limit is below 1, or with a check on records
// (fields) not of the shape of token.md §5, is denied constraint_violated
// with no failed check, since the decision's Constraints cannot carry
// that limit, where Datalog (records(0), 0 <= 0) allows it. writ's
// builders never mint such checks; only mutated and foreign blocks have
// them.
func knownDifference(d verifier.Decision, req verifier.Request, refAllowed bool) bool {
	return refAllowed && !d.Allowed && d.Reason == spec.ReasonConstraintViolated &&
		len(d.FailedChecks) == 0 && (req.Records == 0 || len(req.Fields) == 0)
}

// diffTally counts outcomes and keeps the first disagreements.
type diffTally struct {
	counts   [outDisagree + 1]int
	allowed  int // agreements on allow
	denied   int // agreements on deny
	reasons  map[string]int
	examples []string
}

func (tl *diffTally) add(o outcome, d verifier.Decision, example func() string) {
	tl.counts[o]++
	if tl.reasons == nil {
		tl.reasons = make(map[string]int)
	}
	tl.reasons[d.Reason]++
	switch o {
	case outAgree:
		if d.Allowed {
			tl.allowed++
		} else {
			tl.denied++
		}
	case outDisagree:
		if len(tl.examples) < 10 {
			tl.examples = append(tl.examples, example())
		}
	}
}

func (tl *diffTally) compared() int {
	return tl.counts[outAgree] + tl.counts[outKnownDifferent] + tl.counts[outDisagree]
}

func (tl *diffTally) report(t testing.TB, what string) {
	t.Helper()
	keys := make([]string, 0, len(tl.reasons))
	for k := range tl.reasons {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var rs []string
	for _, k := range keys {
		rs = append(rs, fmt.Sprintf("%s=%d", k, tl.reasons[k]))
	}
	t.Logf("%s: compared %d (agree %d: allowed %d, denied %d; known difference %d; disagree %d); not evaluated %d; no reference %d; verifier reasons: %s",
		what, tl.compared(), tl.counts[outAgree], tl.allowed, tl.denied, tl.counts[outKnownDifferent],
		tl.counts[outDisagree], tl.counts[outNotEvaluated], tl.counts[outNoReference], strings.Join(rs, " "))
	for _, e := range tl.examples {
		t.Errorf("disagreement: %s", e)
	}
}

// describe renders a token and request for a disagreement report.
func describe(tok []byte, req verifier.Request, at time.Time, ageMS *int64, detail string) string {
	var b strings.Builder
	age := "untracked"
	if ageMS != nil {
		age = fmt.Sprint(*ageMS, "ms")
	}
	fmt.Fprintf(&b, "%s\n  request: resource=%q operation=%q presenter=%q service=%q records=%d fields=%q time=%s revocation_age=%s",
		detail, req.Resource, req.Operation, req.Presenter, req.Service, req.Records, req.Fields, at.UTC().Format(time.RFC3339), age)
	blocks, _, err := attenuationtest.Datalog(tok)
	if err != nil {
		fmt.Fprintf(&b, "\n  token: %v", err)
		return b.String()
	}
	for i, bl := range blocks {
		for _, f := range bl.Facts {
			fmt.Fprintf(&b, "\n  block %d: %s;", i, f)
		}
		for _, c := range bl.Checks {
			fmt.Fprintf(&b, "\n  block %d: %s;", i, c)
		}
	}
	return b.String()
}

// TestDifferentialGolden compares both authorizers on every golden token
// and request the verifier evaluates.
func TestDifferentialGolden(t *testing.T) {
	// biscuit-go evaluates in goroutines; none may outlive a decision.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := readGolden(t)
	df := newDiffer(t, f)
	var tl diffTally
	for _, c := range f.Cases {
		dt := newDiffToken(c.token(t))
		for i, r := range c.Requests {
			req, at := r.request(), r.at(t)
			o, d, detail := df.compare(dt, req, at, r.RevocationAgeMS)
			tl.add(o, d, func() string {
				return fmt.Sprintf("%s request %d: %s", c.Name, i, describe(dt.raw, req, at, r.RevocationAgeMS, detail))
			})
		}
	}
	tl.report(t, "golden")
	if tl.compared() < 60 {
		t.Errorf("compared %d golden decisions, want at least 60", tl.compared())
	}
}

// ---------------------------------------------------------------------
// The random corpus.

var (
	dResources = []string{"crm/contacts", "crm/contacts/42", "crm/notes/", "crm/notes/7", "crm/notes/7/body",
		"crm/notesx", "crm", "billing/invoices/1", "billing/", "hr/salaries"}
	dRights = []string{"crm/contacts:read", "crm/contacts:write", "crm/notes/*:read", "crm/notes/7/*:read",
		"crm/*:read", "billing/*:read", "billing/invoices/1:delete", "hr/salaries:read", "crm/notes/7:write",
		"crm/contacts/*:delete"}
	dOps        = []string{"read", "write", "delete"}
	dPresenters = []string{gAgent, gSales, gStranger}
	dServices   = []string{gSvcCRM, gSvcBill, "spiffe://acme.example/svc/hr"}
	dFields     = []string{"email", "name", "phone", "ssn"}
	dZones      = []string{gParis, gNewYork, gTokyo, gUTC}
)

// corpusGen draws random tokens and requests from a fixed seed.
type corpusGen struct {
	r   *rand.Rand
	kit *tokenKit
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// subset returns 1 to len(xs) distinct elements of xs.
func subset[T any](r *rand.Rand, xs []T) []T {
	out := slices.Clone(xs)
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:1+r.IntN(len(out))]
}

func (g *corpusGen) window() spec.TimeWindow {
	r := g.r
	w := spec.TimeWindow{Zone: pick(r, dZones)}
	if r.IntN(3) > 0 {
		w.Days = append(w.Days, subset(r, []time.Weekday{0, 1, 2, 3, 4, 5, 6})...)
	}
	w.From = r.IntN(24) * 60
	w.To = min(1440, w.From+60*(1+r.IntN(14))+r.IntN(2)*30)
	return w
}

func (g *corpusGen) windows() []spec.TimeWindow {
	ws := make([]spec.TimeWindow, 1+g.r.IntN(3))
	for i := range ws {
		ws[i] = g.window()
	}
	return ws
}

// profile is what the corpus generator knows a token demands, so that
// it can aim requests at allowed decisions as well as denied ones.
type profile struct {
	rights                       []spec.Right // authority rights
	only                         [][]spec.Right
	deadline                     time.Time
	presenters, services, fields []string // nil: unconstrained
	constrained                  [3]bool  // presenters, services, fields
	maxRecords                   int      // 0: none
	windows                      [][]spec.TimeWindow
	maxStaleMS                   int64 // 0: no max_staleness
}

// narrow intersects a constraint list with another.
func narrow(have []string, constrained bool, with []string) []string {
	if !constrained {
		return slices.Clone(with)
	}
	var out []string
	for _, x := range have {
		if slices.Contains(with, x) {
			out = append(out, x)
		}
	}
	return out
}

func (p *profile) presentersFrom(ids []string) {
	p.presenters, p.constrained[0] = narrow(p.presenters, p.constrained[0], ids), true
}

func (p *profile) servicesFrom(ids []string) {
	p.services, p.constrained[1] = narrow(p.services, p.constrained[1], ids), true
}

func (p *profile) fieldsFrom(fs []string) {
	p.fields, p.constrained[2] = narrow(p.fields, p.constrained[2], fs), true
}

func (p *profile) expireBy(t time.Time) {
	if t.Before(p.deadline) {
		p.deadline = t
	}
}

func (p *profile) recordsAtMost(n int) {
	if p.maxRecords == 0 || n < p.maxRecords {
		p.maxRecords = n
	}
}

func (p *profile) staleAtMost(ms int64) {
	if p.maxStaleMS == 0 || ms < p.maxStaleMS {
		p.maxStaleMS = ms
	}
}

func (g *corpusGen) claims(p *profile) mint.Claims {
	r := g.r
	c := baseClaims()
	c.Rights = rights(subset(r, dRights)[:1+r.IntN(4)]...)
	if r.IntN(3) == 0 {
		c.Expiry = goldenNow.Add(8 * 24 * time.Hour)
	} else {
		c.Expiry = goldenNow.Add(time.Duration(1+r.IntN(180)) * gMinute)
	}
	p.rights, p.deadline = c.Rights, c.Expiry
	if r.IntN(3) == 0 {
		c.Presenters = subset(r, dPresenters)
		p.presentersFrom(c.Presenters)
	}
	if r.IntN(3) == 0 {
		c.Services = subset(r, dServices)
		p.servicesFrom(c.Services)
	}
	if r.IntN(3) == 0 {
		c.MaxRecords = pick(r, []int{1, 5, 10, 100})
		p.recordsAtMost(c.MaxRecords)
	}
	if r.IntN(3) == 0 {
		c.Fields = subset(r, dFields)
		p.fieldsFrom(c.Fields)
	}
	if r.IntN(4) == 0 {
		for range 1 + r.IntN(2) {
			c.Windows = append(c.Windows, g.windows())
		}
		p.windows = append(p.windows, c.Windows...)
	}
	if r.IntN(6) == 0 {
		ms := pick(r, []int64{1000, 2000, 30000})
		c.MaxStaleness = time.Duration(ms) * time.Millisecond
		p.staleAtMost(ms)
	}
	return c
}

// restriction draws a restriction of any kind, recording it in p. now is
// the Restricter's clock.
func (g *corpusGen) restriction(p *profile, now time.Time) attenuation.Restriction {
	r := g.r
	switch r.IntN(10) {
	case 0:
		rs := rights(subset(r, dRights)[:1+r.IntN(3)]...)
		p.only = append(p.only, rs)
		return attenuation.OnlyRights(rs...)
	case 1:
		at := goldenNow.Add(time.Duration(r.IntN(180)-10) * gMinute)
		p.expireBy(at)
		return attenuation.ExpireBy(at)
	case 2:
		d := time.Duration(1+r.IntN(120)) * gMinute
		p.expireBy(now.Add(d))
		return attenuation.ExpireIn(d)
	case 3:
		ids := subset(r, dPresenters)
		p.presentersFrom(ids)
		return attenuation.BindPresenters(ids...)
	case 4:
		fs := subset(r, dFields)
		p.fieldsFrom(fs)
		return attenuation.OnlyFields(fs...)
	case 5:
		n := pick(r, []int{1, 5, 10, 50, 100})
		p.recordsAtMost(n)
		return attenuation.MaxRecords(n)
	case 6:
		w := g.window()
		p.windows = append(p.windows, []spec.TimeWindow{w})
		return attenuation.Window(w)
	case 7:
		ws := g.windows()
		p.windows = append(p.windows, ws)
		return attenuation.AnyWindow(ws...)
	case 8:
		ms := pick(r, []int64{500, 2000, 10000})
		p.staleAtMost(ms)
		return attenuation.MaxStaleness(time.Duration(ms) * time.Millisecond)
	default:
		ids := subset(r, dServices)
		p.servicesFrom(ids)
		return attenuation.OnlyServices(ids...)
	}
}

// foreignCheck is a check of the kind other Biscuit tooling could append,
// over the ambient and authority facts with the v3.0 operators writ
// accepts (token.md §6), constants drawn at random.
func (g *corpusGen) foreignCheck() biscuit.Check {
	r := g.r
	v := func(s string) biscuit.Term { return biscuit.Variable(s) }
	p := bPred
	e := func(ops ...biscuit.Op) biscuit.Expression { return biscuit.Expression(ops) }
	word := func() string {
		return pick(r, []string{"crm", "crm/", "/7", "contacts", "notes/", "billing/", "", "x", "spiffe://acme.example/", "support", "email"})
	}
	num := func() int64 {
		return pick(r, []int64{0, 1, 2, 5, 10, 11, 32, 100, 540, 1080, -1, math.MaxInt64, math.MinInt64, math.MaxInt64 - 5})
	}
	day := func() biscuit.Date { return biscuit.Date(goldenNow.Add(time.Duration(r.IntN(600)-120) * gMinute)) }
	qs := make([]biscuit.Rule, 1+r.IntN(2))
	for i := range qs {
		switch r.IntN(18) {
		case 0:
			qs[i] = bQuery([]biscuit.Predicate{p("resource", v("r"))}, e(bVar("r"), bStr(word()), biscuit.BinarySuffix))
		case 1:
			qs[i] = bQuery([]biscuit.Predicate{p("resource", v("r"))}, e(bVar("r"), bStr(word()), biscuit.BinaryPrefix))
		case 2:
			qs[i] = bQuery([]biscuit.Predicate{p("resource", v("r"))}, e(bVar("r"), bStr(word()), biscuit.BinaryContains))
		case 3:
			qs[i] = bQuery([]biscuit.Predicate{p("operation", v("o"))}, e(bVal(bStrSet(subset(r, dOps)...)), bVar("o"), biscuit.BinaryContains))
		case 4:
			qs[i] = bQuery([]biscuit.Predicate{p("records", v("n"))}, e(bVar("n"), bInt(num()), biscuit.BinaryAdd, bInt(num()), biscuit.BinaryLessOrEqual))
		case 5:
			qs[i] = bQuery([]biscuit.Predicate{p("records", v("n"))}, e(bVar("n"), bInt(num()), biscuit.BinarySub, bInt(num()), biscuit.BinaryGreaterOrEqual))
		case 6:
			qs[i] = bQuery([]biscuit.Predicate{p("fields", v("f"))}, e(bVar("f"), biscuit.UnaryLength, bInt(num()), biscuit.BinaryLessOrEqual))
		case 7:
			// .intersection() and .union() are refused (token.md §6):
			// set checks the verifier evaluates instead.
			qs[i] = bQuery([]biscuit.Predicate{p("fields", v("f"))},
				e(bVal(bStrSet(subset(r, dFields)...)), bVar("f"), biscuit.BinaryContains, bVar("f"), biscuit.UnaryLength, bInt(num()), biscuit.BinaryEqual, biscuit.BinaryOr))
		case 8:
			qs[i] = bQuery([]biscuit.Predicate{p("fields", v("f"))},
				e(bVar("f"), bVal(bStrSet(subset(r, dFields)...)), biscuit.BinaryContains))
		case 9:
			qs[i] = bQuery([]biscuit.Predicate{p("time", v("t"))}, e(bVar("t"), bVal(day()), biscuit.BinaryGreaterOrEqual))
		case 10:
			qs[i] = bQuery([]biscuit.Predicate{p("time", v("t"))},
				e(bVar("t"), bVal(day()), biscuit.BinaryGreaterThan, bVar("t"), bVal(day()), biscuit.BinaryLessThan, biscuit.BinaryAnd))
		case 11:
			qs[i] = bQuery([]biscuit.Predicate{p("presenter", v("p"))},
				e(bVar("p"), bStr(pick(r, dPresenters)), biscuit.BinaryEqual, bVar("p"), bStr(word()), biscuit.BinaryPrefix, biscuit.BinaryOr))
		case 12:
			qs[i] = bQuery([]biscuit.Predicate{p(spec.FactRight, v("r"), v("o")), p("resource", v("r")), p("operation", v("o"))})
		case 13:
			qs[i] = bQuery([]biscuit.Predicate{p(spec.FactRightPrefix, v("x"), biscuit.String(pick(r, dOps))), p("resource", v("r"))},
				e(bVar("r"), bVar("x"), biscuit.BinaryPrefix))
		case 14:
			qs[i] = bQuery([]biscuit.Predicate{p("local_time", biscuit.String(pick(r, dZones)), v("d"), v("m"))},
				e(bVar("m"), bInt(num()), biscuit.BinaryLessThan, biscuit.UnaryParens, biscuit.UnaryNegate))
		case 15:
			// String + is refused (token.md §6); integer + on a length.
			qs[i] = bQuery([]biscuit.Predicate{p("resource", v("r"))},
				e(bVar("r"), biscuit.UnaryLength, bInt(num()), biscuit.BinaryAdd, bInt(num()), biscuit.BinaryLessOrEqual))
		case 16:
			qs[i] = bQuery([]biscuit.Predicate{p("resource", v("r")), p("operation", v("o"))},
				e(bVar("r"), bStr(pick(r, dResources)), biscuit.BinaryEqual, bVar("o"), bStr(pick(r, dOps)), biscuit.BinaryEqual, biscuit.BinaryOr))
		default:
			qs[i] = bQuery([]biscuit.Predicate{p(spec.FactAgent, v("a")), p("resource", v("r"))},
				e(bVar("r"), biscuit.UnaryLength, bInt(num()), biscuit.BinaryGreaterThan, bVar("a"), bStr(gAgent), biscuit.BinaryEqual, biscuit.BinaryAnd))
		}
	}
	return bCheck(qs...)
}

// mutate changes 1 to 3 constants or operators of the checks of blocks:
// integers, dates, strings (to another symbol the block may use), set
// elements, comparison and string operators, or negates an expression.
// It never changes a local_time zone: the reference cannot load an
// arbitrary zone name.
func (g *corpusGen) mutate(blocks []*pb.Block) {
	r := g.r
	var sites []func()
	strIDs := func(upto int) []uint64 {
		ids := []uint64{}
		for i := range datalog.DEFAULT_SYMBOLS {
			ids = append(ids, uint64(i))
		}
		n := uint64(datalog.OFFSET)
		for _, b := range blocks[:upto+1] {
			for range b.Symbols {
				ids = append(ids, n)
				n++
			}
		}
		return ids
	}
	var term func(bi int, t *pb.TermV2)
	term = func(bi int, t *pb.TermV2) {
		switch c := t.Content.(type) {
		case *pb.TermV2_Integer:
			sites = append(sites, func() {
				c.Integer = pick(r, []int64{c.Integer + 1, c.Integer - 1, 0, -1, c.Integer * 2, math.MaxInt64, math.MinInt64, int64(r.IntN(1441))})
			})
		case *pb.TermV2_Date:
			sites = append(sites, func() {
				d := int64(c.Date) + int64(r.IntN(4*3600)-2*3600)
				c.Date = uint64(max(d, 0))
			})
		case *pb.TermV2_String_:
			sites = append(sites, func() { c.String_ = pick(r, strIDs(bi)) })
		case *pb.TermV2_Bool:
			sites = append(sites, func() { c.Bool = !c.Bool })
		case *pb.TermV2_Set:
			for _, el := range c.Set.Set {
				term(bi, el)
			}
			if len(c.Set.Set) > 1 {
				sites = append(sites, func() {
					if len(c.Set.Set) > 1 { // an earlier mutation may have shrunk it
						i := r.IntN(len(c.Set.Set))
						c.Set.Set = slices.Delete(c.Set.Set, i, i+1)
					}
				})
			}
		}
	}
	comparisons := []pb.OpBinary_Kind{pb.OpBinary_LessThan, pb.OpBinary_LessOrEqual, pb.OpBinary_GreaterThan, pb.OpBinary_GreaterOrEqual, pb.OpBinary_Equal}
	stringOps := []pb.OpBinary_Kind{pb.OpBinary_Contains, pb.OpBinary_Prefix, pb.OpBinary_Suffix, pb.OpBinary_Equal}
	for bi, b := range blocks {
		for _, ch := range b.ChecksV2 {
			for _, qr := range ch.Queries {
				for _, pr := range qr.Body {
					name, _ := symbolName(blocks, bi, pr.GetName())
					for ti, t := range pr.Terms {
						if name == spec.AmbientLocalTime && ti == 0 {
							continue
						}
						if _, isVar := t.Content.(*pb.TermV2_Variable); !isVar {
							term(bi, t)
						}
					}
				}
				for _, ex := range qr.Expressions {
					for _, op := range ex.Ops {
						switch c := op.Content.(type) {
						case *pb.Op_Value:
							term(bi, c.Value)
						case *pb.Op_Binary:
							k := c.Binary.GetKind()
							switch {
							case slices.Contains(comparisons, k):
								sites = append(sites, func() { k := pick(r, comparisons); c.Binary.Kind = &k })
							case slices.Contains(stringOps, k):
								sites = append(sites, func() { k := pick(r, stringOps); c.Binary.Kind = &k })
							}
						}
					}
					sites = append(sites, func() {
						neg := pb.OpUnary_Negate
						ex.Ops = append(ex.Ops, &pb.Op{Content: &pb.Op_Unary{Unary: &pb.OpUnary{Kind: &neg}}})
					})
				}
			}
		}
	}
	if len(sites) == 0 {
		return
	}
	for range 1 + r.IntN(3) {
		pick(r, sites)()
	}
}

// token draws one corpus token: minted claims, 0 to 3 restriction blocks,
// sometimes a foreign block, sometimes mutated constants, sometimes sealed.
func (g *corpusGen) token() ([]byte, *profile, string) {
	r, k := g.r, g.kit
	p := &profile{}
	key, id := goldenRoot1, uint32(1)
	if r.IntN(8) == 0 {
		key, id = goldenRoot2, 2
	}
	tok := k.mint(key, id, g.claims(p))
	blocks := r.IntN(4)
	for range blocks {
		now := goldenNow.Add(time.Duration(r.IntN(60)-10) * gMinute)
		rs := make([]attenuation.Restriction, 1+r.IntN(3))
		for i := range rs {
			rs[i] = g.restriction(p, now)
		}
		tok = k.restrict(tok, now, rs...)
	}
	steps := []string{fmt.Sprintf("minted, %d restriction blocks", blocks)}
	if r.IntN(3) == 0 {
		cs := make([]biscuit.Check, 1+r.IntN(2))
		for i := range cs {
			cs[i] = g.foreignCheck()
		}
		tok = k.appendBlock(tok, cs)
		steps = append(steps, "foreign block")
	}
	switch n := r.IntN(10); {
	case n < 4:
		tok = k.resign(tok, key, g.mutate)
		steps = append(steps, "mutated")
	case n == 4:
		tok = k.seal(tok)
		steps = append(steps, "sealed")
	}
	return tok, p, strings.Join(steps, ", ")
}

// request draws a request and the staleness of the revocation list (nil:
// not tracked); each part is aimed at what p allows most of the time, so
// that both decisions are frequent.
func (g *corpusGen) request(p *profile) (verifier.Request, time.Time, *int64) {
	r := g.r
	aim := func() bool { return r.IntN(10) < 8 }
	req := verifier.Request{Resource: pick(r, dResources), Operation: pick(r, dOps)}
	if aim() {
		rt := pick(r, p.rights)
		if len(p.only) > 0 && r.IntN(2) == 0 {
			rt = pick(r, pick(r, p.only))
		}
		req.Resource, req.Operation = rt.Resource, rt.Operation
		if rt.IsPrefix() {
			req.Resource = rt.Prefix() + pick(r, []string{"", "7", "x/1", "notes/7/body"})
		}
	}
	if p.constrained[0] && len(p.presenters) > 0 && aim() {
		req.Presenter = pick(r, p.presenters)
	} else if r.IntN(10) < 7 {
		req.Presenter = pick(r, dPresenters)
	}
	if p.constrained[1] && len(p.services) > 0 && aim() {
		req.Service = pick(r, p.services)
	} else if r.IntN(10) < 6 {
		req.Service = pick(r, dServices)
	}
	if p.maxRecords > 0 && aim() {
		req.Records = r.IntN(p.maxRecords + 1)
	} else {
		req.Records = pick(r, []int{0, 0, 1, 5, 10, 11, 50, 100, 101, 1000})
	}
	switch {
	case p.constrained[2] && aim():
		if len(p.fields) > 0 && r.IntN(3) > 0 {
			req.Fields = subset(r, p.fields)
		}
	case r.IntN(2) == 0:
		req.Fields = subset(r, dFields)
	}
	random := func() time.Time {
		if r.IntN(10) < 3 {
			return goldenNow.Add(time.Duration(r.IntN(7*24*3600)) * time.Second)
		}
		return goldenNow.Add(time.Duration(r.IntN(230*60)-30*60) * time.Second)
	}
	at := random()
	if aim() {
		// A time before the deadline, inside every window set if one of
		// a few draws is.
		from := goldenNow.Add(-30 * gMinute)
		span := max(int64(p.deadline.Sub(from)/time.Second), 1)
		for range 16 {
			at = from.Add(time.Duration(r.Int64N(span+1)) * time.Second)
			if openAt(p.windows, at) {
				break
			}
		}
	}
	var age *int64
	switch {
	case r.IntN(4) == 0:
	case p.maxStaleMS > 0 && aim():
		ms := r.Int64N(p.maxStaleMS + 1)
		age = &ms
	default:
		ms := pick(r, []int64{0, 1, 499, 501, 1000, 2000, 2001, 5000, 60000})
		age = &ms
	}
	return req, at, age
}

func openAt(sets [][]spec.TimeWindow, at time.Time) bool {
	for _, set := range sets {
		if !slices.ContainsFunc(set, func(w spec.TimeWindow) bool { return w.Contains(at) }) {
			return false
		}
	}
	return true
}

// corpusSize is the number of random tokens of TestDifferentialCorpus;
// each is asked requestsPerToken random requests.
const (
	corpusSize       = 2000
	requestsPerToken = 3
)

// TestDifferentialCorpus compares both authorizers on a deterministic
// random corpus.
func TestDifferentialCorpus(t *testing.T) {
	// biscuit-go evaluates in goroutines; none may outlive a decision.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	df := newDiffer(t, goldenKeysFile())
	g := &corpusGen{r: rand.New(rand.NewPCG(0x5772697420646966, 0x66206f7270757321)), kit: newKit(t, "differential corpus")}
	var tl diffTally
	evaluatedTokens := 0
	for n := range corpusSize {
		raw, p, how := g.token()
		dt := newDiffToken(raw)
		evaluated := false
		for range requestsPerToken {
			req, at, age := g.request(p)
			o, d, detail := df.compare(dt, req, at, age)
			if o != outNotEvaluated {
				evaluated = true
			}
			tl.add(o, d, func() string {
				return fmt.Sprintf("corpus token %d (%s): %s", n, how, describe(dt.raw, req, at, age, detail))
			})
		}
		if evaluated {
			evaluatedTokens++
		}
	}
	tl.report(t, fmt.Sprintf("corpus of %d tokens (%d evaluated)", corpusSize, evaluatedTokens))
	// The corpus must exercise both outcomes and most tokens.
	if evaluatedTokens < corpusSize*3/4 {
		t.Errorf("only %d of %d corpus tokens were evaluated, want at least 3/4", evaluatedTokens, corpusSize)
	}
	if tl.allowed < 500 || tl.denied < 500 {
		t.Errorf("corpus agreements: %d allowed, %d denied; want at least 500 of each", tl.allowed, tl.denied)
	}
}

// FuzzDifferential varies the request against the golden tokens the
// verifier evaluates and compares both authorizers. Seeds are the golden
// requests; a negative age means freshness is not tracked.
func FuzzDifferential(f *testing.F) {
	gf := readGolden(f)
	for ci, c := range gf.Cases {
		for _, r := range c.Requests {
			age := int64(-1)
			if r.RevocationAgeMS != nil {
				age = *r.RevocationAgeMS
			}
			f.Add(uint16(ci), r.Resource, r.Operation, r.Presenter, r.Service, int64(r.Records), strings.Join(r.Fields, ","), r.at(f).Unix(), age)
		}
	}
	df := newDiffer(f, gf)
	tokens := make([]diffToken, len(gf.Cases))
	for i, c := range gf.Cases {
		tokens[i] = newDiffToken(c.token(f))
	}
	f.Fuzz(func(t *testing.T, ci uint16, resource, operation, presenter, service string, records int64, fields string, unix int64, age int64) {
		if records < math.MinInt32 || records > math.MaxInt32 {
			records %= math.MaxInt32
		}
		req := verifier.Request{
			Resource: resource, Operation: operation, Presenter: presenter, Service: service,
			Records: int(records),
		}
		if fields != "" {
			req.Fields = strings.Split(fields, ",")
		}
		// Dates are seconds since 1970 in Biscuit; keep within 1970..2514.
		at := time.Unix(int64(uint64(unix)%(1<<34)), 0).UTC()
		var ageMS *int64
		if age >= 0 {
			// Within the differ's own 24 h bound.
			ms := age % (24 * 3600 * 1000)
			ageMS = &ms
		}
		dt := tokens[int(ci)%len(tokens)]
		df.t = t
		o, _, detail := df.compare(dt, req, at, ageMS)
		if o == outDisagree {
			t.Errorf("disagreement on %s: %s", gf.Cases[int(ci)%len(tokens)].Name, describe(dt.raw, req, at, ageMS, detail))
		}
	})
}

// TestDifferentialEdgeCases compares both authorizers on checks aimed at
// the corners of the expression semantics (token.md §6): errors under
// negation and "or", sets compared and combined, string concatenation
// and lengths, overflow, duplicate request fields.
func TestDifferentialEdgeCases(t *testing.T) {
	// biscuit-go evaluates in goroutines; none may outlive a decision.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	v := func(s string) biscuit.Term { return biscuit.Variable(s) }
	e := func(ops ...biscuit.Op) biscuit.Expression { return biscuit.Expression(ops) }
	on := func(name, vr string, ops ...biscuit.Op) biscuit.Check {
		return bCheck(bQuery([]biscuit.Predicate{bPred(name, v(vr))}, e(ops...)))
	}
	neg := func(ops ...biscuit.Op) []biscuit.Op { return append(ops, biscuit.UnaryParens, biscuit.UnaryNegate) }
	set := func(ss ...string) biscuit.Value { return bVal(bStrSet(ss...)) }
	intSet := bVal(biscuit.Set{biscuit.Integer(1), biscuit.Integer(2)})
	at := bVal(biscuit.Date(goldenNow.Add(gMinute)))
	const maxInt, minInt = math.MaxInt64, math.MinInt64
	checks := []struct {
		name  string
		check biscuit.Check
	}{
		{"fields-length", on("fields", "f", bVar("f"), biscuit.UnaryLength, bInt(1), biscuit.BinaryEqual)},
		{"fields-equal-set", on("fields", "f", bVar("f"), set("email", "name"), biscuit.BinaryEqual)},
		{"fields-superset", on("fields", "f", bVar("f"), set("email"), biscuit.BinaryContains)},
		{"not-starts-with-on-set", on("fields", "f", neg(bVar("f"), bStr("e"), biscuit.BinaryPrefix)...)},
		{"not-contains-mismatched-type", on("resource", "r", neg(intSet, bVar("r"), biscuit.BinaryContains)...)},
		{"not-equal-mismatched-type", on("records", "n", neg(bVar("n"), bStr("5"), biscuit.BinaryEqual)...)},
		{"not-string-less-than", on("resource", "r", neg(bVar("r"), bStr("d"), biscuit.BinaryLessThan)...)},
		{"not-length-of-integer", on("records", "n", neg(bVar("n"), biscuit.UnaryLength, bInt(0), biscuit.BinaryGreaterThan)...)},
		{"not-negate-integer", on("records", "n", bVar("n"), biscuit.UnaryNegate, biscuit.UnaryNegate)},
		{"or-after-overflow", on("records", "n", bVar("n"), bInt(5), biscuit.BinaryLessThan, bVar("n"), bInt(maxInt), biscuit.BinaryAdd, bInt(0), biscuit.BinaryGreaterThan, biscuit.BinaryOr)},
		{"and-after-false", on("records", "n", bVar("n"), bInt(5), biscuit.BinaryGreaterThan, bVar("n"), bInt(maxInt), biscuit.BinaryAdd, bInt(0), biscuit.BinaryGreaterThan, biscuit.BinaryAnd)},
		{"not-overflow-sub", on("records", "n", neg(bVar("n"), bInt(minInt), biscuit.BinarySub, bInt(0), biscuit.BinaryLessThan)...)},
		{"string-length-plus", on("resource", "r", bVar("r"), biscuit.UnaryLength, bInt(1), biscuit.BinaryAdd, bInt(13), biscuit.BinaryEqual)},
		{"not-string-plus-integer", on("resource", "r", neg(bStr("x"), bInt(1), biscuit.BinaryAdd, bInt(0), biscuit.BinaryGreaterThan)...)},
		{"string-length-bytes", on("resource", "r", bVar("r"), biscuit.UnaryLength, bInt(6), biscuit.BinaryEqual)},
		{"string-contains", on("resource", "r", bVar("r"), bStr("tact"), biscuit.BinaryContains)},
		{"date-equal", on("time", "t", bVar("t"), at, biscuit.BinaryEqual)},
		{"not-date-plus-integer", on("time", "t", neg(bVar("t"), bInt(1), biscuit.BinaryAdd, at, biscuit.BinaryGreaterThan)...)},
		{"bool-and-non-bool", on("records", "n", neg(bVar("n"), bInt(1), biscuit.BinaryAnd)...)},
	}
	requests := []struct {
		req verifier.Request
		at  time.Time
	}{
		{verifier.Request{Resource: "crm/contacts", Operation: "read"}, goldenNow.Add(gMinute)},
		{verifier.Request{Resource: "crm/contacts", Operation: "read", Records: 1, Fields: []string{"email", "email"}}, goldenNow.Add(gMinute)},
		{verifier.Request{Resource: "crm/contacts", Operation: "read", Records: 7, Fields: []string{"name", "email"}}, goldenNow.Add(2 * gMinute)},
		{verifier.Request{Resource: "crm/notes/é", Operation: "read", Records: 3, Fields: []string{"email"}}, goldenNow},
	}
	df := newDiffer(t, goldenKeysFile())
	k := newKit(t, "differential edge cases")
	var tl diffTally
	for _, c := range checks {
		dt := newDiffToken(k.appendBlock(k.mint(goldenRoot1, 1, baseClaims()), []biscuit.Check{c.check}))
		for i, r := range requests {
			o, d, detail := df.compare(dt, r.req, r.at, nil)
			tl.add(o, d, func() string {
				return fmt.Sprintf("%s request %d: %s", c.name, i, describe(dt.raw, r.req, r.at, nil, detail))
			})
		}
	}
	tl.report(t, "edge cases")
	if tl.counts[outNotEvaluated] > 0 {
		t.Errorf("%d edge-case decisions were not evaluated; every check here is in the v3.0 subset", tl.counts[outNotEvaluated])
	}

	// v3.0 operators whose result can outgrow their operands are refused
	// before evaluation (token.md §6); biscuit-go is never asked.
	refused := []struct {
		name  string
		check biscuit.Check
	}{
		{"string-concat", on("resource", "r", bVar("r"), bStr("/x"), biscuit.BinaryAdd, bStr("crm/contacts/x"), biscuit.BinaryEqual)},
		{"fields-intersection-equal", on("fields", "f", bVar("f"), set("email", "ssn"), biscuit.BinaryIntersection, set("email"), biscuit.BinaryEqual)},
		{"fields-union-length", on("fields", "f", bVar("f"), set("email"), biscuit.BinaryUnion, biscuit.UnaryLength, bInt(2), biscuit.BinaryGreaterOrEqual)},
		{"set-intersection-mismatched", on("fields", "f", neg(bVar("f"), intSet, biscuit.BinaryIntersection, biscuit.UnaryLength, bInt(0), biscuit.BinaryEqual)...)},
	}
	for _, c := range refused {
		raw := k.appendBlock(k.mint(goldenRoot1, 1, baseClaims()), []biscuit.Check{c.check})
		df.clk.now = requests[0].at
		d := df.vs.plain.Authorize(context.Background(), raw, requests[0].req)
		if d.Reason != spec.ReasonUnsupported {
			t.Errorf("%s: got %s (%s), want unsupported", c.name, d.Reason, d.Message)
		}
	}
}
