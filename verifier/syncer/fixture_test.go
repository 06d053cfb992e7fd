package syncer_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/writ-dev/writ/internal/pki"
	"github.com/writ-dev/writ/internal/syncwire"
	"github.com/writ-dev/writ/verifier/syncer"
)

var (
	td         = spiffeid.RequireTrustDomainFromString("acme.example")
	issuerID   = spiffeid.RequireFromPath(td, "/writ")
	verifierID = spiffeid.RequireFromPath(td, "/services/crm")
)

// rootKey returns root key id, its private key derived from id.
func rootKey(id uint32) syncwire.Signer {
	seed := bytes.Repeat([]byte{byte(id)}, ed25519.SeedSize)
	return syncwire.Signer{KeyID: id, Key: ed25519.NewKeyFromSeed(seed)}
}

func pubOf(sg syncwire.Signer) ed25519.PublicKey { return sg.Key.Public().(ed25519.PublicKey) }

func key(id uint32, st syncwire.KeyState) syncwire.Key {
	return syncwire.Key{ID: id, State: st, Public: pubOf(rootKey(id))}
}

// clock is a fake clock for freshness decisions.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	// An hour behind the wall clock: heartbeat times stay before the
	// state file's modification time.
	return &clock{t: time.Now().Add(-time.Hour).Truncate(time.Millisecond).UTC()}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Entries of the tests: token ids, block revocation ids (128 hex digits,
// of which the cluster holds the first 16 bytes) and agents.
func tokenID(i int) string { return fmt.Sprintf("%032x", 0x5f00+i) }

func blockID(i int) string {
	return fmt.Sprintf("%032x", 0xb100+i) + strings.Repeat(fmt.Sprintf("%02x", i%256), 48)
}

func tokenEntry(i int) syncwire.Entry {
	e := syncwire.Entry{Kind: syncwire.EntryToken}
	hex.Decode(e.ID[:], []byte(tokenID(i)))
	return e
}

func blockEntry(i int) syncwire.Entry {
	e := syncwire.Entry{Kind: syncwire.EntryBlock}
	hex.Decode(e.ID[:], []byte(blockID(i)[:32]))
	return e
}

func agentEntry(agent string, before time.Time) syncwire.Entry {
	return syncwire.Entry{Kind: syncwire.EntryAgent, Agent: agent, Before: before}
}

func entryKey(e syncwire.Entry) string {
	return fmt.Sprintf("%d/%x/%s/%d", e.Kind, e.ID, e.Agent, e.Before.UnixMilli())
}

// cluster is the sync state of a fake issuer cluster, with the server
// rules of spec/sync.md §2 (minimally): every node of a test serves it.
type cluster struct {
	mu      sync.Mutex
	signal  chan struct{} // closed and replaced by every commit
	signer  syncwire.Signer
	keys    []syncwire.Key
	nodes   []string
	epoch   uint64
	entries map[string]syncwire.Entry
	changes []*syncwire.Change // retained, in order
	now     func() time.Time
}

func newCluster(now func() time.Time, entries ...syncwire.Entry) *cluster {
	c := &cluster{
		signal:  make(chan struct{}),
		signer:  rootKey(1),
		keys:    []syncwire.Key{key(1, syncwire.KeyActive)},
		epoch:   10,
		entries: map[string]syncwire.Entry{},
		now:     now,
	}
	for _, e := range entries {
		c.entries[entryKey(e)] = e
	}
	return c
}

// commit makes a change (epochs jump: other raft commands come between).
func (c *cluster) commit(ch syncwire.Change) *syncwire.Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch.Prev, ch.Epoch, ch.Time = c.epoch, c.epoch+3, c.now()
	c.epoch = ch.Epoch
	for _, e := range ch.Remove {
		delete(c.entries, entryKey(e))
	}
	for _, e := range ch.Add {
		c.entries[entryKey(e)] = e
	}
	if ch.Keys != nil {
		c.keys = ch.Keys
	}
	if ch.NodesChanged {
		c.nodes = ch.Nodes
	}
	c.changes = append(c.changes, &ch)
	close(c.signal)
	c.signal = make(chan struct{})
	return &ch
}

// setSigner makes the cluster sign with sg from now on.
func (c *cluster) setSigner(sg syncwire.Signer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.signer = sg
}

func (c *cluster) snapshotLocked() *syncwire.Snapshot {
	s := &syncwire.Snapshot{Epoch: c.epoch, Time: c.now(), Keys: c.keys, Nodes: c.nodes}
	keys := make([]string, 0, len(c.entries))
	for k := range c.entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s.Entries = append(s.Entries, c.entries[k])
	}
	return s
}

