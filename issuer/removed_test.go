package issuer

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/writ-dev/writ/spec"
)

func TestRemovalEvidence(t *testing.T) {
	member := &NodeStats{State: "Follower", Members: []string{"a", "b", "c"}}
	leaderWithout := &NodeStats{State: "Leader", Members: []string{"a", "b"}}
	followerWithout := &NodeStats{State: "Follower", Members: []string{"a", "b"}}
	marks := &NodeStats{State: "Follower", Members: []string{"a", "b"}, Removed: []string{"c"}}
	cases := []struct {
		name      string
		own       bool
		views     []peerView
		wantFound bool
		wantFinal bool
	}{
		{"ok/members-include-self", false, []peerView{{"a", member}, {"b", &NodeStats{State: "Leader", Members: []string{"a", "b", "c"}}}}, false, false},
		{"ok/nobody-answers", false, []peerView{{"a", nil}, {"b", nil}}, false, false},
		{"ok/no-peers-known", false, nil, false, false},
		{"ok/stale-follower-config-is-no-evidence", false, []peerView{{"a", followerWithout}}, false, false},
		{"ok/old-peer-without-members", false, []peerView{{"a", &NodeStats{State: "Leader"}}}, false, false},
		{"removed/own-record", true, nil, true, true},
		{"removed/peer-record", false, []peerView{{"a", nil}, {"b", marks}}, true, true},
		{"removed/peer-record-beats-config", false, []peerView{{"a", leaderWithout}, {"b", marks}}, true, true},
		{"not-member/leader-config", false, []peerView{{"a", leaderWithout}, {"b", nil}}, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, found := removalEvidence("c", tc.own, tc.views)
			if found != tc.wantFound || got.final != tc.wantFinal || found != (got.evidence != "") {
				t.Fatalf("got %+v found %v, want found %v final %v", got, found, tc.wantFound, tc.wantFinal)
			}
		})
	}
}

// lockedBuffer collects log output from several goroutines.
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

// adminCall runs an admin handler of is directly (the HTTPS layer and its
// authentication are tested elsewhere) and returns the status and body.
func adminCall(t *testing.T, h func(http.ResponseWriter, *http.Request, spiffeid.ID), path string, body any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	w := httptest.NewRecorder()
	h(w, httptest.NewRequestWithContext(t.Context(), http.MethodPost, path, bytes.NewReader(b)), nodeTestAdmin)
	return w.Code, w.Body.String()
}

type httpReply struct {
	status  int
	body    []byte
	problem Problem
}

