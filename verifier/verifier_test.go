package verifier

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"
	"github.com/biscuit-auth/biscuit-go/v2/pb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/writ-dev/writ/spec"
)

var coreReq = Request{Resource: "crm/contacts", Operation: "read"}

// authCase is one row of the reason table: a token, a request, the
// verifier's configuration and the decision expected.
type authCase struct {
	name  string
	token func(t testing.TB) []byte
	req   *Request      // nil: coreReq
	cfg   func(*Config) // nil: coreVerifier defaults
	want  string
	check func(t *testing.T, d Decision)
}

// revocationID returns the revocation id of block i of tok.
func revocationID(t testing.TB, tok []byte, i int) string {
	t.Helper()
	var c pb.Biscuit
	if err := proto.Unmarshal(tok, &c); err != nil {
		t.Fatal(err)
	}
	if i == 0 {
		return hex.EncodeToString(c.Authority.Signature)
	}
	return hex.EncodeToString(c.Blocks[i-1].Signature)
}

func withRevoked(ids ...string) func(*Config) {
	return func(c *Config) {
		r := coreRevocations{}
		for _, id := range ids {
			r[id] = true
		}
		c.Revocations = r
	}
}

func in5m() time.Time { return coreTestNow.Add(5 * time.Minute) }

// authorityWith is the default authority plus extra checks.
func authorityWith(checks ...biscuit.Check) authority {
	return authority{checks: append([]biscuit.Check{expiryCheck(in5m())}, checks...)}
}

func flipAt(t testing.TB, tok []byte, needle []byte, bit byte) []byte {
	t.Helper()
	i := bytes.Index(tok, needle)
	if i < 0 {
		t.Fatalf("needle not in token")
	}
	out := bytes.Clone(tok)
	out[i+len(needle)/2] ^= bit
	return out
}

// withUnknownField appends field 15 (varint 1) to m.
func withUnknownField(m proto.Message) {
	r := m.ProtoReflect()
	u := protowire.AppendTag(append([]byte{}, r.GetUnknown()...), 15, protowire.VarintType)
	r.SetUnknown(protowire.AppendVarint(u, 1))
}

// rawCheckBlock returns an attenuation block holding one check whose
// single query has body body and one expression ops, built over the
// symbol table of blocks (which it extends).
func rawCheck(queries ...*pb.RuleV2) *pb.CheckV2 { return &pb.CheckV2{Queries: queries} }

func pbVar(blocks []*pb.Block, name string) *pb.TermV2 {
	return &pb.TermV2{Content: &pb.TermV2_Variable{Variable: uint32(symIndex(blocks, name))}}
}

func pbInt(n int64) *pb.TermV2 { return &pb.TermV2{Content: &pb.TermV2_Integer{Integer: n}} }

func pbPred(blocks []*pb.Block, name string, terms ...*pb.TermV2) *pb.PredicateV2 {
	n := symIndex(blocks, name)
	return &pb.PredicateV2{Name: &n, Terms: terms}
}

func pbBinary(k pb.OpBinary_Kind) *pb.Op {
	return &pb.Op{Content: &pb.Op_Binary{Binary: &pb.OpBinary{Kind: k.Enum()}}}
}

func pbValue(t *pb.TermV2) *pb.Op { return &pb.Op{Content: &pb.Op_Value{Value: t}} }

// withRawBlock returns a valid token whose last block is built by mk.
func withRawBlock(t testing.TB, mk func(blocks []*pb.Block) *pb.Block) []byte {
	t.Helper()
	blocks := pbBlocks(t, stdToken(t, authority{}))
	blocks = append(blocks, &pb.Block{Version: proto.Uint32(3)})
	blocks[len(blocks)-1] = mk(blocks)
	return signRaw(t, blocks, rawOpts{rootKeyID: u32(1)})
}

