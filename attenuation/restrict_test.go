package attenuation_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"
	"github.com/biscuit-auth/biscuit-go/v2/pb"
	"google.golang.org/protobuf/proto"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/attenuation/attenuationtest"
	"github.com/writ-dev/writ/spec"
)

// fmtCheck prints a check through biscuit-go's own Datalog printer.
func fmtCheck(t testing.TB, c biscuit.Check) string {
	t.Helper()
	// Appending to a throwaway token and printing its block is the only
	// way to reach biscuit-go's printer from a biscuit.Check.
	tok, err := biscuit.Unmarshal(original{rights: []spec.Right{{Resource: "x", Operation: "y"}}}.build(t, nil))
	if err != nil {
		return err.Error()
	}
	bb := tok.CreateBlock()
	if err := bb.AddCheck(c); err != nil {
		return err.Error()
	}
	next, err := tok.Append(rand.Reader, bb.Build())
	if err != nil {
		return err.Error()
	}
	return strings.Join(next.Code(), "\n")
}

func TestRestrictKeepsInputUnchanged(t *testing.T) {
	tok := baseToken(t)
	before := bytes.Clone(tok)
	out, err := attenuation.Restrict(tok, attenuation.MaxRecords(3), attenuation.OnlyFields("name"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tok, before) {
		t.Fatal("Restrict modified its input")
	}
	// The output shares no memory with the input.
	for i := range out {
		out[i] = 0
	}
	if !bytes.Equal(tok, before) {
		t.Fatal("the output aliases the input")
	}
}

func TestRestrictKeepsRootKeyID(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   *uint32
	}{
		{"ok/absent", nil},
		{"ok/zero", ptr[uint32](0)},
		{"ok/one-byte", ptr[uint32](7)},
		{"ok/multi-byte", ptr[uint32](300)},
		{"ok/max", ptr[uint32](1<<32 - 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := original{rootKeyID: tc.id, rights: []spec.Right{{Resource: "a", Operation: "read"}}}.build(t, nil)
			out := tok
			for range 2 {
				var err error
				if out, err = attenuation.Restrict(out, attenuation.MaxRecords(1)); err != nil {
					t.Fatal(err)
				}
				var c pb.Biscuit
				if err := proto.Unmarshal(out, &c); err != nil {
					t.Fatal(err)
				}
				switch {
				case tc.id == nil && c.RootKeyId != nil:
					t.Errorf("rootKeyId: got %d, want absent", *c.RootKeyId)
				case tc.id != nil && (c.RootKeyId == nil || *c.RootKeyId != *tc.id):
					t.Errorf("rootKeyId: got %v, want %d", c.RootKeyId, *tc.id)
				}
				again, err := proto.MarshalOptions{Deterministic: true}.Marshal(&c)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(again, out) {
					t.Error("the output is not in protobuf field order")
				}
			}
		})
	}
}

