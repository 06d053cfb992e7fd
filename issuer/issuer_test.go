package issuer_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/writ-dev/writ/internal/pki"
	"github.com/writ-dev/writ/issuer"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

// testPolicy grants the support agent CRM reads and nothing else.
const testPolicy = `version: 1
rules:
  - name: support-crm
    subjects: ["spiffe://acme.test/agents/support"]
    rights: ["crm/contacts:read", "crm/notes/*:read"]
    max_ttl: 10m
    max_records: 50
`

var (
	td        = spiffeid.RequireTrustDomainFromString("acme.test")
	otherTD   = spiffeid.RequireTrustDomainFromString("other.test")
	issuerID  = spiffeid.RequireFromPath(td, "/writ")
	supportID = spiffeid.RequireFromPath(td, "/agents/support")
	billingID = spiffeid.RequireFromPath(td, "/agents/billing")
	adminID   = spiffeid.RequireFromPath(td, "/admins/alice")
)

// fixture is one real issuer node on 127.0.0.1 with real TLS and pebble on disk.
type fixture struct {
	t                  testing.TB
	ca                 *pki.CA
	other              *pki.CA
	jwtCA              *pki.JWTAuthority // signs JWT-SVIDs of acme.test
	jwtOth             *pki.JWTAuthority // signs JWT-SVIDs of other.test
	dir                string
	kek                *issuer.KEK
	is                 *issuer.Issuer
	opts               []func(*issuer.Config) // applied to the config at every start
	listen, raftListen string                 // bound at the first start, reused by restarts
	cancel             context.CancelFunc
	done               chan error
	url                string
}

