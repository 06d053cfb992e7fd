package mint

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"
	"github.com/biscuit-auth/biscuit-go/v2/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/attenuation/attenuationtest"
	"github.com/writ-dev/writ/spec"
)

const (
	td        = "spiffe://acme.example"
	issuerID  = td + "/writ"
	agentID   = td + "/agents/support"
	crmID     = td + "/svc/crm"
	policyVer = "sha256:9c1e000000000000000000000000000000000000000000000000000000000001"
	tokenID   = "5f0c0000000000000000000000000001"
)

var issuedAt = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func testKey(t testing.TB) Key {
	t.Helper()
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	return Key{ID: 42, Private: ed25519.NewKeyFromSeed(seed)}
}

func (k Key) public() ed25519.PublicKey { return k.Private.Public().(ed25519.PublicKey) }

// fullClaims uses every optional field.
func fullClaims() Claims {
	return Claims{
		TokenID:       tokenID,
		Issuer:        issuerID,
		Agent:         agentID,
		IssuedAt:      issuedAt.Add(300 * time.Millisecond),
		Expiry:        issuedAt.Add(5*time.Minute + 900*time.Millisecond),
		PolicyVersion: policyVer,
		Rights: []spec.Right{
			{Resource: "crm/contacts", Operation: "read"},
			{Resource: "crm/notes/*", Operation: "read"},
		},
		Presenters: []string{agentID},
		MaxRecords: 100,
		Fields:     []string{"name", "email"},
		Windows:    [][]spec.TimeWindow{{{Zone: "Europe/Paris", Days: []time.Weekday{5, 1, 2, 3, 4}, From: 540, To: 1080}}},
		Services:   []string{crmID},
	}
}

// windowSetsClaims has two window sets, the first of two windows in two
// zones: (Mon–Fri 09:00–18:00 Paris or Sat 10:00–14:00 Tokyo) and every
// day 00:00–16:00 UTC. It expires three days after issuedAt.
func windowSetsClaims() Claims {
	c := minimalClaims()
	c.Expiry = issuedAt.Add(72 * time.Hour)
	c.Windows = [][]spec.TimeWindow{
		{
			{Zone: "Europe/Paris", Days: []time.Weekday{1, 2, 3, 4, 5}, From: 540, To: 1080},
			{Zone: "Asia/Tokyo", Days: []time.Weekday{time.Saturday}, From: 600, To: 840},
		},
		{{Zone: "UTC", From: 0, To: 960}},
	}
	return c
}

// stalenessClaims bounds the verifier's revocation staleness at 2.5 s
// (given with a sub-millisecond part, which is dropped) and names a
// service, whose check comes before it.
func stalenessClaims() Claims {
	c := minimalClaims()
	c.Services = []string{crmID}
	c.MaxStaleness = 2500*time.Millisecond + 900*time.Microsecond
	return c
}

func minimalClaims() Claims {
	return Claims{
		TokenID:       tokenID,
		Issuer:        issuerID,
		Agent:         agentID,
		IssuedAt:      issuedAt,
		Expiry:        issuedAt.Add(5 * time.Minute),
		PolicyVersion: policyVer,
		Rights:        []spec.Right{{Resource: "crm/contacts", Operation: "read"}},
	}
}

