package verifier

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"
	"github.com/biscuit-auth/biscuit-go/v2/pb"

	"github.com/writ-dev/writ/spec"
)

func TestCanonicalZone(t *testing.T) {
	cases := []struct {
		name string
		want bool
	}{
		{"UTC", true},
		{"Europe/Paris", true},
		{"America/Argentina/Buenos_Aires", true},
		{"Etc/GMT-14", true},
		{"Etc/GMT+5", true},
		{"", false},
		{"Local", false},
		{"Europe/./Paris", false},
		{"./Europe/Paris", false},
		{"Europe//Paris", false},
		{"Europe/Paris/", false},
		{"/Europe/Paris", false},
		{"Europe/../Europe/Paris", false},
		{"posix/Europe/Paris", false},
		{"right/UTC", false},
		{"Europe/Paris\x00", false},
		{"Europe\\Paris", false},
		{"zone.tab", false},
		{"Europe/Pärïs", false},
		{strings.Repeat("A", spec.MaxZoneNameBytes+1), false},
	}
	for _, tc := range cases {
		if got := spec.CanonicalZone(tc.name); got != tc.want {
			t.Errorf("spec.CanonicalZone(%q): got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func zoneCacheLen() int {
	n := 0
	zoneCache.Range(func(_, _ any) bool { n++; return true })
	return n
}

// Tokens naming a zone in many spellings neither grow the zone cache nor
// reach the zone loader: they are refused before evaluation.
func TestZoneSpellingsDoNotGrowCache(t *testing.T) {
	v := coreVerifier(t, func(c *Config) { c.CacheSize = 16 })
	base := authority{}.build(t)
	// Load the canonical zone once so it is in the cache already.
	tok := serialize(t, attenuate(t, base, []biscuit.Check{windowCheck("Europe/Paris", []int64{0, 1, 2, 3, 4, 5, 6}, 0, 1440)}), u32(1))
	if d := v.Authorize(context.Background(), tok, coreReq); !d.Allowed {
		t.Fatalf("canonical zone: got %s (%s), want allowed", d.Reason, d.Message)
	}
	before := zoneCacheLen()
	for i := 1; i <= 200; i++ {
		name := strings.Repeat("./", i%20) + "Europe/" + strings.Repeat("./", i/20) + "Paris"
		if i%3 == 1 {
			name = "Europe/" + strings.Repeat("/", 1+i/3) + "Paris"
		}
		tok := serialize(t, attenuate(t, base, []biscuit.Check{windowCheck(name, []int64{0, 1, 2, 3, 4, 5, 6}, 0, 1440)}), u32(1))
		if d := v.Authorize(context.Background(), tok, coreReq); d.Reason != spec.ReasonUnsupported {
			t.Fatalf("zone %q: got %s (%s), want unsupported", name, d.Reason, d.Message)
		}
	}
	if after := zoneCacheLen(); after != before {
		t.Errorf("got %d cached zones after 200 spellings, want %d", after, before)
	}
	if n := zoneEntries.Load(); n > maxZoneCache || int(n) != zoneCacheLen() {
		t.Errorf("got zoneEntries %d for %d cached zones (limit %d)", n, zoneCacheLen(), maxZoneCache)
	}
}

// loadZone refuses what canonicalZone refuses, whatever compile did.
func TestLoadZoneRefusesNonCanonical(t *testing.T) {
	for _, name := range []string{"Local", "Europe/./Paris", "posix/UTC", ""} {
		if loc := loadZone(name); loc != nil {
			t.Errorf("loadZone(%q): got %v, want nil", name, loc)
		}
	}
	if loc := loadZone("Asia/Tokyo"); loc == nil || loc.String() != "Asia/Tokyo" {
		t.Errorf("loadZone(Asia/Tokyo): got %v, want Asia/Tokyo", loc)
	}
}

// growthFree is the static refusal of growing operators: every table row
// is an expression and whether compile accepts it.
func TestGrowthFree(t *testing.T) {
	i := func(n int64) op { return op{kind: opValue, t: term{val: value{kind: kindInt, num: n}}} }
	s := func(x string) op { return op{kind: opValue, t: term{val: value{kind: kindString, str: x}}} }
	v := op{kind: opValue, t: term{isVar: true}}
	bin := func(k pb.OpBinary_Kind) op { return op{kind: opBinary, code: int32(k)} }
	un := func(k pb.OpUnary_Kind) op { return op{kind: opUnary, code: int32(k)} }
	const (
		add, sub, eq, union, inter = pb.OpBinary_Add, pb.OpBinary_Sub, pb.OpBinary_Equal, pb.OpBinary_Union, pb.OpBinary_Intersection
		length, parens, negate     = pb.OpUnary_Length, pb.OpUnary_Parens, pb.OpUnary_Negate
	)
	cases := []struct {
		name string
		e    []op
		ok   bool
	}{
		{"int-plus-int", []op{i(1), i(2), bin(add)}, true},
		{"var-plus-int", []op{v, i(2), bin(add)}, true},
		{"int-plus-var", []op{i(2), v, bin(add)}, true},
		{"string-plus-int", []op{s("a"), i(1), bin(add)}, true},
		{"length-plus-length", []op{v, un(length), v, un(length), bin(add)}, true},
		{"sum-plus-var", []op{v, i(1), bin(add), v, bin(add)}, true},
		{"difference-plus-var", []op{v, v, bin(sub), v, bin(add)}, true},
		{"var-plus-var", []op{v, v, bin(add)}, false},
		{"string-plus-string", []op{s("a"), s("b"), bin(add)}, false},
		{"var-plus-string", []op{v, s("b"), bin(add)}, false},
		{"parens-keep-unknown", []op{v, un(parens), v, bin(add)}, false},
		{"negate-is-bool", []op{v, un(negate), v, bin(add)}, false},
		{"comparison-is-bool", []op{v, v, bin(eq), v, bin(add)}, false},
		{"union", []op{v, v, bin(union)}, false},
		{"intersection", []op{v, v, bin(inter)}, false},
	}
	for _, tc := range cases {
		err := growthFree(tc.e)
		if (err == nil) != tc.ok {
			t.Errorf("%s: got %v, want accepted=%v", tc.name, err, tc.ok)
		}
	}
}

// Decisions stay small whatever the failing checks hold: at most
// maxFailedChecks, each cut to maxCheckTextBytes.
func TestDecisionSizeBounded(t *testing.T) {
	v := coreVerifier(t, nil)
	big := strings.Repeat("é", 500) // cut on a rune boundary
	var checks []biscuit.Check
	for c := range 20 {
		e := biscuit.Expression{str(big), str(fmt.Sprint(c)), biscuit.BinaryEqual}
		var qs []biscuit.Rule
		for range 8 {
			qs = append(qs, query(nil, e))
		}
		checks = append(checks, checkOf(qs...))
	}
	tok := stdToken(t, authority{}, checks)
	d := v.Authorize(context.Background(), tok, coreReq)
	if d.Reason != spec.ReasonCheckFailed {
		t.Fatalf("got %s (%s), want check_failed", d.Reason, d.Message)
	}
	total := len(d.Message)
	for _, f := range d.FailedChecks {
		total += len(f.Check)
		if !strings.Contains(f.Check, `…"`) {
			t.Errorf("got %.80q…, want cut literals", f.Check)
		}
		for _, r := range f.Check {
			if r == '\uFFFD' {
				t.Fatalf("got invalid UTF-8 in %q", f.Check)
			}
		}
	}
	if len(d.FailedChecks) != maxFailedChecks || !strings.HasPrefix(d.Message, "20 check(s) failed") {
		t.Errorf("got %d failed checks, message %.40q; want %d and a count of 20", len(d.FailedChecks), d.Message, maxFailedChecks)
	}
	if limit := maxFailedChecks*(maxCheckTextBytes+4) + maxMessageCheckBytes + 100; total > limit {
		t.Errorf("got %d bytes of decision text, want at most %d", total, limit)
	}
}

// The middleware's service fact is the verifier's configured Service; a
// route naming another service is denied, not trusted.
func TestMiddlewareServiceFromConfig(t *testing.T) {
	crm := "spiffe://acme.example/svc/crm"
	v := coreVerifier(t, func(c *Config) { c.Service = crm })
	tok := EncodeToken(stdToken(t, authority{}, []biscuit.Check{setCheck("service", crm)}))
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	cases := []struct {
		name    string
		service string
		status  int
		reason  string
	}{
		{"ok/route-names-no-service", "", http.StatusNoContent, ""},
		{"ok/route-names-the-same-service", crm, http.StatusNoContent, ""},
		{"fail/route-names-another-service", "spiffe://acme.example/svc/billing", http.StatusForbidden, spec.ReasonServiceMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			route := func(r *http.Request) (Request, error) {
				return Request{Resource: "crm/contacts", Operation: "read", Service: tc.service}, nil
			}
			rec := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, "/crm/contacts", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			Middleware(v, route)(next).ServeHTTP(rec, r)
			if rec.Code != tc.status {
				t.Fatalf("got status %d (%s), want %d", rec.Code, rec.Body.String(), tc.status)
			}
			if tc.reason != "" && !strings.Contains(rec.Body.String(), `"reason":"`+tc.reason+`"`) {
				t.Errorf("got body %s, want reason %s", rec.Body.String(), tc.reason)
			}
		})
	}
}