func coreAuthCases() []authCase {
	contacts := mustRight("crm/contacts:read")
	notes := mustRight("crm/notes/*:read")
	agent := "spiffe://acme.example/agents/support"
	other := "spiffe://acme.example/agents/other"
	crm := "spiffe://acme.example/svc/crm"
	req := func(mod func(r *Request)) *Request {
		r := coreReq
		mod(&r)
		return &r
	}
	manyRights := func(n int) []biscuit.Fact {
		fs := writFacts()
		for i := range n {
			fs = append(fs, fact("right", biscuit.String(fmt.Sprintf("r/%d", i)), biscuit.String("read")))
		}
		return fs
	}
	join3 := func(exprs ...biscuit.Expression) biscuit.Check {
		return checkOf(query([]biscuit.Predicate{
			pred("right", biscuit.Variable("a"), biscuit.Variable("b")),
			pred("right", biscuit.Variable("c"), biscuit.Variable("d")),
			pred("right", biscuit.Variable("e"), biscuit.Variable("f")),
		}, exprs...))
	}
	never := biscuit.Expression{vr("a"), str("nope"), biscuit.BinaryEqual}

	return []authCase{
		// Allowed.
		{name: "ok/authority-only", token: func(t testing.TB) []byte { return stdToken(t, authority{}) }, want: spec.ReasonAllowed,
			check: func(t *testing.T, d Decision) {
				if d.TokenID != coreTokenID || d.Agent != agent || d.Issuer != "spiffe://acme.example/writ" || d.RootKeyID != 1 || d.Blocks != 1 {
					t.Errorf("got %+v, want token id, agent, issuer, root key 1, 1 block", d)
				}
				if d.Constraints.MaxRecords != 0 || d.Constraints.Fields != nil {
					t.Errorf("got constraints %+v, want none", d.Constraints)
				}
			}},
		{name: "ok/prefix-right", token: func(t testing.TB) []byte { return stdToken(t, authority{}) },
			req: req(func(r *Request) { r.Resource = "crm/notes/7" }), want: spec.ReasonAllowed},
		{name: "ok/attenuated-twice", token: func(t testing.TB) []byte {
			return stdToken(t, authority{},
				[]biscuit.Check{rightsCheck(contacts, notes)},
				[]biscuit.Check{expiryCheck(coreTestNow.Add(time.Minute)), setCheck("presenter", agent)})
		}, req: req(func(r *Request) { r.Presenter = agent }), want: spec.ReasonAllowed,
			check: func(t *testing.T, d Decision) {
				if d.Blocks != 3 {
					t.Errorf("got %d blocks, want 3", d.Blocks)
				}
			}},
		{name: "ok/sealed", token: func(t testing.TB) []byte {
			tok := attenuate(t, authority{}.build(t), []biscuit.Check{rightsCheck(contacts)})
			sealed, err := tok.Seal(nil)
			if err != nil {
				t.Fatal(err)
			}
			return serialize(t, sealed, u32(1))
		}, want: spec.ReasonAllowed},
		{name: "ok/sealed-authority-only", token: func(t testing.TB) []byte {
			blocks := pbBlocks(t, stdToken(t, authority{}))
			return signRaw(t, blocks, rawOpts{rootKeyID: u32(1), sealed: true})
		}, want: spec.ReasonAllowed},
		{name: "ok/no-root-key-id", token: func(t testing.TB) []byte {
			return serialize(t, authority{root: coreRoot2}.build(t), nil)
		}, want: spec.ReasonAllowed, check: func(t *testing.T, d Decision) {
			if d.RootKeyID != 2 {
				t.Errorf("got root key %d, want 2", d.RootKeyID)
			}
		}},
		{name: "ok/constraints", token: func(t testing.TB) []byte {
			return stdToken(t, authorityWith(recordsCheck(100), setCheck("fields", "email", "name")),
				[]biscuit.Check{recordsCheck(10), setCheck("fields", "name", "phone")})
		}, want: spec.ReasonAllowed, check: func(t *testing.T, d Decision) {
			if d.Constraints.MaxRecords != 10 || !reflect.DeepEqual(d.Constraints.Fields, []string{"name"}) {
				t.Errorf("got constraints %+v, want 10 records, fields [name]", d.Constraints)
			}
		}},
		{name: "ok/constraints-within", token: func(t testing.TB) []byte {
			return stdToken(t, authorityWith(recordsCheck(100), setCheck("fields", "email", "name")))
		}, req: req(func(r *Request) { r.Records = 100; r.Fields = []string{"name", "email"} }), want: spec.ReasonAllowed},
		{name: "ok/disjoint-fields-mean-none", token: func(t testing.TB) []byte {
			return stdToken(t, authorityWith(setCheck("fields", "email")), []biscuit.Check{setCheck("fields", "name")})
		}, want: spec.ReasonAllowed, check: func(t *testing.T, d Decision) {
			if d.Constraints.Fields == nil || len(d.Constraints.Fields) != 0 {
				t.Errorf("got fields %#v, want empty, non-nil", d.Constraints.Fields)
			}
		}},
		{name: "ok/time-window", token: func(t testing.TB) []byte {
			return stdToken(t, authorityWith(windowCheck("Europe/Paris", []int64{1, 2, 3, 4, 5}, 540, 1080)))
		}, want: spec.ReasonAllowed},
		{name: "ok/service-from-config", token: func(t testing.TB) []byte {
			return stdToken(t, authorityWith(setCheck("service", crm)))
		}, cfg: func(c *Config) { c.Service = crm }, want: spec.ReasonAllowed},
		{name: "ok/service-from-request", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{setCheck("service", crm)})
		}, req: req(func(r *Request) { r.Service = crm }), want: spec.ReasonAllowed},
		{name: "ok/service-request-same-as-config", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{setCheck("service", crm)})
		}, req: req(func(r *Request) { r.Service = crm }), cfg: func(c *Config) { c.Service = crm }, want: spec.ReasonAllowed},
		{name: "fail/service-request-overrides-config", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{setCheck("service", crm)})
		}, req: req(func(r *Request) { r.Service = crm }), cfg: func(c *Config) { c.Service = "spiffe://acme.example/svc/other" }, want: spec.ReasonServiceMismatch},
		{name: "ok/revocation-list-without-match", token: func(t testing.TB) []byte { return stdToken(t, authority{}) },
			cfg: withRevoked("ffffffffffffffffffffffffffffffff"), want: spec.ReasonAllowed},
		{name: "ok/attr", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query([]biscuit.Predicate{pred("attr", biscuit.String("tenant"), biscuit.Variable("v"))},
				biscuit.Expression{vr("v"), str("acme"), biscuit.BinaryEqual}))})
		}, req: req(func(r *Request) { r.Attributes = map[string]string{"tenant": "acme", "region": "eu"} }), want: spec.ReasonAllowed},
		{name: "ok/join-of-16-rights-within-limits", token: func(t testing.TB) []byte {
			return stdToken(t, authority{facts: append(manyRights(15), fact("right", biscuit.String("crm/contacts"), biscuit.String("read")))},
				[]biscuit.Check{join3(biscuit.Expression{vr("a"), str("crm/contacts"), biscuit.BinaryEqual})})
		}, want: spec.ReasonAllowed},

		// Denied by checks and policy.
		{name: "fail/expired", token: func(t testing.TB) []byte {
			return stdToken(t, authority{checks: []biscuit.Check{expiryCheck(coreTestNow.Add(-time.Second))}})
		}, want: spec.ReasonExpired, check: func(t *testing.T, d Decision) {
			want := "check if time($t), $t <= 2026-11-27T09:59:59Z"
			if len(d.FailedChecks) != 1 || d.FailedChecks[0].Check != want || d.FailedChecks[0].Block != 0 {
				t.Errorf("got failed checks %+v, want [%q in block 0]", d.FailedChecks, want)
			}
			if d.TokenID != coreTokenID {
				t.Errorf("got token id %q, want %q once verified", d.TokenID, coreTokenID)
			}
		}},
		{name: "fail/expired-in-attenuation", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{expiryCheck(coreTestNow.Add(-time.Minute))})
		}, want: spec.ReasonExpired, check: func(t *testing.T, d Decision) {
			if len(d.FailedChecks) != 1 || d.FailedChecks[0].Block != 1 || d.FailedChecks[0].Reason != spec.ReasonExpired {
				t.Errorf("got %+v, want one expired check in block 1", d.FailedChecks)
			}
		}},
		{name: "fail/presenter-mismatch", token: func(t testing.TB) []byte {
			return stdToken(t, authorityWith(setCheck("presenter", agent)))
		}, req: req(func(r *Request) { r.Presenter = other }), want: spec.ReasonPresenterMismatch},
		{name: "fail/presenter-unknown", token: func(t testing.TB) []byte {
			return stdToken(t, authorityWith(setCheck("presenter", agent)))
		}, want: spec.ReasonPresenterMismatch},
		{name: "fail/service-mismatch", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{setCheck("service", crm)})
		}, cfg: func(c *Config) { c.Service = "spiffe://acme.example/svc/billing" }, want: spec.ReasonServiceMismatch},
		{name: "fail/service-unset", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{setCheck("service", crm)})
		}, want: spec.ReasonServiceMismatch},
		{name: "fail/outside-time-window", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{windowCheck("Europe/Paris", []int64{0, 6}, 540, 1080)})
		}, want: spec.ReasonOutsideTimeWindow},
		{name: "fail/outside-time-of-day", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{windowCheck("America/New_York", []int64{5}, 540, 1080)})
		}, want: spec.ReasonOutsideTimeWindow},
		{name: "fail/unknown-zone", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{windowCheck("Mars/Olympus_Mons", []int64{5}, 0, 1440)})
		}, want: spec.ReasonOutsideTimeWindow},
		{name: "fail/too-many-records", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{recordsCheck(10)})
		}, req: req(func(r *Request) { r.Records = 11 }), want: spec.ReasonConstraintViolated},
		{name: "fail/field-not-allowed", token: func(t testing.TB) []byte {
			return stdToken(t, authorityWith(setCheck("fields", "name")))
		}, req: req(func(r *Request) { r.Fields = []string{"name", "email"} }), want: spec.ReasonConstraintViolated},
		{name: "fail/record-limit-zero", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{recordsCheck(0)})
		}, want: spec.ReasonConstraintViolated},
		// Operators whose result can outgrow their operands are refused
		// (token.md §6): evaluation cost is charged per operation.
		{name: "fail/string-concatenation-unsupported", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query([]biscuit.Predicate{pred("resource", biscuit.Variable("r"))},
				biscuit.Expression{vr("r"), str("x"), biscuit.BinaryAdd, str("crm/contactsx"), biscuit.BinaryEqual}))})
		}, want: spec.ReasonUnsupported},
		{name: "fail/constant-concatenation-unsupported", token: func(t testing.TB) []byte {
			e := biscuit.Expression{str(strings.Repeat("A", 1000))}
			for range 30 {
				e = append(e, str(strings.Repeat("A", 1000)), biscuit.BinaryAdd)
			}
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query(nil, append(e, str(""), biscuit.BinaryEqual)))})
		}, want: spec.ReasonUnsupported},
		{name: "fail/variable-concatenation-unsupported", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query([]biscuit.Predicate{pred("resource", biscuit.Variable("r")), pred("operation", biscuit.Variable("o"))},
				biscuit.Expression{vr("r"), vr("o"), biscuit.BinaryAdd, str(""), biscuit.BinaryEqual}))})
		}, want: spec.ReasonUnsupported},
		{name: "fail/union-unsupported", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query(nil,
				biscuit.Expression{val(strSet("a")), val(strSet("b")), biscuit.BinaryUnion, biscuit.UnaryLength, integer(2), biscuit.BinaryEqual}))})
		}, want: spec.ReasonUnsupported},
		{name: "fail/intersection-unsupported", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query([]biscuit.Predicate{pred("fields", biscuit.Variable("f"))},
				biscuit.Expression{vr("f"), val(strSet("email")), biscuit.BinaryIntersection, val(strSet("email")), biscuit.BinaryEqual}))})
		}, req: req(func(r *Request) { r.Fields = []string{"email"} }), want: spec.ReasonUnsupported},
		{name: "ok/integer-addition", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query([]biscuit.Predicate{pred("resource", biscuit.Variable("r"))},
				biscuit.Expression{vr("r"), biscuit.UnaryLength, integer(1), biscuit.BinaryAdd, integer(13), biscuit.BinaryEqual}))})
		}, want: spec.ReasonAllowed},
		{name: "fail/string-plus-integer-is-a-type-error", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query(nil,
				biscuit.Expression{str("a"), integer(1), biscuit.BinaryAdd, integer(0), biscuit.BinaryGreaterThan}))})
		}, want: spec.ReasonCheckFailed},
		// Zone names must be canonical IANA names (token.md §3).
		{name: "fail/zone-dot-segment", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{windowCheck("Europe/./Paris", []int64{5}, 0, 1440)})
		}, want: spec.ReasonUnsupported},
		{name: "fail/zone-empty-segment", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{windowCheck("Europe//Paris", []int64{5}, 0, 1440)})
		}, want: spec.ReasonUnsupported},
		{name: "fail/zone-dot-dot", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{windowCheck("Europe/../Europe/Paris", []int64{5}, 0, 1440)})
		}, want: spec.ReasonUnsupported},
		{name: "fail/zone-posix-alias", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{windowCheck("posix/Europe/Paris", []int64{5}, 0, 1440)})
		}, want: spec.ReasonUnsupported},
		{name: "fail/zone-right-alias", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{windowCheck("right/UTC", []int64{5}, 0, 1440)})
		}, want: spec.ReasonUnsupported},
		{name: "fail/zone-local", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{windowCheck("Local", []int64{0, 1, 2, 3, 4, 5, 6}, 0, 1440)})
		}, want: spec.ReasonUnsupported},
		{name: "fail/zone-absolute-path", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{windowCheck("/etc/localtime", []int64{5}, 0, 1440)})
		}, want: spec.ReasonUnsupported},
		{name: "ok/zone-with-plus-minus-digits", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{windowCheck("Etc/GMT+5", []int64{0, 1, 2, 3, 4, 5, 6}, 0, 1440)})
		}, want: spec.ReasonAllowed},
		// A check on records or fields Constraints cannot carry needs the
		// request to name its records or fields (token.md §7).
		{name: "fail/records-check-not-plain-limit", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query([]biscuit.Predicate{pred("records", biscuit.Variable("n"))},
				biscuit.Expression{vr("n"), integer(5), biscuit.BinaryLessOrEqual},
				biscuit.Expression{vr("n"), integer(0), biscuit.BinaryGreaterOrEqual}))})
		}, want: spec.ReasonConstraintViolated, check: func(t *testing.T, d Decision) {
			if len(d.FailedChecks) != 0 || d.Constraints.MaxRecords != 0 {
				t.Errorf("got failed checks %v, constraints %+v; want none, none", d.FailedChecks, d.Constraints)
			}
		}},
		{name: "ok/records-check-not-plain-limit-with-records", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query([]biscuit.Predicate{pred("records", biscuit.Variable("n"))},
				biscuit.Expression{vr("n"), integer(5), biscuit.BinaryLessOrEqual},
				biscuit.Expression{vr("n"), integer(0), biscuit.BinaryGreaterOrEqual}))})
		}, req: req(func(r *Request) { r.Records = 5 }), want: spec.ReasonAllowed},
		{name: "fail/records-or-presenter-without-records", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(
				query([]biscuit.Predicate{pred("records", biscuit.Variable("n"))}, biscuit.Expression{vr("n"), integer(5), biscuit.BinaryLessOrEqual}),
				query([]biscuit.Predicate{pred("presenter", biscuit.Variable("p"))}, biscuit.Expression{val(strSet(agent)), vr("p"), biscuit.BinaryContains}))})
		}, want: spec.ReasonConstraintViolated},
		{name: "fail/fields-check-not-plain-list", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query([]biscuit.Predicate{pred("fields", biscuit.Variable("f"))},
				biscuit.Expression{val(strSet("email")), vr("f"), biscuit.BinaryContains, biscuit.UnaryParens}))})
		}, want: spec.ReasonConstraintViolated, check: func(t *testing.T, d Decision) {
			if len(d.FailedChecks) != 0 || d.Constraints.Fields != nil {
				t.Errorf("got failed checks %v, constraints %+v; want none, none", d.FailedChecks, d.Constraints)
			}
		}},
		{name: "ok/fields-check-not-plain-list-with-fields", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query([]biscuit.Predicate{pred("fields", biscuit.Variable("f"))},
				biscuit.Expression{val(strSet("email")), vr("f"), biscuit.BinaryContains, biscuit.UnaryParens}))})
		}, req: req(func(r *Request) { r.Fields = []string{"email"} }), want: spec.ReasonAllowed},
		{name: "ok/plain-limits-carried-in-constraints", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{recordsCheck(5), setCheck("fields", "email")})
		}, want: spec.ReasonAllowed, check: func(t *testing.T, d Decision) {
			if d.Constraints.MaxRecords != 5 || len(d.Constraints.Fields) != 1 || d.Constraints.Fields[0] != "email" {
				t.Errorf("got constraints %+v, want max 5, fields [email]", d.Constraints)
			}
		}},
		// Failed checks are cut short (token.md §7).
		{name: "fail/failed-check-text-cut", token: func(t testing.TB) []byte {
			big := strings.Repeat("B", 1020)
			e := biscuit.Expression{str(big), str(big), biscuit.BinaryEqual, biscuit.UnaryNegate}
			for range 12 {
				e = append(e, str(big), str(big), biscuit.BinaryEqual, biscuit.UnaryNegate, biscuit.BinaryOr)
			}
			var qs []biscuit.Rule
			for range 8 {
				qs = append(qs, query(nil, e))
			}
			return stdToken(t, authority{}, []biscuit.Check{checkOf(qs...), checkOf(qs...)})
		}, want: spec.ReasonCheckFailed, check: func(t *testing.T, d Decision) {
			if len(d.FailedChecks) != 2 {
				t.Fatalf("got %d failed checks, want 2", len(d.FailedChecks))
			}
			for _, f := range d.FailedChecks {
				if len(f.Check) > maxCheckTextBytes+len("…") || !strings.HasSuffix(f.Check, "…") {
					t.Errorf("got a check text of %d bytes ending %q, want at most %d ending in …", len(f.Check), f.Check[max(0, len(f.Check)-8):], maxCheckTextBytes)
				}
				if want := `"` + strings.Repeat("B", maxLiteralTextBytes) + `…"`; !strings.Contains(f.Check, want) {
					t.Errorf("got %.100q…, want literals cut to %d bytes", f.Check, maxLiteralTextBytes)
				}
			}
			if len(d.Message) > maxMessageCheckBytes+100 {
				t.Errorf("got a message of %d bytes, want at most %d", len(d.Message), maxMessageCheckBytes+100)
			}
		}},
		{name: "fail/failed-checks-listed-at-most-8", token: func(t testing.TB) []byte {
			var checks []biscuit.Check
			for i := range 12 {
				checks = append(checks, checkOf(query(nil, biscuit.Expression{integer(int64(i)), integer(-1), biscuit.BinaryEqual})))
			}
			return stdToken(t, authority{}, checks)
		}, want: spec.ReasonCheckFailed, check: func(t *testing.T, d Decision) {
			if len(d.FailedChecks) != maxFailedChecks || !strings.HasPrefix(d.Message, "12 check(s) failed") {
				t.Errorf("got %d failed checks, message %q; want %d and a count of 12", len(d.FailedChecks), d.Message, maxFailedChecks)
			}
		}},
		// A right_prefix prefix is spec.Right's "x/*" without the "*".
		{name: "fail/right-prefix-without-slash", token: func(t testing.TB) []byte {
			return stdToken(t, authority{facts: append(writFacts(contacts), fact("right_prefix", biscuit.String("crm"), biscuit.String("read")))})
		}, want: spec.ReasonMalformed},
		{name: "fail/right-prefix-empty", token: func(t testing.TB) []byte {
			return stdToken(t, authority{facts: append(writFacts(contacts), fact("right_prefix", biscuit.String(""), biscuit.String("read")))})
		}, want: spec.ReasonMalformed},
		{name: "fail/right-prefix-slash-only", token: func(t testing.TB) []byte {
			return stdToken(t, authority{facts: append(writFacts(contacts), fact("right_prefix", biscuit.String("/"), biscuit.String("read")))})
		}, want: spec.ReasonMalformed},
		{name: "fail/check-failed", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{rightsCheck(notes)})
		}, want: spec.ReasonCheckFailed, check: func(t *testing.T, d Decision) {
			want := `check if resource($r), operation("read"), $r.starts_with("crm/notes/")`
			if len(d.FailedChecks) != 1 || d.FailedChecks[0].Check != want {
				t.Errorf("got %+v, want [%s]", d.FailedChecks, want)
			}
		}},
		{name: "fail/not-granted", token: func(t testing.TB) []byte { return stdToken(t, authority{}) },
			req: req(func(r *Request) { r.Resource = "crm/billing" }), want: spec.ReasonNotGranted,
			check: func(t *testing.T, d Decision) {
				if d.MissingRight == nil || *d.MissingRight != (spec.Right{Resource: "crm/billing", Operation: "read"}) {
					t.Errorf("got missing right %v, want crm/billing:read", d.MissingRight)
				}
			}},
		{name: "fail/not-granted-operation", token: func(t testing.TB) []byte { return stdToken(t, authority{}) },
			req: req(func(r *Request) { r.Operation = "write" }), want: spec.ReasonNotGranted},
		{name: "fail/prefix-is-not-a-glob", token: func(t testing.TB) []byte { return stdToken(t, authority{}) },
			req: req(func(r *Request) { r.Resource = "crm/notes" }), want: spec.ReasonNotGranted},
		{name: "fail/reason-order", token: func(t testing.TB) []byte {
			return stdToken(t, authorityWith(setCheck("presenter", agent)),
				[]biscuit.Check{rightsCheck(notes)},
				[]biscuit.Check{expiryCheck(coreTestNow.Add(-time.Minute))})
		}, want: spec.ReasonExpired, check: func(t *testing.T, d Decision) {
			var got []string
			for _, f := range d.FailedChecks {
				got = append(got, fmt.Sprintf("%d:%s", f.Block, f.Reason))
			}
			want := []string{"0:presenter_mismatch", "1:check_failed", "2:expired"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		}},

		// Revocation.
		{name: "fail/revoked-authority", token: func(t testing.TB) []byte { return stdToken(t, authority{}) }, want: spec.ReasonRevoked},
		{name: "fail/revoked-attenuation-block", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{rightsCheck(contacts)})
		}, want: spec.ReasonRevoked},
		{name: "fail/revoked-token-id", token: func(t testing.TB) []byte { return stdToken(t, authority{}) },
			cfg: withRevoked(coreTokenID), want: spec.ReasonRevoked},

		// Signatures and keys.
		{name: "fail/bit-flip-in-signature", token: func(t testing.TB) []byte {
			tok := stdToken(t, authority{})
			return flipAt(t, tok, []byte(revocationIDBytes(t, tok, 0)), 0x01)
		}, want: spec.ReasonBadSignature},
		{name: "fail/bit-flip-in-block", token: func(t testing.TB) []byte {
			return flipAt(t, stdToken(t, authority{}), []byte("crm/contacts"), 0x01)
		}, want: spec.ReasonBadSignature},
		{name: "fail/bit-flip-in-attenuation-block", token: func(t testing.TB) []byte {
			return flipAt(t, stdToken(t, authority{}, []biscuit.Check{rightsCheck(mustRight("crm/other:read"))}), []byte("crm/other"), 0x02)
		}, want: spec.ReasonBadSignature},
		{name: "fail/bit-flip-in-proof", token: func(t testing.TB) []byte {
			tok := stdToken(t, authority{})
			var c pb.Biscuit
			if err := proto.Unmarshal(tok, &c); err != nil {
				t.Fatal(err)
			}
			return flipAt(t, tok, c.Proof.GetNextSecret(), 0x80)
		}, want: spec.ReasonBadSignature},
		{name: "fail/bit-flip-in-sealed-proof", token: func(t testing.TB) []byte {
			blocks := pbBlocks(t, stdToken(t, authority{}))
			tok := signRaw(t, blocks, rawOpts{rootKeyID: u32(1), sealed: true})
			var c pb.Biscuit
			if err := proto.Unmarshal(tok, &c); err != nil {
				t.Fatal(err)
			}
			return flipAt(t, tok, c.Proof.GetFinalSignature(), 0x04)
		}, want: spec.ReasonBadSignature},
		{name: "fail/wrong-root-key", token: func(t testing.TB) []byte {
			return serialize(t, authority{root: coreRogue}.build(t), u32(1))
		}, want: spec.ReasonBadSignature},
		{name: "fail/wrong-root-key-without-id", token: func(t testing.TB) []byte {
			return serialize(t, authority{root: coreRogue}.build(t), nil)
		}, want: spec.ReasonUnknownKey},
		{name: "fail/unknown-root-key-id", token: func(t testing.TB) []byte {
			return serialize(t, authority{}.build(t), u32(7))
		}, want: spec.ReasonUnknownKey},
		{name: "fail/root-key-id-of-another-key", token: func(t testing.TB) []byte {
			return serialize(t, authority{}.build(t), u32(2))
		}, want: spec.ReasonBadSignature},
		{name: "fail/reordered-blocks", token: func(t testing.TB) []byte {
			tok := stdToken(t, authority{}, []biscuit.Check{rightsCheck(contacts)}, []biscuit.Check{rightsCheck(contacts, notes)})
			return editContainer(t, tok, func(c *pb.Biscuit) { c.Blocks[0], c.Blocks[1] = c.Blocks[1], c.Blocks[0] })
		}, want: spec.ReasonBadSignature},
		{name: "fail/removed-middle-block", token: func(t testing.TB) []byte {
			// Block 1 defines no symbol, so block 2 still decodes.
			tok := stdToken(t, authority{}, []biscuit.Check{rightsCheck(contacts)}, []biscuit.Check{rightsCheck(contacts, notes)})
			return editContainer(t, tok, func(c *pb.Biscuit) { c.Blocks = c.Blocks[1:] })
		}, want: spec.ReasonBadSignature},
		{name: "fail/removed-block-defining-symbols", token: func(t testing.TB) []byte {
			// Block 2 uses a symbol block 1 defined: it no longer decodes.
			tok := stdToken(t, authority{}, []biscuit.Check{rightsCheck(notes)}, []biscuit.Check{rightsCheck(contacts, notes)})
			return editContainer(t, tok, func(c *pb.Biscuit) { c.Blocks = c.Blocks[1:] })
		}, want: spec.ReasonMalformed},
		{name: "fail/removed-last-block", token: func(t testing.TB) []byte {
			tok := stdToken(t, authority{}, []biscuit.Check{rightsCheck(notes)})
			return editContainer(t, tok, func(c *pb.Biscuit) { c.Blocks = nil })
		}, want: spec.ReasonBadSignature},
		{name: "fail/block-from-another-token", token: func(t testing.TB) []byte {
			mine := stdToken(t, authority{}, []biscuit.Check{rightsCheck(notes)})
			var theirs pb.Biscuit
			if err := proto.Unmarshal(stdToken(t, authority{}, []biscuit.Check{rightsCheck(contacts)}), &theirs); err != nil {
				t.Fatal(err)
			}
			return editContainer(t, mine, func(c *pb.Biscuit) { c.Blocks[0] = theirs.Blocks[0]; c.Proof = theirs.Proof })
		}, want: spec.ReasonBadSignature},

		// Malformed.
		{name: "fail/empty-token", token: func(testing.TB) []byte { return nil }, want: spec.ReasonMalformed},
		{name: "fail/garbage", token: func(testing.TB) []byte { return []byte("this is not a token at all") }, want: spec.ReasonMalformed},
		{name: "fail/truncated-by-one", token: func(t testing.TB) []byte {
			tok := stdToken(t, authority{})
			return tok[:len(tok)-1]
		}, want: spec.ReasonMalformed},
		{name: "fail/truncated-in-half", token: func(t testing.TB) []byte {
			tok := stdToken(t, authority{})
			return tok[:len(tok)/2]
		}, want: spec.ReasonMalformed},
		{name: "fail/truncated-block", token: func(t testing.TB) []byte {
			return signRaw(t, pbBlocks(t, stdToken(t, authority{})), rawOpts{rootKeyID: u32(1),
				blockBytes: func(_ int, b []byte) []byte { return b[:len(b)-3] }})
		}, want: spec.ReasonMalformed},
		{name: "fail/short-signature", token: func(t testing.TB) []byte {
			return editContainer(t, stdToken(t, authority{}), func(c *pb.Biscuit) { c.Authority.Signature = c.Authority.Signature[:16] })
		}, want: spec.ReasonMalformed},
		{name: "fail/no-proof", token: func(t testing.TB) []byte {
			return editContainer(t, stdToken(t, authority{}), func(c *pb.Biscuit) { c.Proof = &pb.Proof{} })
		}, want: spec.ReasonMalformed},
		{name: "fail/missing-token-id", token: func(t testing.TB) []byte {
			fs := writFacts(contacts)
			return stdToken(t, authority{facts: append(fs[:1:1], fs[2:]...)})
		}, want: spec.ReasonMalformed},
		{name: "fail/token-id-not-hex", token: func(t testing.TB) []byte {
			fs := writFacts(contacts)
			fs[1] = fact(spec.FactTokenID, biscuit.String("not-a-token-id"))
			return stdToken(t, authority{facts: fs})
		}, want: spec.ReasonMalformed},
		{name: "fail/two-agents", token: func(t testing.TB) []byte {
			return stdToken(t, authority{facts: append(writFacts(contacts), fact(spec.FactAgent, biscuit.String(other)))})
		}, want: spec.ReasonMalformed},
		{name: "fail/no-expiry", token: func(t testing.TB) []byte {
			return stdToken(t, authority{checks: []biscuit.Check{setCheck("presenter", agent)}})
		}, want: spec.ReasonMalformed},
		{name: "fail/ambient-fact-in-token", token: func(t testing.TB) []byte {
			return stdToken(t, authority{facts: append(writFacts(), fact("resource", biscuit.String("crm/contacts")))})
		}, want: spec.ReasonMalformed},
		{name: "fail/revocation-age-fact-in-token", token: func(t testing.TB) []byte {
			// A token cannot vouch for the verifier's freshness itself.
			return stdToken(t, authority{
				facts:  append(writFacts(contacts), fact(spec.AmbientRevocationAge, biscuit.Integer(0))),
				checks: []biscuit.Check{expiryCheck(coreTestNow.Add(time.Minute)), stalenessCheck(2000)},
			})
		}, want: spec.ReasonMalformed},
		{name: "fail/staleness-check-any-shape-without-freshness", token: func(t testing.TB) []byte {
			c := checkOf(query([]biscuit.Predicate{pred(spec.AmbientRevocationAge, biscuit.Variable("a"))},
				biscuit.Expression{vr("a"), integer(0), biscuit.BinaryGreaterOrEqual},
				biscuit.Expression{vr("a"), integer(100), biscuit.BinaryLessThan}))
			return stdToken(t, authority{}, []biscuit.Check{c})
		}, want: spec.ReasonRevocationStale, check: func(t *testing.T, d Decision) {
			if len(d.FailedChecks) != 1 || d.FailedChecks[0].Reason != spec.ReasonRevocationStale || d.FailedChecks[0].Block != 1 {
				t.Errorf("failed checks: got %+v, want one of block 1, revocation_stale", d.FailedChecks)
			}
		}},
		{name: "ok/staleness-check-any-shape-with-freshness", token: func(t testing.TB) []byte {
			c := checkOf(query([]biscuit.Predicate{pred(spec.AmbientRevocationAge, biscuit.Variable("a"))},
				biscuit.Expression{vr("a"), integer(0), biscuit.BinaryGreaterOrEqual},
				biscuit.Expression{vr("a"), integer(100), biscuit.BinaryLessThan}))
			return stdToken(t, authority{}, []biscuit.Check{c})
		}, cfg: func(c *Config) { c.Freshness = coreFreshness{asOf: coreTestNow.Add(-99 * time.Millisecond), ok: true} }, want: spec.ReasonAllowed},
		{name: "fail/staleness-check-mixed-is-check-failed", token: func(t testing.TB) []byte {
			c := checkOf(query([]biscuit.Predicate{pred(spec.AmbientRevocationAge, biscuit.Variable("a")), pred("records", biscuit.Variable("n"))},
				biscuit.Expression{vr("a"), vr("n"), biscuit.BinaryLessOrEqual}))
			return stdToken(t, authority{}, []biscuit.Check{c})
		}, req: &Request{Resource: "crm/contacts", Operation: "read", Records: 1}, want: spec.ReasonCheckFailed},
		{name: "fail/agent-revoked-token-without-issued-at", token: func(t testing.TB) []byte {
			// No issued_at: the token may be from before any revocation
			// of its agent, so every one applies.
			var fs []biscuit.Fact
			for _, f := range writFacts(contacts) {
				if f.Name != spec.FactIssuedAt {
					fs = append(fs, f)
				}
			}
			return stdToken(t, authority{facts: fs})
		}, cfg: func(c *Config) {
			c.Revocations = coreAgentRevocations{"spiffe://acme.example/agents/support": time.Unix(1, 0)}
		}, want: spec.ReasonRevoked},
		{name: "fail/right-of-wrong-type", token: func(t testing.TB) []byte {
			return stdToken(t, authority{facts: append(writFacts(), fact("right", biscuit.Integer(1), biscuit.String("read")))})
		}, want: spec.ReasonMalformed},
		{name: "fail/unbound-head-variable", token: func(t testing.TB) []byte {
			c := checkOf(biscuit.Rule{Head: pred("query", biscuit.Variable("x")), Body: []biscuit.Predicate{pred("time", biscuit.Variable("t"))}})
			return stdToken(t, authority{}, []biscuit.Check{c})
		}, want: spec.ReasonMalformed},
		{name: "fail/unbound-expression-variable", token: func(t testing.TB) []byte {
			c := checkOf(query([]biscuit.Predicate{pred("time", biscuit.Variable("t"))}, biscuit.Expression{vr("x"), vr("t"), biscuit.BinaryLessThan}))
			return stdToken(t, authority{}, []biscuit.Check{c})
		}, want: spec.ReasonMalformed},
		{name: "fail/symbol-overlap", token: func(t testing.TB) []byte {
			return withRawBlock(t, func(blocks []*pb.Block) *pb.Block {
				b := blocks[len(blocks)-1]
				b.Symbols = []string{"crm/contacts"} // already in block 0
				n := uint64(symbolOffset + len(blocks[0].Symbols))
				b.ChecksV2 = []*pb.CheckV2{rawCheck(&pb.RuleV2{Head: pbPred(blocks, "query"),
					Body: []*pb.PredicateV2{pbPred(blocks, "resource", &pb.TermV2{Content: &pb.TermV2_String_{String_: n}})}})}
				return b
			})
		}, want: spec.ReasonMalformed},
		{name: "fail/undefined-symbol", token: func(t testing.TB) []byte {
			return withRawBlock(t, func(blocks []*pb.Block) *pb.Block {
				b := blocks[len(blocks)-1]
				b.ChecksV2 = []*pb.CheckV2{rawCheck(&pb.RuleV2{Head: pbPred(blocks, "query"),
					Body: []*pb.PredicateV2{pbPred(blocks, "resource", &pb.TermV2{Content: &pb.TermV2_String_{String_: 5000}})}})}
				return b
			})
		}, want: spec.ReasonMalformed},
		{name: "fail/empty-set", token: func(t testing.TB) []byte {
			return withRawBlock(t, func(blocks []*pb.Block) *pb.Block {
				b := blocks[len(blocks)-1]
				b.ChecksV2 = []*pb.CheckV2{rawCheck(&pb.RuleV2{Head: pbPred(blocks, "query"),
					Body: []*pb.PredicateV2{pbPred(blocks, "fields", pbVar(blocks, "f"))},
					Expressions: []*pb.ExpressionV2{{Ops: []*pb.Op{pbValue(&pb.TermV2{Content: &pb.TermV2_Set{Set: &pb.TermSet{}}}),
						pbValue(pbVar(blocks, "f")), pbBinary(pb.OpBinary_Contains)}}}})}
				return b
			})
		}, want: spec.ReasonMalformed},
		{name: "fail/expression-stack-underflow", token: func(t testing.TB) []byte {
			return withRawBlock(t, func(blocks []*pb.Block) *pb.Block {
				b := blocks[len(blocks)-1]
				b.ChecksV2 = []*pb.CheckV2{rawCheck(&pb.RuleV2{Head: pbPred(blocks, "query"),
					Body:        []*pb.PredicateV2{pbPred(blocks, "records", pbVar(blocks, "n"))},
					Expressions: []*pb.ExpressionV2{{Ops: []*pb.Op{pbValue(pbVar(blocks, "n")), pbBinary(pb.OpBinary_LessOrEqual)}}}})}
				return b
			})
		}, want: spec.ReasonMalformed},

		// Unsupported.
		{name: "fail/schema-version-2", token: func(t testing.TB) []byte {
			blocks := pbBlocks(t, stdToken(t, authority{}))
			blocks[0].Version = proto.Uint32(2)
			return signRaw(t, blocks, rawOpts{rootKeyID: u32(1)})
		}, want: spec.ReasonUnsupported},
		{name: "fail/schema-version-4", token: func(t testing.TB) []byte {
			blocks := pbBlocks(t, stdToken(t, authority{}, []biscuit.Check{rightsCheck(contacts)}))
			blocks[1].Version = proto.Uint32(4)
			return signRaw(t, blocks, rawOpts{rootKeyID: u32(1)})
		}, want: spec.ReasonUnsupported},
		{name: "fail/unknown-field-in-block", token: func(t testing.TB) []byte {
			blocks := pbBlocks(t, stdToken(t, authority{}))
			withUnknownField(blocks[0])
			return signRaw(t, blocks, rawOpts{rootKeyID: u32(1)})
		}, want: spec.ReasonUnsupported},
		{name: "fail/unknown-field-in-term", token: func(t testing.TB) []byte {
			blocks := pbBlocks(t, stdToken(t, authority{}))
			withUnknownField(blocks[0].FactsV2[0].Predicate.Terms[0])
			return signRaw(t, blocks, rawOpts{rootKeyID: u32(1)})
		}, want: spec.ReasonUnsupported},
		{name: "fail/unknown-field-in-container", token: func(t testing.TB) []byte {
			return editContainer(t, stdToken(t, authority{}), func(c *pb.Biscuit) { withUnknownField(c) })
		}, want: spec.ReasonUnsupported},
		{name: "fail/third-party-block", token: func(t testing.TB) []byte {
			tok := stdToken(t, authority{}, []biscuit.Check{rightsCheck(contacts)})
			return editContainer(t, tok, func(c *pb.Biscuit) {
				// externalSignature is field 4 of SignedBlock in v3.1.
				r := c.Blocks[0].ProtoReflect()
				u := protowire.AppendTag(nil, 4, protowire.BytesType)
				r.SetUnknown(protowire.AppendBytes(u, make([]byte, 64)))
			})
		}, want: spec.ReasonUnsupported},
		{name: "fail/unknown-operator", token: func(t testing.TB) []byte {
			return withRawBlock(t, func(blocks []*pb.Block) *pb.Block {
				b := blocks[len(blocks)-1]
				b.ChecksV2 = []*pb.CheckV2{rawCheck(&pb.RuleV2{Head: pbPred(blocks, "query"),
					Body: []*pb.PredicateV2{pbPred(blocks, "records", pbVar(blocks, "n"))},
					Expressions: []*pb.ExpressionV2{{Ops: []*pb.Op{pbValue(pbVar(blocks, "n")), pbValue(pbInt(1)),
						pbBinary(pb.OpBinary_Kind(17))}}}})} // v3.1 BitwiseAnd
				return b
			})
		}, want: spec.ReasonUnsupported},
		{name: "fail/writ-version-2", token: func(t testing.TB) []byte {
			fs := writFacts(contacts)
			fs[0] = fact(spec.FactWritVersion, biscuit.Integer(2))
			return stdToken(t, authority{facts: fs})
		}, want: spec.ReasonUnsupported},
		{name: "fail/facts-in-attenuation-block", token: func(t testing.TB) []byte {
			tok := attenuate(t, authority{}.build(t), nil, fact("right", biscuit.String("crm/billing"), biscuit.String("read")))
			return serialize(t, tok, u32(1))
		}, req: req(func(r *Request) { r.Resource = "crm/billing" }), want: spec.ReasonUnsupported},
		{name: "fail/rules-in-attenuation-block", token: func(t testing.TB) []byte {
			tok := authority{}.build(t)
			bb := tok.CreateBlock()
			if err := bb.AddRule(biscuit.Rule{Head: pred("right", biscuit.Variable("r"), biscuit.String("write")),
				Body: []biscuit.Predicate{pred("resource", biscuit.Variable("r"))}}); err != nil {
				t.Fatal(err)
			}
			tok, err := tok.Append(nil, bb.Build())
			if err != nil {
				t.Fatal(err)
			}
			return serialize(t, tok, u32(1))
		}, want: spec.ReasonUnsupported},
		{name: "fail/regex", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query([]biscuit.Predicate{pred("resource", biscuit.Variable("r"))},
				biscuit.Expression{vr("r"), str("crm/.*"), biscuit.BinaryRegex}))})
		}, want: spec.ReasonUnsupported},
		{name: "fail/multiplication", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query([]biscuit.Predicate{pred("records", biscuit.Variable("n"))},
				biscuit.Expression{vr("n"), integer(2), biscuit.BinaryMul, integer(10), biscuit.BinaryLessThan}))})
		}, want: spec.ReasonUnsupported},
		{name: "fail/division", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query([]biscuit.Predicate{pred("records", biscuit.Variable("n"))},
				biscuit.Expression{vr("n"), integer(2), biscuit.BinaryDiv, integer(10), biscuit.BinaryLessThan}))})
		}, want: spec.ReasonUnsupported},

		// Limits: adversarial tokens, refused before evaluation.
		{name: "fail/oversize-token", token: func(t testing.TB) []byte {
			fs := writFacts(contacts)
			for i := range 20 {
				fs = append(fs, fact("note", biscuit.String(strings.Repeat(string(rune('a'+i)), 1000))))
			}
			return stdToken(t, authority{facts: fs})
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/too-many-blocks", token: func(t testing.TB) []byte {
			blocks := make([][]biscuit.Check, 16)
			for i := range blocks {
				blocks[i] = []biscuit.Check{rightsCheck(contacts)}
			}
			return stdToken(t, authority{}, blocks...)
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/too-many-facts", token: func(t testing.TB) []byte {
			return stdToken(t, authority{facts: manyRights(123)})
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/too-many-checks", token: func(t testing.TB) []byte {
			cs := make([]biscuit.Check, 33)
			for i := range cs {
				cs[i] = rightsCheck(mustRight(fmt.Sprintf("crm/%d:read", i)))
			}
			return stdToken(t, authority{}, cs)
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/too-many-queries", token: func(t testing.TB) []byte {
			rs := make([]spec.Right, 9)
			for i := range rs {
				rs[i] = mustRight(fmt.Sprintf("crm/%d:read", i))
			}
			return stdToken(t, authority{}, []biscuit.Check{rightsCheck(rs...)})
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/too-many-predicates", token: func(t testing.TB) []byte {
			body := make([]biscuit.Predicate, 5)
			for i := range body {
				body[i] = pred("time", biscuit.Variable("t"))
			}
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query(body))})
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/too-many-terms", token: func(t testing.TB) []byte {
			terms := make([]biscuit.Term, 9)
			for i := range terms {
				terms[i] = biscuit.Integer(int64(i))
			}
			return stdToken(t, authority{facts: append(writFacts(contacts), fact("wide", terms...))})
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/too-many-ops", token: func(t testing.TB) []byte {
			e := biscuit.Expression{val(biscuit.Bool(true))}
			for range 32 {
				e = append(e, val(biscuit.Bool(true)), biscuit.BinaryAnd)
			}
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query(nil, e))})
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/deep-expression", token: func(t testing.TB) []byte {
			var e biscuit.Expression
			for range 17 {
				e = append(e, val(biscuit.Bool(true)))
			}
			for range 16 {
				e = append(e, biscuit.BinaryAnd)
			}
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query(nil, e))})
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/too-many-set-elements", token: func(t testing.TB) []byte {
			elems := make([]string, 65)
			for i := range elems {
				elems[i] = fmt.Sprintf("f%d", i)
			}
			return stdToken(t, authorityWith(setCheck("fields", elems...)))
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/long-string", token: func(t testing.TB) []byte {
			return stdToken(t, authority{facts: append(writFacts(contacts), fact("note", biscuit.String(strings.Repeat("x", 1025))))})
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/long-bytes", token: func(t testing.TB) []byte {
			return stdToken(t, authority{facts: append(writFacts(contacts), fact("blob", biscuit.Bytes(make([]byte, 1025))))})
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/too-many-symbols", token: func(t testing.TB) []byte {
			fs := writFacts(contacts)
			for i := range 33 {
				terms := make([]biscuit.Term, 8)
				for j := range terms {
					terms[j] = biscuit.String(fmt.Sprintf("s%d-%d", i, j))
				}
				fs = append(fs, fact("many", terms...))
			}
			return stdToken(t, authority{facts: fs})
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/regex-64KiB", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query([]biscuit.Predicate{pred("resource", biscuit.Variable("r"))},
				biscuit.Expression{vr("r"), str(strings.Repeat("(a+)+", 64<<10/5)), biscuit.BinaryRegex}))})
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/join-bomb", token: func(t testing.TB) []byte {
			return stdToken(t, authority{facts: manyRights(100)}, []biscuit.Check{join3(never)})
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/join-bomb-in-authority", token: func(t testing.TB) []byte {
			return stdToken(t, authority{facts: manyRights(100), checks: []biscuit.Check{expiryCheck(in5m()), join3()}})
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/join-over-attributes", token: func(t testing.TB) []byte {
			return stdToken(t, authority{}, []biscuit.Check{checkOf(query([]biscuit.Predicate{
				pred("attr", biscuit.Variable("a"), biscuit.Variable("b")),
				pred("attr", biscuit.Variable("c"), biscuit.Variable("d")),
				pred("attr", biscuit.Variable("e"), biscuit.Variable("f")),
			}))})
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/many-joins-within-per-query-limit", token: func(t testing.TB) []byte {
			cs := make([]biscuit.Check, 5)
			for i := range cs {
				cs[i] = join3(biscuit.Expression{vr("a"), str(fmt.Sprintf("nope%d", i)), biscuit.BinaryEqual})
			}
			return stdToken(t, authority{facts: manyRights(16)}, cs)
		}, want: spec.ReasonLimitsExceeded},
		{name: "fail/join-of-16-rights-evaluated", token: func(t testing.TB) []byte {
			return stdToken(t, authority{facts: manyRights(16)}, []biscuit.Check{join3(never)})
		}, want: spec.ReasonCheckFailed},
		{name: "fail/too-many-time-zones", token: func(t testing.TB) []byte {
			var cs []biscuit.Check
			for _, z := range []string{"UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York", "Australia/Sydney"} {
				cs = append(cs, windowCheck(z, []int64{1}, 0, 1440))
			}
			return stdToken(t, authority{}, cs)
		}, want: spec.ReasonLimitsExceeded},

		// Requests.
		{name: "fail/request-without-resource", token: func(t testing.TB) []byte { return stdToken(t, authority{}) },
			req: req(func(r *Request) { r.Resource = "" }), want: spec.ReasonMalformed},
		{name: "fail/request-negative-records", token: func(t testing.TB) []byte { return stdToken(t, authority{}) },
			req: req(func(r *Request) { r.Records = -1 }), want: spec.ReasonMalformed},
		{name: "fail/request-too-many-attributes", token: func(t testing.TB) []byte { return stdToken(t, authority{}) },
			req: req(func(r *Request) {
				r.Attributes = map[string]string{}
				for i := range 33 {
					r.Attributes[fmt.Sprint(i)] = "x"
				}
			}), want: spec.ReasonLimitsExceeded},
		{name: "fail/request-too-many-fields", token: func(t testing.TB) []byte { return stdToken(t, authority{}) },
			req: req(func(r *Request) { r.Fields = make([]string, 65) }), want: spec.ReasonLimitsExceeded},
	}
}

