package verifier_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"
	"github.com/biscuit-auth/biscuit-go/v2/datalog"
	"github.com/biscuit-auth/biscuit-go/v2/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/issuer/mint"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

// The golden vectors of spec/token.md §11: writ tokens and requests with
// the decision every verifier must reach. The generator below builds them
// deterministically (fixed keys, fixed clock, a ChaCha8 stream per case),
// asks the product verifier for each decision and compares it with the
// decision written in its table before anything is written, so that
// -update cannot bless a regression.

var update = flag.Bool("update", false, "regenerate spec/testdata/golden.json from the generator in golden_test.go")

const goldenPath = "../spec/testdata/golden.json"

// goldenFile is the JSON layout of spec/testdata/golden.json.
type goldenFile struct {
	Description   string       `json:"description"`
	RootPublicKey string       `json:"root_public_key"`
	Keys          []goldenKey  `json:"keys"`
	Revoked       []string     `json:"revoked"`
	Cases         []goldenCase `json:"cases"`
}

type goldenKey struct {
	ID     uint32 `json:"id"`
	Public string `json:"public"`
}

type goldenCase struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Token       string          `json:"token"` // base64url, no padding
	Requests    []goldenRequest `json:"requests"`
}

type goldenRequest struct {
	Resource   string            `json:"resource"`
	Operation  string            `json:"operation"`
	Presenter  string            `json:"presenter,omitempty"`
	Service    string            `json:"service,omitempty"`
	Records    int               `json:"records,omitempty"`
	Fields     []string          `json:"fields,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Time       string            `json:"time"` // RFC 3339: the verifier's clock
	// RevocationAgeMS, when present, is the staleness of the verifier's
	// revocation list in milliseconds: the verifier tracks freshness and
	// supplies revocation_age (token.md §3). Absent: it tracks none.
	RevocationAgeMS *int64     `json:"revocation_age_ms,omitempty"`
	Want            goldenWant `json:"want"`
}

// goldenWant is the expected decision. Constraints are given for allowed
// decisions only: that is when the service must apply them.
type goldenWant struct {
	Allowed      bool      `json:"allowed"`
	Reason       string    `json:"reason"`
	FailedChecks int       `json:"failed_checks,omitempty"`
	MaxRecords   int       `json:"max_records,omitempty"`
	Fields       *[]string `json:"fields,omitempty"` // absent: no field restriction
}

func (r goldenRequest) request() verifier.Request {
	return verifier.Request{
		Resource:   r.Resource,
		Operation:  r.Operation,
		Presenter:  r.Presenter,
		Service:    r.Service,
		Records:    r.Records,
		Fields:     r.Fields,
		Attributes: r.Attributes,
	}
}

func (r goldenRequest) at(t testing.TB) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, r.Time)
	if err != nil {
		t.Fatalf("request time %q: %v", r.Time, err)
	}
	return at
}

func (c goldenCase) token(t testing.TB) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(c.Token)
	if err != nil {
		t.Fatalf("case %s: token is not base64url: %v", c.Name, err)
	}
	return b
}

// wantOf is the goldenWant a decision stands for.
func wantOf(d verifier.Decision) goldenWant {
	w := goldenWant{Allowed: d.Allowed, Reason: d.Reason, FailedChecks: len(d.FailedChecks)}
	if d.Allowed {
		w.MaxRecords = d.Constraints.MaxRecords
		if d.Constraints.Fields != nil {
			fs := slices.Clone(d.Constraints.Fields)
			slices.Sort(fs)
			w.Fields = &fs
		}
	}
	return w
}

// sameWant compares decisions; field lists compare as sets.
func sameWant(got, want goldenWant) bool {
	if got.Allowed != want.Allowed || got.Reason != want.Reason ||
		got.FailedChecks != want.FailedChecks || got.MaxRecords != want.MaxRecords {
		return false
	}
	if (got.Fields == nil) != (want.Fields == nil) {
		return false
	}
	if got.Fields == nil {
		return true
	}
	a, b := slices.Clone(*got.Fields), slices.Clone(*want.Fields)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func (w goldenWant) String() string {
	s := fmt.Sprintf("allowed=%v reason=%s failed_checks=%d", w.Allowed, w.Reason, w.FailedChecks)
	if w.Allowed {
		s += fmt.Sprintf(" max_records=%d", w.MaxRecords)
		if w.Fields != nil {
			s += fmt.Sprintf(" fields=%q", *w.Fields)
		} else {
			s += " fields=none"
		}
	}
	return s
}

// goldenClock is the verifier's clock in these tests, set before each
// Authorize, and its FreshnessSource: the revocation list was current age
// before now. Tests using it run their requests one at a time.
type goldenClock struct {
	now time.Time
	age time.Duration
}

func (c *goldenClock) Now() time.Time { return c.now }

func (c *goldenClock) CurrentAsOf() (time.Time, bool) { return c.now.Add(-c.age), true }

// set moves the clock to at with the staleness of r (none: 0).
func (c *goldenClock) set(at time.Time, ageMS *int64) {
	c.now, c.age = at, 0
	if ageMS != nil {
		c.age = time.Duration(*ageMS) * time.Millisecond
	}
}

// goldenVerifiers are the two verifiers a vector may need: one that
// tracks no freshness and one whose FreshnessSource is the clock, with
// the default staleness bound (the vectors stay below it).
type goldenVerifiers struct {
	plain, fresh *verifier.Verifier
}

func newGoldenVerifiers(t testing.TB, f *goldenFile, revocations bool, clk *goldenClock, maxStale time.Duration) goldenVerifiers {
	return goldenVerifiers{
		plain: newGoldenVerifier(t, f, revocations, clk, nil),
		fresh: newGoldenVerifier(t, f, revocations, clk, func(c *verifier.Config) {
			c.Freshness = clk
			c.MaxStaleness = maxStale
		}),
	}
}

// pick returns the verifier for a request with staleness ageMS (nil: none).
func (g goldenVerifiers) pick(ageMS *int64) *verifier.Verifier {
	if ageMS == nil {
		return g.plain
	}
	return g.fresh
}

// newGoldenVerifier returns a verifier trusting f's keys, with f's
// revocations when revocations is true, reading clk, then changed by mod
// (nil: none). The cache is on: several requests share each token, as in
// production.
func newGoldenVerifier(t testing.TB, f *goldenFile, revocations bool, clk *goldenClock, mod func(*verifier.Config)) *verifier.Verifier {
	t.Helper()
	var keys []verifier.RootKey
	for _, k := range f.Keys {
		pub, err := hex.DecodeString(k.Public)
		if err != nil {
			t.Fatalf("key %d: %v", k.ID, err)
		}
		keys = append(keys, verifier.RootKey{ID: k.ID, Public: pub})
	}
	ks, err := verifier.NewKeySet(keys...)
	if err != nil {
		t.Fatalf("NewKeySet: %v", err)
	}
	cfg := verifier.DefaultConfig()
	cfg.Keys = ks
	cfg.Now = clk.Now
	if revocations {
		rl, err := verifier.NewRevocationList(f.Revoked...)
		if err != nil {
			t.Fatalf("NewRevocationList: %v", err)
		}
		cfg.Revocations = rl
	}
	if mod != nil {
		mod(&cfg)
	}
	v, err := verifier.New(cfg)
	if err != nil {
		t.Fatalf("verifier.New: %v", err)
	}
	return v
}

func readGolden(t testing.TB) *goldenFile {
	t.Helper()
	raw, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("read golden vectors: %v (regenerate with go test ./verifier -run TestGolden -update)", err)
	}
	var f goldenFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("parse %s: %v", goldenPath, err)
	}
	return &f
}

func marshalGolden(t testing.TB, f *goldenFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		t.Fatalf("encode golden vectors: %v", err)
	}
	return buf.Bytes()
}

// TestGolden checks every decision of spec/testdata/golden.json against
// the product verifier. With -update it first regenerates the file.
func TestGolden(t *testing.T) {
	if *update {
		raw := marshalGolden(t, generateGolden(t))
		if err := os.WriteFile(goldenPath, raw, 0o644); err != nil {
			t.Fatalf("write %s: %v", goldenPath, err)
		}
		t.Logf("wrote %s (%d bytes)", goldenPath, len(raw))
	}
	f := readGolden(t)
	if len(f.Cases) < 30 {
		t.Fatalf("got %d golden cases, want at least 30", len(f.Cases))
	}
	clk := &goldenClock{}
	vs := newGoldenVerifiers(t, f, true, clk, verifier.DefaultMaxStaleness)
	ctx := context.Background()
	seen := make(map[string]bool)
	requests := 0
	for _, c := range f.Cases {
		if seen[c.Name] {
			t.Errorf("case name %s appears twice", c.Name)
		}
		seen[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			if len(c.Requests) == 0 {
				t.Fatal("case has no request")
			}
			tok := c.token(t)
			for i, r := range c.Requests {
				requests++
				clk.set(r.at(t), r.RevocationAgeMS)
				d := vs.pick(r.RevocationAgeMS).Authorize(ctx, tok, r.request())
				if got := wantOf(d); !sameWant(got, r.Want) {
					t.Errorf("request %d (%s %s at %s): got %v, want %v; message: %s",
						i, r.Operation, r.Resource, r.Time, got, r.Want, d.Message)
				}
			}
		})
	}
	t.Logf("%d golden cases, %d requests", len(f.Cases), requests)
}

// TestGoldenReproducible holds the generator deterministic and the file
// in step with it: the file is exactly what the generator produces.
func TestGoldenReproducible(t *testing.T) {
	a := marshalGolden(t, generateGolden(t))
	b := marshalGolden(t, generateGolden(t))
	if !bytes.Equal(a, b) {
		t.Fatal("two runs of the golden generator differ: it is not deterministic")
	}
	raw, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("read golden vectors: %v", err)
	}
	if !bytes.Equal(raw, a) {
		t.Errorf("%s is not what the generator produces: run go test ./verifier -run TestGolden -update and review the diff", goldenPath)
	}
}

// ---------------------------------------------------------------------
// Fixed keys, clock and randomness.

func goldenKeyPair(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("writ golden vectors: key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

var (
	goldenRoot1 = goldenKeyPair("root 1") // trusted, id 1
	goldenRoot2 = goldenKeyPair("root 2") // trusted, id 2
	goldenRogue = goldenKeyPair("rogue")  // trusted by nobody
)

func pubHex(k ed25519.PrivateKey) string {
	return hex.EncodeToString(k.Public().(ed25519.PublicKey))
}

// goldenRNG is a deterministic stream for one label (a case name): adding
// or reordering cases does not change the others' bytes.
func goldenRNG(label string) io.Reader {
	return rand.NewChaCha8(sha256.Sum256([]byte("writ golden vectors: rng " + label)))
}

// goldenNow is the minting time of every golden token: a Friday, 11:00
// in Paris, 05:00 in New York, 19:00 in Tokyo.
var goldenNow = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

const (
	gAgent     = "spiffe://acme.example/agents/support"
	gSales     = "spiffe://acme.example/agents/sales"
	gStranger  = "spiffe://evil.example/agents/support"
	gIssuer    = "spiffe://acme.example/writ"
	gSvcCRM    = "spiffe://acme.example/svc/crm"
	gSvcBill   = "spiffe://acme.example/svc/billing"
	gParis     = "Europe/Paris"
	gNewYork   = "America/New_York"
	gTokyo     = "Asia/Tokyo"
	gUTC       = "UTC"
	gMinute    = time.Minute
	gPolicyTag = "writ golden policy"
)

var gPolicyVersion = func() string {
	h := sha256.Sum256([]byte(gPolicyTag))
	return "sha256:" + hex.EncodeToString(h[:])
}()

func rights(ss ...string) []spec.Right {
	out := make([]spec.Right, len(ss))
	for i, s := range ss {
		r, err := spec.ParseRight(s)
		if err != nil {
			panic(err)
		}
		out[i] = r
	}
	return out
}

func weekdays() []time.Weekday {
	return []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
}

func window(zone string, days []time.Weekday, fromH, toH int) spec.TimeWindow {
	return spec.TimeWindow{Zone: zone, Days: days, From: fromH * 60, To: toH * 60}
}

// baseClaims: two rights (exact and prefix), expiry in five minutes.
func baseClaims() mint.Claims {
	return mint.Claims{
		Issuer:        gIssuer,
		Agent:         gAgent,
		IssuedAt:      goldenNow,
		Expiry:        goldenNow.Add(5 * gMinute),
		PolicyVersion: gPolicyVersion,
		Rights:        rights("crm/contacts:read", "crm/notes/*:read"),
	}
}

// ---------------------------------------------------------------------
// Token builders shared with the differential test.

// tokenKit builds tokens for one case from one deterministic stream.
type tokenKit struct {
	t   testing.TB
	rng io.Reader
}

func newKit(t testing.TB, label string) *tokenKit {
	return &tokenKit{t: t, rng: goldenRNG(label)}
}

func (k *tokenKit) mint(key ed25519.PrivateKey, id uint32, c mint.Claims) []byte {
	k.t.Helper()
	tok, _, err := mint.Mint(k.rng, mint.Key{ID: id, Private: key}, c)
	if err != nil {
		k.t.Fatalf("mint: %v", err)
	}
	return tok
}

// restrict appends one block with attenuation.Restricter, its clock at now.
func (k *tokenKit) restrict(tok []byte, now time.Time, rs ...attenuation.Restriction) []byte {
	k.t.Helper()
	rr := attenuation.Restricter{Now: func() time.Time { return now }, Rand: k.rng}
	out, err := rr.Restrict(tok, rs...)
	if err != nil {
		k.t.Fatalf("restrict: %v", err)
	}
	return out
}

// appendBlock appends a block built with biscuit-go's builder (checks and,
// to test refusals, facts), keeping tok's rootKeyId.
func (k *tokenKit) appendBlock(tok []byte, checks []biscuit.Check, facts ...biscuit.Fact) []byte {
	k.t.Helper()
	b, err := biscuit.Unmarshal(tok)
	if err != nil {
		k.t.Fatalf("biscuit.Unmarshal: %v", err)
	}
	bb := b.CreateBlock()
	for _, c := range checks {
		if err := bb.AddCheck(c); err != nil {
			k.t.Fatalf("AddCheck: %v", err)
		}
	}
	for _, f := range facts {
		if err := bb.AddFact(f); err != nil {
			k.t.Fatalf("AddFact: %v", err)
		}
	}
	next, err := b.Append(k.rng, bb.Build())
	if err != nil {
		k.t.Fatalf("Append: %v", err)
	}
	out, err := next.Serialize()
	if err != nil {
		k.t.Fatalf("Serialize: %v", err)
	}
	return keepRootKeyID(k.t, tok, out)
}

// seal replaces the proof with a final signature (biscuit-go's Seal).
func (k *tokenKit) seal(tok []byte) []byte {
	k.t.Helper()
	b, err := biscuit.Unmarshal(tok)
	if err != nil {
		k.t.Fatalf("biscuit.Unmarshal: %v", err)
	}
	s, err := b.Seal(k.rng)
	if err != nil {
		k.t.Fatalf("Seal: %v", err)
	}
	out, err := s.Serialize()
	if err != nil {
		k.t.Fatalf("Serialize: %v", err)
	}
	return keepRootKeyID(k.t, tok, out)
}

// keepRootKeyID puts from's rootKeyId, if any, in front of to (biscuit-go
// drops it when it re-encodes a token).
func keepRootKeyID(t testing.TB, from, to []byte) []byte {
	t.Helper()
	c := container(t, from)
	if c.RootKeyId == nil {
		return to
	}
	out := protowire.AppendTag(nil, 1, protowire.VarintType)
	out = protowire.AppendVarint(out, uint64(*c.RootKeyId))
	return append(out, to...)
}

func container(t testing.TB, tok []byte) *pb.Biscuit {
	t.Helper()
	var c pb.Biscuit
	if err := proto.Unmarshal(tok, &c); err != nil {
		t.Fatalf("decode container: %v", err)
	}
	return &c
}

func marshalPB(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatalf("marshal %T: %v", m, err)
	}
	return b
}

// editContainer decodes tok's container, applies edit and re-encodes it;
// signatures are left as they are.
func editContainer(t testing.TB, tok []byte, edit func(*pb.Biscuit)) []byte {
	t.Helper()
	c := container(t, tok)
	edit(c)
	return marshalPB(t, c)
}

// decodedBlocks returns tok's blocks, authority first, decoded.
func decodedBlocks(t testing.TB, c *pb.Biscuit) []*pb.Block {
	t.Helper()
	out := make([]*pb.Block, 0, 1+len(c.Blocks))
	for i, sb := range append([]*pb.SignedBlock{c.Authority}, c.Blocks...) {
		var b pb.Block
		if err := proto.Unmarshal(sb.GetBlock(), &b); err != nil {
			t.Fatalf("decode block %d: %v", i, err)
		}
		out = append(out, &b)
	}
	return out
}

// resign decodes tok, lets edit change its blocks, then encodes and signs
// them again as token.md §1 says: block 0 with root, each next block with
// a fresh key from k's stream, the proof holding the last secret. The
// rootKeyId is kept.
func (k *tokenKit) resign(tok []byte, root ed25519.PrivateKey, edit func(blocks []*pb.Block)) []byte {
	k.t.Helper()
	c := container(k.t, tok)
	blocks := decodedBlocks(k.t, c)
	edit(blocks)
	return signBlocks(k.t, k.rng, root, c.RootKeyId, blocks)
}

func signBlocks(t testing.TB, rng io.Reader, root ed25519.PrivateKey, rootKeyID *uint32, blocks []*pb.Block) []byte {
	t.Helper()
	out := &pb.Biscuit{RootKeyId: rootKeyID}
	alg := pb.PublicKey_Ed25519
	key := root
	for i, b := range blocks {
		data := marshalPB(t, b)
		pub, next, err := ed25519.GenerateKey(rng)
		if err != nil {
			t.Fatalf("generate key: %v", err)
		}
		msg := append(append(slices.Clone(data), 0, 0, 0, 0), pub...)
		sb := &pb.SignedBlock{
			Block:     data,
			NextKey:   &pb.PublicKey{Algorithm: &alg, Key: pub},
			Signature: ed25519.Sign(key, msg),
		}
		if i == 0 {
			out.Authority = sb
		} else {
			out.Blocks = append(out.Blocks, sb)
		}
		key = next
	}
	out.Proof = &pb.Proof{Content: &pb.Proof_NextSecret{NextSecret: key.Seed()}}
	return marshalPB(t, out)
}

// symbolName resolves a symbol index against the tables of blocks[:upto+1].
func symbolName(blocks []*pb.Block, upto int, i uint64) (string, bool) {
	if i < uint64(len(datalog.DEFAULT_SYMBOLS)) {
		return datalog.DEFAULT_SYMBOLS[i], true
	}
	if i < uint64(datalog.OFFSET) {
		return "", false
	}
	n := i - uint64(datalog.OFFSET)
	for _, b := range blocks[:upto+1] {
		if n < uint64(len(b.Symbols)) {
			return b.Symbols[n], true
		}
		n -= uint64(len(b.Symbols))
	}
	return "", false
}

// revocationIDs returns the revocation id of each block of tok.
func revocationIDs(t testing.TB, tok []byte) []string {
	t.Helper()
	in, err := verifier.Inspect(tok)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	ids := make([]string, len(in.Blocks))
	for i, b := range in.Blocks {
		ids[i] = b.RevocationID
	}
	return ids
}

// Datalog shorthands over biscuit-go's structs (never its parser).

func bPred(name string, terms ...biscuit.Term) biscuit.Predicate {
	return biscuit.Predicate{Name: name, IDs: terms}
}

func bQuery(body []biscuit.Predicate, exprs ...biscuit.Expression) biscuit.Rule {
	return biscuit.Rule{Head: biscuit.Predicate{Name: "query", IDs: []biscuit.Term{}}, Body: body, Expressions: exprs}
}

func bCheck(qs ...biscuit.Rule) biscuit.Check { return biscuit.Check{Queries: qs} }

func bVar(s string) biscuit.Value       { return biscuit.Value{Term: biscuit.Variable(s)} }
func bStr(s string) biscuit.Value       { return biscuit.Value{Term: biscuit.String(s)} }
func bInt(n int64) biscuit.Value        { return biscuit.Value{Term: biscuit.Integer(n)} }
func bVal(t biscuit.Term) biscuit.Value { return biscuit.Value{Term: t} }

func bStrSet(ss ...string) biscuit.Set {
	s := make(biscuit.Set, len(ss))
	for i, x := range ss {
		s[i] = biscuit.String(x)
	}
	return s
}

// ---------------------------------------------------------------------
// The generator table.

// gReq is one request of a generator case and the decision written for it.
type gReq struct {
	req    verifier.Request
	at     time.Time
	ageMS  *int64 // staleness of the revocation list; nil: not tracked
	reason string
	failed int // failed checks, for check failures
}

// q is a request at goldenNow + 1 minute, expected allowed.
func q(resource, operation string) gReq {
	return gReq{
		req:    verifier.Request{Resource: resource, Operation: operation},
		at:     goldenNow.Add(gMinute),
		reason: spec.ReasonAllowed,
	}
}

func (r gReq) by(presenter string) gReq            { r.req.Presenter = presenter; return r }
func (r gReq) to(service string) gReq              { r.req.Service = service; return r }
func (r gReq) records(n int) gReq                  { r.req.Records = n; return r }
func (r gReq) fields(fs ...string) gReq            { r.req.Fields = fs; return r }
func (r gReq) attrs(a map[string]string) gReq      { r.req.Attributes = a; return r }
func (r gReq) when(at time.Time) gReq              { r.at = at; return r }
func (r gReq) aged(ms int64) gReq                  { r.ageMS = &ms; return r }
func (r gReq) want(reason string, failed int) gReq { r.reason, r.failed = reason, failed; return r }
func (r gReq) denied(reason string) gReq           { return r.want(reason, 0) }
func (r gReq) failing(reason string, n int) gReq   { return r.want(reason, n) }
func (r gReq) everything(p, s string, n int, fs ...string) gReq {
	return r.by(p).to(s).records(n).fields(fs...)
}

// gCase is one generator case. maxRecords and fields are the constraints
// expected on its allowed decisions (fields nil: none).
type gCase struct {
	name, desc string
	token      []byte
	reqs       []gReq
	maxRecords int
	fields     []string
}

func (c gCase) withConstraints(n int, fields ...string) gCase {
	c.maxRecords = n
	if fields != nil {
		c.fields = fields
	}
	return c
}

// generateGolden builds the golden file and cross-checks every decision
// of the product verifier with the table; it fails the test on any
// difference, so a regression is never written.
func generateGolden(t testing.TB) *goldenFile {
	t.Helper()
	cases, revoked := goldenCases(t)
	f := &goldenFile{
		Description: "writ token vocabulary v1 golden vectors (spec/token.md §11). " +
			"Generated by verifier/golden_test.go; regenerate with: go test ./verifier -run TestGolden -update",
		RootPublicKey: pubHex(goldenRoot1),
		Keys:          []goldenKey{{ID: 1, Public: pubHex(goldenRoot1)}, {ID: 2, Public: pubHex(goldenRoot2)}},
		Revoked:       revoked,
	}
	clk := &goldenClock{}
	vs := newGoldenVerifiers(t, f, true, clk, verifier.DefaultMaxStaleness)
	ctx := context.Background()
	bad := 0
	for _, c := range cases {
		gc := goldenCase{Name: c.name, Description: c.desc, Token: base64.RawURLEncoding.EncodeToString(c.token)}
		for i, r := range c.reqs {
			clk.set(r.at, r.ageMS)
			d := vs.pick(r.ageMS).Authorize(ctx, c.token, r.req)
			got := wantOf(d)
			want := goldenWant{Allowed: r.reason == spec.ReasonAllowed, Reason: r.reason, FailedChecks: r.failed}
			if want.Allowed {
				want.MaxRecords = c.maxRecords
				if c.fields != nil {
					fs := slices.Clone(c.fields)
					slices.Sort(fs)
					want.Fields = &fs
				}
			}
			if !sameWant(got, want) {
				bad++
				t.Errorf("generator: case %s request %d (%s %s at %s): verifier says %v, table says %v; message: %s",
					c.name, i, r.req.Operation, r.req.Resource, r.at.Format(time.RFC3339), got, want, d.Message)
			}
			gc.Requests = append(gc.Requests, goldenRequest{
				Resource:        r.req.Resource,
				Operation:       r.req.Operation,
				Presenter:       r.req.Presenter,
				Service:         r.req.Service,
				Records:         r.req.Records,
				Fields:          r.req.Fields,
				Attributes:      r.req.Attributes,
				Time:            r.at.UTC().Format(time.RFC3339),
				RevocationAgeMS: r.ageMS,
				Want:            want,
			})
		}
		f.Cases = append(f.Cases, gc)
	}
	if bad > 0 {
		t.Fatalf("generator: %d decisions differ from the table; golden vectors not produced", bad)
	}
	return f
}

// goldenCases is the table: every case, and the ids revoked for the
// revocation cases.
func goldenCases(t testing.TB) ([]gCase, []string) {
	t.Helper()
	var (
		cs      []gCase
		revoked []string
	)
	add := func(c gCase) { cs = append(cs, c) }
	kit := func(name string) *tokenKit { return newKit(t, name) }
	m1 := func(k *tokenKit, c mint.Claims) []byte { return k.mint(goldenRoot1, 1, c) }

	const (
		allowed    = spec.ReasonAllowed
		notGranted = spec.ReasonNotGranted
		expired    = spec.ReasonExpired
		presenter  = spec.ReasonPresenterMismatch
		service    = spec.ReasonServiceMismatch
		outside    = spec.ReasonOutsideTimeWindow
		constraint = spec.ReasonConstraintViolated
		checkFail  = spec.ReasonCheckFailed
		malformed  = spec.ReasonMalformed
		limits     = spec.ReasonLimitsExceeded
		unsupp     = spec.ReasonUnsupported
		unknownKey = spec.ReasonUnknownKey
		badSig     = spec.ReasonBadSignature
		revokedR   = spec.ReasonRevoked
	)
	week := goldenNow.Add(7 * 24 * time.Hour)
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatalf("bad time %q: %v", s, err)
		}
		return tm
	}

	// --- Rights and the allow policy (token.md §2, §4).
	{
		name := "ok/exact-right"
		c := baseClaims()
		c.Rights = rights("crm/contacts:read")
		add(gCase{name: name, desc: "An exact right allows exactly its resource and operation.",
			token: m1(kit(name), c),
			reqs:  []gReq{q("crm/contacts", "read")}})
	}
	{
		name := "fail/not-granted"
		c := baseClaims()
		c.Rights = rights("crm/contacts:read")
		add(gCase{name: name, desc: "Rights are the only source of permission: another operation, a sub-resource of an exact right, or a near name is not granted.",
			token: m1(kit(name), c),
			reqs: []gReq{
				q("crm/contacts", "write").denied(notGranted),
				q("crm/contacts/42", "read").denied(notGranted),
				q("crm/contact", "read").denied(notGranted),
			}})
	}
	{
		name := "ok/prefix-right"
		c := baseClaims()
		c.Rights = rights("crm/notes/*:read")
		add(gCase{name: name, desc: `A prefix right crm/notes/* (right_prefix("crm/notes/", "read")) allows every resource starting with "crm/notes/", the prefix itself included.`,
			token: m1(kit(name), c),
			reqs: []gReq{
				q("crm/notes/7", "read"),
				q("crm/notes/7/attachments/1", "read"),
				q("crm/notes/", "read"),
			}})
	}
	{
		name := "fail/prefix-boundary"
		c := baseClaims()
		c.Rights = rights("crm/notes/*:read")
		add(gCase{name: name, desc: "A prefix right covers nothing outside its prefix (the trailing slash is part of it) and no other operation.",
			token: m1(kit(name), c),
			reqs: []gReq{
				q("crm/notes", "read").denied(notGranted),
				q("crm/notesx/1", "read").denied(notGranted),
				q("crm/notes/7", "write").denied(notGranted),
			}})
	}
	{
		name := "ok/several-rights"
		c := baseClaims()
		c.Rights = rights("crm/contacts:read", "crm/contacts:write", "billing/*:delete")
		add(gCase{name: name, desc: "Any one right suffices; operations are exact strings.",
			token: m1(kit(name), c),
			reqs: []gReq{
				q("crm/contacts", "write"),
				q("billing/invoices/9", "delete"),
				q("billing/invoices/9", "read").denied(notGranted),
			}})
	}

	// --- Authority checks (token.md §2, §3, §7).
	{
		name := "ok/presenter-bound"
		c := baseClaims()
		c.Presenters = []string{gAgent, gSales}
		add(gCase{name: name, desc: "A presenter-bound token is allowed for any of its presenters.",
			token: m1(kit(name), c),
			reqs:  []gReq{q("crm/contacts", "read").by(gSales), q("crm/contacts", "read").by(gAgent)}})
	}
	{
		name := "fail/presenter-mismatch"
		c := baseClaims()
		c.Presenters = []string{gAgent}
		add(gCase{name: name, desc: "Another presenter, or an unknown one (no presenter fact), fails the presenter check.",
			token: m1(kit(name), c),
			reqs: []gReq{
				q("crm/contacts", "read").by(gStranger).failing(presenter, 1),
				q("crm/contacts", "read").failing(presenter, 1),
			}})
	}
	{
		name := "ok/service-bound"
		c := baseClaims()
		c.Services = []string{gSvcCRM}
		add(gCase{name: name, desc: "An audience-restricted token is allowed at its service.",
			token: m1(kit(name), c),
			reqs:  []gReq{q("crm/contacts", "read").to(gSvcCRM)}})
	}
	{
		name := "fail/service-mismatch"
		c := baseClaims()
		c.Services = []string{gSvcCRM}
		add(gCase{name: name, desc: "Another service, or none known, fails the service check.",
			token: m1(kit(name), c),
			reqs: []gReq{
				q("crm/contacts", "read").to(gSvcBill).failing(service, 1),
				q("crm/contacts", "read").failing(service, 1),
			}})
	}
	{
		name := "ok/max-records"
		c := baseClaims()
		c.MaxRecords = 100
		add(gCase{name: name, desc: "A record limit allows requests up to it; with records 0 the decision carries the limit for the service to apply.",
			token: m1(kit(name), c),
			reqs:  []gReq{q("crm/contacts", "read").records(100), q("crm/contacts", "read")},
		}.withConstraints(100))
	}
	{
		name := "fail/records-exceeded"
		c := baseClaims()
		c.MaxRecords = 100
		add(gCase{name: name, desc: "A request touching more records than the limit violates a constraint.",
			token: m1(kit(name), c),
			reqs:  []gReq{q("crm/contacts", "read").records(101).failing(constraint, 1)}})
	}
	{
		name := "ok/fields"
		c := baseClaims()
		c.Fields = []string{"email", "name"}
		add(gCase{name: name, desc: "A field list allows any subset of it (fields([...]) is a set; contains on sets is superset); with no fields requested the decision carries the list.",
			token: m1(kit(name), c),
			reqs: []gReq{
				q("crm/contacts", "read").fields("email"),
				q("crm/contacts", "read").fields("name", "email"),
				q("crm/contacts", "read"),
			},
		}.withConstraints(0, "email", "name"))
	}
	{
		name := "fail/field-not-allowed"
		c := baseClaims()
		c.Fields = []string{"email", "name"}
		add(gCase{name: name, desc: "Requesting any field outside the list violates a constraint.",
			token: m1(kit(name), c),
			reqs: []gReq{
				q("crm/contacts", "read").fields("email", "ssn").failing(constraint, 1),
				q("crm/contacts", "read").fields("ssn").failing(constraint, 1),
			}})
	}
	{
		name := "ok/time-window"
		c := baseClaims()
		c.Expiry = week
		c.Windows = [][]spec.TimeWindow{{window(gParis, weekdays(), 9, 18)}}
		add(gCase{name: name, desc: "Mon-Fri 09:00-18:00 Europe/Paris: open on Friday 11:01 Paris; From is inclusive, To exclusive.",
			token: m1(kit(name), c),
			reqs: []gReq{
				q("crm/contacts", "read"),
				q("crm/contacts", "read").when(at("2026-11-27T08:00:00Z")),
				q("crm/contacts", "read").when(at("2026-11-27T16:59:59Z")),
			}})
	}
	{
		name := "fail/outside-time-window"
		c := baseClaims()
		c.Expiry = week
		c.Windows = [][]spec.TimeWindow{{window(gParis, weekdays(), 9, 18)}}
		add(gCase{name: name, desc: "The same window is closed at 18:00 Paris, before 09:00 and on Saturday.",
			token: m1(kit(name), c),
			reqs: []gReq{
				q("crm/contacts", "read").when(at("2026-11-27T17:00:00Z")).failing(outside, 1),
				q("crm/contacts", "read").when(at("2026-11-27T07:59:59Z")).failing(outside, 1),
				q("crm/contacts", "read").when(at("2026-11-28T10:00:00Z")).failing(outside, 1),
			}})
	}
	{
		name := "ok/time-window-set-any-open"
		c := baseClaims()
		c.Expiry = week
		c.Windows = [][]spec.TimeWindow{
			{window(gTokyo, weekdays(), 9, 18), window(gParis, []time.Weekday{time.Friday}, 10, 12)},
			{window(gUTC, nil, 6, 22)},
		}
		add(gCase{name: name, desc: "Each window set is one check that passes when any of its windows is open (Tokyo 19:01 is closed, Paris 11:01 open); all sets must hold.",
			token: m1(kit(name), c),
			reqs: []gReq{
				q("crm/contacts", "read"),
				q("crm/contacts", "read").when(at("2026-11-27T06:30:00Z")), // Tokyo Fri 15:30
			}})
	}
	{
		name := "fail/time-window-sets-all-must-hold"
		c := baseClaims()
		c.Expiry = week
		c.Windows = [][]spec.TimeWindow{
			{window(gTokyo, weekdays(), 9, 18), window(gParis, []time.Weekday{time.Friday}, 10, 12)},
			{window(gUTC, nil, 6, 22)},
		}
		add(gCase{name: name, desc: "Tokyo Fri 09:30 opens the first set but UTC 00:30 closes the second; at Fri 23:30 UTC both sets are closed.",
			token: m1(kit(name), c),
			reqs: []gReq{
				q("crm/contacts", "read").when(at("2026-11-27T00:30:00Z")).failing(outside, 1),
				q("crm/contacts", "read").when(at("2026-11-27T23:30:00Z")).failing(outside, 2),
			}})
	}
	{
		name := "fail/expired"
		add(gCase{name: name, desc: "The expiry check fails one second after the expiry and later.",
			token: m1(kit(name), baseClaims()),
			reqs: []gReq{
				q("crm/contacts", "read").when(goldenNow.Add(5*gMinute+time.Second)).failing(expired, 1),
				q("crm/contacts", "read").when(goldenNow.Add(time.Hour)).failing(expired, 1),
			}})
	}
	{
		name := "ok/expiry-inclusive"
		add(gCase{name: name, desc: "time($t), $t <= expiry: the token is valid at its expiry second; no not-before check exists.",
			token: m1(kit(name), baseClaims()),
			reqs: []gReq{
				q("crm/contacts", "read").when(goldenNow.Add(5 * gMinute)),
				q("crm/contacts", "read").when(goldenNow.Add(-time.Hour)),
			}})
	}
	allClaims := func() mint.Claims {
		c := baseClaims()
		c.Expiry = goldenNow.Add(time.Hour)
		c.Presenters = []string{gAgent}
		c.Services = []string{gSvcCRM}
		c.MaxRecords = 50
		c.Fields = []string{"email", "name", "phone"}
		c.Windows = [][]spec.TimeWindow{{window(gParis, weekdays(), 8, 20)}}
		return c
	}
	{
		name := "ok/all-claims"
		add(gCase{name: name, desc: "Every optional claim at once: presenter, service, record limit, fields, a time window.",
			token: m1(kit(name), allClaims()),
			reqs: []gReq{
				q("crm/notes/3", "read").everything(gAgent, gSvcCRM, 50, "email", "phone"),
				q("crm/contacts", "read").by(gAgent).to(gSvcCRM),
			},
		}.withConstraints(50, "email", "name", "phone"))
	}
	{
		name := "fail/several-checks-first-reason-wins"
		add(gCase{name: name, desc: "All checks are evaluated and counted; the reason is the first failed one in the order expired, presenter_mismatch, service_mismatch, outside_time_window, constraint_violated, check_failed.",
			token: m1(kit(name), allClaims()),
			reqs: []gReq{
				q("crm/contacts", "read").everything(gStranger, gSvcBill, 51, "ssn").when(at("2026-11-28T12:00:00Z")).failing(expired, 6),
				q("crm/contacts", "read").everything(gStranger, gSvcCRM, 1, "ssn").failing(presenter, 2),
				q("crm/contacts", "read").by(gAgent).records(51).when(at("2026-11-27T10:30:00Z")).failing(service, 2),
				q("crm/contacts", "read").everything(gAgent, gSvcCRM, 51, "ssn").failing(constraint, 2),
				q("crm/contacts", "write").by(gStranger).to(gSvcCRM).failing(presenter, 1),
			}})
	}

	// --- Attenuation (token.md §5).
	{
		name := "ok/attenuated-once"
		k := kit(name)
		tok := k.restrict(m1(k, baseClaims()), goldenNow, attenuation.OnlyRights(rights("crm/notes/public/*:read")...))
		add(gCase{name: name, desc: "OnlyRights narrows a token to crm/notes/public/*; the narrowed-away right fails the rights check (check_failed).",
			token: tok,
			reqs: []gReq{
				q("crm/notes/public/1", "read"),
				q("crm/contacts", "read").failing(checkFail, 1),
				q("crm/notes/private/1", "read").failing(checkFail, 1),
			}})
	}
	{
		name := "ok/attenuated-twice"
		k := kit(name)
		tok := m1(k, baseClaims())
		tok = k.restrict(tok, goldenNow, attenuation.OnlyRights(rights("crm/notes/*:read")...), attenuation.ExpireIn(2*gMinute))
		tok = k.restrict(tok, goldenNow, attenuation.BindPresenters(gAgent), attenuation.MaxRecords(10))
		add(gCase{name: name, desc: "Two blocks: rights and ExpireIn(2m) resolved at minting time, then a presenter binding and a record limit.",
			token: tok,
			reqs: []gReq{
				q("crm/notes/1", "read").by(gAgent).records(10),
				q("crm/notes/1", "read").by(gAgent),
				q("crm/notes/1", "read").by(gSales).failing(presenter, 1),
				q("crm/notes/1", "read").by(gAgent).when(goldenNow.Add(3*gMinute)).failing(expired, 1),
			},
		}.withConstraints(10))
	}
	threeTimes := func(k *tokenKit) []byte {
		c := baseClaims()
		c.Expiry = goldenNow.Add(time.Hour)
		c.Rights = rights("crm/*:read", "billing/*:read")
		c.MaxRecords = 100
		c.Fields = []string{"email", "name", "phone", "ssn"}
		tok := m1(k, c)
		tok = k.restrict(tok, goldenNow,
			attenuation.OnlyRights(rights("crm/*:read")...),
			attenuation.ExpireBy(goldenNow.Add(30*gMinute)),
			attenuation.OnlyServices(gSvcCRM, gSvcBill))
		tok = k.restrict(tok, goldenNow,
			attenuation.BindPresenters(gAgent, gSales),
			attenuation.OnlyFields("email", "name", "phone"),
			attenuation.MaxRecords(20),
			attenuation.Window(window(gParis, weekdays(), 9, 18)))
		return k.restrict(tok, goldenNow,
			attenuation.AnyWindow(window(gTokyo, weekdays(), 9, 18), window(gUTC, nil, 8, 12)),
			attenuation.ExpireIn(10*gMinute),
			attenuation.OnlyServices(gSvcCRM),
			attenuation.OnlyFields("email", "name"))
	}
	{
		name := "ok/attenuated-three-times"
		add(gCase{name: name, desc: "Three blocks using every restriction kind (OnlyRights, ExpireBy, ExpireIn, BindPresenters, OnlyFields, MaxRecords, Window, AnyWindow, OnlyServices); constraints are the smallest limit and the intersection of the field lists.",
			token: threeTimes(kit(name)),
			reqs: []gReq{
				q("crm/contacts/1", "read").everything(gSales, gSvcCRM, 20, "email"),
				q("crm/contacts/1", "read").by(gAgent).to(gSvcCRM),
			},
		}.withConstraints(20, "email", "name"))
	}
	{
		name := "fail/narrowed-by-later-block"
		add(gCase{name: name, desc: "The same chain: each later block's restriction is enforced although earlier blocks allow the request.",
			token: threeTimes(kit(name)),
			reqs: []gReq{
				q("crm/contacts/1", "read").by(gSales).to(gSvcBill).failing(service, 1),
				q("crm/contacts/1", "read").by(gSales).to(gSvcCRM).when(goldenNow.Add(11*gMinute)).failing(expired, 1),
				q("crm/contacts/1", "read").by(gSales).to(gSvcCRM).fields("phone").failing(constraint, 1),
				q("crm/contacts/1", "read").by(gSales).to(gSvcCRM).records(21).failing(constraint, 1),
				q("billing/invoices/1", "read").by(gSales).to(gSvcCRM).failing(checkFail, 1),
			}})
	}
	{
		name := "ok/constraints-intersect"
		k := kit(name)
		c := baseClaims()
		c.MaxRecords = 100
		c.Fields = []string{"email", "name", "phone"}
		tok := k.restrict(m1(k, c), goldenNow, attenuation.OnlyFields("name", "phone", "ssn"), attenuation.MaxRecords(10))
		add(gCase{name: name, desc: "Fields email,name,phone then name,phone,ssn: the decision carries name,phone and limit 10.",
			token: tok,
			reqs: []gReq{
				q("crm/contacts", "read"),
				q("crm/contacts", "read").fields("name").records(10),
				q("crm/contacts", "read").fields("email").failing(constraint, 1),
				q("crm/contacts", "read").fields("ssn").failing(constraint, 1),
			},
		}.withConstraints(10, "name", "phone"))
	}
	{
		name := "fail/attenuation-cannot-widen"
		k := kit(name)
		c := baseClaims()
		c.Rights = rights("crm/contacts:read")
		tok := k.restrict(m1(k, c), goldenNow, attenuation.OnlyRights(rights("billing/*:read", "crm/contacts:read")...))
		add(gCase{name: name, desc: "A block naming a right the authority lacks passes its check but grants nothing.",
			token: tok,
			reqs: []gReq{
				q("billing/invoices/1", "read").denied(notGranted),
				q("crm/contacts", "read"),
			}})
	}
	{
		name := "ok/sixteen-blocks"
		k := kit(name)
		tok := m1(k, baseClaims())
		for i := 1; i < 16; i++ {
			tok = k.restrict(tok, goldenNow, attenuation.ExpireIn(time.Duration(60-i)*gMinute))
		}
		add(gCase{name: name, desc: "Sixteen blocks, authority included, is the limit.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read")}})
	}
	{
		name := "ok/foreign-check-block"
		k := kit(name)
		tok := k.appendBlock(m1(k, baseClaims()), []biscuit.Check{bCheck(bQuery(
			[]biscuit.Predicate{bPred("resource", biscuit.Variable("r"))},
			biscuit.Expression{bVar("r"), bStr("/7"), biscuit.BinarySuffix}))})
		add(gCase{name: name, desc: `A block written by other Biscuit tooling with v3.0 operators is accepted: check if resource($r), $r.ends_with("/7").`,
			token: tok,
			reqs: []gReq{
				q("crm/notes/7", "read"),
				q("crm/notes/8", "read").failing(checkFail, 1),
			}})
	}
	{
		name := "ok/attribute-check"
		k := kit(name)
		tok := k.appendBlock(m1(k, baseClaims()), []biscuit.Check{bCheck(bQuery(
			[]biscuit.Predicate{bPred("attr", biscuit.String("tenant"), biscuit.String("acme"))}))})
		add(gCase{name: name, desc: `check if attr("tenant", "acme") passes only when the service passes that request attribute.`,
			token: tok,
			reqs: []gReq{
				q("crm/contacts", "read").attrs(map[string]string{"tenant": "acme", "region": "eu"}),
				q("crm/contacts", "read").attrs(map[string]string{"tenant": "globex"}).failing(checkFail, 1),
				q("crm/contacts", "read").failing(checkFail, 1),
			}})
	}
	{
		name := "fail/integer-overflow-fails-check"
		k := kit(name)
		tok := k.appendBlock(m1(k, baseClaims()), []biscuit.Check{bCheck(bQuery(
			[]biscuit.Predicate{bPred("records", biscuit.Variable("n"))},
			biscuit.Expression{bVar("n"), bInt(1<<63 - 1), biscuit.BinaryAdd, bInt(0), biscuit.BinaryGreaterOrEqual}))})
		add(gCase{name: name, desc: "check if records($n), $n + 9223372036854775807 >= 0: overflow makes the expression false, so the check fails (a check on records is a record check: constraint_violated). With records 0 the check passes, but it is no plain record limit the decision could carry, so the verifier denies with no failed check (token.md §7).",
			token: tok,
			reqs: []gReq{
				q("crm/contacts", "read").want(constraint, 0),
				// A check on records alone is a record check (token.md §7).
				q("crm/contacts", "read").records(1).failing(constraint, 1),
			}})
	}
	{
		name := "fail/record-limit-below-one"
		k := kit(name)
		tok := k.appendBlock(m1(k, baseClaims()), []biscuit.Check{bCheck(bQuery(
			[]biscuit.Predicate{bPred("records", biscuit.Variable("n"))},
			biscuit.Expression{bVar("n"), bInt(0), biscuit.BinaryLessOrEqual}))})
		add(gCase{name: name, desc: "check if records($n), $n <= 0 (never minted by writ): with records 0 the check passes but the decision could not carry the limit, so the verifier denies; Datalog alone would allow.",
			token: tok,
			reqs: []gReq{
				q("crm/contacts", "read").want(constraint, 0),
				q("crm/contacts", "read").records(1).failing(constraint, 1),
			}})
	}
	{
		name := "fail/unknown-time-zone"
		k := kit(name)
		tok := k.appendBlock(m1(k, baseClaims()), []biscuit.Check{bCheck(bQuery(
			[]biscuit.Predicate{bPred("local_time", biscuit.String("Mars/Olympus_Mons"), biscuit.Variable("d"), biscuit.Variable("m"))},
			biscuit.Expression{bVar("m"), bInt(0), biscuit.BinaryGreaterOrEqual}))})
		add(gCase{name: name, desc: "A local_time check naming no IANA zone has no fact to match: it fails closed.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").failing(outside, 1)}})
	}

	// --- Root keys (token.md §1).
	{
		name := "ok/root-key-2"
		add(gCase{name: name, desc: "rootKeyId 2 selects the second trusted key.",
			token: kit(name).mint(goldenRoot2, 2, baseClaims()),
			reqs:  []gReq{q("crm/contacts", "read")}})
	}
	{
		name := "ok/no-root-key-id"
		tok := kit(name).mint(goldenRoot2, 2, baseClaims())
		tok = editContainer(t, tok, func(c *pb.Biscuit) { c.RootKeyId = nil })
		add(gCase{name: name, desc: "Without rootKeyId the verifier tries each trusted key; root key 2 verifies it.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read")}})
	}
	{
		name := "fail/unknown-root-key-id"
		add(gCase{name: name, desc: "rootKeyId 99 names no trusted key; no other key is tried.",
			token: kit(name).mint(goldenRoot1, 99, baseClaims()),
			reqs:  []gReq{q("crm/contacts", "read").denied(unknownKey)}})
	}
	{
		name := "fail/no-root-key-id-untrusted"
		tok := kit(name).mint(goldenRogue, 1, baseClaims())
		tok = editContainer(t, tok, func(c *pb.Biscuit) { c.RootKeyId = nil })
		add(gCase{name: name, desc: "Without rootKeyId and signed by an untrusted key: no known key verifies it.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(unknownKey)}})
	}
	{
		name := "fail/wrong-root-key"
		add(gCase{name: name, desc: "rootKeyId 1 but signed by another key.",
			token: kit(name).mint(goldenRogue, 1, baseClaims()),
			reqs:  []gReq{q("crm/contacts", "read").denied(badSig)}})
	}

	// --- Signature chain and proof.
	{
		name := "fail/bit-flipped-signature"
		tok := m1(kit(name), baseClaims())
		tok = editContainer(t, tok, func(c *pb.Biscuit) { c.Authority.Signature[17] ^= 0x04 })
		add(gCase{name: name, desc: "One bit of the authority block's signature flipped.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(badSig)}})
	}
	{
		name := "fail/bit-flipped-block-signature"
		k := kit(name)
		tok := k.restrict(m1(k, baseClaims()), goldenNow, attenuation.MaxRecords(5))
		tok = editContainer(t, tok, func(c *pb.Biscuit) { c.Blocks[0].Signature[40] ^= 0x80 })
		add(gCase{name: name, desc: "One bit of block 1's signature flipped.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(badSig)}})
	}
	{
		name := "fail/bit-flipped-block-content"
		k := kit(name)
		tok := k.restrict(m1(k, baseClaims()), goldenNow, attenuation.MaxRecords(5))
		tok = editContainer(t, tok, func(c *pb.Biscuit) {
			// The record limit 5 is the only varint 5 after a term tag in
			// the block; turning it into 7 keeps the block decodable.
			b := c.Blocks[0].Block
			i := bytes.LastIndex(b, []byte{0x10, 0x05})
			if i < 0 {
				t.Fatalf("%s: record limit not found in block 1", name)
			}
			b[i+1] = 0x07
		})
		add(gCase{name: name, desc: "Block 1 changed after signing (record limit 5 became 7).",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(badSig)}})
	}
	{
		name := "fail/tampered-proof"
		tok := m1(kit(name), baseClaims())
		tok = editContainer(t, tok, func(c *pb.Biscuit) {
			other := sha256.Sum256([]byte(name))
			c.Proof = &pb.Proof{Content: &pb.Proof_NextSecret{NextSecret: other[:]}}
		})
		add(gCase{name: name, desc: "The proof's next secret does not match the last block's next key.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(badSig)}})
	}
	{
		name := "ok/sealed"
		k := kit(name)
		tok := k.seal(k.restrict(m1(k, baseClaims()), goldenNow, attenuation.MaxRecords(5)))
		add(gCase{name: name, desc: "A sealed token (final signature instead of next secret) is verified like any other.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read")},
		}.withConstraints(5))
	}
	{
		name := "fail/sealed-bad-final-signature"
		k := kit(name)
		tok := k.seal(m1(k, baseClaims()))
		tok = editContainer(t, tok, func(c *pb.Biscuit) { c.Proof.GetContent().(*pb.Proof_FinalSignature).FinalSignature[3] ^= 1 })
		add(gCase{name: name, desc: "A sealed token whose final signature was altered.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(badSig)}})
	}
	// twoBlocks has two expiry blocks, which add no symbol: reordering or
	// removing blocks then leaves every symbol reference valid and only
	// the signature chain can tell.
	twoBlocks := func(k *tokenKit) []byte {
		tok := m1(k, baseClaims())
		tok = k.restrict(tok, goldenNow, attenuation.ExpireIn(4*gMinute))
		return k.restrict(tok, goldenNow, attenuation.ExpireBy(goldenNow.Add(3*gMinute)))
	}
	{
		name := "fail/reordered-blocks"
		tok := editContainer(t, twoBlocks(kit(name)), func(c *pb.Biscuit) { c.Blocks[0], c.Blocks[1] = c.Blocks[1], c.Blocks[0] })
		add(gCase{name: name, desc: "Blocks 1 and 2 swapped: each is signed by the key its predecessor named.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(badSig)}})
	}
	{
		name := "fail/removed-block"
		tok := editContainer(t, twoBlocks(kit(name)), func(c *pb.Biscuit) { c.Blocks = c.Blocks[1:] })
		add(gCase{name: name, desc: "Block 1 of 2 removed (dropping a restriction).",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(badSig)}})
	}
	{
		name := "fail/removed-last-block"
		tok := editContainer(t, twoBlocks(kit(name)), func(c *pb.Biscuit) { c.Blocks = c.Blocks[:1] })
		add(gCase{name: name, desc: "The last block removed: the proof no longer matches.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(badSig)}})
	}

	// --- Structure, limits and unsupported features (token.md §1, §6, §8).
	{
		name := "fail/truncated"
		tok := m1(kit(name), baseClaims())
		add(gCase{name: name, desc: "The first half of a valid token.",
			token: tok[:len(tok)/2],
			reqs:  []gReq{q("crm/contacts", "read").denied(malformed)}})
	}
	{
		name := "fail/empty-token"
		add(gCase{name: name, desc: "Zero bytes.",
			token: []byte{},
			reqs:  []gReq{q("crm/contacts", "read").denied(malformed)}})
	}
	{
		name := "fail/not-a-token"
		add(gCase{name: name, desc: "Bytes that are not a Biscuit protobuf message.",
			token: []byte("Bearer this is not a token at all"),
			reqs:  []gReq{q("crm/contacts", "read").denied(malformed)}})
	}
	{
		name := "fail/missing-token-id"
		k := kit(name)
		tok := k.resign(m1(k, baseClaims()), goldenRoot1, func(bs []*pb.Block) {
			bs[0].FactsV2 = slices.DeleteFunc(bs[0].FactsV2, func(f *pb.FactV2) bool {
				n, _ := symbolName(bs, 0, f.GetPredicate().GetName())
				return n == spec.FactTokenID
			})
		})
		add(gCase{name: name, desc: "A correctly signed authority block without the token_id fact.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(malformed)}})
	}
	{
		name := "fail/writ-version-2"
		k := kit(name)
		tok := k.resign(m1(k, baseClaims()), goldenRoot1, func(bs []*pb.Block) {
			for _, f := range bs[0].FactsV2 {
				if n, _ := symbolName(bs, 0, f.GetPredicate().GetName()); n == spec.FactWritVersion {
					f.Predicate.Terms[0].Content = &pb.TermV2_Integer{Integer: 2}
				}
			}
		})
		add(gCase{name: name, desc: "writ_version(2): a vocabulary this verifier does not know.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(unsupp)}})
	}
	{
		name := "fail/block-with-facts"
		k := kit(name)
		tok := k.appendBlock(m1(k, baseClaims()), nil,
			biscuit.Fact{Predicate: bPred(spec.FactRight, biscuit.String("billing/invoices"), biscuit.String("read"))})
		add(gCase{name: name, desc: `An attenuation block built with biscuit-go's builder carrying the fact right("billing/invoices", "read").`,
			token: tok,
			reqs: []gReq{
				q("billing/invoices", "read").denied(unsupp),
				q("crm/contacts", "read").denied(unsupp),
			}})
	}
	{
		name := "fail/regex-check"
		k := kit(name)
		tok := k.appendBlock(m1(k, baseClaims()), []biscuit.Check{bCheck(bQuery(
			[]biscuit.Predicate{bPred("resource", biscuit.Variable("r"))},
			biscuit.Expression{bVar("r"), bStr("^crm/.*$"), biscuit.BinaryRegex}))})
		add(gCase{name: name, desc: `check if resource($r), $r.matches("^crm/.*$"): regular expressions are refused.`,
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(unsupp)}})
	}
	{
		name := "fail/multiply-operator"
		k := kit(name)
		tok := k.appendBlock(m1(k, baseClaims()), []biscuit.Check{bCheck(bQuery(
			[]biscuit.Predicate{bPred("records", biscuit.Variable("n"))},
			biscuit.Expression{bVar("n"), bInt(2), biscuit.BinaryMul, bInt(10), biscuit.BinaryLessOrEqual}))})
		add(gCase{name: name, desc: "check if records($n), $n * 2 <= 10: * is outside the operator set.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(unsupp)}})
	}
	{
		name := "fail/join-bomb"
		k := kit(name)
		c := baseClaims()
		c.Rights = nil
		for i := range 100 {
			c.Rights = append(c.Rights, spec.Right{Resource: fmt.Sprintf("r/%03d", i), Operation: "read"})
		}
		v := func(s string) biscuit.Term { return biscuit.Variable(s) }
		tok := k.appendBlock(m1(k, c), []biscuit.Check{bCheck(bQuery([]biscuit.Predicate{
			bPred(spec.FactRight, v("a"), v("b")),
			bPred(spec.FactRight, v("c"), v("d")),
			bPred(spec.FactRight, v("e"), v("f")),
		}, biscuit.Expression{bVar("a"), bVar("c"), biscuit.BinaryEqual, bVar("e"), bStr("none"), biscuit.BinaryEqual, biscuit.BinaryAnd}))})
		if len(tok) > 16<<10 {
			t.Fatalf("%s: token is %d bytes, want it within the size limit", name, len(tok))
		}
		add(gCase{name: name, desc: "100 right facts and a check joining right three times: a join product of 10^6 in a token of a few KiB, refused before evaluation.",
			token: tok,
			reqs:  []gReq{q("r/001", "read").denied(limits)}})
	}
	{
		name := "fail/too-many-blocks"
		k := kit(name)
		tok := m1(k, baseClaims())
		for i := 1; i < 16; i++ {
			tok = k.restrict(tok, goldenNow, attenuation.MaxRecords(100-i))
		}
		tok = k.appendBlock(tok, []biscuit.Check{bCheck(bQuery(
			[]biscuit.Predicate{bPred("records", biscuit.Variable("n"))},
			biscuit.Expression{bVar("n"), bInt(10), biscuit.BinaryLessOrEqual}))})
		add(gCase{name: name, desc: "Seventeen blocks, authority included.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(limits)}})
	}
	{
		name := "fail/too-many-time-zones"
		k := kit(name)
		var qs []biscuit.Rule
		for _, z := range []string{gParis, gNewYork, gTokyo, gUTC, "Australia/Sydney"} {
			qs = append(qs, bQuery(
				[]biscuit.Predicate{bPred("local_time", biscuit.String(z), biscuit.Variable("d"), biscuit.Variable("m"))},
				biscuit.Expression{bVar("m"), bInt(0), biscuit.BinaryGreaterOrEqual}))
		}
		tok := k.appendBlock(m1(k, baseClaims()), []biscuit.Check{bCheck(qs...)})
		add(gCase{name: name, desc: "A check naming five distinct time zones (the limit is four per token).",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(limits)}})
	}
	{
		name := "fail/bad-request"
		many := make(map[string]string)
		for i := range 33 {
			many[fmt.Sprintf("a%02d", i)] = "x"
		}
		fs := make([]string, 65)
		for i := range fs {
			fs[i] = fmt.Sprintf("f%02d", i)
		}
		add(gCase{name: name, desc: "Requests the service should never build: empty resource or operation, negative records (malformed), more attributes or fields than the limits.",
			token: m1(kit(name), baseClaims()),
			reqs: []gReq{
				q("", "read").denied(malformed),
				q("crm/contacts", "").denied(malformed),
				q("crm/contacts", "read").records(-1).denied(malformed),
				q("crm/contacts", "read").attrs(many).denied(limits),
				q("crm/contacts", "read").fields(fs...).denied(limits),
			}})
	}

	// --- Freshness of the revocation list (token.md §2 max_staleness,
	// §3 revocation_age). Requests with revocation_age_ms are decided by
	// a verifier that tracks freshness; the others by one that does not.
	stale := spec.ReasonRevocationStale
	{
		name := "ok/max-staleness-within-bound"
		c := baseClaims()
		c.MaxStaleness = 2 * time.Second
		add(gCase{name: name, desc: "A token bound to a revocation list at most 2 s old (check if revocation_age($a), $a <= 2000) at verifiers whose list is fresh enough.",
			token: m1(kit(name), c),
			reqs: []gReq{
				q("crm/contacts", "read").aged(0),
				q("crm/contacts", "read").aged(1500),
				q("crm/notes/7", "read").aged(2000),
			}})
	}
	{
		name := "fail/max-staleness-exceeded"
		c := baseClaims()
		c.MaxStaleness = 2 * time.Second
		add(gCase{name: name, desc: "The same bound at verifiers whose list is older: revocation_stale, also when the token has expired (it ranks first).",
			token: m1(kit(name), c),
			reqs: []gReq{
				q("crm/contacts", "read").aged(2001).failing(stale, 1),
				q("crm/contacts", "read").aged(25000).failing(stale, 1),
				q("crm/contacts", "read").aged(3000).when(goldenNow.Add(time.Hour)).failing(stale, 2),
				q("crm/contacts", "read").aged(1000).when(goldenNow.Add(time.Hour)).failing(expired, 1),
			}})
	}
	{
		name := "fail/max-staleness-without-freshness"
		c := baseClaims()
		c.MaxStaleness = 20 * time.Second
		add(gCase{name: name, desc: "A verifier that tracks no freshness supplies no revocation_age fact: the bound fails closed (revocation_stale).",
			token: m1(kit(name), c),
			reqs: []gReq{
				q("crm/contacts", "read").failing(stale, 1),
				q("crm/contacts", "read").aged(0),
			}})
	}
	{
		name := "ok/no-max-staleness-any-freshness"
		add(gCase{name: name, desc: "A token without the bound is allowed whatever the staleness below the verifier's own bound, and where freshness is not tracked.",
			token: m1(kit(name), baseClaims()),
			reqs: []gReq{
				q("crm/contacts", "read"),
				q("crm/contacts", "read").aged(0),
				q("crm/contacts", "read").aged(29000),
			}})
	}
	{
		name := "fail/max-staleness-narrowed-by-attenuation"
		k := kit(name)
		c := baseClaims()
		c.MaxStaleness = 10 * time.Second
		narrowed := k.restrict(m1(k, c), goldenNow, attenuation.MaxStaleness(2*time.Second))
		add(gCase{name: name, desc: "An attenuation block narrows a 10 s bound to 2 s: both checks must pass.",
			token: narrowed,
			reqs: []gReq{
				q("crm/contacts", "read").aged(2000),
				q("crm/contacts", "read").aged(5000).failing(stale, 1),
				q("crm/contacts", "read").aged(11000).failing(stale, 2),
			}})
	}
	{
		name := "fail/max-staleness-not-widened-by-attenuation"
		k := kit(name)
		c := baseClaims()
		c.MaxStaleness = 2 * time.Second
		widened := k.restrict(m1(k, c), goldenNow, attenuation.MaxStaleness(20*time.Second))
		add(gCase{name: name, desc: "An attenuation block with a larger bound does not widen the authority block's.",
			token: widened,
			reqs: []gReq{
				q("crm/contacts", "read").aged(2000),
				q("crm/contacts", "read").aged(5000).failing(stale, 1),
			}})
	}

	// --- Revocation (token.md §1, §7).
	{
		name := "fail/revoked-authority"
		k := kit(name)
		tok := m1(k, baseClaims())
		revoked = append(revoked, revocationIDs(t, tok)[0])
		child := k.restrict(tok, goldenNow, attenuation.MaxRecords(5))
		add(gCase{name: name, desc: "The authority block's revocation id is revoked.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(revokedR)}})
		add(gCase{name: "fail/revoked-authority-attenuated", desc: "A token attenuated from a revoked token is revoked too.",
			token: child,
			reqs:  []gReq{q("crm/contacts", "read").denied(revokedR)}})
	}
	{
		name := "fail/revoked-block-1"
		k := kit(name)
		parent := m1(k, baseClaims())
		tok := k.restrict(parent, goldenNow, attenuation.OnlyRights(rights("crm/contacts:read")...))
		revoked = append(revoked, revocationIDs(t, tok)[1])
		grandchild := k.restrict(tok, goldenNow, attenuation.MaxRecords(5))
		add(gCase{name: "ok/parent-of-revoked-block", desc: "Revoking block 1 of a child does not revoke the token it was attenuated from.",
			token: parent,
			reqs:  []gReq{q("crm/contacts", "read")}})
		add(gCase{name: name, desc: "Block 1's revocation id is revoked.",
			token: tok,
			reqs:  []gReq{q("crm/contacts", "read").denied(revokedR)}})
		add(gCase{name: "fail/revoked-block-1-descendant", desc: "A token attenuated from one whose block 1 is revoked carries that block: revoked.",
			token: grandchild,
			reqs:  []gReq{q("crm/contacts", "read").denied(revokedR)}})
	}
	{
		name := "fail/revoked-token-id"
		k := kit(name)
		c := baseClaims()
		c.TokenID = "7e57ab1e0000000000000000deadbeef"
		tok := m1(k, c)
		revoked = append(revoked, c.TokenID)
		add(gCase{name: name, desc: "The token id " + c.TokenID + " is revoked; revocation wins over check failures.",
			token: tok,
			reqs: []gReq{
				q("crm/contacts", "read").denied(revokedR),
				q("crm/contacts", "read").when(goldenNow.Add(time.Hour)).denied(revokedR),
			}})
		add(gCase{name: "fail/revoked-token-id-attenuated", desc: "Attenuation keeps the token id: still revoked.",
			token: k.restrict(tok, goldenNow, attenuation.MaxRecords(5)),
			reqs:  []gReq{q("crm/contacts", "read").denied(revokedR)}})
	}
	return cs, revoked
}
