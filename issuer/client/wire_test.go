package client

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/issuer"
	"github.com/writ-dev/writ/spec"
)

// jsonNames returns the JSON member names of struct type t.
func jsonNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// TestWireMatchesIssuer holds the client's copies of the wire structs to
// the issuer's: same members, and values survive the trip both ways.
func TestWireMatchesIssuer(t *testing.T) {
	for _, tc := range []struct {
		name          string
		ours, issuers any
	}{
		{"request", tokenRequest{}, issuer.TokenRequest{}},
		{"response", tokenResponse{}, issuer.TokenResponse{}},
		{"problem", problemBody{}, issuer.Problem{}},
		{"denied-right", DeniedRight{}, issuer.DeniedRight{}},
	} {
		t.Run("ok/members-"+tc.name, func(t *testing.T) {
			got, want := jsonNames(reflect.TypeOf(tc.ours)), jsonNames(reflect.TypeOf(tc.issuers))
			if !slices.Equal(got, want) {
				t.Fatalf("JSON members: got %v, want the issuer's %v", got, want)
			}
		})
	}

	t.Run("ok/request-decodes-strictly", func(t *testing.T) {
		cfg := Config{Rights: []string{"crm/contacts:read", "crm/notes/*:read"}, TTL: 90 * time.Second,
			Audience: spiffeid.RequireFromString("spiffe://acme.test/services/crm")}
		body, err := requestBody(&cfg)
		if err != nil {
			t.Fatal(err)
		}
		var req issuer.TokenRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(req.Rights, cfg.Rights) || req.TTL != "1m30s" || req.Audience != "spiffe://acme.test/services/crm" {
			t.Fatalf("issuer reads %+v from %s", req, body)
		}
		body, _ = requestBody(&Config{Rights: []string{"a:b"}})
		if string(body) != `{"rights":["a:b"]}` {
			t.Fatalf("minimal request: got %s, want only rights", body)
		}
	})

	t.Run("ok/response", func(t *testing.T) {
		exp := time.Date(2026, 11, 27, 10, 5, 0, 0, time.UTC)
		in := issuer.TokenResponse{
			Token: base64.URLEncoding.EncodeToString([]byte("a token of some bytes")), TokenID: strings.Repeat("ab", 16),
			ExpiresAt: exp, Granted: []string{"crm/contacts:read"},
			Denied:        []issuer.DeniedRight{{Right: "crm/*:read", Reason: "not_granted", Alternatives: []string{"crm/contacts:read"}}},
			PolicyVersion: "sha256:00", KeyID: 3,
		}
		b, _ := json.Marshal(&in)
		tok, err := decodeTokenResponse(b)
		if err != nil {
			t.Fatal(err)
		}
		want := &Token{Value: in.Token, ID: in.TokenID, ExpiresAt: exp, Granted: in.Granted,
			Denied: []DeniedRight{{Right: "crm/*:read", Reason: "not_granted", Alternatives: []string{"crm/contacts:read"}}}, PolicyVersion: "sha256:00", KeyID: 3}
		if !reflect.DeepEqual(tok, want) {
			t.Fatalf("got %#v, want %#v", tok, want)
		}
	})

	t.Run("ok/problem", func(t *testing.T) {
		in := issuer.Problem{Type: spec.ProblemType(issuer.ProblemNotGranted), Title: "No requested right can be granted", Status: 403,
			Detail: "the policy grants none", Denied: []issuer.DeniedRight{{Right: "x:y", Reason: "no_rule"}}, PolicyVersion: "sha256:01"}
		b, _ := json.Marshal(&in)
		pe := problemFromResponse(problemResponse(403, "application/problem+json", ""), b, time.Now)
		want := &ProblemError{Status: 403, Code: ProblemNotGranted, Type: in.Type, Title: in.Title, Detail: in.Detail,
			Denied: []DeniedRight{{Right: "x:y", Reason: "no_rule"}}, PolicyVersion: "sha256:01"}
		if !reflect.DeepEqual(pe, want) {
			t.Fatalf("got %#v, want %#v", pe, want)
		}
	})

	t.Run("ok/problem-codes", func(t *testing.T) {
		for ours, theirs := range map[string]string{
			ProblemUnauthenticated: issuer.ProblemUnauthenticated, ProblemForbidden: issuer.ProblemForbidden,
			ProblemNotGranted: issuer.ProblemNotGranted, ProblemBadRequest: issuer.ProblemBadRequest,
			ProblemTooLarge: issuer.ProblemTooLarge, ProblemUnavailable: issuer.ProblemUnavailable, ProblemInternal: issuer.ProblemInternal,
		} {
			if ours != theirs {
				t.Errorf("problem code: got %q, want the issuer's %q", ours, theirs)
			}
		}
	})
}