func TestMintFollowsSpecShape(t *testing.T) {
	key := testKey(t)
	for _, tc := range []struct {
		name       string
		claims     Claims
		wantFacts  []string
		wantChecks []string
	}{
		{
			name:   "ok/every-claim",
			claims: fullClaims(),
			wantFacts: []string{
				`writ_version(1)`,
				`token_id("5f0c0000000000000000000000000001")`,
				`issuer("spiffe://acme.example/writ")`,
				`agent("spiffe://acme.example/agents/support")`,
				`issued_at(2026-11-27T10:00:00Z)`,
				`policy_version("` + policyVer + `")`,
				`right("crm/contacts", "read")`,
				`right_prefix("crm/notes/", "read")`,
			},
			wantChecks: []string{
				`check if time($t), $t <= 2026-11-27T10:05:00Z`,
				`check if presenter($p), ["spiffe://acme.example/agents/support"].contains($p)`,
				`check if records($n), $n <= 100`,
				`check if fields($f), ["email", "name"].contains($f)`,
				`check if local_time("Europe/Paris", $d, $m), [1, 2, 3, 4, 5].contains($d), $m >= 540, $m < 1080`,
				`check if service($s), ["spiffe://acme.example/svc/crm"].contains($s)`,
			},
		},
		{
			name:   "ok/window-sets",
			claims: windowSetsClaims(),
			wantFacts: []string{
				`writ_version(1)`,
				`token_id("5f0c0000000000000000000000000001")`,
				`issuer("spiffe://acme.example/writ")`,
				`agent("spiffe://acme.example/agents/support")`,
				`issued_at(2026-11-27T10:00:00Z)`,
				`policy_version("` + policyVer + `")`,
				`right("crm/contacts", "read")`,
			},
			wantChecks: []string{
				`check if time($t), $t <= 2026-11-30T10:00:00Z`,
				`check if local_time("Europe/Paris", $d, $m), [1, 2, 3, 4, 5].contains($d), $m >= 540, $m < 1080` +
					` or local_time("Asia/Tokyo", $d, $m), [6].contains($d), $m >= 600, $m < 840`,
				`check if local_time("UTC", $d, $m), [0, 1, 2, 3, 4, 5, 6].contains($d), $m >= 0, $m < 960`,
			},
		},
		{
			name:   "ok/max-staleness",
			claims: stalenessClaims(),
			wantFacts: []string{
				`writ_version(1)`,
				`token_id("5f0c0000000000000000000000000001")`,
				`issuer("spiffe://acme.example/writ")`,
				`agent("spiffe://acme.example/agents/support")`,
				`issued_at(2026-11-27T10:00:00Z)`,
				`policy_version("` + policyVer + `")`,
				`right("crm/contacts", "read")`,
			},
			wantChecks: []string{
				`check if time($t), $t <= 2026-11-27T10:05:00Z`,
				`check if service($s), ["spiffe://acme.example/svc/crm"].contains($s)`,
				`check if revocation_age($a), $a <= 2500`,
			},
		},
		{
			name:   "ok/minimal",
			claims: minimalClaims(),
			wantFacts: []string{
				`writ_version(1)`,
				`token_id("5f0c0000000000000000000000000001")`,
				`issuer("spiffe://acme.example/writ")`,
				`agent("spiffe://acme.example/agents/support")`,
				`issued_at(2026-11-27T10:00:00Z)`,
				`policy_version("` + policyVer + `")`,
				`right("crm/contacts", "read")`,
			},
			wantChecks: []string{
				`check if time($t), $t <= 2026-11-27T10:05:00Z`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, id, err := Mint(rand.NewChaCha8([32]byte{1}), key, tc.claims)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			if id != tokenID {
				t.Errorf("token id: got %q, want %q", id, tokenID)
			}
			blocks, rootKeyID, err := attenuationtest.Datalog(tok)
			if err != nil {
				t.Fatal(err)
			}
			if len(blocks) != 1 {
				t.Fatalf("blocks: got %d, want 1", len(blocks))
			}
			if rootKeyID == nil || *rootKeyID != key.ID {
				t.Errorf("rootKeyId: got %v, want %d", rootKeyID, key.ID)
			}
			if got := blocks[0].Facts; !slices.Equal(got, tc.wantFacts) {
				t.Errorf("facts:\ngot  %q\nwant %q", got, tc.wantFacts)
			}
			if got := blocks[0].Checks; !slices.Equal(got, tc.wantChecks) {
				t.Errorf("checks:\ngot  %q\nwant %q", got, tc.wantChecks)
			}
			if len(blocks[0].Rules) != 0 {
				t.Errorf("rules: got %q, want none", blocks[0].Rules)
			}

			// biscuit-go's own printer agrees on the facts, in order.
			b, err := biscuit.Unmarshal(tok)
			if err != nil {
				t.Fatalf("biscuit.Unmarshal: %v", err)
			}
			wantLine := "facts: [" + strings.Join(tc.wantFacts, " ") + "]"
			if s := b.String(); !strings.Contains(s, wantLine) {
				t.Errorf("biscuit-go String() lacks %q:\n%s", wantLine, s)
			}
			// And on the checks, except string sets, which it prints as
			// symbol numbers.
			for _, c := range tc.wantChecks {
				if !strings.Contains(c, `["`) && !strings.Contains(b.String(), c) {
					t.Errorf("biscuit-go String() lacks %q", c)
				}
			}
		})
	}
}