// revocationIDBytes returns the raw signature of block i.
func revocationIDBytes(t testing.TB, tok []byte, i int) []byte {
	b, err := hex.DecodeString(revocationID(t, tok, i))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAuthorizeReasons(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, tc := range coreAuthCases() {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token(t)
			cfg := tc.cfg
			switch tc.name {
			case "fail/revoked-authority":
				cfg = withRevoked(revocationID(t, tok, 0))
			case "fail/revoked-attenuation-block":
				cfg = withRevoked(revocationID(t, tok, 1))
			}
			v := coreVerifier(t, cfg)
			req := coreReq
			if tc.req != nil {
				req = *tc.req
			}
			// Twice: first sight, then from the cache.
			for round := range 2 {
				d := v.Authorize(context.Background(), tok, req)
				if d.Reason != tc.want {
					t.Fatalf("round %d: got reason %q (%s), want %q", round, d.Reason, d.Message, tc.want)
				}
				if d.Allowed != (tc.want == spec.ReasonAllowed) {
					t.Fatalf("round %d: got allowed %v with reason %q", round, d.Allowed, d.Reason)
				}
				if !d.Allowed && d.Message == "" {
					t.Errorf("round %d: denial without message", round)
				}
				if tc.check != nil {
					tc.check(t, d)
				}
			}
		})
	}
}

