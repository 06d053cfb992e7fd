package issuer_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/internal/pki"
	"github.com/writ-dev/writ/issuer"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

// jwtSVID signs a JWT-SVID for id with the fixture's JWT authority of id's
// trust domain (or signer, when given).
func (f *fixture) jwtSVID(id spiffeid.ID, aud []string, ttl time.Duration) string {
	f.t.Helper()
	a := f.jwtCA
	if id.TrustDomain() == otherTD {
		a = f.jwtOth
	}
	tok, err := a.Sign(id, aud, time.Now(), ttl)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

func (f *fixture) exchange(c *http.Client, form url.Values, hdr map[string]string) (int, http.Header, map[string]any) {
	f.t.Helper()
	if hdr == nil {
		hdr = map[string]string{}
	}
	if _, ok := hdr["Content-Type"]; !ok {
		hdr["Content-Type"] = "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequest(http.MethodPost, f.url+"/v1/token", strings.NewReader(form.Encode()))
	if err != nil {
		f.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		f.t.Fatalf("exchange answer is not JSON: %v", err)
	}
	return resp.StatusCode, resp.Header, body
}

func (f *fixture) exchangeForm(subject string, scope string) url.Values {
	return url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subject},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
		"scope":              {scope},
	}
}

func TestJWTSVIDBearerMint(t *testing.T) {
	f := newFixture(t)
	jwt := f.jwtSVID(supportID, []string{issuerID.String()}, time.Minute)
	r, err := f.do(f.client(nil), http.MethodPost, "/v1/token", []byte(`{"rights":["crm/contacts:read"]}`),
		map[string]string{"Authorization": "Bearer " + jwt})
	if err != nil {
		t.Fatal(err)
	}
	if r.status != 200 {
		t.Fatalf("got %d %s, want 200", r.status, r.body)
	}
	info := inspectAgent(t, r.token.Token)
	if info != supportID.String() {
		t.Errorf("token agent: got %q, want %q", info, supportID)
	}
	// The audit record says how the caller authenticated.
	rec := lastAudit(t, f)
	if rec.Credential != "jwt-svid" || rec.Caller != supportID.String() || rec.TokenID != r.token.TokenID {
		t.Errorf("audit record: got credential %q caller %q token %q, want jwt-svid %q %q", rec.Credential, rec.Caller, rec.TokenID, supportID, r.token.TokenID)
	}
	// The same caller over mTLS with the same JWT-SVID is fine; another
	// identity's certificate next to it is refused.
	if r, _ := f.do(f.client(f.svid(supportID)), http.MethodPost, "/v1/token", []byte(`{"rights":["crm/contacts:read"]}`),
		map[string]string{"Authorization": "Bearer " + jwt}); r.status != 200 {
		t.Errorf("matching certificate and JWT-SVID: got %d, want 200", r.status)
	}
	r, _ = f.do(f.client(f.svid(billingID)), http.MethodPost, "/v1/token", []byte(`{"rights":["crm/contacts:read"]}`),
		map[string]string{"Authorization": "Bearer " + jwt})
	if r.status != 401 || !strings.HasPrefix(r.problem.Detail, "credentials_disagree: ") {
		t.Errorf("disagreeing certificate and JWT-SVID: got %d %q, want 401 credentials disagree", r.status, r.problem.Detail)
	}
}

func inspectAgent(t *testing.T, token string) string {
	t.Helper()
	raw, err := verifier.DecodeToken(token)
	if err != nil {
		t.Fatal(err)
	}
	info, err := verifier.Inspect(raw)
	if err != nil {
		t.Fatal(err)
	}
	return info.Agent
}

func lastAudit(t *testing.T, f *fixture) issuer.AuditRecord {
	t.Helper()
	seq, _ := f.is.State().AuditHead()
	recs, err := f.is.State().AuditRecords(seq, 1)
	if err != nil || len(recs) == 0 {
		t.Fatalf("audit: %v (%d records)", err, len(recs))
	}
	return recs[len(recs)-1]
}

