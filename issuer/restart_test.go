package issuer

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/internal/pki"
	"github.com/writ-dev/writ/issuer/policy"
)

// The helpers below run real issuer nodes (TLS, raft, pebble on disk)
// inside package issuer, for tests that look at the raft node and the
// state directly. They are shared by restart_test.go, removed_test.go and
// restart_bench_test.go.

var (
	nodeTestTD    = spiffeid.RequireTrustDomainFromString("acme.test")
	nodeTestID    = spiffeid.RequireFromPath(nodeTestTD, "/writ")
	nodeTestAgent = spiffeid.RequireFromPath(nodeTestTD, "/agents/support")
	nodeTestAdmin = spiffeid.RequireFromPath(nodeTestTD, "/admins/alice")
)

// nodeTestPolicy grants the support agent CRM contact reads.
const nodeTestPolicy = `version: 1
rules:
  - name: support-crm
    subjects: ["spiffe://acme.test/agents/support"]
    rights: ["crm/contacts:read"]
    max_ttl: 10m
    max_records: 50
`

// testEnv is what the nodes of one test share: CA, KEK and identity.
type testEnv struct {
	ca  *pki.CA
	kek *KEK
}

func newTestEnv(tb testing.TB) *testEnv {
	tb.Helper()
	ca, err := pki.NewCA(nodeTestTD, time.Now(), 2*time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	kek, err := NewKEK(bytes.Repeat([]byte{9}, KEKSize))
	if err != nil {
		tb.Fatal(err)
	}
	return &testEnv{ca: ca, kek: kek}
}

// config returns a node config with its data in dir and ports picked by
// the system.
func (e *testEnv) config(tb testing.TB, id, dir string, bootstrap bool) Config {
	tb.Helper()
	svid, err := e.ca.IssueSVID(nodeTestID, time.Now(), 2*time.Hour, pki.WithIP(netip.MustParseAddr("127.0.0.1")))
	if err != nil {
		tb.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.NodeID, cfg.Bootstrap = id, bootstrap
	cfg.ListenAddr, cfg.RaftAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir, cfg.KEK = dir, e.kek
	cfg.SVID = svid.X509SVID()
	cfg.Bundles = x509bundle.NewSet(e.ca.Bundle())
	cfg.Admins = []spiffeid.ID{nodeTestAdmin}
	cfg.InitialPolicy = []byte(nodeTestPolicy)
	return cfg
}

// testNode is one running issuer node.
type testNode struct {
	tb     testing.TB
	cfg    Config
	is     *Issuer
	cancel context.CancelFunc
	done   chan error
}

// startTestNode starts a node from cfg; it is stopped when the test ends.
func startTestNode(tb testing.TB, cfg Config) *testNode {
	tb.Helper()
	n := &testNode{tb: tb, cfg: cfg}
	n.start()
	tb.Cleanup(n.stop)
	return n
}

func (n *testNode) start() {
	n.tb.Helper()
	is, err := New(n.cfg)
	if err != nil {
		n.tb.Fatal(err)
	}
	// Restarts keep the addresses, as a real node does.
	n.cfg.ListenAddr, n.cfg.RaftAddr = is.Addr(), is.RaftAddr()
	ctx, cancel := context.WithCancel(context.Background())
	n.is, n.cancel, n.done = is, cancel, make(chan error, 1)
	go func() { n.done <- is.Run(ctx) }()
}

// stop shuts the node down and fails the test if Run failed. Idempotent.
func (n *testNode) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	if err := <-n.done; err != nil {
		n.tb.Errorf("node %s Run: %v", n.cfg.NodeID, err)
	}
	n.cancel = nil
}

func (n *testNode) ready() bool { return len(n.is.notReady()) == 0 }

func waitUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// appendAudit commits n audit.append commands of per records each
// through the node (raft log and state machine, as the audit log does).
func appendAudit(tb testing.TB, is *Issuer, n, per int) {
	tb.Helper()
	if err := buildAudit(is, n, per, 1); err != nil {
		tb.Fatal(err)
	}
}

// verifyChain checks the node's whole audit chain and returns its head.
func verifyChain(tb testing.TB, s *State) (uint64, string) {
	tb.Helper()
	seq, head := s.AuditHead()
	prev := ""
	for from := uint64(1); from <= seq; from += 1000 {
		recs, err := s.AuditRecords(from, 1000)
		if err != nil {
			tb.Fatal(err)
		}
		if err := VerifyAuditChain(prev, from, recs); err != nil {
			tb.Fatalf("audit chain: %v", err)
		}
		prev = recs[len(recs)-1].Hash
	}
	if prev != head {
		tb.Fatalf("audit chain ends at %q, head is %q", prev, head)
	}
	return seq, head
}

// TestRestartKeepsStateWithoutRestore: a node restarted after a snapshot
// keeps its state directory instead of restoring the snapshot over it,
// and ends with the same audit chain; a state directory that is wiped or
// behind the snapshot gets the snapshot restored, and so does every start
// with the skip turned off.
func TestRestartKeepsStateWithoutRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts issuer nodes")
	}
	env := newTestEnv(t)
	n := startTestNode(t, env.config(t, "writ-1", t.TempDir(), true))
	waitUntil(t, "writ-1 ready", n.ready)
	appendAudit(t, n.is, 10, 20)
	n.stop()
	behind := t.TempDir()
	if err := os.CopyFS(behind, os.DirFS(filepath.Join(n.cfg.DataDir, "state"))); err != nil {
		t.Fatal(err)
	}
	n.start()
	waitUntil(t, "writ-1 ready again", n.ready)
	appendAudit(t, n.is, 10, 20)
	if err := n.is.node.Snapshot(t.Context()); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	snapIndex := n.is.node.Stats().LastSnapshotIndex
	appendAudit(t, n.is, 3, 20)
	n.stop()
	history := n.cfg.DataDir

	cases := []struct {
		name        string
		prepare     func(t *testing.T, dir string)
		restoreAll  bool // restoreSnapshotOnStart
		wantRestore bool
	}{
		{"skip/state-kept", func(*testing.T, string) {}, false, false},
		{"restore/state-wiped", func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "state")); err != nil {
				t.Fatal(err)
			}
		}, false, true},
		{"restore/state-behind-snapshot", func(t *testing.T, dir string) {
			state := filepath.Join(dir, "state")
			if err := os.RemoveAll(state); err != nil {
				t.Fatal(err)
			}
			if err := os.CopyFS(state, os.DirFS(behind)); err != nil {
				t.Fatal(err)
			}
		}, false, true},
		{"restore/skip-turned-off", func(*testing.T, string) {}, true, true},
	}
	var wantSeq uint64
	var wantHead string
	{
		s, err := OpenState(filepath.Join(history, "state"), env.kek, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantSeq, wantHead = verifyChain(t, s)
		s.Close()
	}
	if wantSeq < 23*20 {
		t.Fatalf("history has %d audit records, want at least %d", wantSeq, 23*20)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := n.cfg // the same addresses: the restart writes no new member record
			cfg.DataDir = t.TempDir()
			if err := os.CopyFS(cfg.DataDir, os.DirFS(history)); err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, cfg.DataDir)
			restoreSnapshotOnStart = tc.restoreAll
			defer func() { restoreSnapshotOnStart = false }()
			m := startTestNode(t, cfg)
			info := m.is.node.StartInfo()
			if info.Restored != tc.wantRestore || info.SnapshotIndex != snapIndex {
				t.Fatalf("StartInfo: got %+v, want Restored %v at snapshot %d", info, tc.wantRestore, snapIndex)
			}
			waitUntil(t, "restarted node ready", m.ready)
			if err := m.is.node.Barrier(t.Context()); err != nil {
				t.Fatal(err)
			}
			seq, head := verifyChain(t, m.is.state)
			if seq != wantSeq || head != wantHead {
				t.Fatalf("audit head after restart: got %d %s, want %d %s", seq, head, wantSeq, wantHead)
			}
			appendAudit(t, m.is, 1, 1)
			if seq, _ := verifyChain(t, m.is.state); seq != wantSeq+1 {
				t.Fatalf("audit head after one more record: got %d, want %d", seq, wantSeq+1)
			}
		})
	}
}

