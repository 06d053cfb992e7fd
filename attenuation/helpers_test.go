package attenuation_test

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
	"testing"
	"time"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/spec"
)

const (
	td       = "spiffe://acme.example"
	agentID  = td + "/agents/support"
	helperID = td + "/agents/summarizer"
	crmID    = td + "/svc/crm"
	hrID     = td + "/svc/hr"
)

var (
	issuedAt = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC) // a Friday
	rootKey  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	rootPub  = rootKey.Public().(ed25519.PublicKey)
)

// original is an authority block as the issuer mints it (token.md §2).
type original struct {
	issued    time.Time // zero: issuedAt
	rootKeyID *uint32
	rights    []spec.Right
	checks    []attenuation.Restriction
}

// build signs o with rootKey using biscuit-go's builder; issuer/mint's
// tests show its minter produces the same bytes for the same content.
func (o original) build(t testing.TB, rng io.Reader) []byte {
	t.Helper()
	issued := o.issued
	if issued.IsZero() {
		issued = issuedAt
	}
	b := biscuit.NewBuilder(rootKey, biscuit.WithRandom(rng))
	fact := func(name string, terms ...biscuit.Term) {
		if err := b.AddAuthorityFact(biscuit.Fact{Predicate: biscuit.Predicate{Name: name, IDs: terms}}); err != nil {
			t.Fatal(err)
		}
	}
	fact(spec.FactWritVersion, biscuit.Integer(spec.TokenVersion))
	fact(spec.FactTokenID, biscuit.String("5f0c0000000000000000000000000001"))
	fact(spec.FactIssuer, biscuit.String(td+"/writ"))
	fact(spec.FactAgent, biscuit.String(agentID))
	fact(spec.FactIssuedAt, biscuit.Date(issued))
	fact(spec.FactPolicyVersion, biscuit.String("sha256:9c1e000000000000000000000000000000000000000000000000000000000001"))
	for _, r := range o.rights {
		if r.IsPrefix() {
			fact(spec.FactRightPrefix, biscuit.String(r.Prefix()), biscuit.String(r.Operation))
		} else {
			fact(spec.FactRight, biscuit.String(r.Resource), biscuit.String(r.Operation))
		}
	}
	for _, r := range o.checks {
		c, err := r.Check(issued)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.AddAuthorityCheck(c); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	out, err := tok.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	if o.rootKeyID != nil {
		p := protowire.AppendTag(nil, 1, protowire.VarintType)
		p = protowire.AppendVarint(p, uint64(*o.rootKeyID))
		out = append(p, out...)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// baseToken grants read on crm/contacts and crm/notes/*, expires at 10:05.
func baseToken(t testing.TB) []byte {
	return original{
		rootKeyID: ptr[uint32](7),
		rights: []spec.Right{
			{Resource: "crm/contacts", Operation: "read"},
			{Resource: "crm/notes/*", Operation: "read"},
			{Resource: "crm/notes/*", Operation: "write"},
		},
		checks: []attenuation.Restriction{attenuation.ExpireBy(issuedAt.Add(5 * time.Minute))},
	}.build(t, nil)
}

// fixedClock is a Restricter clock for tests.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// panicTB lets examples, which have no testing.TB, use the helpers: any
// failure panics.
type panicTB struct{ testing.TB }

func (panicTB) Helper()                        {}
func (panicTB) Fatal(args ...any)              { panic(fmt.Sprint(args...)) }
func (panicTB) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