func (e *testEnv) client(t *testing.T, agent bool) *http.Client {
	t.Helper()
	auth := tlsconfig.AuthorizeID(nodeTestID)
	cfg := tlsconfig.TLSClientConfig(e.ca.Bundle(), auth)
	if agent {
		svid, err := e.ca.IssueSVID(nodeTestAgent, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cfg = tlsconfig.MTLSClientConfig(svid.X509SVID(), x509bundle.NewSet(e.ca.Bundle()), auth)
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

func httpCall(t *testing.T, c *http.Client, method, url, ctype, body string) httpReply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := httpReply{status: resp.StatusCode, body: b}
	if resp.Header.Get("Content-Type") == "application/problem+json" {
		json.Unmarshal(b, &r.problem)
	}
	return r
}

// TestRemovedNodeRefusesToServe: a node removed from a three-node cluster
// while it was down restarts on its old data, finds out from the others'
// member records, and refuses to serve: /readyz fails with the reason,
// token requests get 503 unavailable in both dialects, and the log tells
// the operator to reset its data directory. A node removed while running
// finds out too. The remaining members keep serving.
func TestRemovedNodeRefusesToServe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	env := newTestEnv(t)
	n1 := startTestNode(t, env.config(t, "writ-1", t.TempDir(), true))
	waitUntil(t, "writ-1 ready", n1.ready)
	n2 := startTestNode(t, env.config(t, "writ-2", t.TempDir(), false))
	logs := &lockedBuffer{}
	cfg3 := env.config(t, "writ-3", t.TempDir(), false)
	cfg3.Logger = slog.New(slog.NewTextHandler(logs, nil))
	n3 := startTestNode(t, cfg3)
	for _, n := range []*testNode{n2, n3} {
		code, body := adminCall(t, n1.is.handleJoin, "/v1/admin/cluster/join",
			JoinRequest{NodeID: n.cfg.NodeID, RaftAddr: n.is.RaftAddr(), APIAddr: n.is.Addr()})
		if code != http.StatusOK {
			t.Fatalf("join %s: %d %s", n.cfg.NodeID, code, body)
		}
	}
	for _, n := range []*testNode{n1, n2, n3} {
		waitUntil(t, n.cfg.NodeID+" ready", n.ready)
	}
	agent, anon := env.client(t, true), env.client(t, false)
	const mintBody = `{"rights":["crm/contacts:read"]}`
	if r := httpCall(t, agent, http.MethodPost, "https://"+n3.is.Addr()+"/v1/token", "application/json", mintBody); r.status != http.StatusOK {
		t.Fatalf("mint on writ-3 while a member: %d %s", r.status, r.body)
	}
	if n3.is.removedReason() != "" {
		t.Fatalf("writ-3 refuses to serve while a member: %s", n3.is.removedReason())
	}

	// writ-3 is removed while it is down, then restarts on its data.
	n3.stop()
	if code, body := adminCall(t, n1.is.handleRemove, "/v1/admin/cluster/remove", RemoveRequest{NodeID: "writ-3"}); code != http.StatusOK {
		t.Fatalf("remove writ-3: %d %s", code, body)
	}
	n3.start()
	waitUntil(t, "writ-3 to find it was removed", func() bool { return n3.is.removedReason() != "" })
	if r := n3.is.removed.Load(); !r.final || !strings.Contains(r.evidence, "records mark it removed") {
		t.Errorf("evidence: got %+v, want a final one from a member's records", *r)
	}
	base3 := "https://" + n3.is.Addr()
	r := httpCall(t, anon, http.MethodGet, base3+"/readyz", "", "")
	if r.status != http.StatusServiceUnavailable || r.problem.Type != spec.ProblemType(ProblemUnavailable) ||
		!strings.Contains(r.problem.Detail, "removed from the cluster") || !strings.Contains(r.problem.Detail, "data directory") {
		t.Errorf("readyz on removed writ-3: got %d %s, want 503 unavailable naming the removal and the data directory", r.status, r.body)
	}
	r = httpCall(t, agent, http.MethodPost, base3+"/v1/token", "application/json", mintBody)
	if r.status != http.StatusServiceUnavailable || r.problem.Type != spec.ProblemType(ProblemUnavailable) ||
		!strings.Contains(r.problem.Detail, "removed from the cluster") {
		t.Errorf("mint on removed writ-3: got %d %s, want 503 unavailable naming the removal", r.status, r.body)
	}
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "scope": {"crm/contacts:read"}}.Encode()
	r = httpCall(t, agent, http.MethodPost, base3+"/v1/token", "application/x-www-form-urlencoded", form)
	var oauth struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(r.body, &oauth); r.status != http.StatusServiceUnavailable || oauth.Error != oauthUnavailable {
		t.Errorf("token exchange on removed writ-3: got %d %s, want 503 %s", r.status, r.body, oauthUnavailable)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "removed from the cluster") ||
		!strings.Contains(l, "delete its data directory") || !strings.Contains(l, cfg3.DataDir) {
		t.Errorf("writ-3 log: want an error telling the operator to delete %s, got:\n%s", cfg3.DataDir, l)
	}

	// The others serve on.
	for _, n := range []*testNode{n1, n2} {
		waitUntil(t, n.cfg.NodeID+" ready after the removal", n.ready)
		if r := httpCall(t, agent, http.MethodPost, "https://"+n.is.Addr()+"/v1/token", "application/json", mintBody); r.status != http.StatusOK {
			t.Fatalf("mint on %s after writ-3's removal: %d %s", n.cfg.NodeID, r.status, r.body)
		}
	}

	// writ-2 is removed while running: it finds out within a few checks.
	if code, body := adminCall(t, n1.is.handleRemove, "/v1/admin/cluster/remove", RemoveRequest{NodeID: "writ-2"}); code != http.StatusOK {
		t.Fatalf("remove writ-2: %d %s", code, body)
	}
	waitUntil(t, "writ-2 to find it was removed", func() bool { return n2.is.removedReason() != "" })
	if r := httpCall(t, agent, http.MethodPost, "https://"+n2.is.Addr()+"/v1/token", "application/json", mintBody); r.status != http.StatusServiceUnavailable {
		t.Errorf("mint on writ-2 after its removal: got %d %s, want 503", r.status, r.body)
	}
	if !n1.ready() || n1.is.removedReason() != "" {
		t.Errorf("writ-1 after removing both others: ready %v, removal %q; want ready", n1.ready(), n1.is.removedReason())
	}
}
