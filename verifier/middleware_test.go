package verifier

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/writ-dev/writ/spec"
)

// Middleware tests run real tokens (biscuit-go builder structs, no
// parser) through a real Verifier behind a real TLS server whose client
// certificates are X509-SVIDs of a test CA, verified by go-spiffe.

var (
	mwNow     = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	mwTD      = spiffeid.RequireTrustDomainFromString("acme.example")
	mwService = spiffeid.RequireFromPath(mwTD, "/svc/crm")
	mwSupport = spiffeid.RequireFromPath(mwTD, "/agents/support")
	mwOther   = spiffeid.RequireFromPath(mwTD, "/agents/other")
)

func mwKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("writ middleware test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

var (
	mwRoot  = mwKey("root") // id 1, trusted
	mwRogue = mwKey("rogue")
)

// mwTokenSpec describes a token of the writ vocabulary (token.md §2).
type mwTokenSpec struct {
	root       ed25519.PrivateKey // nil: mwRoot
	rootKeyID  uint32             // 0: 1
	tokenID    string             // "": a fixed id
	rights     []string           // nil: crm/contacts:read
	expires    time.Time          // zero: mwNow + 5 minutes
	presenters []string           // non-empty: a presenter check
	staleMS    int64              // > 0: a max_staleness check (token.md §2)
}

const mwTokenID = "5f0c1a2b3c4d5e6f708192a3b4c5d6e7"

func mwToken(t testing.TB, s mwTokenSpec) []byte {
	t.Helper()
	root := s.root
	if root == nil {
		root = mwRoot
	}
	if s.rootKeyID == 0 {
		s.rootKeyID = 1
	}
	if s.tokenID == "" {
		s.tokenID = mwTokenID
	}
	if s.rights == nil {
		s.rights = []string{"crm/contacts:read"}
	}
	if s.expires.IsZero() {
		s.expires = mwNow.Add(5 * time.Minute)
	}
	fact := func(name string, terms ...biscuit.Term) biscuit.Fact {
		return biscuit.Fact{Predicate: biscuit.Predicate{Name: name, IDs: terms}}
	}
	facts := []biscuit.Fact{
		fact(spec.FactWritVersion, biscuit.Integer(spec.TokenVersion)),
		fact(spec.FactTokenID, biscuit.String(s.tokenID)),
		fact(spec.FactIssuer, biscuit.String("spiffe://acme.example/writ")),
		fact(spec.FactAgent, biscuit.String(mwSupport.String())),
		fact(spec.FactIssuedAt, biscuit.Date(mwNow.Add(-time.Minute))),
		fact(spec.FactPolicyVersion, biscuit.String("sha256:"+strings.Repeat("9c", 32))),
	}
	for _, r := range s.rights {
		right, err := spec.ParseRight(r)
		if err != nil {
			t.Fatal(err)
		}
		if right.IsPrefix() {
			facts = append(facts, fact(spec.FactRightPrefix, biscuit.String(right.Prefix()), biscuit.String(right.Operation)))
		} else {
			facts = append(facts, fact(spec.FactRight, biscuit.String(right.Resource), biscuit.String(right.Operation)))
		}
	}
	query := func(body biscuit.Predicate, expr biscuit.Expression) biscuit.Check {
		return biscuit.Check{Queries: []biscuit.Rule{{
			Head:        biscuit.Predicate{Name: "query", IDs: []biscuit.Term{}},
			Body:        []biscuit.Predicate{body},
			Expressions: []biscuit.Expression{expr},
		}}}
	}
	checks := []biscuit.Check{
		// check if time($t), $t <= EXPIRES
		query(biscuit.Predicate{Name: spec.AmbientTime, IDs: []biscuit.Term{biscuit.Variable("t")}},
			biscuit.Expression{
				biscuit.Value{Term: biscuit.Variable("t")},
				biscuit.Value{Term: biscuit.Date(s.expires)},
				biscuit.BinaryLessOrEqual,
			}),
	}
	if len(s.presenters) > 0 {
		set := make(biscuit.Set, len(s.presenters))
		for i, p := range s.presenters {
			set[i] = biscuit.String(p)
		}
		// check if presenter($p), [IDS].contains($p)
		checks = append(checks, query(
			biscuit.Predicate{Name: spec.AmbientPresenter, IDs: []biscuit.Term{biscuit.Variable("p")}},
			biscuit.Expression{
				biscuit.Value{Term: set},
				biscuit.Value{Term: biscuit.Variable("p")},
				biscuit.BinaryContains,
			}))
	}
	if s.staleMS > 0 {
		// check if revocation_age($a), $a <= MS
		checks = append(checks, query(
			biscuit.Predicate{Name: spec.AmbientRevocationAge, IDs: []biscuit.Term{biscuit.Variable("a")}},
			biscuit.Expression{
				biscuit.Value{Term: biscuit.Variable("a")},
				biscuit.Value{Term: biscuit.Integer(s.staleMS)},
				biscuit.BinaryLessOrEqual,
			}))
	}
	b := biscuit.NewBuilder(root)
	for _, f := range facts {
		if err := b.AddAuthorityFact(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range checks {
		if err := b.AddAuthorityCheck(c); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tok.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	// rootKeyId is field 1 of the Biscuit message, outside the signature;
	// protobuf accepts fields in any order.
	out := protowire.AppendTag(nil, 1, protowire.VarintType)
	out = protowire.AppendVarint(out, uint64(s.rootKeyID))
	return append(out, raw...)
}

// mwPKI is a test SPIFFE CA with an SVID per workload.
type mwPKI struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	bundle *x509bundle.Bundle
}

func newMWPKI(t testing.TB) *mwPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"writ test CA"}},
		URIs:                  []*url.URL{mwTD.ID().URL()},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &mwPKI{ca: ca, caKey: key, bundle: x509bundle.FromX509Authorities(mwTD, []*x509.Certificate{ca})}
}