func newFixture(t testing.TB, opts ...func(*issuer.Config)) *fixture {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA(td, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA(otherTD, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := issuer.NewKEK(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	jwtCA, err := pki.NewJWTAuthority(td)
	if err != nil {
		t.Fatal(err)
	}
	jwtOth, err := pki.NewJWTAuthority(otherTD)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ca: ca, other: other, jwtCA: jwtCA, jwtOth: jwtOth, dir: t.TempDir(), kek: kek, opts: opts}
	f.start()
	return f
}

func (f *fixture) start() {
	t := f.t
	t.Helper()
	svid, err := f.ca.IssueSVID(issuerID, time.Now(), time.Hour, pki.WithIP(netip.MustParseAddr("127.0.0.1")))
	if err != nil {
		t.Fatal(err)
	}
	cfg := issuer.DefaultConfig()
	// A restarted node keeps its addresses, as a real one does (a new
	// address is a membership change, with its own audit record).
	cfg.ListenAddr, cfg.RaftAddr = "127.0.0.1:0", "127.0.0.1:0"
	if f.listen != "" {
		cfg.ListenAddr, cfg.RaftAddr = f.listen, f.raftListen
	}
	cfg.DataDir = f.dir
	cfg.KEK = f.kek
	cfg.SVID = svid.X509SVID()
	cfg.Bundles = x509bundle.NewSet(f.ca.Bundle(), f.other.Bundle())
	cfg.JWTBundles = jwtbundle.NewSet(
		jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{f.jwtCA.KeyID(): f.jwtCA.Public()}),
		jwtbundle.FromJWTAuthorities(otherTD, map[string]crypto.PublicKey{f.jwtOth.KeyID(): f.jwtOth.Public()}))
	cfg.Admins = []spiffeid.ID{adminID}
	cfg.InitialPolicy = []byte(testPolicy)
	cfg.MaxBodyBytes = 4096
	cfg.MaxHeaderBytes = 4096
	for _, o := range f.opts {
		o(&cfg)
	}
	is, err := issuer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.is, f.cancel, f.done, f.url = is, cancel, make(chan error, 1), "https://"+is.Addr()
	f.listen, f.raftListen = is.Addr(), is.RaftAddr()
	go func() { f.done <- is.Run(ctx) }()
	t.Cleanup(f.stop)
	f.waitReady()
}

func (f *fixture) stop() {
	if f.cancel == nil {
		return
	}
	f.cancel()
	if err := <-f.done; err != nil {
		f.t.Errorf("issuer Run: %v", err)
	}
	f.cancel = nil
}

func (f *fixture) waitReady() {
	f.t.Helper()
	c := f.client(nil)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.Get(f.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.t.Fatal("issuer not ready after 20s")
}

// client returns an HTTPS client presenting svid (nil: no certificate).
func (f *fixture) client(svid *pki.SVID) *http.Client {
	var cfg *tls.Config
	auth := tlsconfig.AuthorizeID(issuerID)
	if svid == nil {
		cfg = tlsconfig.TLSClientConfig(f.ca.Bundle(), auth)
	} else {
		cfg = tlsconfig.MTLSClientConfig(svid.X509SVID(), x509bundle.NewSet(f.ca.Bundle(), f.other.Bundle()), auth)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 64}}
}

func (f *fixture) svid(id spiffeid.ID, opts ...pki.Option) *pki.SVID {
	f.t.Helper()
	ca := f.ca
	if id.TrustDomain() == otherTD {
		ca = f.other
	}
	s, err := ca.IssueSVID(id, time.Now(), time.Hour, opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

type reply struct {
	status  int
	ctype   string
	body    []byte
	problem issuer.Problem
	token   issuer.TokenResponse
}

func (f *fixture) do(c *http.Client, method, path string, body []byte, hdr map[string]string) (reply, error) {
	req, err := http.NewRequest(method, f.url+path, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: b}
	if r.ctype == "application/problem+json" {
		json.Unmarshal(b, &r.problem)
	} else if path == "/v1/token" && r.status == 200 {
		json.Unmarshal(b, &r.token)
	}
	return r, nil
}

func (f *fixture) mint(c *http.Client, body string) reply {
	f.t.Helper()
	r, err := f.do(c, http.MethodPost, "/v1/token", []byte(body), nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) keys(t testing.TB) *verifier.KeySet {
	t.Helper()
	r, err := f.do(f.client(nil), http.MethodGet, "/v1/keys", nil, nil)
	if err != nil || r.status != 200 {
		t.Fatalf("GET /v1/keys: %v %d", err, r.status)
	}
	ks, err := verifier.ParseJWKS(r.body)
	if err != nil {
		t.Fatalf("ParseJWKS: %v", err)
	}
	return ks
}

func TestMintVerifyEndToEnd(t *testing.T) {
	f := newFixture(t)
	c := f.client(f.svid(supportID))
	r := f.mint(c, `{"rights":["crm/contacts:read","crm/notes/7:read","crm/contacts:write"],"ttl":"1h"}`)
	if r.status != 200 {
		t.Fatalf("status: got %d, want 200: %s", r.status, r.body)
	}
	if got, want := strings.Join(r.token.Granted, ","), "crm/contacts:read,crm/notes/7:read"; got != want {
		t.Errorf("granted: got %s, want %s", got, want)
	}
	if len(r.token.Denied) != 1 || r.token.Denied[0].Right != "crm/contacts:write" {
		t.Errorf("denied: got %+v, want crm/contacts:write", r.token.Denied)
	}
	if ttl := time.Until(r.token.ExpiresAt); ttl > 10*time.Minute+time.Second || ttl < 9*time.Minute {
		t.Errorf("ttl: got %v, want capped by the rule's 10m", ttl)
	}
	tok, err := verifier.DecodeToken(r.token.Token)
	if err != nil {
		t.Fatal(err)
	}
	cfg := verifier.DefaultConfig()
	cfg.Keys = f.keys(t)
	v, err := verifier.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  verifier.Request
		want string
	}{
		{"ok/granted-right", verifier.Request{Resource: "crm/contacts", Operation: "read", Presenter: supportID.String()}, spec.ReasonAllowed},
		{"fail/denied-right-not-in-token", verifier.Request{Resource: "crm/contacts", Operation: "write", Presenter: supportID.String()}, spec.ReasonNotGranted},
		{"fail/narrowed-prefix", verifier.Request{Resource: "crm/notes/8", Operation: "read", Presenter: supportID.String()}, spec.ReasonNotGranted},
		{"fail/other-presenter", verifier.Request{Resource: "crm/contacts", Operation: "read", Presenter: billingID.String()}, spec.ReasonPresenterMismatch},
		{"fail/over-record-limit", verifier.Request{Resource: "crm/contacts", Operation: "read", Presenter: supportID.String(), Records: 51}, spec.ReasonConstraintViolated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := v.Authorize(ctx, tok, tc.req)
			if d.Reason != tc.want {
				t.Fatalf("reason: got %s (%s), want %s", d.Reason, d.Message, tc.want)
			}
			if tc.want == spec.ReasonAllowed && (d.Agent != supportID.String() || d.TokenID != r.token.TokenID || d.Constraints.MaxRecords != 50) {
				t.Errorf("decision: got agent %q token %q max records %d", d.Agent, d.TokenID, d.Constraints.MaxRecords)
			}
		})
	}
}

func TestMintDenied(t *testing.T) {
	f := newFixture(t)
	r := f.mint(f.client(f.svid(billingID)), `{"rights":["crm/contacts:read"]}`)
	if r.status != 403 || r.problem.Type != spec.ProblemType(spec.ReasonNotGranted) {
		t.Fatalf("got %d %q, want 403 not_granted: %s", r.status, r.problem.Type, r.body)
	}
	if len(r.problem.Denied) != 1 || r.problem.Denied[0].Right != "crm/contacts:read" || r.problem.Denied[0].Reason == "" {
		t.Errorf("denied: got %+v", r.problem.Denied)
	}
	// The support agent asking too widely is told what it could ask for.
	r = f.mint(f.client(f.svid(supportID)), `{"rights":["crm/*:read"]}`)
	if r.status != 403 {
		t.Fatalf("wide request: got %d, want 403", r.status)
	}
	if len(r.problem.Denied) != 1 || len(r.problem.Denied[0].Alternatives) == 0 {
		t.Errorf("alternatives: got %+v, want some", r.problem.Denied)
	}
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t)
	agent := f.client(f.svid(supportID))
	for _, tc := range []struct {
		name   string
		c      *http.Client
		method string
		path   string
		body   string
		hdr    map[string]string
		status int
		code   string
	}{
		{"fail/no-client-cert", f.client(nil), "POST", "/v1/token", `{"rights":["crm/contacts:read"]}`, nil, 401, issuer.ProblemUnauthenticated},
		{"fail/not-json", agent, "POST", "/v1/token", `rights=crm`, nil, 400, issuer.ProblemBadRequest},
		{"fail/unknown-field", agent, "POST", "/v1/token", `{"rights":["crm/contacts:read"],"admin":true}`, nil, 400, issuer.ProblemBadRequest},
		{"fail/trailing-data", agent, "POST", "/v1/token", `{"rights":["crm/contacts:read"]} {}`, nil, 400, issuer.ProblemBadRequest},
		{"fail/no-rights", agent, "POST", "/v1/token", `{"rights":[]}`, nil, 400, issuer.ProblemBadRequest},
		{"fail/bad-right", agent, "POST", "/v1/token", `{"rights":["crm*:read"]}`, nil, 400, issuer.ProblemBadRequest},
		{"fail/bad-ttl", agent, "POST", "/v1/token", `{"rights":["crm/contacts:read"],"ttl":"-5m"}`, nil, 400, issuer.ProblemBadRequest},
		{"fail/oversized-body", agent, "POST", "/v1/token", `{"rights":["` + strings.Repeat("a", 5000) + `:read"]}`, nil, 413, issuer.ProblemTooLarge},
		{"fail/unknown-path", agent, "GET", "/v1/nope", ``, nil, 404, issuer.ProblemNotFound},
		{"fail/wrong-method", agent, "GET", "/v1/token", ``, nil, 405, issuer.ProblemMethod},
		{"fail/bad-audit-from", f.client(f.svid(adminID)), "GET", "/v1/admin/audit?from=x", ``, nil, 400, issuer.ProblemBadRequest},
		{"fail/agent-on-admin", agent, "GET", "/v1/admin/policy", ``, nil, 403, issuer.ProblemForbidden},
		{"fail/foreign-td-on-token", f.client(f.svid(spiffeid.RequireFromPath(otherTD, "/agents/x"))), "POST", "/v1/token", `{"rights":["crm/contacts:read"]}`, nil, 403, issuer.ProblemForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := f.do(tc.c, tc.method, tc.path, []byte(tc.body), tc.hdr)
			if err != nil {
				t.Fatal(err)
			}
			if r.status != tc.status || r.problem.Type != spec.ProblemType(tc.code) || r.ctype != "application/problem+json" {
				t.Fatalf("got %d %q %q, want %d %q problem+json: %s", r.status, r.problem.Type, r.ctype, tc.status, spec.ProblemType(tc.code), r.body)
			}
		})
	}
	t.Run("fail/oversized-headers", func(t *testing.T) {
		r, err := f.do(agent, "POST", "/v1/token", []byte(`{}`), map[string]string{"X-Big": strings.Repeat("a", 20000)})
		if err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("got %d %s, want 431", r.status, r.body)
		}
	})
}

