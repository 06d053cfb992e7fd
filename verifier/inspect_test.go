package verifier

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"
)

func TestInspect(t *testing.T) {
	tok := attenuate(t, authority{}.build(t), []biscuit.Check{
		rightsCheck(mustRight("crm/contacts:read"), mustRight("crm/notes/*:read")),
		expiryCheck(coreTestNow.Add(2 * time.Minute)),
	})
	sealed, err := tok.Seal(nil)
	if err != nil {
		t.Fatal(err)
	}
	raw := serialize(t, sealed, u32(3))
	in, err := Inspect(raw)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if in.RootKeyID == nil || *in.RootKeyID != 3 || !in.Sealed {
		t.Errorf("got root key %v sealed %v, want 3 and sealed", in.RootKeyID, in.Sealed)
	}
	if in.TokenID != coreTokenID || in.Agent != "spiffe://acme.example/agents/support" ||
		in.Issuer != "spiffe://acme.example/writ" || in.WritVersion != 1 || in.PolicyVersion != "sha256:9c1e" {
		t.Errorf("got writ facts %+v", in)
	}
	if want := coreTestNow.Add(2 * time.Minute); in.Expiry == nil || !in.Expiry.Equal(want) {
		t.Errorf("got expiry %v, want the earliest, %v", in.Expiry, want)
	}
	if in.IssuedAt == nil || !in.IssuedAt.Equal(coreTestNow.Add(-time.Minute)) {
		t.Errorf("got issued at %v", in.IssuedAt)
	}
	if len(in.Blocks) != 2 {
		t.Fatalf("got %d blocks, want 2", len(in.Blocks))
	}
	wantFacts := []string{
		`writ_version(1)`,
		`token_id("` + coreTokenID + `")`,
		`issuer("spiffe://acme.example/writ")`,
		`agent("spiffe://acme.example/agents/support")`,
		`issued_at(2026-11-27T09:59:00Z)`,
		`policy_version("sha256:9c1e")`,
		`right("crm/contacts", "read")`,
		`right_prefix("crm/notes/", "read")`,
	}
	if !reflect.DeepEqual(in.Blocks[0].Facts, wantFacts) {
		t.Errorf("got facts\n%q\nwant\n%q", in.Blocks[0].Facts, wantFacts)
	}
	wantChecks := []string{
		`check if resource("crm/contacts"), operation("read") or resource($r), operation("read"), $r.starts_with("crm/notes/")`,
		`check if time($t), $t <= 2026-11-27T10:02:00Z`,
	}
	if !reflect.DeepEqual(in.Blocks[1].Checks, wantChecks) {
		t.Errorf("got checks\n%q\nwant\n%q", in.Blocks[1].Checks, wantChecks)
	}
	for i, b := range in.Blocks {
		if b.Index != i || b.RevocationID != revocationID(t, raw, i) {
			t.Errorf("block %d: got index %d, revocation id %s", i, b.Index, b.RevocationID)
		}
	}
	js, err := json.Marshal(in)
	if err != nil || !strings.Contains(string(js), `"revocation_id"`) {
		t.Errorf("got JSON %s, %v", js, err)
	}

	if _, err := Inspect([]byte("nope")); !errors.Is(err, ErrMalformed) {
		t.Errorf("garbage: got %v, want ErrMalformed", err)
	}
}

// Datalog text of every kind of term and operator.
func TestDatalogText(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := checkOf(
		query([]biscuit.Predicate{pred("note", biscuit.String("say \"hi\"\\\n"), biscuit.Bytes{0xca, 0xfe}, biscuit.Bool(true), biscuit.Variable("x"))},
			biscuit.Expression{vr("x"), biscuit.UnaryLength, integer(-3), biscuit.BinaryAdd, integer(2), biscuit.BinarySub, biscuit.UnaryParens, integer(4), biscuit.BinaryGreaterOrEqual},
			biscuit.Expression{val(strSet("a", "b")), val(strSet("b")), biscuit.BinaryIntersection, val(strSet("c")), biscuit.BinaryUnion, val(strSet("a")), biscuit.BinaryContains, biscuit.UnaryNegate}),
		query(nil, biscuit.Expression{date(when), date(when), biscuit.BinaryEqual, val(biscuit.Bool(false)), biscuit.BinaryOr}),
		query([]biscuit.Predicate{pred("resource", biscuit.Variable("r"))}, biscuit.Expression{vr("r"), str(".json"), biscuit.BinarySuffix, vr("r"), str("x"), biscuit.BinaryPrefix, biscuit.BinaryAnd}),
	)
	tok := stdToken(t, authority{facts: append(writFacts(), fact("note", biscuit.String("say \"hi\"\\\n"), biscuit.Bytes{0xca, 0xfe}, biscuit.Bool(true), biscuit.Integer(7)))}, []biscuit.Check{c})
	in, err := Inspect(tok)
	if err != nil {
		t.Fatal(err)
	}
	want := `check if note("say \"hi\"\\\n", hex:cafe, true, $x), ($x.length() + -3 - 2) >= 4, !["a", "b"].intersection(["b"]).union(["c"]).contains(["a"])` +
		` or 2026-01-02T03:04:05Z == 2026-01-02T03:04:05Z || false` +
		` or resource($r), $r.ends_with(".json") && $r.starts_with("x")`
	if got := in.Blocks[1].Checks[0]; got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
