package client_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"go.uber.org/goleak"

	"github.com/writ-dev/writ/internal/pki"
	"github.com/writ-dev/writ/issuer"
	"github.com/writ-dev/writ/issuer/client"
	"github.com/writ-dev/writ/verifier"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testPolicy grants the support agent CRM reads at two services; the
// billing agent gets nothing.
const testPolicy = `version: 1
rules:
  - name: support-crm
    subjects: ["spiffe://acme.test/agents/support"]
    rights: ["crm/contacts:read", "crm/notes/*:read"]
    services: ["spiffe://acme.test/services/crm", "spiffe://acme.test/services/notes"]
    max_ttl: 10m
`

var (
	td        = spiffeid.RequireTrustDomainFromString("acme.test")
	issuerID  = spiffeid.RequireFromPath(td, "/writ")
	supportID = spiffeid.RequireFromPath(td, "/agents/support")
	billingID = spiffeid.RequireFromPath(td, "/agents/billing")
	crmID     = spiffeid.RequireFromPath(td, "/services/crm")
	notesID   = spiffeid.RequireFromPath(td, "/services/notes")
)

// fakeClock is the clock of both the issuer (token timestamps) and the
// client (cache, renewal, backoff), so that tests move through a token's
// lifetime without sleeping. TLS, raft and JWT-SVID checks keep the real
// clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Now().UTC().Truncate(time.Second)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set puts the clock at t (benchmarks rewind it so that certificates
// and policy stay valid however many iterations run).
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// AlignSecond moves the clock forward to the next whole second.
func (c *fakeClock) AlignSecond() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.now.Truncate(time.Second); !t.Equal(c.now) {
		c.now = t.Add(time.Second)
	}
}

// jwtAuthority signs JWT-SVIDs with a key of the trust domain's JWT
// bundle, as a SPIRE server would. As a jwtsvid.Source it stands in for
// the Workload API of a SPIRE agent.
type jwtAuthority struct {
	key    *ecdsa.PrivateKey
	kid    string
	bundle *jwtbundle.Bundle
	// subject is the SPIFFE ID of the workload the source serves.
	subject spiffeid.ID
	// audience, when set, replaces the audience asked for (to test
	// refusals).
	audience string
	mu       sync.Mutex
	fetched  []string // tokens handed out
}

func newJWTAuthority(t testing.TB, subject spiffeid.ID) *jwtAuthority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := &jwtAuthority{key: key, kid: "test-key-1", bundle: jwtbundle.New(td), subject: subject}
	if err := a.bundle.AddJWTAuthority(a.kid, key.Public()); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *jwtAuthority) sign(t testing.TB, sub spiffeid.ID, aud string, now time.Time, ttl time.Duration) string {
	t.Helper()
	s, err := a.signErr(sub, aud, now, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (a *jwtAuthority) signErr(sub spiffeid.ID, aud string, now time.Time, ttl time.Duration) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: a.key, KeyID: a.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	return jwt.Signed(signer).Claims(jwt.Claims{
		Subject:  sub.String(),
		Audience: jwt.Audience{aud},
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(ttl)),
	}).Serialize()
}

// FetchJWTSVID signs a fresh 2-minute JWT-SVID for the subject.
func (a *jwtAuthority) FetchJWTSVID(ctx context.Context, params jwtsvid.Params) (*jwtsvid.SVID, error) {
	aud := params.Audience
	if a.audience != "" {
		aud = a.audience
	}
	tok, err := a.signErr(a.subject, aud, time.Now(), 2*time.Minute)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.fetched = append(a.fetched, tok)
	a.mu.Unlock()
	return jwtsvid.ParseInsecure(tok, []string{aud})
}

func (a *jwtAuthority) tokens() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.fetched...)
}

// fixture is one real issuer node on 127.0.0.1: real TLS with a test CA,
// raft and pebble in a temp dir.
type fixture struct {
	t      testing.TB
	ca     *pki.CA
	jwt    *jwtAuthority
	clock  *fakeClock // nil: the issuer uses the wall clock
	policy []byte     // nil: no initial policy
	dir    string
	kek    *issuer.KEK
	addr   string // kept across restarts so that clients reconnect
	is     *issuer.Issuer
	cancel context.CancelFunc
	done   chan error
	url    string
}

type fixtureOption func(*fixture)

func withWallClock() fixtureOption { return func(f *fixture) { f.clock = nil } }
func withoutPolicy() fixtureOption { return func(f *fixture) { f.policy = nil } }