func (p *mwPKI) svid(t testing.TB, id spiffeid.ID) *x509svid.SVID {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		URIs:         []*url.URL{id.URL()},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{leaf}, PrivateKey: key}
}

// mwEnv is a verifier, a revocation list and a TLS server running the
// middleware in front of a handler that reports the Decision it sees.
type mwEnv struct {
	pki  *mwPKI
	revs *RevocationList
	srv  *httptest.Server
	url  string

	mu      sync.Mutex // the handler runs on server goroutines
	reached int
	seen    Decision
}

// handled returns how often the handler ran and the last Decision it saw.
func (e *mwEnv) handled() (int, Decision) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reached, e.seen
}

// mwNoLeaks checks, when the test and its cleanups are done, that no
// goroutine started during the test is left.
func mwNoLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type mwEnvOpts struct {
	mtls      bool // require client SVIDs; otherwise no client certificates
	opts      []MiddlewareOption
	freshness FreshnessSource // nil: none
}

func newMWEnv(t *testing.T, o mwEnvOpts) *mwEnv {
	t.Helper()
	keys, err := NewKeySet(RootKey{ID: 1, Public: mwRoot.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	revs, err := NewRevocationList()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Keys = keys
	cfg.Revocations = revs
	cfg.Now = func() time.Time { return mwNow }
	cfg.Service = mwService.String()
	cfg.Freshness = o.freshness
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &mwEnv{pki: newMWPKI(t), revs: revs}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := DecisionFromContext(r.Context())
		if !ok {
			t.Errorf("handler reached without a Decision in the context")
		}
		e.mu.Lock()
		e.reached++
		e.seen = d
		e.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	})
	e.srv = httptest.NewUnstartedServer(Middleware(v, PathRoute("/api/"), o.opts...)(next))
	serverSVID := e.pki.svid(t, mwService)
	var tc *tls.Config
	if o.mtls {
		tc = tlsconfig.MTLSServerConfig(serverSVID, e.pki.bundle, tlsconfig.AuthorizeMemberOf(mwTD))
	} else {
		tc = tlsconfig.TLSServerConfig(serverSVID)
	}
	e.srv.Listener = tls.NewListener(e.srv.Listener, tc)
	e.srv.Start()
	e.url = "https://" + e.srv.Listener.Addr().String()
	t.Cleanup(e.srv.Close)
	return e
}