func problemResponse(status int, ctype, retryAfter string) *http.Response {
	h := http.Header{}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	return &http.Response{StatusCode: status, Header: h}
}

// validResponse is a token response the client accepts; cases edit it.
func validResponse() map[string]any {
	return map[string]any{
		"token":          base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 100)),
		"token_id":       strings.Repeat("0f", 16),
		"expires_at":     "2026-11-27T10:05:00Z",
		"granted":        []string{"crm/contacts:read"},
		"policy_version": "sha256:ab",
		"key_id":         1,
	}
}

// decodeCase is a 200 body: validResponse edited by edit, or raw when
// edit is nil.
type decodeCase struct {
	name string
	edit func(m map[string]any)
	raw  string
	want string // "" = accepted; else a part of the error
}

var decodeCases = []decodeCase{
	{"ok/complete", func(map[string]any) {}, "", ""},
	{"ok/unpadded-token", func(m map[string]any) { m["token"] = base64.RawURLEncoding.EncodeToString([]byte{1, 2, 3, 4}) }, "", ""},
	{"ok/unknown-member-ignored", func(m map[string]any) { m["new_member"] = true }, "", ""},
	{"ok/key-id-zero", func(m map[string]any) { m["key_id"] = 0 }, "", ""},
	{"fail/no-token", func(m map[string]any) { delete(m, "token") }, "", "token:"},
	{"fail/token-with-newline", func(m map[string]any) { m["token"] = "abcd\r\nX-Evil: 1" }, "", "token:"},
	{"fail/token-standard-alphabet", func(m map[string]any) { m["token"] = "ab+/" }, "", "token:"},
	{"fail/token-bad-padding", func(m map[string]any) { m["token"] = "abc==" }, "", "token:"},
	{"fail/token-only-padding", func(m map[string]any) { m["token"] = "====" }, "", "token:"},
	{"fail/token-too-long", func(m map[string]any) { m["token"] = strings.Repeat("A", maxTokenChars+1) }, "", "token:"},
	{"fail/token-not-string", func(m map[string]any) { m["token"] = 7 }, "", "wrong type"},
	{"fail/token-id-upper-case", func(m map[string]any) { m["token_id"] = strings.Repeat("0F", 16) }, "", "token_id"},
	{"fail/token-id-short", func(m map[string]any) { m["token_id"] = "0f" }, "", "token_id"},
	{"fail/no-expiry", func(m map[string]any) { delete(m, "expires_at") }, "", "expires_at"},
	{"fail/expiry-not-a-time", func(m map[string]any) { m["expires_at"] = "tomorrow" }, "", "invalid JSON"},
	{"fail/nothing-granted", func(m map[string]any) { m["granted"] = []string{} }, "", "granted"},
	{"fail/granted-not-a-right", func(m map[string]any) { m["granted"] = []string{"crm*"} }, "", "granted[0]"},
	{"fail/too-many-denied", func(m map[string]any) { m["denied"] = make([]DeniedRight, maxListEntries+1) }, "", "denied"},
	{"fail/no-policy-version", func(m map[string]any) { delete(m, "policy_version") }, "", "policy_version"},
	{"fail/no-key-id", func(m map[string]any) { delete(m, "key_id") }, "", "key_id"},
	{"fail/key-id-negative", func(m map[string]any) { m["key_id"] = -1 }, "", "wrong type"},
	{"fail/trailing-data", nil, `{"token":"AAAA"} {}`, "trailing"},
	{"fail/not-json", nil, `<html>login</html>`, "invalid JSON"},
	{"fail/truncated", nil, `{"token":"AAAA`, "truncated"},
	{"fail/empty", nil, ``, "truncated"},
}