func TestJWTSVIDBearerRefusals(t *testing.T) {
	f := newFixture(t)
	aud := []string{issuerID.String()}
	body := []byte(`{"rights":["crm/contacts:read"]}`)
	forged, err := f.jwtOth.Sign(spiffeid.RequireFromPath(otherTD, "/agents/support"), aud, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// A JWT-SVID of acme.test signed by a key that is in no bundle (the
	// cross-trust-domain signer matrix is in internal/credential).
	stranger, err := pki.NewJWTAuthority(td)
	if err != nil {
		t.Fatal(err)
	}
	unknownKey, err := stranger.Sign(supportID, aud, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		auth   []string
		status int
		code   string
		detail string
	}{
		{"fail/wrong-audience", []string{"Bearer " + f.jwtSVID(supportID, []string{"spiffe://acme.test/other"}, time.Minute)}, 401, issuer.ProblemUnauthenticated, "jwt_audience"},
		{"fail/two-audiences", []string{"Bearer " + f.jwtSVID(supportID, append(aud, "spiffe://acme.test/x"), time.Minute)}, 401, issuer.ProblemUnauthenticated, "jwt_audience"},
		{"fail/lifetime-over-max", []string{"Bearer " + f.jwtSVID(supportID, aud, time.Hour)}, 401, issuer.ProblemUnauthenticated, "jwt_lifetime"},
		{"fail/key-in-no-bundle", []string{"Bearer " + unknownKey}, 401, issuer.ProblemUnauthenticated, "jwt_signature"},
		{"fail/garbage", []string{"Bearer not.a.jwt"}, 401, issuer.ProblemUnauthenticated, "jwt_malformed"},
		{"fail/jwe", []string{"Bearer a.b.c.d.e"}, 401, issuer.ProblemUnauthenticated, "jwt_encrypted"},
		{"fail/basic-scheme", []string{"Basic YTpi"}, 401, issuer.ProblemUnauthenticated, "Bearer"},
		{"fail/two-authorization-headers", []string{"Bearer " + f.jwtSVID(supportID, aud, time.Minute), "Bearer x"}, 401, issuer.ProblemUnauthenticated, "more than one"},
		{"fail/valid-but-foreign-trust-domain", []string{"Bearer " + forged}, 403, issuer.ProblemForbidden, "trust domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, f.url+"/v1/token", strings.NewReader(string(body)))
			for _, a := range tc.auth {
				req.Header.Add("Authorization", a)
			}
			resp, err := f.client(nil).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p issuer.Problem
			json.NewDecoder(resp.Body).Decode(&p)
			if resp.StatusCode != tc.status || p.Type != spec.ProblemType(tc.code) || !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("got %d %s %q, want %d %s containing %q", resp.StatusCode, p.Type, p.Detail, tc.status, spec.ProblemType(tc.code), tc.detail)
			}
			if got := resp.Header.Get("WWW-Authenticate"); (resp.StatusCode == 401) != (got != "") {
				t.Errorf("WWW-Authenticate: got %q on a %d", got, resp.StatusCode)
			}
		})
	}
}