func TestMintVerifiesWithBiscuitGo(t *testing.T) {
	key := testKey(t)
	tok, _, err := Mint(nil, key, fullClaims())
	if err != nil {
		t.Fatal(err)
	}
	b, err := biscuit.Unmarshal(tok)
	if err != nil {
		t.Fatalf("biscuit.Unmarshal: %v", err)
	}
	if _, err := b.Authorizer(key.public()); err != nil {
		t.Errorf("Authorizer(root key): got %v, want signatures to verify", err)
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32)).Public().(ed25519.PublicKey)
	if _, err := b.Authorizer(other); !errors.Is(err, biscuit.ErrInvalidSignature) {
		t.Errorf("Authorizer(other key): got %v, want %v", err, biscuit.ErrInvalidSignature)
	}
	// The token can be attenuated: the proof holds the next secret.
	if _, err := attenuation.Restrict(tok, attenuation.MaxRecords(1)); err != nil {
		t.Errorf("Restrict: %v", err)
	}
}

func TestMintRootKeyIDIsCanonicalField(t *testing.T) {
	for _, id := range []uint32{0, 1, 127, 128, 1<<32 - 1} {
		t.Run(fmt.Sprint(id), func(t *testing.T) {
			key := testKey(t)
			key.ID = id
			tok, _, err := Mint(nil, key, minimalClaims())
			if err != nil {
				t.Fatal(err)
			}
			var c pb.Biscuit
			if err := proto.Unmarshal(tok, &c); err != nil {
				t.Fatalf("pb decode: %v", err)
			}
			if c.RootKeyId == nil || *c.RootKeyId != id {
				t.Fatalf("rootKeyId: got %v, want %d", c.RootKeyId, id)
			}
			// Re-encoding the decoded message gives the same bytes: every
			// field is where a protobuf encoder puts it, nothing unknown.
			again, err := proto.MarshalOptions{Deterministic: true}.Marshal(&c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, tok) {
				t.Errorf("re-encoded container differs:\ngot  %x\nwant %x", again, tok)
			}
			if len(c.ProtoReflect().GetUnknown()) != 0 {
				t.Errorf("unknown fields: %x", c.ProtoReflect().GetUnknown())
			}
		})
	}
}

