package verifier

import (
	"crypto/ed25519"
	"crypto/sha256"
	"slices"
	"testing"
	"time"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"
	"github.com/biscuit-auth/biscuit-go/v2/pb"
	"google.golang.org/protobuf/proto"

	"github.com/writ-dev/writ/spec"
)

// Test scaffolding of the verifier core: root keys, a KeySource and a
// RevocationSource over maps, and token builders. Standard tokens are built
// with biscuit-go's builder structs (no parser); malformed ones by editing
// the decoded protobuf blocks and signing them again with signRaw.

// coreTestNow is the fixed clock of the tests: 2026-11-27 10:00 UTC, a
// Friday (11:00 in Paris).
var coreTestNow = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func coreKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("writ verifier test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

var (
	coreRoot1 = coreKey("root 1") // id 1
	coreRoot2 = coreKey("root 2") // id 2
	coreRogue = coreKey("rogue")  // trusted by nobody
)

// coreKeySource is a KeySource over a map.
type coreKeySource map[uint32]ed25519.PublicKey

func (k coreKeySource) RootKey(id uint32) (RootKey, bool) {
	p, ok := k[id]
	return RootKey{ID: id, Public: p}, ok
}

func (k coreKeySource) RootKeys() []RootKey {
	ids := make([]uint32, 0, len(k))
	for id := range k {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]RootKey, len(ids))
	for i, id := range ids {
		out[i] = RootKey{ID: id, Public: k[id]}
	}
	return out
}

func coreKeys() coreKeySource {
	return coreKeySource{
		1: coreRoot1.Public().(ed25519.PublicKey),
		2: coreRoot2.Public().(ed25519.PublicKey),
	}
}

// coreRevocations is a RevocationSource over a set.
type coreRevocations map[string]bool

func (r coreRevocations) Revoked(id string) bool { return r[id] }

// coreAgentRevocations is a RevocationSource that revokes no id and,
// as an AgentRevocationSource, every token of an agent issued before the
// agent's time.
type coreAgentRevocations map[string]time.Time

func (r coreAgentRevocations) Revoked(string) bool { return false }

func (r coreAgentRevocations) AgentRevoked(agent string, issuedAt time.Time) bool {
	before, ok := r[agent]
	return ok && issuedAt.Before(before)
}

// coreFreshness is a FreshnessSource with a fixed answer.
type coreFreshness struct {
	asOf time.Time
	ok   bool
}

func (f coreFreshness) CurrentAsOf() (time.Time, bool) { return f.asOf, f.ok }