func TestTokenExchange(t *testing.T) {
	f := newFixture(t)
	jwt := f.jwtSVID(supportID, []string{issuerID.String()}, time.Minute)
	form := f.exchangeForm(jwt, "crm/contacts:read crm/notes/*:read billing/invoices:read")
	form.Set("audience", "spiffe://acme.test/services/crm")
	status, hdr, body := f.exchange(f.client(nil), form, nil)
	if status != 200 {
		t.Fatalf("got %d %v, want 200", status, body)
	}
	if hdr.Get("Cache-Control") != "no-store" || hdr.Get("Pragma") != "no-cache" {
		t.Errorf("caching headers: got %q %q, want no-store no-cache", hdr.Get("Cache-Control"), hdr.Get("Pragma"))
	}
	if body["issued_token_type"] != spec.TokenTypeBiscuit || body["token_type"] != "Bearer" {
		t.Errorf("token types: got %v %v", body["issued_token_type"], body["token_type"])
	}
	if body["scope"] != "crm/contacts:read crm/notes/*:read" {
		t.Errorf("scope: got %q, want the two granted rights", body["scope"])
	}
	if e, _ := body["expires_in"].(float64); e < 250 || e > 300 {
		t.Errorf("expires_in: got %v, want about 300 (default ttl 5m)", body["expires_in"])
	}
	tok, _ := body["access_token"].(string)
	v, err := verifier.New(func() verifier.Config {
		c := verifier.DefaultConfig()
		c.Keys = f.keys(t)
		return c
	}())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := verifier.DecodeToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	crm := spiffeid.RequireFromPath(td, "/services/crm")
	req := verifier.Request{Resource: "crm/contacts", Operation: "read", Service: crm.String(), Presenter: supportID.String()}
	if d := v.Authorize(t.Context(), raw, req); !d.Allowed {
		t.Fatalf("exchanged token at its audience: got %s, want allowed", d.Reason)
	}
	req.Service = "spiffe://acme.test/services/billing"
	if d := v.Authorize(t.Context(), raw, req); d.Allowed {
		t.Fatal("exchanged token at another service: allowed, want denied")
	}
}

func TestTokenExchangeErrors(t *testing.T) {
	f := newFixture(t)
	good := f.jwtSVID(supportID, []string{issuerID.String()}, time.Minute)
	expired, err := f.jwtCA.Sign(supportID, []string{issuerID.String()}, time.Now().Add(-5*time.Minute), 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	with := func(mut func(url.Values)) url.Values {
		v := f.exchangeForm(good, "crm/contacts:read")
		mut(v)
		return v
	}
	for _, tc := range []struct {
		name   string
		form   url.Values
		hdr    map[string]string
		path   string
		status int
		code   string
	}{
		{"fail/grant-type-missing", with(func(v url.Values) { v.Del("grant_type") }), nil, "", 400, "invalid_request"},
		{"fail/grant-type-other", with(func(v url.Values) { v.Set("grant_type", "client_credentials") }), nil, "", 400, "unsupported_grant_type"},
		{"fail/subject-token-missing", with(func(v url.Values) { v.Del("subject_token") }), nil, "", 400, "invalid_request"},
		{"fail/subject-token-type-missing", with(func(v url.Values) { v.Del("subject_token_type") }), nil, "", 400, "invalid_request"},
		{"fail/subject-token-type-access-token", with(func(v url.Values) { v.Set("subject_token_type", "urn:ietf:params:oauth:token-type:access_token") }), nil, "", 400, "invalid_request"},
		{"fail/subject-token-expired", with(func(v url.Values) { v.Set("subject_token", expired) }), nil, "", 400, "invalid_request"},
		{"fail/subject-token-garbage", with(func(v url.Values) { v.Set("subject_token", "x") }), nil, "", 400, "invalid_request"},
		{"fail/actor-token", with(func(v url.Values) { v.Set("actor_token", good) }), nil, "", 400, "invalid_request"},
		{"fail/client-id", with(func(v url.Values) { v.Set("client_id", "x") }), nil, "", 400, "invalid_request"},
		{"fail/scope-twice", with(func(v url.Values) { v.Add("scope", "crm/notes/*:read") }), nil, "", 400, "invalid_request"},
		{"fail/scope-missing", with(func(v url.Values) { v.Del("scope") }), nil, "", 400, "invalid_request"},
		{"fail/scope-malformed", with(func(v url.Values) { v.Set("scope", "crm*:read") }), nil, "", 400, "invalid_scope"},
		{"fail/scope-not-granted", with(func(v url.Values) { v.Set("scope", "billing/invoices:read") }), nil, "", 400, "invalid_scope"},
		{"fail/audience-not-spiffe", with(func(v url.Values) { v.Set("audience", "https://crm.example") }), nil, "", 400, "invalid_target"},
		{"fail/audience-resource-differ", with(func(v url.Values) {
			v.Set("audience", "spiffe://acme.test/services/crm")
			v.Set("resource", "spiffe://acme.test/services/billing")
		}), nil, "", 400, "invalid_target"},
		{"fail/requested-token-type-jwt", with(func(v url.Values) { v.Set("requested_token_type", "urn:ietf:params:oauth:token-type:jwt") }), nil, "", 400, "invalid_request"},
		{"fail/authorization-header", with(func(url.Values) {}), map[string]string{"Authorization": "Bearer " + good}, "", 401, "invalid_client"},
		{"fail/other-grant-with-client-id", with(func(v url.Values) {
			v.Set("grant_type", "client_credentials")
			v.Set("client_id", "x")
			v.Del("subject_token")
		}), nil, "", 400, "unsupported_grant_type"},
		{"fail/grant-type-twice", with(func(v url.Values) { v.Add("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange") }), nil, "", 400, "invalid_request"},
		{"fail/params-in-url", with(func(url.Values) {}), nil, "?scope=x", 400, "invalid_request"},
		{"fail/body-too-large", with(func(v url.Values) { v.Set("scope", strings.Repeat("a", 5000)) }), nil, "", 413, "invalid_request"},
		{"ok/requested-token-type-biscuit", with(func(v url.Values) { v.Set("requested_token_type", spec.TokenTypeBiscuit) }), nil, "", 200, ""},
		{"ok/resource-instead-of-audience", with(func(v url.Values) { v.Set("resource", "spiffe://acme.test/services/crm") }), nil, "", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			req, _ := http.NewRequest(http.MethodPost, f.url+"/v1/token"+tc.path, strings.NewReader(tc.form.Encode()))
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			resp, err := f.client(nil).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || (tc.code != "" && body["error"] != tc.code) {
				t.Fatalf("got %d %v, want %d %s", resp.StatusCode, body, tc.status, tc.code)
			}
			if tc.status != 200 && resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("error content type: got %q, want application/json (RFC 6749 §5.2)", resp.Header.Get("Content-Type"))
			}
		})
	}
}