// client returns an HTTP client presenting the SVID of id (none when id
// is zero) and verifying the server's SVID.
func (e *mwEnv) client(t *testing.T, id spiffeid.ID) *http.Client {
	t.Helper()
	var tc *tls.Config
	if id.IsZero() {
		tc = tlsconfig.TLSClientConfig(e.pki.bundle, tlsconfig.AuthorizeID(mwService))
	} else {
		tc = tlsconfig.MTLSClientConfig(e.pki.svid(t, id), e.pki.bundle, tlsconfig.AuthorizeID(mwService))
	}
	tr := &http.Transport{TLSClientConfig: tc}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

type mwResponse struct {
	status  int
	header  http.Header
	body    string
	problem map[string]any
}

func (e *mwEnv) do(t *testing.T, c *http.Client, method, path string, auth []string) mwResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := mwResponse{status: resp.StatusCode, header: resp.Header, body: string(body)}
	if resp.Header.Get("Content-Type") == "application/problem+json" {
		if err := json.Unmarshal(body, &out.problem); err != nil {
			t.Fatalf("problem body %q: %v", body, err)
		}
	}
	return out
}

// checkProblem compares a denial with the problem it must be.
func checkProblem(t *testing.T, got mwResponse, status int, code, wwwAuth string) {
	t.Helper()
	if got.status != status {
		t.Errorf("got status %d, want %d (body %s)", got.status, status, got.body)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("got Content-Type %q, want application/problem+json", ct)
	}
	if got, want := got.problem["type"], spec.ProblemType(code); got != want {
		t.Errorf("got type %v, want %s", got, want)
	}
	if got, want := got.problem["reason"], code; got != want {
		t.Errorf("got reason %v, want %s", got, want)
	}
	if got, want := got.problem["status"], float64(status); got != want {
		t.Errorf("got problem status %v, want %v", got, want)
	}
	if title, _ := got.problem["title"].(string); title == "" {
		t.Errorf("problem has no title")
	}
	if got := got.header.Get("WWW-Authenticate"); got != wwwAuth {
		t.Errorf("got WWW-Authenticate %q, want %q", got, wwwAuth)
	}
}