func (tc *decodeCase) body() []byte {
	if tc.edit == nil {
		return []byte(tc.raw)
	}
	m := validResponse()
	tc.edit(m)
	b, _ := json.Marshal(m)
	return b
}

func TestDecodeTokenResponse(t *testing.T) {
	for i := range decodeCases {
		tc := &decodeCases[i]
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body()
			tok, err := decodeTokenResponse(body)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
				if !headerSafeToken(tok.Value) || tok.ExpiresAt.Location() != time.UTC {
					t.Fatalf("accepted token %q expiring %v", tok.Value, tok.ExpiresAt)
				}
				return
			}
			if !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrBadResponse mentioning %q", err, tc.want)
			}
			if m := validResponse(); strings.Contains(err.Error(), m["token"].(string)[:16]) {
				t.Fatalf("error echoes the token: %v", err)
			}
		})
	}
}

func TestProblemFromResponse(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	long := strings.Repeat("é", maxTextChars)
	for _, tc := range []struct {
		name       string
		resp       *http.Response
		body       string
		code       string
		detail     string
		retryAfter time.Duration
		temporary  bool
	}{
		{"ok/writ-problem", problemResponse(503, "application/problem+json", ""), `{"type":"https://writ.dev/problems/unavailable","title":"t","status":503,"detail":"no leader"}`, "unavailable", "no leader", 0, true},
		{"ok/retry-after-seconds", problemResponse(429, "application/problem+json", "7"), `{"type":"https://writ.dev/problems/busy","status":429}`, "busy", "", 7 * time.Second, true},
		{"ok/retry-after-date", problemResponse(503, "", "Fri, 27 Nov 2026 10:00:30 GMT"), ``, "", "", 30 * time.Second, true},
		{"ok/retry-after-garbage", problemResponse(503, "", "soon"), ``, "", "", 0, true},
		{"ok/foreign-problem-type", problemResponse(400, "application/problem+json", ""), `{"type":"https://example.com/oops","status":400}`, "", "", 0, false},
		{"ok/code-not-snake-case", problemResponse(400, "application/problem+json", ""), `{"type":"https://writ.dev/problems/../x","status":400}`, "", "", 0, false},
		{"ok/proxy-error-page", problemResponse(502, "text/html; charset=utf-8", ""), `<html>bad gateway</html>`, "", "answer is text/html, not a problem", 0, true},
		{"ok/problem-not-json", problemResponse(500, "application/problem+json", ""), `{`, "", "", 0, true},
		{"ok/redirect", problemResponse(302, "", ""), ``, "", "", 0, false},
		{"ok/long-detail-cut", problemResponse(403, "application/problem+json", ""), `{"type":"https://writ.dev/problems/forbidden","detail":"` + long + `"}`, "forbidden", "ééé", 0, false},
		{"ok/timeout", problemResponse(408, "", ""), ``, "", "", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pe := problemFromResponse(tc.resp, []byte(tc.body), func() time.Time { return now })
			if pe.Status != tc.resp.StatusCode || pe.Code != tc.code || !strings.Contains(pe.Detail, tc.detail) || pe.RetryAfter != tc.retryAfter || pe.Temporary() != tc.temporary {
				t.Fatalf("got status %d code %q detail %.40q retry %v temporary %v, want %d %q %q %v %v",
					pe.Status, pe.Code, pe.Detail, pe.RetryAfter, pe.Temporary(), tc.resp.StatusCode, tc.code, tc.detail, tc.retryAfter, tc.temporary)
			}
			if len(pe.Detail) > maxTextChars+len("…") || !strings.Contains(pe.Error(), "client: issuer refused") {
				t.Fatalf("detail %d bytes, error %q", len(pe.Detail), pe.Error())
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	refused := &ProblemError{Status: 403, Code: ProblemNotGranted}
	network := errors.New("connection refused")
	for _, tc := range []struct {
		name     string
		err      error
		failures int
		rand     float64
		want     time.Duration
	}{
		{"temporary/first-failure-is-min", network, 1, 0.99, 250 * time.Millisecond},
		{"temporary/second-failure-floor", network, 2, 0, 250 * time.Millisecond},
		{"temporary/second-failure-top", network, 2, 1, 500 * time.Millisecond},
		{"temporary/fifth-failure-middle", network, 5, 0.5, 250*time.Millisecond + (4*time.Second-250*time.Millisecond)/2},
		{"temporary/capped", network, 40, 1, 30 * time.Second},
		{"temporary/huge-failure-count", network, 1 << 30, 0, 250 * time.Millisecond},
		{"temporary/503", &ProblemError{Status: 503}, 3, 0, 250 * time.Millisecond},
		{"temporary/retry-after", &ProblemError{Status: 429, RetryAfter: 5 * time.Second}, 1, 0, 5 * time.Second},
		{"temporary/retry-after-clamped-up", &ProblemError{Status: 503, RetryAfter: time.Millisecond}, 1, 0, 250 * time.Millisecond},
		{"temporary/retry-after-clamped-down", &ProblemError{Status: 503, RetryAfter: time.Hour}, 1, 0, 30 * time.Second},
		{"permanent/not-granted", refused, 1, 0, 30 * time.Second},
		{"permanent/wrapped", errors.Join(ErrBackoff, refused), 1, 0, 30 * time.Second},
		{"permanent/short-lived", ErrShortLived, 1, 0, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Rand = func() float64 { return tc.rand }
			c := &Client{cfg: cfg}
			if got := c.backoff(tc.err, tc.failures); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestHeaderSafeJWT(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", true},
		{"a.b", false},
		{"a.b.c.d.e", false},
		{"a..c", false},
		{"a.b.c\n", false},
		{"a.b.c=", false},
		{"a.b c.d", false},
		{"", false},
	} {
		if got := headerSafeJWT(tc.in); got != tc.want {
			t.Errorf("headerSafeJWT(%q): got %v, want %v", tc.in, got, tc.want)
		}
	}
}

// FuzzDecodeTokenResponse: whatever the bytes, decoding does not panic,
// and an accepted token can go into an Authorization header as is.
func FuzzDecodeTokenResponse(f *testing.F) {
	for i := range decodeCases {
		f.Add(decodeCases[i].body())
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := decodeTokenResponse(body)
		if err != nil {
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("error %v does not wrap ErrBadResponse", err)
			}
			return
		}
		if !headerSafeToken(tok.Value) || !isTokenID(tok.ID) || len(tok.Granted) == 0 || tok.ExpiresAt.IsZero() {
			t.Fatalf("accepted %#v", tok)
		}
		h := http.Header{}
		h.Set("Authorization", "Bearer "+tok.Value)
		if strings.ContainsAny(h.Get("Authorization"), "\r\n\x00") {
			t.Fatalf("header-unsafe token %q", tok.Value)
		}
	})
}

// FuzzProblemFromResponse: any refusal body yields a bounded ProblemError.
func FuzzProblemFromResponse(f *testing.F) {
	f.Add(403, "application/problem+json", `{"type":"https://writ.dev/problems/not_granted","status":403,"denied":[{"right":"a:b","reason":"x"}]}`, "")
	f.Add(503, "text/html", `<html>`, "120")
	f.Add(429, "application/problem+json", `{"detail":"`+strings.Repeat("ü", 2000)+`"}`, "Fri, 27 Nov 2026 10:00:30 GMT")
	f.Fuzz(func(t *testing.T, status int, ctype, body, retry string) {
		pe := problemFromResponse(problemResponse(status, ctype, retry), []byte(body), time.Now)
		if len(pe.Title) > maxTextChars+3 || len(pe.Detail) > maxTextChars+3 || len(pe.Denied) > maxListEntries || pe.RetryAfter < 0 || pe.RetryAfter > 24*time.Hour {
			t.Fatalf("unbounded problem: %d %d %d %v", len(pe.Title), len(pe.Detail), len(pe.Denied), pe.RetryAfter)
		}
		if pe.Code != "" && !isCode(pe.Code) {
			t.Fatalf("code %q", pe.Code)
		}
		_ = pe.Error()
	})
}
