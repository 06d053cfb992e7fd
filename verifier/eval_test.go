package verifier

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math"
	"testing"
	"time"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"
	"github.com/biscuit-auth/biscuit-go/v2/datalog"

	"github.com/writ-dev/writ/spec"
)

// biscuitGoAllows runs biscuit-go's own authorizer on tok with the ambient
// facts of req in the order the verifier lists them and the allow policy
// of token.md §4. Test code only: biscuit-go's evaluator has no limits on
// appended blocks and must never see untrusted tokens.
func biscuitGoAllows(t *testing.T, tok []byte, root ed25519.PublicKey, now time.Time, req Request) bool {
	t.Helper()
	b, err := biscuit.Unmarshal(tok)
	if err != nil {
		t.Fatalf("biscuit-go unmarshal: %v", err)
	}
	a, err := b.Authorizer(root, biscuit.WithWorldOptions(datalog.WithMaxDuration(time.Minute)))
	if err != nil {
		t.Fatalf("biscuit-go authorizer: %v", err)
	}
	add := func(name string, terms ...biscuit.Term) {
		a.AddFact(fact(name, terms...))
	}
	add("time", biscuit.Date(time.Unix(now.Unix(), 0)))
	add("resource", biscuit.String(req.Resource))
	add("operation", biscuit.String(req.Operation))
	if req.Presenter != "" {
		add("presenter", biscuit.String(req.Presenter))
	}
	if req.Service != "" {
		add("service", biscuit.String(req.Service))
	}
	add("records", biscuit.Integer(req.Records))
	add("fields", strSet(req.Fields...))
	for _, k := range sortedKeys(req.Attributes) {
		add("attr", biscuit.String(k), biscuit.String(req.Attributes[k]))
	}
	res, op := pred("resource", biscuit.Variable("r")), pred("operation", biscuit.Variable("o"))
	a.AddPolicy(biscuit.Policy{Kind: biscuit.PolicyKindAllow, Queries: []biscuit.Rule{
		query([]biscuit.Predicate{res, op, pred("right", biscuit.Variable("r"), biscuit.Variable("o"))}),
		query([]biscuit.Predicate{res, op, pred("right_prefix", biscuit.Variable("p"), biscuit.Variable("o"))},
			biscuit.Expression{vr("r"), vr("p"), biscuit.BinaryPrefix}),
	}})
	return a.Authorize() == nil
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

// TestEvalAgreesWithBiscuitGo holds the native evaluator to biscuit-go's
// decisions on checks exercising every operator of token.md §6, type
// errors, overflow, joins and the order in which an erroring combination
// ends a query.
func TestEvalAgreesWithBiscuitGo(t *testing.T) {
	e := func(ops ...biscuit.Op) biscuit.Expression { return biscuit.Expression(ops) }
	b := func(v bool) biscuit.Value { return val(biscuit.Bool(v)) }
	ints := func(ns ...int64) biscuit.Value {
		s := make(biscuit.Set, len(ns))
		for i, n := range ns {
			s[i] = biscuit.Integer(n)
		}
		return val(s)
	}
	strs := func(ss ...string) biscuit.Value { return val(strSet(ss...)) }
	noBody := func(exprs ...biscuit.Expression) biscuit.Check { return checkOf(query(nil, exprs...)) }
	on := func(p biscuit.Predicate, exprs ...biscuit.Expression) biscuit.Check {
		return checkOf(query([]biscuit.Predicate{p}, exprs...))
	}
	v := func(name string) biscuit.Term { return biscuit.Variable(name) }
	cases := []struct {
		name  string
		facts []biscuit.Fact
		check biscuit.Check
	}{
		{"true", nil, noBody(e(b(true)))},
		{"false", nil, noBody(e(b(false)))},
		{"negate", nil, noBody(e(b(false), biscuit.UnaryNegate))},
		{"negate-int-errors", nil, noBody(e(integer(1), biscuit.UnaryNegate))},
		{"parens-and-or", nil, noBody(e(b(true), b(false), biscuit.BinaryOr, biscuit.UnaryParens, b(true), biscuit.BinaryAnd))},
		{"and-non-bool-errors", nil, noBody(e(b(true), integer(1), biscuit.BinaryAnd))},
		{"int-lt", nil, noBody(e(integer(1), integer(2), biscuit.BinaryLessThan))},
		{"int-gt", nil, noBody(e(integer(1), integer(2), biscuit.BinaryGreaterThan))},
		{"int-ge-equal", nil, noBody(e(integer(2), integer(2), biscuit.BinaryGreaterOrEqual))},
		{"compare-mixed-errors", nil, noBody(e(integer(1), str("a"), biscuit.BinaryLessThan))},
		{"compare-strings-errors", nil, noBody(e(str("a"), str("b"), biscuit.BinaryLessThan))},
		{"date-le", nil, noBody(e(date(coreTestNow), date(coreTestNow.Add(time.Hour)), biscuit.BinaryLessOrEqual))},
		{"equal-strings", nil, noBody(e(str("abc"), str("abc"), biscuit.BinaryEqual))},
		{"equal-bytes", nil, noBody(e(val(biscuit.Bytes{1, 2}), val(biscuit.Bytes{1, 2}), biscuit.BinaryEqual))},
		{"equal-sets-any-order", nil, noBody(e(ints(1, 2, 3), ints(3, 2, 1), biscuit.BinaryEqual))},
		{"equal-mixed-errors", nil, noBody(e(integer(1), str("1"), biscuit.BinaryEqual))},
		{"contains-substring", nil, noBody(e(str("hello world"), str("lo w"), biscuit.BinaryContains))},
		{"contains-string-int-errors", nil, noBody(e(str("hello"), integer(1), biscuit.BinaryContains))},
		{"contains-member", nil, noBody(e(ints(1, 2), integer(2), biscuit.BinaryContains))},
		{"contains-other-type", nil, noBody(e(ints(1, 2), str("2"), biscuit.BinaryContains))},
		{"contains-superset", nil, noBody(e(strs("a", "b", "c"), strs("c", "a"), biscuit.BinaryContains))},
		{"contains-not-superset", nil, noBody(e(strs("a", "b"), strs("c", "a"), biscuit.BinaryContains))},
		{"contains-on-int-errors", nil, noBody(e(integer(12), integer(1), biscuit.BinaryContains))},
		{"starts-with", nil, noBody(e(str("crm/notes/1"), str("crm/"), biscuit.BinaryPrefix))},
		{"ends-with", nil, noBody(e(str("crm/notes/1"), str("/2"), biscuit.BinarySuffix))},
		{"starts-with-int-errors", nil, noBody(e(integer(1), str("1"), biscuit.BinaryPrefix))},
		{"length-string", nil, noBody(e(str("héllo"), biscuit.UnaryLength, integer(6), biscuit.BinaryEqual))},
		{"length-set", nil, noBody(e(ints(4, 5, 6), biscuit.UnaryLength, integer(3), biscuit.BinaryEqual))},
		{"length-int-errors", nil, noBody(e(integer(1), biscuit.UnaryLength, integer(1), biscuit.BinaryEqual))},
		{"add", nil, noBody(e(integer(2), integer(3), biscuit.BinaryAdd, integer(5), biscuit.BinaryEqual))},
		{"add-overflow", nil, noBody(e(integer(math.MaxInt64), integer(1), biscuit.BinaryAdd, integer(0), biscuit.BinaryLessThan))},
		{"sub-overflow", nil, noBody(e(integer(math.MinInt64), integer(1), biscuit.BinarySub, integer(0), biscuit.BinaryGreaterThan))},
		{"sub", nil, noBody(e(integer(2), integer(5), biscuit.BinarySub, integer(-3), biscuit.BinaryEqual))},
		{"concat-int-errors", nil, noBody(e(str("a"), integer(1), biscuit.BinaryAdd, str("a1"), biscuit.BinaryEqual))},
		{"result-not-bool", nil, noBody(e(integer(1)))},
		{"second-expression-false", nil, noBody(e(b(true)), e(b(false)))},
		{"false-before-error", nil, noBody(e(b(false)), e(integer(1), biscuit.UnaryNegate))},
		{"resource-prefix", nil, on(pred("resource", v("r")), e(vr("r"), str("crm/"), biscuit.BinaryPrefix))},
		{"time-before", nil, on(pred("time", v("t")), e(vr("t"), date(coreTestNow.Add(time.Second)), biscuit.BinaryLessThan))},
		{"time-after", nil, on(pred("time", v("t")), e(vr("t"), date(coreTestNow), biscuit.BinaryGreaterThan))},
		{"records", nil, on(pred("records", v("n")), e(vr("n"), integer(3), biscuit.BinaryEqual))},
		{"fields-subset", nil, on(pred("fields", v("f")), e(strs("email", "name"), vr("f"), biscuit.BinaryContains))},
		{"fields-equal", nil, on(pred("fields", v("f")), e(vr("f"), strs("name", "email"), biscuit.BinaryEqual))},
		{"presenter-absent", nil, on(pred("presenter", v("p")))},
		{"attr-match", nil, on(pred("attr", str("tenant").Term, v("x")), e(vr("x"), str("acme"), biscuit.BinaryEqual))},
		{"attr-type-error-first", nil, on(pred("attr", v("k"), v("x")), e(vr("x"), integer(3), biscuit.BinaryGreaterThan))},
		{"join-consistent", []biscuit.Fact{fact("owner", biscuit.String("alice"), biscuit.String("crm/contacts"))},
			checkOf(query([]biscuit.Predicate{pred("resource", v("r")), pred("owner", v("u"), v("r"))}))},
		{"join-inconsistent", []biscuit.Fact{fact("owner", biscuit.String("alice"), biscuit.String("crm/notes"))},
			checkOf(query([]biscuit.Predicate{pred("resource", v("r")), pred("owner", v("u"), v("r"))}))},
		{"join-same-variable-twice", []biscuit.Fact{fact("pair", biscuit.Integer(1), biscuit.Integer(1)), fact("pair", biscuit.Integer(1), biscuit.Integer(2))},
			checkOf(query([]biscuit.Predicate{pred("pair", v("a"), v("a"))}))},
		{"error-ends-query", []biscuit.Fact{fact("mixed", biscuit.String("a")), fact("mixed", biscuit.Integer(5))},
			on(pred("mixed", v("x")), e(vr("x"), integer(3), biscuit.BinaryGreaterThan))},
		{"match-before-error", []biscuit.Fact{fact("mixed", biscuit.Integer(5)), fact("mixed", biscuit.String("a"))},
			on(pred("mixed", v("x")), e(vr("x"), integer(3), biscuit.BinaryGreaterThan))},
		{"second-query-after-error", []biscuit.Fact{fact("mixed", biscuit.String("a"))},
			checkOf(query([]biscuit.Predicate{pred("mixed", v("x"))}, e(vr("x"), integer(3), biscuit.BinaryGreaterThan)),
				query([]biscuit.Predicate{pred("mixed", v("x"))}))},
		{"constant-set-in-fact", []biscuit.Fact{fact("groups", strSet("a", "b"))},
			on(pred("groups", strSet("b", "a")))},
		{"set-variable", []biscuit.Fact{fact("groups", strSet("a", "b"))},
			on(pred("groups", v("g")), e(vr("g"), str("a"), biscuit.BinaryContains))},
		{"right-join", nil, checkOf(query([]biscuit.Predicate{pred("resource", v("r")), pred("operation", v("o")), pred("right", v("r"), v("o"))}))},
	}
	now := coreTestNow
	root := coreRoot1.Public().(ed25519.PublicKey)
	reqs := []Request{
		{Resource: "crm/contacts", Operation: "read", Records: 3, Fields: []string{"email", "name"},
			Attributes: map[string]string{"tenant": "acme", "region": "eu"}},
		{Resource: "crm/notes/9", Operation: "read", Presenter: "spiffe://acme.example/agents/support", Records: 0},
	}
	outcomes := map[bool]int{}
	for _, tc := range cases {
		for i, req := range reqs {
			t.Run(fmt.Sprintf("%s/req%d", tc.name, i), func(t *testing.T) {
				facts := append(writFacts(mustRight("crm/contacts:read"), mustRight("crm/notes/*:read")), tc.facts...)
				for _, where := range []string{"authority", "attenuation"} {
					var tok []byte
					if where == "authority" {
						tok = stdToken(t, authority{facts: facts, checks: []biscuit.Check{expiryCheck(in5m()), tc.check}})
					} else {
						tok = stdToken(t, authority{facts: facts}, []biscuit.Check{tc.check})
					}
					d := coreVerifier(t, nil).Authorize(context.Background(), tok, req)
					if d.Reason != spec.ReasonAllowed && d.Reason != spec.ReasonCheckFailed && len(d.FailedChecks) == 0 && d.Reason != spec.ReasonNotGranted {
						t.Fatalf("%s: got %q (%s): the case must be within writ's rules", where, d.Reason, d.Message)
					}
					if want := biscuitGoAllows(t, tok, root, now, req); d.Allowed != want {
						t.Errorf("%s: got allowed=%v (%s), biscuit-go says %v", where, d.Allowed, d.Message, want)
					}
					outcomes[d.Allowed]++
				}
			})
		}
	}
	if outcomes[true] < 20 || outcomes[false] < 20 {
		t.Errorf("got %d allowed and %d denied decisions, want both kinds well represented", outcomes[true], outcomes[false])
	}
}

func TestValueEqualMirrorsBiscuitGo(t *testing.T) {
	s := func(ns ...int64) value {
		var es []value
		for _, n := range ns {
			es = append(es, value{kind: kindInt, num: n})
		}
		return value{kind: kindSet, set: &es}
	}
	cases := []struct {
		name string
		a, b value
		want bool
	}{
		{"int", value{kind: kindInt, num: 1}, value{kind: kindInt, num: 1}, true},
		{"int-vs-date", value{kind: kindInt, num: 1}, value{kind: kindDate, num: 1}, false},
		{"string", value{kind: kindString, str: "a"}, value{kind: kindString, str: "a"}, true},
		{"string-vs-bytes", value{kind: kindString, str: "a"}, value{kind: kindBytes, str: "a"}, false},
		{"set-order", s(1, 2), s(2, 1), true},
		{"set-length", s(1, 2), s(1), false},
		// biscuit-go compares sets by length and inclusion of a in b.
		{"set-with-repeats", s(1, 1), s(1, 2), true},
	}
	for _, tc := range cases {
		if got := valueEqual(&tc.a, &tc.b); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