func coreVerifier(t testing.TB, mod func(*Config)) *Verifier {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Keys = coreKeys()
	cfg.Now = func() time.Time { return coreTestNow }
	if mod != nil {
		mod(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

func u32(v uint32) *uint32 { return &v }

const coreTokenID = "0123456789abcdef0123456789abcdef"

// Datalog builders over biscuit-go's structs.

func fact(name string, terms ...biscuit.Term) biscuit.Fact {
	return biscuit.Fact{Predicate: biscuit.Predicate{Name: name, IDs: terms}}
}

func pred(name string, terms ...biscuit.Term) biscuit.Predicate {
	return biscuit.Predicate{Name: name, IDs: terms}
}

func query(body []biscuit.Predicate, exprs ...biscuit.Expression) biscuit.Rule {
	return biscuit.Rule{Head: biscuit.Predicate{Name: "query", IDs: []biscuit.Term{}}, Body: body, Expressions: exprs}
}

func checkOf(queries ...biscuit.Rule) biscuit.Check { return biscuit.Check{Queries: queries} }

func vr(name string) biscuit.Value     { return biscuit.Value{Term: biscuit.Variable(name)} }
func str(s string) biscuit.Value       { return biscuit.Value{Term: biscuit.String(s)} }
func integer(n int64) biscuit.Value    { return biscuit.Value{Term: biscuit.Integer(n)} }
func date(t time.Time) biscuit.Value   { return biscuit.Value{Term: biscuit.Date(t)} }
func val(t biscuit.Term) biscuit.Value { return biscuit.Value{Term: t} }

func strSet(elems ...string) biscuit.Set {
	s := make(biscuit.Set, len(elems))
	for i, e := range elems {
		s[i] = biscuit.String(e)
	}
	return s
}

// writFacts are the authority facts of token.md §2.
func writFacts(rights ...spec.Right) []biscuit.Fact {
	fs := []biscuit.Fact{
		fact(spec.FactWritVersion, biscuit.Integer(1)),
		fact(spec.FactTokenID, biscuit.String(coreTokenID)),
		fact(spec.FactIssuer, biscuit.String("spiffe://acme.example/writ")),
		fact(spec.FactAgent, biscuit.String("spiffe://acme.example/agents/support")),
		fact(spec.FactIssuedAt, biscuit.Date(coreTestNow.Add(-time.Minute))),
		fact(spec.FactPolicyVersion, biscuit.String("sha256:9c1e")),
	}
	for _, r := range rights {
		if r.IsPrefix() {
			fs = append(fs, fact(spec.FactRightPrefix, biscuit.String(r.Prefix()), biscuit.String(r.Operation)))
		} else {
			fs = append(fs, fact(spec.FactRight, biscuit.String(r.Resource), biscuit.String(r.Operation)))
		}
	}
	return fs
}

func expiryCheck(at time.Time) biscuit.Check {
	return checkOf(query([]biscuit.Predicate{pred("time", biscuit.Variable("t"))},
		biscuit.Expression{vr("t"), date(at), biscuit.BinaryLessOrEqual}))
}

func setCheck(name string, elems ...string) biscuit.Check {
	return checkOf(query([]biscuit.Predicate{pred(name, biscuit.Variable("v"))},
		biscuit.Expression{val(strSet(elems...)), vr("v"), biscuit.BinaryContains}))
}

func recordsCheck(n int64) biscuit.Check {
	return checkOf(query([]biscuit.Predicate{pred("records", biscuit.Variable("n"))},
		biscuit.Expression{vr("n"), integer(n), biscuit.BinaryLessOrEqual}))
}

func windowCheck(zone string, days []int64, from, to int64) biscuit.Check {
	ds := make(biscuit.Set, len(days))
	for i, d := range days {
		ds[i] = biscuit.Integer(d)
	}
	return checkOf(query([]biscuit.Predicate{pred("local_time", biscuit.String(zone), biscuit.Variable("d"), biscuit.Variable("m"))},
		biscuit.Expression{val(ds), vr("d"), biscuit.BinaryContains},
		biscuit.Expression{vr("m"), integer(from), biscuit.BinaryGreaterOrEqual},
		biscuit.Expression{vr("m"), integer(to), biscuit.BinaryLessThan}))
}

// rightsCheck is the "only these rights" restriction of token.md §5.
// stalenessCheck is check if revocation_age($a), $a <= ms (token.md §2).
func stalenessCheck(ms int64) biscuit.Check {
	return checkOf(query([]biscuit.Predicate{pred(spec.AmbientRevocationAge, biscuit.Variable("a"))},
		biscuit.Expression{vr("a"), integer(ms), biscuit.BinaryLessOrEqual}))
}

func rightsCheck(rights ...spec.Right) biscuit.Check {
	var qs []biscuit.Rule
	for _, r := range rights {
		op := pred("operation", biscuit.String(r.Operation))
		if r.IsPrefix() {
			qs = append(qs, query([]biscuit.Predicate{pred("resource", biscuit.Variable("r")), op},
				biscuit.Expression{vr("r"), str(r.Prefix()), biscuit.BinaryPrefix}))
		} else {
			qs = append(qs, query([]biscuit.Predicate{pred("resource", biscuit.String(r.Resource)), op}))
		}
	}
	return checkOf(qs...)
}

func mustRight(s string) spec.Right {
	r, err := spec.ParseRight(s)
	if err != nil {
		panic(err)
	}
	return r
}

// authority describes an authority block.
type authority struct {
	root   ed25519.PrivateKey // nil: coreRoot1
	facts  []biscuit.Fact     // nil: writFacts(crm/contacts:read, crm/notes/*:read)
	checks []biscuit.Check    // nil: expiry in 5 minutes
}

func (a authority) build(t testing.TB) *biscuit.Biscuit {
	t.Helper()
	root := a.root
	if root == nil {
		root = coreRoot1
	}
	facts := a.facts
	if facts == nil {
		facts = writFacts(mustRight("crm/contacts:read"), mustRight("crm/notes/*:read"))
	}
	checks := a.checks
	if checks == nil {
		checks = []biscuit.Check{expiryCheck(coreTestNow.Add(5 * time.Minute))}
	}
	b := biscuit.NewBuilder(root)
	for _, f := range facts {
		if err := b.AddAuthorityFact(f); err != nil {
			t.Fatalf("AddAuthorityFact: %v", err)
		}
	}
	for _, c := range checks {
		if err := b.AddAuthorityCheck(c); err != nil {
			t.Fatalf("AddAuthorityCheck: %v", err)
		}
	}
	tok, err := b.Build()
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return tok
}

// attenuate appends one block with checks (and facts, to test refusals).
func attenuate(t testing.TB, tok *biscuit.Biscuit, checks []biscuit.Check, facts ...biscuit.Fact) *biscuit.Biscuit {
	t.Helper()
	bb := tok.CreateBlock()
	for _, c := range checks {
		if err := bb.AddCheck(c); err != nil {
			t.Fatalf("AddCheck: %v", err)
		}
	}
	for _, f := range facts {
		if err := bb.AddFact(f); err != nil {
			t.Fatalf("AddFact: %v", err)
		}
	}
	out, err := tok.Append(nil, bb.Build())
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return out
}

// serialize encodes tok, with rootKeyId when id is not nil.
func serialize(t testing.TB, tok *biscuit.Biscuit, id *uint32) []byte {
	t.Helper()
	b, err := tok.Serialize()
	if err != nil {
		t.Fatalf("Serialize: %v", err)
	}
	if id == nil {
		return b
	}
	return editContainer(t, b, func(c *pb.Biscuit) { c.RootKeyId = id })
}

// editContainer decodes a token's container, applies edit and encodes it
// again. Signatures are not touched.
func editContainer(t testing.TB, tok []byte, edit func(*pb.Biscuit)) []byte {
	t.Helper()
	var c pb.Biscuit
	if err := proto.Unmarshal(tok, &c); err != nil {
		t.Fatalf("unmarshal container: %v", err)
	}
	edit(&c)
	out, err := proto.Marshal(&c)
	if err != nil {
		t.Fatalf("marshal container: %v", err)
	}
	return out
}

// stdToken is a valid token: authority of coreRoot1 with rootKeyId 1.
func stdToken(t testing.TB, a authority, blocks ...[]biscuit.Check) []byte {
	t.Helper()
	tok := a.build(t)
	for _, cs := range blocks {
		tok = attenuate(t, tok, cs)
	}
	return serialize(t, tok, u32(1))
}

// pbBlocks returns the decoded blocks of a token.
func pbBlocks(t testing.TB, tok []byte) []*pb.Block {
	t.Helper()
	var c pb.Biscuit
	if err := proto.Unmarshal(tok, &c); err != nil {
		t.Fatalf("unmarshal container: %v", err)
	}
	out := make([]*pb.Block, 0, 1+len(c.Blocks))
	for _, sb := range append([]*pb.SignedBlock{c.Authority}, c.Blocks...) {
		var b pb.Block
		if err := proto.Unmarshal(sb.Block, &b); err != nil {
			t.Fatalf("unmarshal block: %v", err)
		}
		out = append(out, &b)
	}
	return out
}

// rawOpts tunes signRaw.
type rawOpts struct {
	root      ed25519.PrivateKey // nil: coreRoot1
	rootKeyID *uint32            // nil: absent
	sealed    bool
	// blockBytes, when set, replaces the encoding of block i.
	blockBytes func(i int, b []byte) []byte
}

// signRaw encodes and signs blocks into a token as token.md §1 says, each
// block with a fresh next key.
func signRaw(t testing.TB, blocks []*pb.Block, o rawOpts) []byte {
	t.Helper()
	root := o.root
	if root == nil {
		root = coreRoot1
	}
	key := root
	c := &pb.Biscuit{RootKeyId: o.rootKeyID}
	alg := pb.PublicKey_Ed25519
	var last *pb.SignedBlock
	for i, b := range blocks {
		data, err := proto.Marshal(b)
		if err != nil {
			t.Fatalf("marshal block %d: %v", i, err)
		}
		if o.blockBytes != nil {
			data = o.blockBytes(i, data)
		}
		pub, next, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		msg := append(append(append([]byte{}, data...), 0, 0, 0, 0), pub...)
		last = &pb.SignedBlock{
			Block:     data,
			NextKey:   &pb.PublicKey{Algorithm: &alg, Key: pub},
			Signature: ed25519.Sign(key, msg),
		}
		if i == 0 {
			c.Authority = last
		} else {
			c.Blocks = append(c.Blocks, last)
		}
		key = next
	}
	if o.sealed {
		msg := append(append(append(append([]byte{}, last.Block...), 0, 0, 0, 0), last.NextKey.Key...), last.Signature...)
		c.Proof = &pb.Proof{Content: &pb.Proof_FinalSignature{FinalSignature: ed25519.Sign(key, msg)}}
	} else {
		c.Proof = &pb.Proof{Content: &pb.Proof_NextSecret{NextSecret: key.Seed()}}
	}
	out, err := proto.Marshal(c)
	if err != nil {
		t.Fatalf("marshal container: %v", err)
	}
	return out
}

// symIndex returns the index of s in the symbol table of blocks (default
// symbols first), adding it to the last block's symbols when absent.
func symIndex(blocks []*pb.Block, s string) uint64 {
	for i, d := range defaultSymbols {
		if d == s {
			return uint64(i)
		}
	}
	n := 0
	for _, b := range blocks {
		for _, x := range b.Symbols {
			if x == s {
				return uint64(symbolOffset + n)
			}
			n++
		}
	}
	last := blocks[len(blocks)-1]
	last.Symbols = append(last.Symbols, s)
	return uint64(symbolOffset + n)
}