func (c *cluster) snapshot(t testing.TB) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := syncwire.EncodeSnapshot(c.snapshotLocked(), c.signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (c *cluster) heartbeat(t testing.TB, node string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.heartbeatLocked(t, node)
}

func (c *cluster) heartbeatLocked(t testing.TB, node string) []byte {
	b, err := syncwire.EncodeHeartbeat(&syncwire.Heartbeat{Epoch: c.epoch, Time: c.now(), Node: node}, c.signer)
	if err != nil {
		t.Error(err)
	}
	return b
}

func change(t testing.TB, ch *syncwire.Change, sg syncwire.Signer) []byte {
	b, err := syncwire.EncodeChange(ch, sg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// answer writes the answer to since, waiting up to wait for a change.
func (c *cluster) answer(t testing.TB, w http.ResponseWriter, r *http.Request, since uint64, wait time.Duration, node string) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if since == 0 || since < c.epoch || wait == 0 {
			break
		}
		signal := c.signal
		c.mu.Unlock()
		select {
		case <-signal:
			continue
		case <-deadline.C:
			wait = 0
			continue
		case <-r.Context().Done():
			return
		}
	}
	defer c.mu.Unlock()
	if since > c.epoch {
		problemAnswer(w, http.StatusServiceUnavailable, "sync_behind", 1)
		return
	}
	var out []byte
	switch {
	case since == 0 || len(c.changes) == 0 || c.changes[0].Prev > since:
		b, err := syncwire.EncodeSnapshot(c.snapshotLocked(), c.signer)
		if err != nil {
			t.Error(err)
			return
		}
		out = b
	default:
		n := 0
		for _, ch := range c.changes {
			if ch.Epoch > since && n < 1024 {
				out = append(out, change(t, ch, c.signer)...)
				n++
			}
		}
	}
	out = append(out, c.heartbeatLocked(t, node)...)
	frames(w, out)
}

func frames(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", syncwire.ContentType)
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

func problemAnswer(w http.ResponseWriter, status int, code string, retryAfter int) {
	w.Header().Set("Content-Type", "application/problem+json")
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"https://writ.dev/problems/%s","title":"%s","status":%d}`, code, code, status)
}

// node is one issuer node over mTLS serving its cluster, unless a script
// or a fault answers instead.
type node struct {
	t    testing.TB
	c    *cluster
	name string
	url  string
	addr string

	mu      sync.Mutex
	sinces  []uint64
	script  [][]byte // bodies answered, one per poll, before the cluster's
	fault   func(w http.ResponseWriter) bool
	clients []string // SPIFFE IDs of the callers
}

// pkiFixture is the trust domain of a test.
type pkiFixture struct {
	ca     *pki.CA
	server *pki.SVID
	client *x509svid.SVID
}

func newPKI(t testing.TB) *pkiFixture {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA(td, now, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.IssueSVID(issuerID, now, time.Hour, pki.WithIP(netip.MustParseAddr("127.0.0.1")))
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.IssueSVID(verifierID, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &pkiFixture{ca: ca, server: server, client: client.X509SVID()}
}

func (p *pkiFixture) startNode(t testing.TB, c *cluster, name string) *node {
	t.Helper()
	n := &node{t: t, c: c, name: name}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(n.serve))
	// Wrap the listener rather than use StartTLS, which would add
	// httptest's own certificate next to go-spiffe's GetCertificate.
	srv.Listener = tls.NewListener(srv.Listener,
		tlsconfig.MTLSServerConfig(p.server.X509SVID(), p.ca.Bundle(), tlsconfig.AuthorizeMemberOf(td)))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	n.addr = srv.Listener.Addr().String()
	n.url = "https://" + n.addr
	return n
}

func (n *node) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err := strconv.ParseUint(q.Get("since"), 10, 64)
	inst := q.Get("instance")
	wait := time.Second
	if ws := q.Get("wait"); ws != "" {
		ms, werr := strconv.Atoi(ws)
		if werr != nil || ms < 0 || ms > 30000 {
			err = fmt.Errorf("wait %q", ws)
		}
		wait = time.Duration(ms) * time.Millisecond
	}
	if r.URL.Path != "/v1/sync" || err != nil || len(inst) == 0 || len(inst) > 64 {
		problemAnswer(w, http.StatusBadRequest, "bad_request", 0)
		return
	}
	id, _ := x509svid.IDFromCert(r.TLS.PeerCertificates[0])
	n.mu.Lock()
	n.sinces = append(n.sinces, since)
	n.clients = append(n.clients, id.String())
	fault := n.fault
	var body []byte
	scripted := len(n.script) > 0
	if scripted {
		body, n.script = n.script[0], n.script[1:]
	}
	n.mu.Unlock()
	switch {
	case fault != nil && fault(w):
	case scripted:
		frames(w, body)
	default:
		n.c.answer(n.t, w, r, since, wait, n.name)
	}
}

// polls returns the since of every poll so far.
func (n *node) polls() []uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.sinces)
}

func (n *node) setScript(bodies ...[]byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.script = bodies
}

func (n *node) setFault(f func(w http.ResponseWriter) bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fault = f
}

// refusedURL is an https URL where nothing listens.
func refusedURL(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "https://" + addr
}

// newSyncer returns a Syncer polling urls, with test timings.
func (p *pkiFixture) newSyncer(t testing.TB, clk *clock, urls []string, mod ...func(*syncer.Config)) *syncer.Syncer {
	t.Helper()
	cfg := syncer.DefaultConfig()
	cfg.Issuers, cfg.IssuerID = urls, issuerID
	cfg.SVID, cfg.Bundle = p.client, p.ca.Bundle()
	cfg.Instance = "test-1"
	cfg.PollWait = 100 * time.Millisecond
	cfg.Timeout = 5 * time.Second
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 20*time.Millisecond
	cfg.Now = clk.Now
	for _, m := range mod {
		m(&cfg)
	}
	s, err := syncer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// eventually waits up to 10 s for cond, polling.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
