package issuer

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/syncwire"
)

// recordingFeed keeps what the state publishes.
type recordingFeed struct {
	changes []syncChange
	resets  []uint64
}

func (f *recordingFeed) publish(ch []syncChange) { f.changes = append(f.changes, ch...) }
func (f *recordingFeed) reset(epoch uint64)      { f.resets = append(f.resets, epoch) }

// openTestState opens an empty state in a temporary directory.
func openTestState(t *testing.T, kek *KEK) *State {
	t.Helper()
	s, err := OpenState(t.TempDir(), kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// syncKeys returns the key set a sync snapshot would carry, releasing
// the snapshot.
func syncKeys(s *State) []syncwire.Key {
	ss := s.syncSnapshot()
	defer ss.snap.Close()
	return ss.keys
}

func applyErr(t *testing.T, s *State, index uint64, c *command) error {
	t.Helper()
	b, err := encodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	return s.Apply(index, b).(applyResult).err
}

func TestRevocationCommandsDecode(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"ok/revoke", `{"v":1,"type":"revoke","revocation":{"kind":"token","id":"00","by":"x","at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:00:00Z"},"audit":[{}]}`, ""},
		{"fail/revoke-without-audit", `{"v":1,"type":"revoke","revocation":{"kind":"token"}}`, "its audit record"},
		{"fail/revoke-with-key", `{"v":1,"type":"revoke","revocation":{"kind":"token"},"key":{"id":1},"audit":[{}]}`, "exactly a revocation"},
		{"fail/prune-with-revocation", `{"v":1,"type":"prune","prune":{"now":"2026-01-01T00:00:00Z"},"revocation":{"kind":"token"},"audit":[{}]}`, "exactly a prune"},
		{"fail/key-state-empty", `{"v":1,"type":"key.state","audit":[{}]}`, "exactly a key state"},
		{"fail/audit-with-prune", `{"v":1,"type":"audit.append","prune":{"now":"2026-01-01T00:00:00Z"},"audit":[{}]}`, "audit records only"},
		{"fail/unknown-revocation-field", `{"v":1,"type":"revoke","revocation":{"kind":"token","who":"x"},"audit":[{}]}`, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeCommand([]byte(tc.in))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want ok", err)
			case tc.want != "" && (err == nil || !errors.Is(err, ErrBadCommand) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want ErrBadCommand containing %q", err, tc.want)
			}
		})
	}
}