func TestTLSHandshakeRefusals(t *testing.T) {
	f := newFixture(t)
	stranger, err := pki.NewCA(td, time.Now(), time.Hour) // same trust domain name, different keys
	if err != nil {
		t.Fatal(err)
	}
	forged, err := stranger.IssueSVID(supportID, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	expired := f.svid(supportID, pki.WithValidity(now.Add(-2*time.Hour), now.Add(-time.Hour)))
	for _, tc := range []struct {
		name string
		svid *pki.SVID
	}{
		{"fail/unknown-ca", forged},
		{"fail/expired", expired},
		{"fail/leaf-claims-ca", f.svid(supportID, pki.WithCA(true))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := tc.svid.TLSCertificate()
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
				Certificates: []tls.Certificate{cert},
				// The client trusts the server; the server must refuse the client.
				InsecureSkipVerify: true,
			}}}
			_, err := f.do(c, "POST", "/v1/token", []byte(`{"rights":["crm/contacts:read"]}`), nil)
			if err == nil {
				t.Fatal("request succeeded, want TLS handshake failure")
			}
		})
	}
}

func TestAdminPolicyAndAudit(t *testing.T) {
	f := newFixture(t)
	admin := f.client(f.svid(adminID))
	r, err := f.do(admin, "GET", "/v1/admin/policy", nil, nil)
	if err != nil || r.status != 200 || string(r.body) != testPolicy {
		t.Fatalf("get policy: %v %d %q", err, r.status, r.body)
	}
	bad := "version: 1\nrules:\n  - name: x\n    subjects: [\"spiffe://acme.test/a\"]\n    rights: [\"nope\"]\n"
	r, _ = f.do(admin, "PUT", "/v1/admin/policy", []byte(bad), nil)
	if r.status != 400 || r.problem.Type != spec.ProblemType(issuer.ProblemBadPolicy) || !strings.Contains(r.problem.Detail, "line 5") {
		t.Fatalf("bad policy: got %d %q %q, want 400 bad_policy naming line 5", r.status, r.problem.Type, r.problem.Detail)
	}
	newPolicy := strings.Replace(testPolicy, "agents/support", "agents/billing", 1)
	r, _ = f.do(admin, "PUT", "/v1/admin/policy", []byte(newPolicy), nil)
	if r.status != 200 {
		t.Fatalf("put policy: %d %s", r.status, r.body)
	}
	if got := f.mint(f.client(f.svid(billingID)), `{"rights":["crm/contacts:read"]}`); got.status != 200 {
		t.Fatalf("mint under new policy: %d %s", got.status, got.body)
	}
	if got := f.mint(f.client(f.svid(supportID)), `{"rights":["crm/contacts:read"]}`); got.status != 403 {
		t.Fatalf("old subject under new policy: got %d, want 403", got.status)
	}
	r, _ = f.do(admin, "GET", "/v1/admin/audit?from=1&limit=1000", nil, nil)
	var page issuer.AuditPage
	if err := json.Unmarshal(r.body, &page); err != nil || r.status != 200 {
		t.Fatalf("audit: %v %d", err, r.status)
	}
	kinds := []string{}
	for _, rec := range page.Records {
		kinds = append(kinds, rec.Kind)
	}
	want := "node.set,key.add,policy.set,policy.set,token.mint,token.deny"
	if strings.Join(kinds, ",") != want || !page.Verified || page.HeadSeq != 6 {
		t.Fatalf("audit: got %v verified=%v head=%d, want %s verified head=6", kinds, page.Verified, page.HeadSeq, want)
	}
	foreign := spiffeid.RequireFromPath(otherTD, "/agents/x")
	if got := f.mint(f.client(f.svid(foreign)), `{"rights":["crm/contacts:read"]}`); got.status != 403 {
		t.Fatalf("foreign trust domain: got %d, want 403", got.status)
	}
	recs, err := f.is.State().AuditRecords(7, 10)
	if err != nil || len(recs) != 1 || recs[0].Kind != issuer.AuditDeny || recs[0].Caller != foreign.String() || recs[0].Reason != "trust_domain_not_accepted" {
		t.Fatalf("foreign caller's denial: got %+v %v, want one token.deny record", recs, err)
	}
	if err := issuer.VerifyAuditChain("", 1, page.Records); err != nil {
		t.Fatal(err)
	}
	page.Records[3].Granted = []string{"everything:admin"}
	if err := issuer.VerifyAuditChain("", 1, page.Records); !errors.Is(err, issuer.ErrAuditChain) {
		t.Fatalf("tampered chain: got %v, want ErrAuditChain", err)
	}
}