// Revoking a block revokes every token attenuated from it.
func TestRevokedBlockRevokesDescendants(t *testing.T) {
	parent := attenuate(t, authority{}.build(t), []biscuit.Check{rightsCheck(mustRight("crm/contacts:read"))})
	child := attenuate(t, parent, []biscuit.Check{expiryCheck(coreTestNow.Add(time.Minute))})
	p, c := serialize(t, parent, u32(1)), serialize(t, child, u32(1))
	v := coreVerifier(t, withRevoked(revocationID(t, p, 1)))
	for name, tok := range map[string][]byte{"parent": p, "child": c} {
		if d := v.Authorize(context.Background(), tok, coreReq); d.Reason != spec.ReasonRevoked {
			t.Errorf("%s: got %q, want revoked", name, d.Reason)
		}
	}
	sibling := serialize(t, attenuate(t, authority{}.build(t), []biscuit.Check{rightsCheck(mustRight("crm/contacts:read"))}), u32(1))
	if d := v.Authorize(context.Background(), sibling, coreReq); !d.Allowed {
		t.Errorf("sibling: got %q, want allowed", d.Reason)
	}
}

// A limit raised far enough lets the 64 KiB regex through decoding, and
// the operator is then refused as unsupported.
func TestRegexUnsupportedWhenLimitsAllowIt(t *testing.T) {
	tok := stdToken(t, authority{}, []biscuit.Check{checkOf(query([]biscuit.Predicate{pred("resource", biscuit.Variable("r"))},
		biscuit.Expression{vr("r"), str(strings.Repeat("(a+)+", 64<<10/5)), biscuit.BinaryRegex}))})
	v := coreVerifier(t, func(c *Config) {
		c.Limits.MaxTokenBytes = 256 << 10
		c.Limits.MaxStringBytes = 128 << 10
	})
	if d := v.Authorize(context.Background(), tok, coreReq); d.Reason != spec.ReasonUnsupported {
		t.Fatalf("got %q (%s), want unsupported", d.Reason, d.Message)
	}
}