func TestRevocationState(t *testing.T) {
	kek := testKEK(t)
	s, err := OpenState(t.TempDir(), kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	feed := &recordingFeed{}
	s.setSyncFeed(feed)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	audit := func() []*AuditRecord {
		return []*AuditRecord{{Time: now, Kind: AuditRevoke, Caller: "spiffe://a/admin"}}
	}
	addKey := func(index uint64, id uint32, state string) ed25519.PublicKey {
		pub, priv, _ := ed25519.GenerateKey(nil)
		sealed, err := kek.seal(id, priv)
		if err != nil {
			t.Fatal(err)
		}
		applyOK(t, s, index, &command{Type: cmdKeyAdd, Key: &keyRecord{ID: id, Public: pub, Sealed: sealed, State: state, CreatedAt: now}, Audit: audit()})
		return pub
	}
	addKey(1, 1, keyActive)
	if len(feed.changes) != 1 || feed.changes[0].signer != nil || len(feed.changes[0].keys) != 1 {
		t.Fatalf("first key: got %+v, want one unsigned change with the key", feed.changes)
	}
	tok := &revocationRecord{Kind: RevokeToken, ID: strings.Repeat("ab", 16), By: "spiffe://a/admin", At: now, ExpiresAt: now.Add(time.Hour)}
	applyOK(t, s, 2, &command{Type: cmdRevoke, Revocation: tok, Audit: audit()})
	again := *tok
	again.At = now.Add(time.Minute)
	applyOK(t, s, 3, &command{Type: cmdRevoke, Revocation: &again, Audit: audit()})
	if epoch, n := s.SyncEpoch(); epoch != 2 || n != 1 {
		t.Fatalf("after revoking twice: epoch %d, %d revocations; want 2, 1", epoch, n)
	}
	if stored, ok, _ := s.revocation(tok.entryKey()); !ok || !stored.At.Equal(now) || stored.Epoch != 2 {
		t.Fatalf("stored %+v, want the first record at epoch 2", stored)
	}
	agent := &revocationRecord{Kind: RevokeAgent, Agent: "spiffe://a/agents/x", Before: now.Add(-time.Minute), By: "spiffe://a/admin", At: now, ExpiresAt: now.Add(59 * time.Minute)}
	applyOK(t, s, 4, &command{Type: cmdRevoke, Revocation: agent, Audit: audit()})

	for _, tc := range []struct {
		name string
		r    revocationRecord
	}{
		{"fail/expires-before-at", revocationRecord{Kind: RevokeToken, ID: strings.Repeat("cd", 16), At: now, ExpiresAt: now}},
		{"fail/expires-past-max-horizon", revocationRecord{Kind: RevokeToken, ID: strings.Repeat("cd", 16), At: now, ExpiresAt: now.Add(maxHorizon + time.Second)}},
		{"fail/bad-id", revocationRecord{Kind: RevokeBlock, ID: "zz", At: now, ExpiresAt: now.Add(time.Hour)}},
		{"fail/agent-before-after-at", revocationRecord{Kind: RevokeAgent, Agent: "spiffe://a/b", Before: now.Add(time.Second), At: now, ExpiresAt: now.Add(time.Hour)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			// A refused command still takes its index (raft applied it).
			if err := applyErr(t, s, 4, &command{Type: cmdRevoke, Revocation: &r, Audit: audit()}); err != nil {
				t.Fatalf("replayed index 4 was applied again: %v", err)
			}
			fresh := openTestState(t, kek)
			if err := applyErr(t, fresh, 1, &command{Type: cmdRevoke, Revocation: &r, Audit: audit()}); !errors.Is(err, ErrBadCommand) {
				t.Fatalf("got %v, want ErrBadCommand", err)
			}
		})
	}
	// Key states: prepare 2, activate it (1 retires), revoke 1.
	addKey(5, 2, keyPrepared)
	if err := applyErr(t, s, 6, &command{Type: cmdKeyAdd, Key: &keyRecord{ID: 2, Public: make([]byte, 32), State: keyPrepared}, Audit: audit()}); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("adding key id 2 again: got %v, want ErrBadCommand", err)
	}
	if err := applyErr(t, s, 7, &command{Type: cmdKeyState, KeyState: &keyStateRecord{ID: 1, State: keyRevoked, At: now, NotAfter: now.Add(time.Hour)}, Audit: audit()}); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("revoking the active key without a replacement: got %v, want ErrBadCommand", err)
	}
	applyOK(t, s, 8, &command{Type: cmdKeyState, KeyState: &keyStateRecord{ID: 2, State: keyActive, At: now, NotAfter: now.Add(time.Hour)}, Audit: audit()})
	if id, _, _ := s.ActiveKey(); id != 2 {
		t.Fatalf("active key %d, want 2", id)
	}
	last := feed.changes[len(feed.changes)-1]
	if last.signer == nil || last.signer.id != 1 {
		t.Fatalf("activation change signed by %+v, want key 1 (the one verifiers hold)", last.signer)
	}
	applyOK(t, s, 9, &command{Type: cmdKeyState, KeyState: &keyStateRecord{ID: 1, State: keyRevoked, At: now, NotAfter: now.Add(time.Hour)}, Audit: audit()})
	states := map[uint32]syncwire.KeyState{}
	for _, k := range syncKeys(s) {
		states[k.ID] = k.State
	}
	if states[1] != syncwire.KeyRevoked || states[2] != syncwire.KeyActive {
		t.Fatalf("key states %v, want 1 revoked, 2 active", states)
	}
	for _, k := range s.PublicKeys() {
		if k.ID == 1 {
			t.Fatal("revoked key 1 in PublicKeys (the JWKS)")
		}
	}

	// Snapshot and restore carry the sync state; the feed is reset.
	snap, _ := s.Snapshot()
	var buf bytes.Buffer
	snap.WriteTo(&buf)
	snap.Release()
	dst, err := OpenState(t.TempDir(), kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	dfeed := &recordingFeed{}
	dst.setSyncFeed(dfeed)
	if err := dst.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	e1, n1 := s.SyncEpoch()
	e2, n2 := dst.SyncEpoch()
	if e1 != e2 || n1 != n2 || len(dfeed.resets) != 1 || dfeed.resets[0] != e1 {
		t.Fatalf("restored epoch %d (%d revocations), resets %v; want %d (%d)", e2, n2, dfeed.resets, e1, n1)
	}
	ss := dst.syncSnapshot()
	entries, err := ss.entries(0)
	ss.snap.Close()
	if err != nil || len(entries) != 2 {
		t.Fatalf("restored entries %v (%v), want 2", entries, err)
	}

	// Prune at a time between the two expiries drops the agent entry
	// only; later, the token and the revoked key.
	applyOK(t, s, 10, &command{Type: cmdPrune, Prune: &pruneRecord{Now: now.Add(59*time.Minute + time.Second)}, Audit: audit()})
	if _, n := s.SyncEpoch(); n != 1 {
		t.Fatalf("after the first prune: %d revocations, want 1", n)
	}
	last = feed.changes[len(feed.changes)-1]
	if len(last.remove) != 1 || last.remove[0].Kind != syncwire.EntryAgent {
		t.Fatalf("prune change %+v, want the agent entry removed", last)
	}
	applyOK(t, s, 11, &command{Type: cmdPrune, Prune: &pruneRecord{Now: now.Add(2 * time.Hour)}, Audit: audit()})
	if _, n := s.SyncEpoch(); n != 0 || len(syncKeys(s)) != 1 {
		t.Fatalf("after the second prune: %d revocations, %d keys; want 0, 1", n, len(syncKeys(s)))
	}
	if s.pruneDue(now.Add(3 * time.Hour)) {
		t.Fatal("nothing left to prune, but pruneDue says there is")
	}
	// A prune with nothing to drop changes nothing.
	before := len(feed.changes)
	e, _ := s.SyncEpoch()
	applyOK(t, s, 12, &command{Type: cmdPrune, Prune: &pruneRecord{Now: now.Add(3 * time.Hour)}, Audit: audit()})
	if e2, _ := s.SyncEpoch(); e2 != e || len(feed.changes) != before {
		t.Fatal("an empty prune moved the epoch")
	}
}