// TestAdminEndpointsMatrix refuses every admin endpoint of
// spec/openapi.yaml to every identity that is not a configured admin.
func TestAdminEndpointsMatrix(t *testing.T) {
	f := newFixture(t)
	raw, err := os.ReadFile("../spec/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	adminJWT := "Bearer " + f.jwtSVID(adminID, []string{issuerID.String()}, time.Minute)
	callers := []struct {
		name   string
		c      *http.Client
		hdr    map[string]string
		status int
		code   string
	}{
		{"agent-svid", f.client(f.svid(supportID)), nil, 403, issuer.ProblemForbidden},
		{"service-svid", f.client(f.svid(spiffeid.RequireFromPath(td, "/services/crm"))), nil, 403, issuer.ProblemForbidden},
		{"foreign-trust-domain-svid", f.client(f.svid(spiffeid.RequireFromPath(otherTD, "/admins/alice"))), nil, 403, issuer.ProblemForbidden},
		{"no-certificate", f.client(nil), nil, 401, issuer.ProblemUnauthenticated},
		{"admin-jwt-svid-without-certificate", f.client(nil), map[string]string{"Authorization": adminJWT}, 401, issuer.ProblemUnauthenticated},
		{"agent-svid-with-admin-jwt-svid", f.client(f.svid(supportID)), map[string]string{"Authorization": adminJWT}, 403, issuer.ProblemForbidden},
	}
	n := 0
	for path, ops := range doc.Paths {
		if !strings.HasPrefix(path, "/v1/admin/") {
			continue
		}
		for method := range ops {
			n++
			for _, c := range callers {
				t.Run("fail/"+c.name+"/"+strings.ToUpper(method)+path, func(t *testing.T) {
					r, err := f.do(c.c, strings.ToUpper(method), path, []byte(testPolicy), c.hdr)
					if err != nil {
						t.Fatal(err)
					}
					if r.status != c.status || r.problem.Type != spec.ProblemType(c.code) {
						t.Fatalf("got %d %s, want %d %s", r.status, r.problem.Type, c.status, spec.ProblemType(c.code))
					}
				})
			}
		}
	}
	if n < 3 {
		t.Fatalf("found %d admin operations in openapi.yaml, want at least 3", n)
	}
}

// TestClientCertificateReverifiedPerRequest: a keep-alive connection does
// not keep an identity alive once its certificate has expired at the
// issuer's clock or its CA has left the trust bundle.
func TestClientCertificateReverifiedPerRequest(t *testing.T) {
	var skew atomic.Int64
	bundles := x509bundle.NewSet()
	f := newFixture(t, func(c *issuer.Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		bundles.Add(c.Bundles.(*x509bundle.Set).Bundles()[0])
		bundles.Add(c.Bundles.(*x509bundle.Set).Bundles()[1])
		c.Bundles = bundles
	})
	c := f.client(f.svid(supportID)) // one keep-alive connection
	mint := func() reply {
		t.Helper()
		r, err := f.do(c, http.MethodPost, "/v1/token", []byte(`{"rights":["crm/contacts:read"]}`), nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := mint(); r.status != 200 {
		t.Fatalf("fresh connection: got %d, want 200", r.status)
	}
	skew.Store(int64(2 * time.Hour)) // past the SVID's (and the CA's) NotAfter
	if r := mint(); r.status != 401 || !strings.Contains(r.problem.Detail, "x509_untrusted") {
		t.Fatalf("same connection after expiry: got %d %q, want 401 x509_untrusted", r.status, r.problem.Detail)
	}
	skew.Store(0)
	if r := mint(); r.status != 200 {
		t.Fatalf("clock back: got %d, want 200", r.status)
	}
	// The CA leaves the bundle (replaced by another CA of the same name).
	impostor, err := pki.NewCA(td, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bundles.Add(impostor.Bundle())
	if r := mint(); r.status != 401 || !strings.Contains(r.problem.Detail, "x509_untrusted") {
		t.Fatalf("same connection after CA removal: got %d %q, want 401 x509_untrusted", r.status, r.problem.Detail)
	}
	r, err := f.do(f.client(f.svid(adminID)), http.MethodGet, "/v1/admin/policy", nil, nil)
	if err == nil && r.status == 200 {
		t.Fatal("admin endpoint served a certificate whose CA left the bundle")
	}
}

func TestTypedNilSources(t *testing.T) {
	ca, err := pki.NewCA(td, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := ca.IssueSVID(issuerID, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := issuer.NewKEK(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	cfg := issuer.DefaultConfig()
	cfg.DataDir, cfg.KEK, cfg.SVID = t.TempDir(), kek, svid.X509SVID()
	var set *x509bundle.Set
	cfg.Bundles = set
	if err := cfg.Validate(); err == nil {
		t.Fatal("Validate accepted a typed-nil bundle source")
	}

	// A typed-nil JWT bundle source means "no JWT-SVIDs", not a panic.
	f := newFixture(t, func(c *issuer.Config) {
		var none *jwtbundle.Set
		c.JWTBundles = none
	})
	r, err := f.do(f.client(nil), http.MethodPost, "/v1/token", []byte(`{"rights":["crm/contacts:read"]}`),
		map[string]string{"Authorization": "Bearer " + f.jwtSVID(supportID, []string{issuerID.String()}, time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if r.status != 401 || !strings.HasPrefix(r.problem.Detail, "jwt_not_accepted") {
		t.Fatalf("got %d %q, want 401 jwt_not_accepted", r.status, r.problem.Detail)
	}
}