func TestRestrictAttenuatedTwice(t *testing.T) {
	now := issuedAt.Add(time.Minute)
	r := attenuation.Restricter{Now: fixedClock(now)}
	one, err := r.Restrict(baseToken(t),
		attenuation.OnlyRights(spec.Right{Resource: "crm/notes/*", Operation: "read"}),
		attenuation.BindPresenters(helperID))
	if err != nil {
		t.Fatal(err)
	}
	two, err := r.Restrict(one, attenuation.MaxRecords(10), attenuation.ExpireIn(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	blocks, id, err := attenuationtest.Datalog(two)
	if err != nil {
		t.Fatal(err)
	}
	if id == nil || *id != 7 {
		t.Errorf("rootKeyId: got %v, want 7", id)
	}
	want := [][]string{
		{`check if time($t), $t <= 2026-11-27T10:05:00Z`},
		{`check if resource($r), operation("read"), $r.starts_with("crm/notes/")`,
			`check if presenter($p), ["spiffe://acme.example/agents/summarizer"].contains($p)`},
		{`check if records($n), $n <= 10`, `check if time($t), $t <= 2026-11-27T10:03:00Z`},
	}
	if len(blocks) != len(want) {
		t.Fatalf("blocks: got %d, want %d", len(blocks), len(want))
	}
	for i, b := range blocks {
		if !slices.Equal(b.Checks, want[i]) {
			t.Errorf("block %d checks:\ngot  %q\nwant %q", i, b.Checks, want[i])
		}
	}
	b, err := biscuit.Unmarshal(two)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authorizer(rootPub); err != nil {
		t.Errorf("signature chain: %v", err)
	}

	ok := attenuationtest.Request{Time: now, Resource: "crm/notes/1", Operation: "read", Presenter: helperID, Records: 10}
	for _, tc := range []struct {
		name  string
		edit  func(*attenuationtest.Request)
		token []byte
		allow bool
	}{
		{"ok/attenuated-twice", func(*attenuationtest.Request) {}, two, true},
		{"fail/first-block-rights", func(r *attenuationtest.Request) { r.Resource = "crm/contacts" }, two, false},
		{"ok/original-allows-contacts", func(r *attenuationtest.Request) { r.Resource = "crm/contacts"; r.Presenter = "" }, baseToken(t), true},
		{"fail/first-block-presenter", func(r *attenuationtest.Request) { r.Presenter = agentID }, two, false},
		{"fail/second-block-records", func(r *attenuationtest.Request) { r.Records = 11 }, two, false},
		{"ok/first-block-allows-records", func(r *attenuationtest.Request) { r.Records = 11 }, one, true},
		{"fail/second-block-expiry", func(r *attenuationtest.Request) { r.Time = now.Add(2*time.Minute + time.Second) }, two, false},
		{"fail/authority-expiry", func(r *attenuationtest.Request) { r.Time = issuedAt.Add(6 * time.Minute) }, one, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := ok
			tc.edit(&req)
			err := attenuationtest.Authorize(tc.token, rootPub, req)
			if tc.allow && err != nil {
				t.Errorf("got %v, want allowed", err)
			}
			if !tc.allow && !errors.Is(err, attenuationtest.ErrDenied) {
				t.Errorf("got %v, want %v", err, attenuationtest.ErrDenied)
			}
		})
	}
}

func TestRestrictRefuses(t *testing.T) {
	base := baseToken(t)
	sealed := func() []byte {
		b, err := biscuit.Unmarshal(base)
		if err != nil {
			t.Fatal(err)
		}
		s, err := b.Seal(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}()
	deep := base
	for range attenuation.MaxBlocks - 1 {
		var err error
		if deep, err = attenuation.Restrict(deep, attenuation.MaxRecords(1)); err != nil {
			t.Fatal(err)
		}
	}
	zones := func(names ...string) []attenuation.Restriction {
		var rs []attenuation.Restriction
		for _, z := range names {
			rs = append(rs, attenuation.Window(spec.TimeWindow{Zone: z, From: 0, To: 1440}))
		}
		return rs
	}
	// A token already naming three zones, in its authority block and in an
	// attenuation block.
	withZones := original{
		rights: []spec.Right{{Resource: "a", Operation: "read"}},
		checks: []attenuation.Restriction{attenuation.Window(spec.TimeWindow{Zone: "UTC", From: 0, To: 1440})},
	}.build(t, nil)
	withZones, err := attenuation.Restrict(withZones, zones("America/New_York", "Europe/London", "UTC")...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attenuation.Restrict(withZones, zones("UTC", "Europe/London")...); err != nil {
		t.Errorf("zones already named: got %v, want nil", err)
	}
	if _, err := attenuation.Restrict(withZones, attenuation.AnyWindow(manyWindows(8, "UTC", "Europe/London", "Asia/Tokyo")...)); err != nil {
		t.Errorf("one new zone in AnyWindow: got %v, want nil", err)
	}
	many := func(n int) []attenuation.Restriction {
		return slices.Repeat([]attenuation.Restriction{attenuation.MaxRecords(1)}, n)
	}
	bigFields := func() []attenuation.Restriction {
		var rs []attenuation.Restriction
		for i := range 5 {
			var fs []string
			for j := range attenuation.MaxSetElements {
				fs = append(fs, fmt.Sprintf("%d-%d", i, j))
			}
			rs = append(rs, attenuation.OnlyFields(fs...))
		}
		return rs
	}
	longFields := func() []attenuation.Restriction {
		var rs []attenuation.Restriction
		for i := range 20 {
			rs = append(rs, attenuation.OnlyFields(fmt.Sprint(i)+strings.Repeat("f", 1000)))
		}
		return rs
	}
	for _, tc := range []struct {
		name    string
		token   []byte
		rs      []attenuation.Restriction
		wantIs  error
		wantMsg string
	}{
		{"fail/no-restrictions", base, nil, attenuation.ErrNoRestrictions, "attenuation: no restrictions"},
		{"fail/sealed", sealed, many(1), attenuation.ErrSealed, "attenuation: token is sealed"},
		{"fail/empty-token", nil, many(1), attenuation.ErrMalformed, ""},
		{"fail/garbage", []byte("not a token"), many(1), attenuation.ErrMalformed, ""},
		{"fail/truncated", base[:len(base)-10], many(1), attenuation.ErrMalformed, ""},
		{"fail/too-many-blocks", deep, many(1), attenuation.ErrLimitExceeded,
			"attenuation: limit exceeded: the attenuated token would have 17 blocks, at most 16"},
		{"fail/too-many-restrictions", base, many(attenuation.MaxChecksPerBlock + 1), attenuation.ErrLimitExceeded,
			"attenuation: limit exceeded: 33 restrictions in one block, at most 32"},
		{"fail/too-many-zones", base, zones("UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York", "Europe/Paris", "Europe/London"),
			attenuation.ErrLimitExceeded, "attenuation: limit exceeded: the attenuated token would name 5 distinct time zones, at most 4"},
		{"fail/too-many-zones-with-token", withZones, zones("Europe/Paris", "Asia/Tokyo"),
			attenuation.ErrLimitExceeded, "attenuation: limit exceeded: the attenuated token would name 5 distinct time zones, at most 4"},
		{"fail/too-many-zones-any-window-with-token", withZones,
			[]attenuation.Restriction{attenuation.AnyWindow(
				spec.TimeWindow{Zone: "UTC", From: 0, To: 60},
				spec.TimeWindow{Zone: "Europe/Paris", From: 0, To: 60},
				spec.TimeWindow{Zone: "Asia/Tokyo", From: 0, To: 60})},
			attenuation.ErrLimitExceeded, "attenuation: limit exceeded: the attenuated token would name 5 distinct time zones, at most 4"},
		{"fail/too-many-zones-any-windows", base, []attenuation.Restriction{
			attenuation.AnyWindow(manyWindows(4, "UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York")...),
			attenuation.AnyWindow(spec.TimeWindow{Zone: "Europe/London", From: 0, To: 60})},
			attenuation.ErrLimitExceeded, "attenuation: limit exceeded: the attenuated token would name 5 distinct time zones, at most 4"},
		{"fail/too-many-symbols", base, bigFields(), attenuation.ErrLimitExceeded,
			"attenuation: limit exceeded: 322 new symbols in one block, at most 256"},
		{"fail/too-large-input", make([]byte, attenuation.MaxTokenBytes+1), many(1), attenuation.ErrLimitExceeded,
			"attenuation: limit exceeded: input token is 16385 bytes, at most 16384"},
		{"fail/too-large-output", base, longFields(), attenuation.ErrLimitExceeded, ""},
		{"fail/zero-restriction", base, []attenuation.Restriction{{}}, attenuation.ErrBadRestriction,
			"restriction 0: attenuation: bad restriction: zero Restriction"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before []byte
			if tc.token != nil {
				before = bytes.Clone(tc.token)
			}
			out, err := attenuation.Restrict(tc.token, tc.rs...)
			if out != nil || !errors.Is(err, tc.wantIs) {
				t.Fatalf("got %d bytes, %v; want nil, %v", len(out), err, tc.wantIs)
			}
			if tc.wantMsg != "" && err.Error() != tc.wantMsg {
				t.Errorf("got message\n%s\nwant\n%s", err, tc.wantMsg)
			}
			if tc.token != nil && !bytes.Equal(tc.token, before) {
				t.Error("Restrict modified its input")
			}
		})
	}
}

func TestRestrictUsesInjectedClock(t *testing.T) {
	for _, now := range []time.Time{issuedAt, issuedAt.Add(time.Hour + 500*time.Millisecond)} {
		out, err := attenuation.Restricter{Now: fixedClock(now)}.Restrict(baseToken(t), attenuation.ExpireIn(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		blocks, _, err := attenuationtest.Datalog(out)
		if err != nil {
			t.Fatal(err)
		}
		want := "check if time($t), $t <= " + now.Add(time.Minute).Truncate(time.Second).Format(time.RFC3339)
		if got := blocks[1].Checks[0]; got != want {
			t.Errorf("Now %s: got %s, want %s", now, got, want)
		}
	}
}

// The checks Check returns read the same through biscuit-go's printer
// (string sets aside, which it prints as symbol numbers).
func TestCheckPrintsLikeSpecThroughBiscuitGo(t *testing.T) {
	for _, tc := range []struct {
		r    attenuation.Restriction
		want string
	}{
		{attenuation.OnlyRights(spec.Right{Resource: "a", Operation: "read"}, spec.Right{Resource: "b/*", Operation: "read"}),
			`check if resource("a"), operation("read") or resource($r), operation("read"), $r.starts_with("b/")`},
		{attenuation.ExpireBy(issuedAt), `check if time($t), $t <= 2026-11-27T10:00:00Z`},
		{attenuation.MaxRecords(100), `check if records($n), $n <= 100`},
		{attenuation.Window(spec.TimeWindow{Zone: "Europe/Paris", Days: []time.Weekday{1, 2}, From: 540, To: 1080}),
			`check if local_time("Europe/Paris", $d, $m), [1, 2].contains($d), $m >= 540, $m < 1080`},
		{attenuation.AnyWindow(
			spec.TimeWindow{Zone: "Europe/Paris", Days: []time.Weekday{1, 2}, From: 540, To: 1080},
			spec.TimeWindow{Zone: "UTC", Days: []time.Weekday{6}, From: 600, To: 840}),
			`check if local_time("Europe/Paris", $d, $m), [1, 2].contains($d), $m >= 540, $m < 1080 or local_time("UTC", $d, $m), [6].contains($d), $m >= 600, $m < 840`},
	} {
		c, err := tc.r.Check(issuedAt)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmtCheck(t, c); !strings.Contains(got, tc.want) {
			t.Errorf("biscuit-go prints\n%s\nwant it to contain\n%s", got, tc.want)
		}
	}
}