func TestMiddlewareAuthorizationHeader(t *testing.T) {
	mwNoLeaks(t)
	e := newMWEnv(t, mwEnvOpts{mtls: true})
	c := e.client(t, mwSupport)
	tok := EncodeToken(mwToken(t, mwTokenSpec{}))
	const invalid = `Bearer error="invalid_token"`
	tests := []struct {
		name    string
		auth    []string
		status  int
		code    string
		wwwAuth string
	}{
		{"ok/bearer", []string{"Bearer " + tok}, 200, "", ""},
		{"ok/lowercase-scheme", []string{"bearer " + tok}, 200, "", ""},
		{"ok/uppercase-scheme", []string{"BEARER " + tok}, 200, "", ""},
		{"ok/unpadded", []string{"Bearer " + strings.TrimRight(tok, "=")}, 200, "", ""},
		{"ok/extra-spaces", []string{"Bearer    " + tok}, 200, "", ""},
		{"fail/missing", nil, 401, ProblemMissingToken, "Bearer"},
		{"fail/other-scheme", []string{"Basic dXNlcjpwYXNz"}, 401, ProblemMissingToken, "Bearer"},
		{"fail/scheme-without-space", []string{"Bearer" + tok}, 401, ProblemMissingToken, "Bearer"},
		{"fail/two-headers", []string{"Bearer " + tok, "Bearer " + tok}, 401, spec.ReasonMalformed, invalid},
		{"fail/empty", []string{""}, 401, spec.ReasonMalformed, invalid},
		{"fail/scheme-only", []string{"Bearer"}, 401, spec.ReasonMalformed, invalid},
		{"fail/scheme-and-spaces", []string{"Bearer   "}, 401, spec.ReasonMalformed, invalid},
		{"fail/bad-base64", []string{"Bearer !!!!"}, 401, spec.ReasonMalformed, invalid},
		{"fail/standard-base64", []string{"Bearer " + strings.NewReplacer("-", "+", "_", "/").Replace(tok) + "+/"}, 401, spec.ReasonMalformed, invalid},
		{"fail/two-tokens", []string{"Bearer " + tok + " " + tok}, 401, spec.ReasonMalformed, invalid},
		{"fail/comma-list", []string{"Bearer " + tok + ", Bearer " + tok}, 401, spec.ReasonMalformed, invalid},
		{"fail/not-a-token", []string{"Bearer AAAA"}, 401, spec.ReasonMalformed, invalid},
		{"fail/oversize", []string{"Bearer " + strings.Repeat("A", maxAuthorizationBytes)}, 401, spec.ReasonLimitsExceeded, invalid},
		{"fail/over-token-limit", []string{"Bearer " + EncodeToken(make([]byte, 32<<10))}, 401, spec.ReasonLimitsExceeded, invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := e.handled()
			got := e.do(t, c, http.MethodGet, "/api/crm/contacts", tt.auth)
			after, _ := e.handled()
			if tt.status == 200 {
				if got.status != 200 || got.body != "ok" || after != before+1 {
					t.Fatalf("got %d %q (handler ran %d times), want 200 \"ok\" once", got.status, got.body, after-before)
				}
				return
			}
			checkProblem(t, got, tt.status, tt.code, tt.wwwAuth)
			if after != before {
				t.Errorf("handler reached on a denial")
			}
			if strings.Contains(got.body, tok[:40]) {
				t.Errorf("problem body contains the token")
			}
		})
	}
}