func TestRestartKeepsState(t *testing.T) {
	f := newFixture(t)
	c := f.client(f.svid(supportID))
	first := f.mint(c, `{"rights":["crm/contacts:read"]}`)
	if first.status != 200 {
		t.Fatalf("mint: %d", first.status)
	}
	seq, hash := f.is.State().AuditHead()
	f.stop()
	f.start()
	if s2, h2 := f.is.State().AuditHead(); s2 != seq || h2 != hash {
		t.Fatalf("audit head after restart: got %d %s, want %d %s", s2, h2, seq, hash)
	}
	again := f.mint(f.client(f.svid(supportID)), `{"rights":["crm/contacts:read"]}`)
	if again.status != 200 || again.token.KeyID != first.token.KeyID || again.token.PolicyVersion != first.token.PolicyVersion {
		t.Fatalf("after restart: got %d key %d policy %s, want key %d policy %s", again.status, again.token.KeyID, again.token.PolicyVersion, first.token.KeyID, first.token.PolicyVersion)
	}
}

func TestWrongKEKRefused(t *testing.T) {
	f := newFixture(t)
	f.stop()
	wrong, _ := issuer.NewKEK(bytes.Repeat([]byte{8}, 32))
	_, err := issuer.OpenState(filepath.Join(f.dir, "state"), wrong, nil)
	if !errors.Is(err, issuer.ErrBadKEK) {
		t.Fatalf("got %v, want ErrBadKEK", err)
	}
}