// The cache serves a token only while the key that verified it is trusted.
func TestCacheFollowsKeyRemoval(t *testing.T) {
	keys := coreKeys()
	cfg := DefaultConfig()
	cfg.Keys = keys
	cfg.Now = func() time.Time { return coreTestNow }
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok := stdToken(t, authority{})
	if d := v.Authorize(context.Background(), tok, coreReq); !d.Allowed {
		t.Fatalf("got %q, want allowed", d.Reason)
	}
	if n := v.cache.len(); n != 1 {
		t.Fatalf("got %d cache entries, want 1", n)
	}
	delete(keys, 1)
	if d := v.Authorize(context.Background(), tok, coreReq); d.Reason != spec.ReasonUnknownKey {
		t.Fatalf("after key removal: got %q, want unknown_key", d.Reason)
	}
	keys[1] = coreRogue.Public().(ed25519.PublicKey)
	if d := v.Authorize(context.Background(), tok, coreReq); d.Reason != spec.ReasonBadSignature {
		t.Fatalf("after key replacement: got %q, want bad_signature", d.Reason)
	}
}

// Failed tokens never enter the cache; the cache holds at most CacheSize.
func TestCacheBounded(t *testing.T) {
	v := coreVerifier(t, func(c *Config) { c.CacheSize = 3 })
	bad := stdToken(t, authority{checks: []biscuit.Check{setCheck("presenter", "x")}})
	v.Authorize(context.Background(), bad, coreReq)
	if n := v.cache.len(); n != 0 {
		t.Fatalf("got %d entries after a malformed token, want 0", n)
	}
	for i := range 5 {
		tok := stdToken(t, authority{checks: []biscuit.Check{expiryCheck(in5m().Add(time.Duration(i) * time.Second))}})
		if d := v.Authorize(context.Background(), tok, coreReq); !d.Allowed {
			t.Fatalf("token %d: got %q", i, d.Reason)
		}
		if n := v.cache.len(); n > 3 {
			t.Fatalf("got %d entries, want at most 3", n)
		}
	}
	if n := v.cache.len(); n != 3 {
		t.Fatalf("got %d entries, want 3", n)
	}
}