func TestMiddlewareDecisions(t *testing.T) {
	mwNoLeaks(t)
	e := newMWEnv(t, mwEnvOpts{mtls: true})
	support := e.client(t, mwSupport)
	other := e.client(t, mwOther)
	revokedID := strings.Repeat("ab", 16)
	if err := e.revs.Add(revokedID); err != nil {
		t.Fatal(err)
	}
	bearer := func(s mwTokenSpec) []string { return []string{"Bearer " + EncodeToken(mwToken(t, s))} }
	const (
		invalid      = `Bearer error="invalid_token"`
		insufficient = `Bearer error="insufficient_scope"`
	)
	tests := []struct {
		name        string
		client      *http.Client
		method      string
		path        string
		auth        []string
		status      int
		code        string
		wwwAuth     string
		missing     *spec.Right
		failedCheck bool
		tokenID     string
	}{
		{name: "ok/read", client: support, method: "GET", path: "/api/crm/contacts", auth: bearer(mwTokenSpec{}), status: 200},
		{name: "ok/head-is-read", client: support, method: "HEAD", path: "/api/crm/contacts", auth: bearer(mwTokenSpec{}), status: 200},
		{name: "ok/prefix-right", client: support, method: "GET", path: "/api/crm/notes/42", auth: bearer(mwTokenSpec{rights: []string{"crm/notes/*:read"}}), status: 200},
		{name: "ok/write", client: support, method: "PUT", path: "/api/crm/contacts", auth: bearer(mwTokenSpec{rights: []string{"crm/contacts:write"}}), status: 200},
		{name: "ok/presenter-bound-right-peer", client: support, method: "GET", path: "/api/crm/contacts", auth: bearer(mwTokenSpec{presenters: []string{mwSupport.String()}}), status: 200},
		{name: "fail/presenter-bound-other-peer", client: other, method: "GET", path: "/api/crm/contacts",
			auth: bearer(mwTokenSpec{presenters: []string{mwSupport.String()}}), status: 403, code: spec.ReasonPresenterMismatch, wwwAuth: insufficient, failedCheck: true, tokenID: mwTokenID},
		{name: "fail/not-granted-operation", client: support, method: "DELETE", path: "/api/crm/contacts", auth: bearer(mwTokenSpec{}),
			status: 403, code: spec.ReasonNotGranted, wwwAuth: insufficient, missing: &spec.Right{Resource: "crm/contacts", Operation: "delete"}, tokenID: mwTokenID},
		{name: "fail/not-granted-resource", client: support, method: "GET", path: "/api/crm/contacts/42", auth: bearer(mwTokenSpec{}),
			status: 403, code: spec.ReasonNotGranted, wwwAuth: insufficient, missing: &spec.Right{Resource: "crm/contacts/42", Operation: "read"}, tokenID: mwTokenID},
		{name: "fail/expired", client: support, method: "GET", path: "/api/crm/contacts", auth: bearer(mwTokenSpec{expires: mwNow.Add(-time.Second)}),
			status: 401, code: spec.ReasonExpired, wwwAuth: invalid, failedCheck: true, tokenID: mwTokenID},
		{name: "fail/revoked-token-id", client: support, method: "GET", path: "/api/crm/contacts", auth: bearer(mwTokenSpec{tokenID: revokedID}),
			status: 401, code: spec.ReasonRevoked, wwwAuth: invalid, tokenID: revokedID},
		{name: "fail/unknown-key", client: support, method: "GET", path: "/api/crm/contacts", auth: bearer(mwTokenSpec{root: mwRogue, rootKeyID: 9}),
			status: 401, code: spec.ReasonUnknownKey, wwwAuth: invalid},
		{name: "fail/bad-signature", client: support, method: "GET", path: "/api/crm/contacts", auth: bearer(mwTokenSpec{root: mwRogue, rootKeyID: 1}),
			status: 401, code: spec.ReasonBadSignature, wwwAuth: invalid},
		{name: "fail/route-outside-prefix", client: support, method: "GET", path: "/other/crm/contacts", auth: bearer(mwTokenSpec{}),
			status: 400, code: ProblemBadRequest},
		{name: "fail/route-method", client: support, method: "OPTIONS", path: "/api/crm/contacts", auth: bearer(mwTokenSpec{}),
			status: 400, code: ProblemBadRequest},
		{name: "fail/route-dot-dot", client: support, method: "GET", path: "/api/crm/notes/../../admin", auth: bearer(mwTokenSpec{rights: []string{"crm/notes/*:read"}}),
			status: 400, code: ProblemBadRequest},
		{name: "fail/route-escaped-slash", client: support, method: "GET", path: "/api/crm/notes/a%2Fb", auth: bearer(mwTokenSpec{rights: []string{"crm/notes/*:read"}}),
			status: 400, code: ProblemBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := e.handled()
			got := e.do(t, tt.client, tt.method, tt.path, tt.auth)
			after, seen := e.handled()
			if tt.status == 200 {
				if got.status != 200 {
					t.Fatalf("got %d %s, want 200", got.status, got.body)
				}
				if after != before+1 {
					t.Fatalf("handler ran %d times, want once", after-before)
				}
				if !seen.Allowed || seen.Reason != spec.ReasonAllowed || seen.TokenID != mwTokenID || seen.Agent != mwSupport.String() || seen.RootKeyID != 1 {
					t.Fatalf("handler saw decision %+v, want allowed for token %s of %s", seen, mwTokenID, mwSupport)
				}
				return
			}
			checkProblem(t, got, tt.status, tt.code, tt.wwwAuth)
			if after != before {
				t.Errorf("handler reached on a denial")
			}
			if tt.missing != nil {
				mr, _ := got.problem["missing_right"].(map[string]any)
				if mr["resource"] != tt.missing.Resource || mr["operation"] != tt.missing.Operation {
					t.Errorf("got missing_right %v, want %+v", got.problem["missing_right"], *tt.missing)
				}
			} else if _, ok := got.problem["missing_right"]; ok {
				t.Errorf("got missing_right %v, want none", got.problem["missing_right"])
			}
			fc, _ := got.problem["failed_checks"].([]any)
			if got, want := len(fc) > 0, tt.failedCheck; got != want {
				t.Errorf("got failed_checks %v, want present=%v", fc, want)
			}
			gotID, _ := got.problem["token_id"].(string)
			if gotID != tt.tokenID {
				t.Errorf("got token_id %q, want %q", gotID, tt.tokenID)
			}
		})
	}
}