// TestNodeRemovalIsFinal: a node's late self-registration (forwarded
// before it learned it was removed) does not bring its record back, and
// each change of the members' API addresses is a sync change.
func TestNodeRemovalIsFinal(t *testing.T) {
	s := openTestState(t, testKEK(t))
	feed := &recordingFeed{}
	s.setSyncFeed(feed)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	audit := func() []*AuditRecord {
		return []*AuditRecord{{Time: now, Kind: AuditNodeSet, Caller: "spiffe://a/writ"}}
	}
	applyOK(t, s, 1, &command{Type: cmdNodeSet, Node: &nodeRecord{ID: "writ-2", APIAddr: "127.0.0.1:2", RaftAddr: "127.0.0.1:3", SetAt: now}, Audit: audit()})
	applyOK(t, s, 2, &command{Type: cmdNodeSet, Node: &nodeRecord{ID: "writ-2", APIAddr: "127.0.0.1:2", RaftAddr: "127.0.0.1:3", Removed: true, SetAt: now}, Audit: audit()})
	err := applyErr(t, s, 3, &command{Type: cmdNodeSet, Node: &nodeRecord{ID: "writ-2", APIAddr: "127.0.0.1:2", RaftAddr: "127.0.0.1:3", SetAt: now}, Audit: audit()})
	if !errors.Is(err, ErrBadCommand) || !strings.Contains(err.Error(), "was removed") {
		t.Fatalf("re-registering a removed node: got %v, want ErrBadCommand saying it was removed", err)
	}
	if n, _ := s.Node("writ-2"); !n.Removed {
		t.Fatal("the removed node's record came back")
	}
	if len(feed.changes) != 2 || !feed.changes[0].nodesChanged || len(feed.changes[0].nodes) != 1 || len(feed.changes[1].nodes) != 0 {
		t.Fatalf("sync changes %+v, want the node added, then removed", feed.changes)
	}
}