// bareMint builds the same token with biscuit-go's builder.
func bareMint(t testing.TB, rng io.Reader, key Key, c Claims) []byte {
	t.Helper()
	v, err := validate(c)
	if err != nil {
		t.Fatal(err)
	}
	b := biscuit.NewBuilder(key.Private, biscuit.WithRandom(rng))
	add := func(name string, terms ...biscuit.Term) {
		if err := b.AddAuthorityFact(fact(name, terms...)); err != nil {
			t.Fatal(err)
		}
	}
	add(spec.FactWritVersion, biscuit.Integer(spec.TokenVersion))
	add(spec.FactTokenID, biscuit.String(c.TokenID))
	add(spec.FactIssuer, biscuit.String(c.Issuer))
	add(spec.FactAgent, biscuit.String(c.Agent))
	add(spec.FactIssuedAt, biscuit.Date(v.issuedAt))
	add(spec.FactPolicyVersion, biscuit.String(c.PolicyVersion))
	for _, r := range v.rights {
		if r.IsPrefix() {
			add(spec.FactRightPrefix, biscuit.String(r.Prefix()), biscuit.String(r.Operation))
		} else {
			add(spec.FactRight, biscuit.String(r.Resource), biscuit.String(r.Operation))
		}
	}
	for _, ch := range v.checks {
		if err := b.AddAuthorityCheck(ch); err != nil {
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
	return out
}

// largeClaims has long strings, many rights and large sets, so that
// messages need multi-byte lengths.
func largeClaims() Claims {
	c := fullClaims()
	c.Rights = nil
	for i := range 100 {
		c.Rights = append(c.Rights, spec.Right{Resource: fmt.Sprintf("crm/%s/%d/*", strings.Repeat("x", i), i), Operation: "read"})
	}
	c.Fields = nil
	for i := range 64 {
		c.Fields = append(c.Fields, fmt.Sprintf("field-%02d-%s", i, strings.Repeat("y", 20)))
	}
	c.Presenters = []string{agentID, td + "/" + strings.Repeat("p", 300)}
	c.MaxRecords = 1 << 40
	return c
}

func TestMintMatchesBiscuitGoBuilder(t *testing.T) {
	key := testKey(t)
	seed := bytes.Repeat([]byte{0xa5}, 32)
	for name, c := range map[string]Claims{
		"ok/minimal":       minimalClaims(),
		"ok/every-claim":   fullClaims(),
		"ok/window-sets":   windowSetsClaims(),
		"ok/max-staleness": stalenessClaims(),
		"ok/large":         largeClaims(),
	} {
		t.Run(name, func(t *testing.T) {
			got, _, err := Mint(bytes.NewReader(seed), key, c)
			if err != nil {
				t.Fatal(err)
			}
			bare := bareMint(t, bytes.NewReader(seed), key, c)
			want := protowire.AppendTag(nil, 1, protowire.VarintType)
			want = protowire.AppendVarint(want, uint64(key.ID))
			want = append(want, bare...)
			if !bytes.Equal(got, want) {
				t.Errorf("Mint differs from biscuit-go's builder + rootKeyId:\ngot  %x\nwant %x", got, want)
			}
		})
	}
}

func TestMintAuthorizesWithBiscuitGo(t *testing.T) {
	key := testKey(t)
	tok, _, err := Mint(nil, key, fullClaims())
	if err != nil {
		t.Fatal(err)
	}
	// Friday 2026-11-27 10:01 UTC is 11:01 in Paris, inside the window
	// Mon-Fri 09:00-18:00; the token was issued at 10:00 and expires 10:05.
	inside := time.Date(2026, 11, 27, 10, 1, 0, 0, time.UTC)
	ok := attenuationtest.Request{
		Time: inside, Resource: "crm/contacts", Operation: "read",
		Presenter: agentID, Service: crmID, Records: 10, Fields: []string{"email"},
	}
	for _, tc := range []struct {
		name  string
		edit  func(r *attenuationtest.Request)
		allow bool
	}{
		{"ok/exact-right", func(r *attenuationtest.Request) {}, true},
		{"ok/prefix-right", func(r *attenuationtest.Request) { r.Resource = "crm/notes/7" }, true},
		{"ok/at-expiry", func(r *attenuationtest.Request) { r.Time = issuedAt.Add(5 * time.Minute) }, true},
		{"ok/service-applies-limits", func(r *attenuationtest.Request) { r.Records = 0; r.Fields = nil }, true},
		{"fail/not-granted-resource", func(r *attenuationtest.Request) { r.Resource = "crm/contacts/1" }, false},
		{"fail/not-granted-operation", func(r *attenuationtest.Request) { r.Operation = "write" }, false},
		{"fail/prefix-is-not-a-resource", func(r *attenuationtest.Request) { r.Resource = "crm/notes" }, false},
		{"fail/expired", func(r *attenuationtest.Request) { r.Time = issuedAt.Add(5*time.Minute + time.Second) }, false},
		{"fail/presenter-mismatch", func(r *attenuationtest.Request) { r.Presenter = td + "/agents/other" }, false},
		{"fail/presenter-unknown", func(r *attenuationtest.Request) { r.Presenter = "" }, false},
		{"fail/service-mismatch", func(r *attenuationtest.Request) { r.Service = td + "/svc/hr" }, false},
		{"fail/too-many-records", func(r *attenuationtest.Request) { r.Records = 101 }, false},
		{"fail/field-not-allowed", func(r *attenuationtest.Request) { r.Fields = []string{"email", "ssn"} }, false},
		{"fail/outside-window", func(r *attenuationtest.Request) {
			r.Time = time.Date(2026, 11, 27, 9, 59, 0, 0, time.UTC).Add(-2 * time.Hour)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := ok
			tc.edit(&req)
			err := attenuationtest.Authorize(tok, key.public(), req)
			if tc.allow && err != nil {
				t.Errorf("got %v, want allowed", err)
			}
			if !tc.allow && !errors.Is(err, attenuationtest.ErrDenied) {
				t.Errorf("got %v, want %v", err, attenuationtest.ErrDenied)
			}
		})
	}
}

func TestMintRandomTokenID(t *testing.T) {
	key := testKey(t)
	c := minimalClaims()
	c.TokenID = ""
	rng := rand.NewChaCha8([32]byte{9})
	seen := map[string]bool{}
	for range 8 {
		tok, id, err := Mint(rng, key, c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hex.DecodeString(id); err != nil || len(id) != 32 || strings.ToLower(id) != id {
			t.Errorf("token id %q: want 32 lowercase hex digits", id)
		}
		if seen[id] {
			t.Errorf("token id %q repeated", id)
		}
		seen[id] = true
		blocks, _, err := attenuationtest.Datalog(tok)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := blocks[0].Facts[1], `token_id("`+id+`")`; got != want {
			t.Errorf("fact: got %s, want %s", got, want)
		}
	}
}

func TestMintKeepsClaimsUnchanged(t *testing.T) {
	c := fullClaims()
	c.Fields = []string{"z", "a", "z"}
	before := fmt.Sprintf("%#v", c)
	if _, _, err := Mint(nil, testKey(t), c); err != nil {
		t.Fatal(err)
	}
	if after := fmt.Sprintf("%#v", c); after != before {
		t.Errorf("claims changed:\ngot  %s\nwant %s", after, before)
	}
}

func TestMintRefusesBadInput(t *testing.T) {
	key := testKey(t)
	for _, tc := range []struct {
		name    string
		edit    func(c *Claims, k *Key)
		wantIs  []error
		wantMsg string
	}{
		{"fail/short-key", func(c *Claims, k *Key) { k.Private = k.Private[:32] },
			[]error{ErrBadKey}, "mint: bad key: private key is 32 bytes, want 64"},
		{"fail/token-id-upper-case", func(c *Claims, k *Key) { c.TokenID = strings.ToUpper(tokenID) },
			[]error{ErrBadClaims}, `mint: bad claims: token id "5F0C0000000000000000000000000001": want 32 lowercase hex digits`},
		{"fail/token-id-short", func(c *Claims, k *Key) { c.TokenID = "abc" },
			[]error{ErrBadClaims}, `mint: bad claims: token id "abc": want 32 lowercase hex digits`},
		{"fail/issuer-not-spiffe", func(c *Claims, k *Key) { c.Issuer = "https://acme.example/writ" },
			[]error{ErrBadClaims}, `mint: bad claims: issuer "https://acme.example/writ": scheme is missing or invalid`},
		{"fail/agent-empty", func(c *Claims, k *Key) { c.Agent = "" },
			[]error{ErrBadClaims}, `mint: bad claims: agent "": cannot be empty`},
		{"fail/issued-at-zero", func(c *Claims, k *Key) { c.IssuedAt = time.Time{} },
			[]error{ErrBadClaims}, "mint: bad claims: issued-at 0001-01-01T00:00:00Z is not after the Unix epoch"},
		{"fail/expiry-equals-issued-at-after-rounding", func(c *Claims, k *Key) { c.Expiry = issuedAt.Add(999 * time.Millisecond) },
			[]error{ErrBadClaims}, "mint: bad claims: expiry 2026-11-27T10:00:00Z is not after issued-at 2026-11-27T10:00:00Z"},
		{"fail/expiry-before-issued-at", func(c *Claims, k *Key) { c.Expiry = issuedAt.Add(-time.Hour) },
			[]error{ErrBadClaims}, "mint: bad claims: expiry 2026-11-27T09:00:00Z is not after issued-at 2026-11-27T10:00:00Z"},
		{"fail/policy-version-bare-hex", func(c *Claims, k *Key) { c.PolicyVersion = strings.TrimPrefix(policyVer, "sha256:") },
			[]error{ErrBadClaims}, `mint: bad claims: policy version "9c1e000000000000000000000000000000000000000000000000000000000001": want "sha256:" and 64 lowercase hex digits`},
		{"fail/no-rights", func(c *Claims, k *Key) { c.Rights = nil },
			[]error{ErrBadClaims}, "mint: bad claims: no rights"},
		{"fail/bad-right", func(c *Claims, k *Key) {
			c.Rights = append(c.Rights, spec.Right{Resource: "crm/*/x", Operation: "read"})
		},
			[]error{ErrBadClaims, spec.ErrBadRight}, `mint: bad claims: right 2: spec: bad right: resource "crm/*/x": '*' is only allowed as a final "/*" after a non-empty prefix`},
		{"fail/too-many-rights", func(c *Claims, k *Key) {
			c.Rights = nil
			for i := range MaxRights + 1 {
				c.Rights = append(c.Rights, spec.Right{Resource: fmt.Sprint("r", i), Operation: "read"})
			}
		}, []error{ErrLimitExceeded}, "mint: limit exceeded: 123 rights, at most 122"},
		{"fail/negative-records", func(c *Claims, k *Key) { c.MaxRecords = -1 },
			[]error{ErrBadClaims}, "mint: bad claims: max records -1 is negative"},
		{"fail/negative-max-staleness", func(c *Claims, k *Key) { c.MaxStaleness = -time.Second },
			[]error{ErrBadClaims}, "mint: bad claims: max staleness -1s is negative"},
		{"fail/max-staleness-below-a-millisecond", func(c *Claims, k *Key) { c.MaxStaleness = 999 * time.Microsecond },
			[]error{ErrBadClaims, attenuation.ErrBadRestriction}, "mint: bad claims: attenuation: bad restriction: MaxStaleness: bound 999µs, want 1ms to 24h0m0s"},
		{"fail/max-staleness-too-long", func(c *Claims, k *Key) { c.MaxStaleness = 24*time.Hour + time.Millisecond },
			[]error{ErrBadClaims, attenuation.ErrBadRestriction}, "mint: bad claims: attenuation: bad restriction: MaxStaleness: bound 24h0m0.001s, want 1ms to 24h0m0s"},
		{"fail/bad-presenter", func(c *Claims, k *Key) { c.Presenters = []string{"spiffe://acme.example/a/"} },
			[]error{ErrBadClaims, attenuation.ErrBadRestriction}, `mint: bad claims: attenuation: bad restriction: BindPresenters: SPIFFE ID 0 "spiffe://acme.example/a/": path cannot have a trailing slash`},
		{"fail/bad-window", func(c *Claims, k *Key) { c.Windows[0][0].To = 1441 },
			[]error{ErrBadClaims, attenuation.ErrBadRestriction, spec.ErrBadWindow}, "mint: bad claims: window set 0: attenuation: bad restriction: AnyWindow: window 0: spec: bad time window: want 0 <= from < to <= 1440, got 540..1441"},
		{"fail/bad-second-window-of-set", func(c *Claims, k *Key) {
			c.Windows = append(c.Windows, []spec.TimeWindow{{Zone: "UTC", From: 0, To: 60}, {Zone: "Mars/Olympus", From: 0, To: 60}})
		},
			[]error{ErrBadClaims, attenuation.ErrBadRestriction, spec.ErrBadWindow}, `mint: bad claims: window set 1: attenuation: bad restriction: AnyWindow: window 1: spec: bad time window: zone "Mars/Olympus": unknown time zone Mars/Olympus`},
		{"fail/empty-window-set", func(c *Claims, k *Key) { c.Windows = append(c.Windows, nil) },
			[]error{ErrBadClaims, attenuation.ErrBadRestriction}, "mint: bad claims: window set 1: attenuation: bad restriction: AnyWindow: no windows"},
		{"fail/too-many-windows-in-set", func(c *Claims, k *Key) {
			var set []spec.TimeWindow
			for i := range attenuation.MaxWindows + 1 {
				set = append(set, spec.TimeWindow{Zone: "UTC", From: i, To: i + 1})
			}
			c.Windows = append(c.Windows, set)
		}, []error{ErrBadClaims, attenuation.ErrBadRestriction}, "mint: bad claims: window set 1: attenuation: bad restriction: AnyWindow: 9 windows, at most 8"},
		{"fail/too-many-zones", func(c *Claims, k *Key) {
			for _, z := range []string{"UTC", "Asia/Tokyo", "America/New_York", "Europe/London"} {
				c.Windows = append(c.Windows, []spec.TimeWindow{{Zone: z, From: 0, To: 1440}})
			}
		}, []error{ErrLimitExceeded}, "mint: limit exceeded: 5 distinct time zones, at most 4"},
		{"fail/too-many-zones-in-one-set", func(c *Claims, k *Key) {
			for _, z := range []string{"UTC", "Asia/Tokyo", "America/New_York", "Europe/London"} {
				c.Windows[0] = append(c.Windows[0], spec.TimeWindow{Zone: z, From: 0, To: 1440})
			}
		}, []error{ErrLimitExceeded}, "mint: limit exceeded: 5 distinct time zones, at most 4"},
		{"fail/too-many-checks", func(c *Claims, k *Key) {
			for range 27 {
				c.Windows = append(c.Windows, c.Windows[0])
			}
		}, []error{ErrLimitExceeded}, "mint: limit exceeded: 33 checks, at most 32"},
		{"fail/too-many-symbols", func(c *Claims, k *Key) {
			c.Rights = nil
			for i := range 120 {
				c.Rights = append(c.Rights, spec.Right{Resource: fmt.Sprint("r", i), Operation: fmt.Sprint("op", i)})
			}
		}, []error{ErrLimitExceeded}, "mint: limit exceeded: 264 symbols in the authority block, at most 256"},
		{"fail/too-large", func(c *Claims, k *Key) {
			c.Rights = nil
			for i := range 40 {
				c.Rights = append(c.Rights, spec.Right{Resource: fmt.Sprintf("%03d%s", i, strings.Repeat("r", 509)), Operation: "read"})
			}
		}, []error{ErrLimitExceeded}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, k := fullClaims(), key
			tc.edit(&c, &k)
			tok, _, err := Mint(nil, k, c)
			if err == nil {
				t.Fatalf("got token of %d bytes, want error", len(tok))
			}
			for _, want := range tc.wantIs {
				if !errors.Is(err, want) {
					t.Errorf("got %v, want it to wrap %v", err, want)
				}
			}
			if tc.wantMsg != "" && err.Error() != tc.wantMsg {
				t.Errorf("got message\n%s\nwant\n%s", err, tc.wantMsg)
			}
		})
	}
}

func TestKeyValidate(t *testing.T) {
	k := testKey(t)
	if err := k.Validate(); err != nil {
		t.Errorf("valid key: got %v, want nil", err)
	}
	bad := Key{Private: slices.Clone(k.Private)}
	bad.Private[40] ^= 1
	if err := bad.Validate(); !errors.Is(err, ErrBadKey) {
		t.Errorf("mismatched key: got %v, want %v", err, ErrBadKey)
	}
	if err := (Key{}).Validate(); !errors.Is(err, ErrBadKey) {
		t.Errorf("empty key: got %v, want %v", err, ErrBadKey)
	}
}

func TestMintFailsOnShortRandom(t *testing.T) {
	c := minimalClaims()
	c.TokenID = ""
	if _, _, err := Mint(bytes.NewReader(make([]byte, 20)), testKey(t), c); err == nil {
		t.Error("got nil error with 20 random bytes, want an error")
	}
}

// Mint shares only immutable tables and a pool between calls.
func TestMintConcurrent(t *testing.T) {
	key := testKey(t)
	want, _, err := Mint(bytes.NewReader(make([]byte, 32)), key, largeClaims())
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range 20 {
				c := fullClaims()
				if (g+i)%2 == 0 {
					c = largeClaims()
				}
				got, _, err := Mint(bytes.NewReader(make([]byte, 32)), key, c)
				if err == nil && (g+i)%2 == 0 && !bytes.Equal(got, want) {
					err = fmt.Errorf("goroutine %d mint %d: token differs from the sequential one", g, i)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestMintMaxStalenessWithBiscuitGo: biscuit-go's authorizer passes the
// max_staleness check only with a revocation_age fact within the bound;
// without the fact (a verifier that tracks no freshness) it fails.
func TestMintMaxStalenessWithBiscuitGo(t *testing.T) {
	key := testKey(t)
	tok, _, err := Mint(nil, key, stalenessClaims())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		has   bool
		ms    int64
		allow bool
	}{
		{"ok/fresh", true, 0, true},
		{"ok/at-bound", true, 2500, true},
		{"fail/beyond-bound", true, 2501, false},
		{"fail/no-freshness-fact", false, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := attenuationtest.Authorize(tok, key.public(), attenuationtest.Request{
				Time: issuedAt.Add(time.Minute), Resource: "crm/contacts", Operation: "read", Service: crmID,
				HasRevocationAge: tc.has, RevocationAgeMS: tc.ms,
			})
			if tc.allow && err != nil {
				t.Errorf("got %v, want allowed", err)
			}
			if !tc.allow && !errors.Is(err, attenuationtest.ErrDenied) {
				t.Errorf("got %v, want %v", err, attenuationtest.ErrDenied)
			}
		})
	}
}