func TestMiddlewareWithoutClientCertificate(t *testing.T) {
	mwNoLeaks(t)
	e := newMWEnv(t, mwEnvOpts{mtls: false})
	anon := e.client(t, spiffeid.ID{})

	bound := []string{"Bearer " + EncodeToken(mwToken(t, mwTokenSpec{presenters: []string{mwSupport.String()}}))}
	got := e.do(t, anon, http.MethodGet, "/api/crm/contacts", bound)
	checkProblem(t, got, 403, spec.ReasonPresenterMismatch, `Bearer error="insufficient_scope"`)
	if n, _ := e.handled(); n != 0 {
		t.Fatalf("handler reached for a presenter-bound token without a presenter")
	}

	unbound := []string{"Bearer " + EncodeToken(mwToken(t, mwTokenSpec{}))}
	if got := e.do(t, anon, http.MethodGet, "/api/crm/contacts", unbound); got.status != 200 {
		t.Fatalf("unbound token: got %d %s, want 200", got.status, got.body)
	}
	if n, seen := e.handled(); n != 1 || !seen.Allowed || seen.TokenID != mwTokenID {
		t.Fatalf("handler saw %+v after %d calls, want one allowed decision", seen, n)
	}
}

func TestMiddlewareOptions(t *testing.T) {
	mwNoLeaks(t)
	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var (
		mu     sync.Mutex
		denied []*Problem
	)
	deny := func(w http.ResponseWriter, r *http.Request, p *Problem) {
		mu.Lock()
		denied = append(denied, p)
		mu.Unlock()
		w.WriteHeader(418)
	}
	e := newMWEnv(t, mwEnvOpts{mtls: true, opts: []MiddlewareOption{WithLogger(logger), WithDenyWriter(deny)}})
	c := e.client(t, mwOther)
	bound := EncodeToken(mwToken(t, mwTokenSpec{presenters: []string{mwSupport.String()}}))
	plain := EncodeToken(mwToken(t, mwTokenSpec{}))

	got := e.do(t, c, http.MethodGet, "/api/crm/contacts", []string{"Bearer " + bound})
	mu.Lock()
	calls := len(denied)
	var p *Problem
	if calls > 0 {
		p = denied[0]
	}
	mu.Unlock()
	if got.status != 418 || calls != 1 {
		t.Fatalf("got status %d and %d deny calls, want 418 and 1", got.status, calls)
	}
	if p.Reason != spec.ReasonPresenterMismatch || p.Status != 403 || p.Decision.Reason != spec.ReasonPresenterMismatch || p.Decision.TokenID != mwTokenID {
		t.Fatalf("deny writer got %+v, want presenter_mismatch for token %s", p, mwTokenID)
	}
	if got := got.header.Get("WWW-Authenticate"); got != `Bearer error="insufficient_scope"` {
		t.Fatalf("got WWW-Authenticate %q with a custom writer, want it set", got)
	}
	if got := e.do(t, c, http.MethodGet, "/api/crm/contacts", []string{"Bearer " + plain}); got.status != 200 {
		t.Fatalf("got %d, want 200", got.status)
	}
	e.do(t, c, http.MethodGet, "/api/crm/contacts", nil)

	out := logs.String()
	for _, secret := range []string{bound[:40], plain[:40], strings.TrimRight(bound, "=")} {
		if strings.Contains(out, secret) {
			t.Fatalf("log contains token text:\n%s", out)
		}
	}
	for _, want := range []string{`"reason":"presenter_mismatch"`, `"token_id":"` + mwTokenID + `"`, `"msg":"request allowed"`, `"reason":"missing_token"`, `"presenter":"` + mwOther.String() + `"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

func TestPathRoute(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		method string
		target string
		res    string
		op     string
	}{
		{"ok/get", "/api/", "GET", "/api/crm/contacts", "crm/contacts", "read"},
		{"ok/head", "/api/", "HEAD", "/api/crm/contacts", "crm/contacts", "read"},
		{"ok/post", "/api/", "POST", "/api/crm/contacts", "crm/contacts", "write"},
		{"ok/put", "/api/", "PUT", "/api/crm/contacts/1", "crm/contacts/1", "write"},
		{"ok/patch", "/api/", "PATCH", "/api/crm/contacts/1", "crm/contacts/1", "write"},
		{"ok/delete", "/api/", "DELETE", "/api/crm/contacts/1", "crm/contacts/1", "delete"},
		{"ok/prefix-without-slashes", "api", "GET", "/api/crm", "crm", "read"},
		{"ok/root-prefix", "/", "GET", "/crm/contacts", "crm/contacts", "read"},
		{"ok/root-prefix-empty", "", "GET", "/crm/contacts", "crm/contacts", "read"},
		{"ok/query-ignored", "/api/", "GET", "/api/crm/contacts?id=1", "crm/contacts", "read"},
		{"ok/escaped-space", "/api/", "GET", "/api/crm/a%20b", "crm/a b", "read"},
		{"ok/colon", "/api/", "GET", "/api/crm/a:b", "crm/a:b", "read"},
		{"fail/options", "/api/", "OPTIONS", "/api/crm", "", ""},
		{"fail/connect", "/api/", "TRACE", "/api/crm", "", ""},
		{"fail/outside-prefix", "/api/", "GET", "/apix/crm", "", ""},
		{"fail/prefix-itself", "/api/", "GET", "/api/", "", ""},
		{"fail/prefix-without-slash", "/api/", "GET", "/api", "", ""},
		{"fail/trailing-slash", "/api/", "GET", "/api/crm/", "", ""},
		{"fail/double-slash", "/api/", "GET", "/api/crm//contacts", "", ""},
		{"fail/dot", "/api/", "GET", "/api/crm/./contacts", "", ""},
		{"fail/dot-dot", "/api/", "GET", "/api/crm/notes/../secrets", "", ""},
		{"fail/escaped-dot-dot", "/api/", "GET", "/api/crm/notes/%2e%2e/secrets", "", ""},
		{"fail/escaped-slash", "/api/", "GET", "/api/crm/notes%2Fsecrets", "", ""},
		{"fail/escaped-slash-lower", "/api/", "GET", "/api/crm/notes%2fsecrets", "", ""},
		{"fail/backslash", "/api/", "GET", "/api/crm/notes%5C..%5Csecrets", "", ""},
		{"fail/star", "/api/", "GET", "/api/crm/*", "", ""},
		{"fail/control", "/api/", "GET", "/api/crm/a%0Ab", "", ""},
		{"fail/del", "/api/", "GET", "/api/crm/a%7Fb", "", ""},
		{"fail/invalid-utf8", "/api/", "GET", "/api/crm/a%FFb", "", ""},
		{"fail/too-long", "/api/", "GET", "/api/" + strings.Repeat("a", spec.MaxResourceBytes+1), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, nil)
			got, err := PathRoute(tt.prefix)(r)
			if tt.res == "" {
				if err == nil || !strings.Contains(err.Error(), ErrRoute.Error()) {
					t.Fatalf("got %+v, %v; want an error wrapping ErrRoute", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if got.Resource != tt.res || got.Operation != tt.op {
				t.Fatalf("got (%q, %q), want (%q, %q)", got.Resource, got.Operation, tt.res, tt.op)
			}
		})
	}
}

func TestDecisionFromContext(t *testing.T) {
	if _, ok := DecisionFromContext(t.Context()); ok {
		t.Fatalf("found a Decision in a bare context")
	}
}

func TestPeerPresenter(t *testing.T) {
	pki := newMWPKI(t)
	withCert := func(c *x509.Certificate) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}
		return r
	}
	noURI := *pki.svid(t, mwSupport).Certificates[0]
	noURI.URIs = nil
	twoURIs := *pki.svid(t, mwSupport).Certificates[0]
	twoURIs.URIs = []*url.URL{mwSupport.URL(), mwOther.URL()}
	tests := []struct {
		name string
		r    *http.Request
		want string
	}{
		{"ok/svid", withCert(pki.svid(t, mwSupport).Certificates[0]), mwSupport.String()},
		{"empty/no-tls", httptest.NewRequest("GET", "/", nil), ""},
		{"empty/no-peer-certificates", func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.TLS = &tls.ConnectionState{}
			return r
		}(), ""},
		{"empty/no-uri-san", withCert(&noURI), ""},
		{"empty/two-uri-sans", withCert(&twoURIs), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PeerPresenter(tt.r); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestVerifierImportBoundary fails if the verifier package (embedded by
// resource services) depends on writ's server side or its storage.
func TestVerifierImportBoundary(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.CommandContext(t.Context(), gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"github.com/writ-dev/writ/issuer",
		"github.com/writ-dev/writ/cluster",
		"github.com/hashicorp/raft",
		"github.com/cockroachdb/pebble",
	}
	for dep := range strings.SplitSeq(string(out), "\n") {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("verifier depends on %s", dep)
			}
		}
	}
}

// mwFreshness is a FreshnessSource the test moves while server
// goroutines read it.
type mwFreshness struct {
	mu   sync.Mutex
	asOf time.Time
	ok   bool
}

func (f *mwFreshness) CurrentAsOf() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asOf, f.ok
}

func (f *mwFreshness) set(asOf time.Time, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asOf, f.ok = asOf, ok
}

// revocation_stale is the service's state, not the token's: 503 with
// Retry-After and no WWW-Authenticate (token.md §10).
func TestMiddlewareRevocationStale(t *testing.T) {
	mwNoLeaks(t)
	fresh := &mwFreshness{}
	e := newMWEnv(t, mwEnvOpts{mtls: true, freshness: fresh})
	support := e.client(t, mwSupport)
	plain := []string{"Bearer " + EncodeToken(mwToken(t, mwTokenSpec{}))}
	bound := []string{"Bearer " + EncodeToken(mwToken(t, mwTokenSpec{staleMS: 2000}))}
	for _, tc := range []struct {
		name        string
		ok          bool
		age         time.Duration
		auth        []string
		status      int
		failedCheck bool
	}{
		{name: "fail/never-current", auth: plain, status: 503},
		{name: "fail/older-than-verifier-bound", ok: true, age: DefaultMaxStaleness + time.Second, auth: plain, status: 503},
		{name: "ok/fresh", ok: true, age: time.Second, auth: plain, status: 200},
		{name: "ok/fresh-enough-for-token", ok: true, age: 2 * time.Second, auth: bound, status: 200},
		{name: "fail/older-than-token-bound", ok: true, age: 3 * time.Second, auth: bound, status: 503, failedCheck: true},
		{name: "ok/token-without-bound", ok: true, age: 3 * time.Second, auth: plain, status: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fresh.set(mwNow.Add(-tc.age), tc.ok)
			got := e.do(t, support, http.MethodGet, "/api/crm/contacts", tc.auth)
			if tc.status == 200 {
				if got.status != 200 {
					t.Fatalf("got %d %s, want 200", got.status, got.body)
				}
				return
			}
			checkProblem(t, got, http.StatusServiceUnavailable, spec.ReasonRevocationStale, "")
			if ra := got.header.Get("Retry-After"); ra != "1" {
				t.Errorf("got Retry-After %q, want \"1\"", ra)
			}
			fc, _ := got.problem["failed_checks"].([]any)
			if got, want := len(fc) > 0, tc.failedCheck; got != want {
				t.Errorf("got failed_checks %v, want present=%v", fc, want)
			}
			if id, _ := got.problem["token_id"].(string); id != mwTokenID {
				t.Errorf("got token_id %q, want %q", id, mwTokenID)
			}
		})
	}
}