// Expiry is evaluated on every call, cached or not.
func TestCachedTokenStillExpires(t *testing.T) {
	now := coreTestNow
	v := coreVerifier(t, func(c *Config) { c.Now = func() time.Time { return now } })
	tok := stdToken(t, authority{})
	if d := v.Authorize(context.Background(), tok, coreReq); !d.Allowed {
		t.Fatalf("got %q, want allowed", d.Reason)
	}
	now = now.Add(6 * time.Minute)
	if d := v.Authorize(context.Background(), tok, coreReq); d.Reason != spec.ReasonExpired {
		t.Fatalf("got %q, want expired", d.Reason)
	}
}

// No single-bit change of a valid token is ever allowed, and none panics.
func TestBitFlipsNeverAllow(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tok := stdToken(t, authority{}, []biscuit.Check{rightsCheck(mustRight("crm/contacts:read"))})
	v := coreVerifier(t, func(c *Config) { c.CacheSize = 0 })
	step := 1
	if testing.Short() {
		step = 7
	}
	reasons := map[string]int{}
	for bit := 0; bit < len(tok)*8; bit += step {
		b := bytes.Clone(tok)
		b[bit/8] ^= 1 << (bit % 8)
		d := v.Authorize(context.Background(), b, coreReq)
		reasons[d.Reason]++
		if d.Allowed {
			t.Fatalf("bit %d flipped: allowed", bit)
		}
	}
	t.Logf("reasons over %d flips: %v", len(tok)*8/step, reasons)
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Keys = coreKeys()
	cases := []struct {
		name string
		mod  func(*Config)
	}{
		{"fail/no-keys", func(c *Config) { c.Keys = nil }},
		{"fail/no-clock", func(c *Config) { c.Now = nil }},
		{"fail/zero-limit", func(c *Config) { c.Limits.MaxBlocks = 0 }},
		{"fail/huge-limit", func(c *Config) { c.Limits.MaxTokenBytes = 1 << 30 }},
		{"fail/negative-cache", func(c *Config) { c.CacheSize = -1 }},
		{"fail/service-not-spiffe", func(c *Config) { c.Service = "https://crm" }},
		{"fail/freshness-without-bound", func(c *Config) { c.Freshness = coreFreshness{}; c.MaxStaleness = 0 }},
		{"fail/freshness-negative-bound", func(c *Config) { c.Freshness = coreFreshness{}; c.MaxStaleness = -time.Second }},
		{"fail/freshness-bound-over-a-day", func(c *Config) { c.Freshness = coreFreshness{}; c.MaxStaleness = 24*time.Hour + 1 }},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("ok: got %v, want nil", err)
	}
	if ok.MaxStaleness != DefaultMaxStaleness || DefaultMaxStaleness != 30*time.Second {
		t.Errorf("DefaultConfig().MaxStaleness: got %v, want 30s", ok.MaxStaleness)
	}
	for name, mod := range map[string]func(*Config){
		"ok/no-freshness-bound-unused": func(c *Config) { c.MaxStaleness = 0 },
		"ok/freshness-day":             func(c *Config) { c.Freshness = coreFreshness{}; c.MaxStaleness = 24 * time.Hour },
		"ok/freshness-nanosecond":      func(c *Config) { c.Freshness = coreFreshness{}; c.MaxStaleness = 1 },
	} {
		c := ok
		mod(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: got %v, want nil", name, err)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
			if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New: got %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// Many goroutines share one Verifier, its pool, a cache small enough to
// churn, and the lazily rendered texts of failed checks.
func TestAuthorizeConcurrent(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	type job struct {
		tok  []byte
		req  Request
		want string
	}
	var jobs []job
	for _, tc := range coreAuthCases() {
		if tc.cfg != nil || strings.HasPrefix(tc.name, "fail/revoked") {
			continue
		}
		req := coreReq
		if tc.req != nil {
			req = *tc.req
		}
		jobs = append(jobs, job{tc.token(t), req, tc.want})
	}
	v := coreVerifier(t, func(c *Config) { c.CacheSize = 4 })
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3 * len(jobs) {
				j := jobs[(i*7+g)%len(jobs)]
				if d := v.Authorize(context.Background(), j.tok, j.req); d.Reason != j.want {
					select {
					case errs <- fmt.Sprintf("got %q, want %q", d.Reason, j.want):
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestRequestLimits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Keys, _ = NewKeySet()
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("r", 17<<10)
	for _, tc := range []struct {
		name string
		req  Request
		want string
	}{
		{"fail/huge-resource", Request{Resource: big, Operation: "read"}, spec.ReasonLimitsExceeded},
		{"fail/huge-attribute", Request{Resource: "r", Operation: "read", Attributes: map[string]string{"a": big}}, spec.ReasonLimitsExceeded},
		{"fail/empty-resource", Request{Operation: "read"}, spec.ReasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := v.Authorize(context.Background(), []byte{1, 2, 3}, tc.req); d.Reason != tc.want || d.Allowed {
				t.Fatalf("got %s (%s), want %s", d.Reason, d.Message, tc.want)
			}
		})
	}
}