// TestPolicyCountSurvivesReopen: the policy sequence continues after a
// reopen (buildView reads the last sequence key, not a count).
func TestPolicyCountSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	kek := testKEK(t)
	s, err := OpenState(dir, kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	setPolicy := func(s *State, index uint64, rev int) {
		src := []byte(nodeTestPolicy + fmt.Sprintf("# revision %d\n", rev))
		p, err := policy.Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		applyOK(t, s, index, &command{Type: cmdPolicySet, Policy: &policyRecord{Version: p.Version(), Source: src},
			Audit: []*AuditRecord{{Kind: AuditPolicySet, Caller: nodeTestAdmin.String()}}})
	}
	for i := range 3 {
		setPolicy(s, uint64(i+1), i)
	}
	s.Close()
	if s, err = OpenState(dir, kek, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.polCount != 3 {
		t.Fatalf("policy count after reopen: got %d, want 3", s.polCount)
	}
	setPolicy(s, 4, 3)
	var seqs []string
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	for it.First(); it.Valid(); it.Next() {
		if k := it.Key(); bytes.HasPrefix(k, kPolSeq) {
			seqs = append(seqs, fmt.Sprint(k[len(kPolSeq):]))
		}
	}
	it.Close()
	if len(seqs) != 4 {
		t.Fatalf("policy sequence keys: got %d (%s), want 4", len(seqs), strings.Join(seqs, " "))
	}
}