func newFixture(t testing.TB, opts ...fixtureOption) *fixture {
	t.Helper()
	ca, err := pki.NewCA(td, time.Now(), 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := issuer.NewKEK(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ca: ca, jwt: newJWTAuthority(t, supportID), clock: newFakeClock(), policy: []byte(testPolicy),
		dir: t.TempDir(), kek: kek, addr: "127.0.0.1:0"}
	for _, o := range opts {
		o(f)
	}
	t.Cleanup(f.stop)
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
	cfg.ListenAddr, cfg.RaftAddr = f.addr, "127.0.0.1:0"
	cfg.DataDir, cfg.KEK = f.dir, f.kek
	cfg.SVID, cfg.Bundles, cfg.JWTBundles = svid.X509SVID(), f.ca.Bundle(), f.jwt.bundle
	cfg.InitialPolicy = f.policy
	if f.clock != nil {
		cfg.Now = f.clock.Now
	}
	var is *issuer.Issuer
	for i := 0; ; i++ {
		// On a restart the port was just released; another process may
		// hold it for a moment.
		if is, err = issuer.New(cfg); err == nil || i == 50 || !strings.Contains(err.Error(), "listen") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.is, f.cancel, f.done, f.addr, f.url = is, cancel, make(chan error, 1), is.Addr(), "https://"+is.Addr()
	go func() { f.done <- is.Run(ctx) }()
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

// plain is an HTTPS client that authenticates the issuer and presents no
// certificate (for /readyz, /v1/keys and /metrics).
func (f *fixture) plain() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: tlsconfig.TLSClientConfig(f.ca.Bundle(), tlsconfig.AuthorizeID(issuerID)),
	}}
}

func (f *fixture) get(path string) (int, []byte, error) {
	c := f.plain()
	defer c.CloseIdleConnections()
	resp, err := c.Get(f.url + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// waitReady waits until the node has a root key and, if it was given
// one, its policy.
func (f *fixture) waitReady() {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		status, body, err := f.get("/readyz")
		if err == nil && (status == 200 || f.policy == nil && strings.Contains(string(body), `"detail":"no policy"`)) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.t.Fatal("issuer not ready after 30s")
}

// keys returns the issuer's root keys from GET /v1/keys.
func (f *fixture) keys() *verifier.KeySet {
	f.t.Helper()
	status, body, err := f.get("/v1/keys")
	if err != nil || status != 200 {
		f.t.Fatalf("GET /v1/keys: %v %d", err, status)
	}
	ks, err := verifier.ParseJWKS(body)
	if err != nil {
		f.t.Fatal(err)
	}
	return ks
}

// served counts the token requests the issuer answered, from its
// writ_http_requests_total series.
func (f *fixture) served() int {
	f.t.Helper()
	status, body, err := f.get("/metrics")
	if err != nil || status != 200 {
		f.t.Fatalf("GET /metrics: %v %d", err, status)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "writ_http_requests_total{") || !strings.Contains(line, `route="POST /v1/token"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			f.t.Fatalf("metrics line %q: %v", line, err)
		}
		n += int(v)
	}
	return n
}

// waitServed waits until the issuer has counted want token requests (it
// counts after answering) and fails if it counted more.
func (f *fixture) waitServed(want int) {
	f.t.Helper()
	var got int
	waitFor(f.t, "the issuer's request count", func() bool { got = f.served(); return got >= want })
	if got != want {
		f.t.Fatalf("token requests the issuer served: got %d, want %d", got, want)
	}
}

func (f *fixture) svid(id spiffeid.ID) *pki.SVID {
	f.t.Helper()
	s, err := f.ca.IssueSVID(id, time.Now(), time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// config returns a client config for agent id over mTLS, with the
// fixture's clock and a counting transport.
func (f *fixture) config(id spiffeid.ID, rt *recorder) client.Config {
	cfg := client.DefaultConfig()
	cfg.IssuerURL, cfg.IssuerID, cfg.Bundles = f.url, issuerID, f.ca.Bundle()
	cfg.X509SVID = f.svid(id).X509SVID()
	cfg.Rights = []string{"crm/contacts:read"}
	if f.clock != nil {
		cfg.Now = f.clock.Now
	}
	if rt != nil {
		cfg.WrapTransport = rt.wrap
	}
	return cfg
}

func newClient(t testing.TB, cfg client.Config) *client.Client {
	t.Helper()
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recorder wraps the client's real transport: it counts token requests
// and their outcomes, and can hold requests at a gate.
type recorder struct {
	next     http.RoundTripper
	mu       sync.Mutex
	requests int
	ok       int
	gate     chan struct{} // when non-nil, token requests wait for it to close
	auth     []string      // Authorization headers seen
}

func (r *recorder) wrap(next http.RoundTripper) http.RoundTripper {
	r.next = next
	return r
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.requests++
	r.auth = append(r.auth, req.Header.Get("Authorization"))
	gate := r.gate
	r.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-req.Context().Done():
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, req.Context().Err()
		}
	}
	resp, err := r.next.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		if resp.StatusCode == 200 {
			r.ok++
		}
		r.mu.Unlock()
	}
	return resp, err
}

func (r *recorder) counts() (requests, ok int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, r.ok
}

func (r *recorder) hold() {
	r.mu.Lock()
	r.gate = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) release() {
	r.mu.Lock()
	if r.gate != nil {
		close(r.gate)
		r.gate = nil
	}
	r.mu.Unlock()
}

// waitFor polls cond every 5ms for up to 20s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lastAudit returns the issuer's latest audit record.
func (f *fixture) lastAudit() issuer.AuditRecord {
	f.t.Helper()
	seq, _ := f.is.State().AuditHead()
	recs, err := f.is.State().AuditRecords(seq, 1)
	if err != nil || len(recs) != 1 {
		f.t.Fatalf("audit record %d: %v %d", seq, err, len(recs))
	}
	return recs[0]
}