func TestConcurrentMintsAllAudited(t *testing.T) {
	f := newFixture(t)
	c := f.client(f.svid(supportID))
	seq0, _ := f.is.State().AuditHead()
	const n = 200
	var wg sync.WaitGroup
	ids := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := f.do(c, "POST", "/v1/token", []byte(`{"rights":["crm/contacts:read"]}`), nil)
			if err != nil || r.status != 200 {
				t.Errorf("mint: %v %d", err, r.status)
				return
			}
			ids <- r.token.TokenID
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	seq, _ := f.is.State().AuditHead()
	if len(seen) != n || seq-seq0 != n {
		t.Fatalf("got %d distinct tokens and %d audit records, want %d of each", len(seen), seq-seq0, n)
	}
	recs, err := f.is.State().AuditRecords(seq0+1, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		delete(seen, r.TokenID)
	}
	if len(seen) != 0 {
		t.Fatalf("%d minted tokens have no audit record", len(seen))
	}
}

// TestLargeAuditRecordsDoNotPoisonBatches: requests whose audit records are
// large (JSON-escaped rights) are cut into raft entries below the command
// cap, so nobody's request fails because of someone else's.
func TestLargeAuditRecordsDoNotPoisonBatches(t *testing.T) {
	f := newFixture(t)
	c := f.client(f.svid(billingID))
	right := strings.Repeat("<", 480) + ":read"
	rights := make([]string, 7)
	for i := range rights {
		rights[i] = `"` + right + `"`
	}
	body := `{"rights":[` + strings.Join(rights, ",") + `]}`
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := f.do(c, "POST", "/v1/token", []byte(body), nil)
			if err != nil {
				errs <- err.Error()
			} else if r.status != 403 {
				errs <- fmt.Sprintf("status %d: %s", r.status, r.body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("denied request with a large audit record: got %s, want 403", e)
	}
}

// TestRefuseStateAheadOfRaftLog: a node whose raft log was lost must not
// start, or new commands would be skipped as already applied.
func TestRefuseStateAheadOfRaftLog(t *testing.T) {
	f := newFixture(t)
	if r := f.mint(f.client(f.svid(supportID)), `{"rights":["crm/contacts:read"]}`); r.status != 200 {
		t.Fatalf("mint: %d", r.status)
	}
	f.stop()
	if err := os.RemoveAll(filepath.Join(f.dir, "raft")); err != nil {
		t.Fatal(err)
	}
	svid := f.svid(issuerID)
	cfg := issuer.DefaultConfig()
	cfg.ListenAddr, cfg.RaftAddr, cfg.DataDir, cfg.KEK = "127.0.0.1:0", "127.0.0.1:0", f.dir, f.kek
	cfg.SVID, cfg.Bundles = svid.X509SVID(), f.ca.Bundle()
	if _, err := issuer.New(cfg); err == nil || !strings.Contains(err.Error(), "refusing to start") {
		t.Fatalf("got %v, want a refusal to start", err)
	}
}

// TestAdminEndpointsRefuseNonAdmins: every admin endpoint refuses an agent
// SVID, a service SVID, a foreign trust domain's SVID and no certificate.
func TestAdminEndpointsRefuseNonAdmins(t *testing.T) {
	f := newFixture(t)
	callers := []struct {
		name   string
		c      *http.Client
		status int
		code   string
	}{
		{"agent", f.client(f.svid(supportID)), 403, issuer.ProblemForbidden},
		{"service", f.client(f.svid(spiffeid.RequireFromPath(td, "/services/crm"))), 403, issuer.ProblemForbidden},
		{"foreign-trust-domain", f.client(f.svid(spiffeid.RequireFromPath(otherTD, "/admins/alice"))), 403, issuer.ProblemForbidden},
		{"no-certificate", f.client(nil), 401, issuer.ProblemUnauthenticated},
	}
	endpoints := []struct{ method, path, body string }{
		{"GET", "/v1/admin/policy", ""},
		{"PUT", "/v1/admin/policy", testPolicy},
		{"GET", "/v1/admin/audit", ""},
	}
	for _, ep := range endpoints {
		for _, c := range callers {
			t.Run("fail/"+c.name+ep.method+ep.path, func(t *testing.T) {
				r, err := f.do(c.c, ep.method, ep.path, []byte(ep.body), nil)
				if err != nil {
					t.Fatal(err)
				}
				if r.status != c.status || r.problem.Type != spec.ProblemType(c.code) {
					t.Fatalf("got %d %s, want %d %s", r.status, r.problem.Type, c.status, spec.ProblemType(c.code))
				}
			})
		}
	}
	version, _, err := f.is.State().PolicySource()
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := f.do(f.client(f.svid(adminID)), "GET", "/v1/admin/policy", nil, nil); r.status != 200 {
		t.Fatalf("admin: got %d, want 200", r.status)
	}
	if v2, _, _ := f.is.State().PolicySource(); v2 != version {
		t.Fatal("a refused PUT changed the policy")
	}
}
