package syncer_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/internal/syncwire"
	"github.com/writ-dev/writ/verifier"
	"github.com/writ-dev/writ/verifier/syncer"
)

const support = "spiffe://acme.example/agents/support"

// env is one verifier syncing from one node of a cluster holding token
// 1, block 1 and an agent revocation of support.
type env struct {
	p   *pkiFixture
	clk *clock
	c   *cluster
	n   *node
	s   *syncer.Syncer
}

func newEnv(t *testing.T, mod ...func(*syncer.Config)) *env {
	t.Helper()
	e := &env{p: newPKI(t), clk: newClock()}
	e.c = newCluster(e.clk.Now, tokenEntry(1), blockEntry(1), agentEntry(support, e.clk.Now()))
	e.n = e.p.startNode(t, e.c, "node-1")
	e.s = e.p.newSyncer(t, e.clk, []string{e.n.url}, mod...)
	return e
}

// view is what a verifier sees of a Syncer.
type view struct {
	epoch          uint64
	token1, token2 bool
	block1, block2 bool
	agentBeforeNow bool
	asOf           time.Time
	fresh          bool
	keys           []uint32
	revokedKey1    bool
}

func (e *env) view() view {
	s := e.s
	asOf, fresh := s.CurrentAsOf()
	v := view{
		epoch: s.Epoch(), token1: s.Revoked(tokenID(1)), token2: s.Revoked(tokenID(2)),
		block1: s.Revoked(blockID(1)), block2: s.Revoked(blockID(2)),
		agentBeforeNow: s.AgentRevoked(support, e.clk.Now().Add(-time.Minute)),
		asOf:           asOf, fresh: fresh, revokedKey1: s.KeyRevoked(1),
	}
	for _, k := range s.RootKeys() {
		v.keys = append(v.keys, k.ID)
	}
	return v
}

func (e *env) sync(t *testing.T) {
	t.Helper()
	if err := e.s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotThenChanges(t *testing.T) {
	e := newEnv(t)
	select {
	case <-e.s.Ready():
		t.Fatal("ready before any copy")
	default:
	}
	e.sync(t)
	<-e.s.Ready()
	v := e.view()
	if v.epoch != 10 || !v.token1 || v.token2 || !v.block1 || v.block2 || !v.agentBeforeNow || !v.fresh || !v.asOf.Equal(e.clk.Now()) {
		t.Fatalf("after the snapshot: got %+v, want epoch 10, token 1, block 1, agent revoked, fresh as of now", v)
	}
	if e.s.AgentRevoked(support, e.clk.Now()) || e.s.AgentRevoked("spiffe://acme.example/agents/other", time.Time{}) {
		t.Error("agent revocation reaches tokens issued at its time, or another agent")
	}
	for _, bad := range []string{"", "zz" + tokenID(1)[2:], strings.ToUpper(tokenID(1))[:31], blockID(1)[:127] + "g"} {
		if e.s.Revoked(bad) {
			t.Errorf("Revoked(%q): got true, want false for a malformed id", bad)
		}
	}
	if !e.s.Revoked(strings.ToUpper(tokenID(1))) || !e.s.Revoked(blockID(1)[:32]+strings.Repeat("0", 96)) {
		t.Error("a token id in upper case, or a block id sharing the revoked prefix, is not revoked")
	}

	e.clk.Advance(time.Second)
	e.c.commit(syncwire.Change{Add: []syncwire.Entry{tokenEntry(2), blockEntry(2)}, Remove: []syncwire.Entry{tokenEntry(1)}})
	e.c.commit(syncwire.Change{Remove: []syncwire.Entry{agentEntry(support, e.clk.Now().Add(-time.Second)), blockEntry(1)},
		Keys: []syncwire.Key{key(1, syncwire.KeyActive), key(2, syncwire.KeyPrepared)}})
	e.sync(t)
	v = e.view()
	if v.epoch != 16 || v.token1 || !v.token2 || v.block1 || !v.block2 || v.agentBeforeNow || !slices.Equal(v.keys, []uint32{1, 2}) || !v.asOf.Equal(e.clk.Now()) {
		t.Fatalf("after two changes: got %+v, want epoch 16, token 2, block 2, no agent, keys 1 and 2, fresh", v)
	}
	e.clk.Advance(time.Second)
	e.sync(t) // nothing new: a heartbeat after PollWait
	if got := e.n.polls(); !slices.Equal(got, []uint64{0, 10, 16}) {
		t.Errorf("polls: got since %v, want [0 10 16]", got)
	}
	if asOf, _ := e.s.CurrentAsOf(); !asOf.Equal(e.clk.Now()) {
		t.Errorf("current as of: got %v, want %v", asOf, e.clk.Now())
	}
	if got := e.n.clients; len(got) == 0 || got[0] != verifierID.String() {
		t.Errorf("caller: got %v, want %s over mTLS", got, verifierID)
	}
}

// TestLookupsDoNotAllocate: the verifier calls these on every request.
func TestLookupsDoNotAllocate(t *testing.T) {
	e := newEnv(t)
	e.sync(t)
	tok, blk, at := tokenID(1), blockID(1), e.clk.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name string
		f    func() bool
	}{
		{"ok/revoked-token", func() bool { return e.s.Revoked(tok) }},
		{"ok/revoked-block", func() bool { return e.s.Revoked(blk) }},
		{"ok/agent-revoked", func() bool { return e.s.AgentRevoked(support, at) }},
		{"ok/key-revoked", func() bool { return !e.s.KeyRevoked(1) }},
		{"ok/current-as-of", func() bool { _, ok := e.s.CurrentAsOf(); return ok }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.f() {
				t.Fatal("got false, want true")
			}
			if n := testing.AllocsPerRun(100, func() { tc.f() }); n != 0 {
				t.Errorf("got %v allocations per call, want 0", n)
			}
		})
	}
}

// TestRefused: frames that break the rules of spec/sync.md §1 and §4
// change nothing of the copy held (epoch 10 with token 1, block 1, fresh
// as of the first sync), whatever comes with them.
func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		// answer returns the body the node answers to the next poll.
		answer  func(t *testing.T, e *env) []byte
		want    error
		unknown bool // the refusal is for an unknown signer
	}{
		{"fail/rollback-snapshot", func(t *testing.T, e *env) []byte {
			s, _ := syncwire.EncodeSnapshot(&syncwire.Snapshot{Epoch: 9, Keys: e.c.keys}, e.c.signer)
			hb, _ := syncwire.EncodeHeartbeat(&syncwire.Heartbeat{Epoch: 9, Time: e.clk.Now(), Node: "n"}, e.c.signer)
			return append(s, hb...)
		}, syncer.ErrRollback, false},
		{"fail/rollback-change", func(t *testing.T, e *env) []byte {
			return change(t, &syncwire.Change{Prev: 7, Epoch: 10, Remove: []syncwire.Entry{tokenEntry(1)}}, e.c.signer)
		}, syncer.ErrRollback, false},
		{"fail/rollback-heartbeat", func(t *testing.T, e *env) []byte {
			hb, _ := syncwire.EncodeHeartbeat(&syncwire.Heartbeat{Epoch: 9, Time: e.clk.Now(), Node: "n"}, e.c.signer)
			return hb
		}, syncer.ErrRollback, false},
		{"fail/bad-signature-snapshot", func(t *testing.T, e *env) []byte {
			s := e.c.snapshot(t)
			s[len(s)-1] ^= 1
			return append(s, e.c.heartbeat(t, "n")...)
		}, syncwire.ErrBadSignature, false},
		{"fail/bad-signature-change", func(t *testing.T, e *env) []byte {
			b := change(t, &syncwire.Change{Prev: 10, Epoch: 11, Remove: []syncwire.Entry{tokenEntry(1)}}, e.c.signer)
			b[len(b)-30] ^= 0x40
			return b
		}, syncwire.ErrBadSignature, false},
		{"fail/bad-signature-heartbeat", func(t *testing.T, e *env) []byte {
			e.clk.Advance(time.Second)
			hb, _ := syncwire.EncodeHeartbeat(&syncwire.Heartbeat{Epoch: 10, Time: e.clk.Now(), Node: "n"},
				syncwire.Signer{KeyID: 1, Key: rootKey(2).Key})
			return hb
		}, syncwire.ErrBadSignature, false},
		{"fail/tampered-entry", func(t *testing.T, e *env) []byte {
			b := change(t, &syncwire.Change{Prev: 10, Epoch: 11, Remove: []syncwire.Entry{tokenEntry(1)}}, e.c.signer)
			b[5+8+8+8+4+4+1+3] ^= 1 // a byte of the removed token id
			return b
		}, syncwire.ErrBadSignature, false},
		{"fail/unknown-signer-fresh-copy", func(t *testing.T, e *env) []byte {
			return change(t, &syncwire.Change{Prev: 10, Epoch: 11, Remove: []syncwire.Entry{tokenEntry(1)}}, rootKey(2))
		}, syncwire.ErrBadSignature, true},
		{"fail/unknown-signer-snapshot-fresh-copy", func(t *testing.T, e *env) []byte {
			s, _ := syncwire.EncodeSnapshot(&syncwire.Snapshot{Epoch: 20, Keys: []syncwire.Key{key(2, syncwire.KeyActive)}}, rootKey(2))
			return s
		}, syncwire.ErrBadSignature, true},
		{"fail/truncated-mid-frame", func(t *testing.T, e *env) []byte {
			c1 := change(t, &syncwire.Change{Prev: 10, Epoch: 11, Remove: []syncwire.Entry{tokenEntry(1)}}, e.c.signer)
			return c1[:len(c1)-20]
		}, syncwire.ErrTruncated, false},
		{"fail/duplicate-entry-in-snapshot", func(t *testing.T, e *env) []byte {
			s, _ := syncwire.EncodeSnapshot(&syncwire.Snapshot{Epoch: 20, Keys: e.c.keys,
				Entries: []syncwire.Entry{tokenEntry(5), tokenEntry(5)}}, e.c.signer)
			return s
		}, syncer.ErrBadAnswer, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.sync(t)
			before := e.view()
			e.n.setScript(tc.answer(t, e))
			err := e.s.Sync(t.Context())
			if !errors.Is(err, tc.want) || errors.Is(err, syncwire.ErrUnknownSigner) != tc.unknown {
				t.Fatalf("got %v, want %v (unknown signer: %v)", err, tc.want, tc.unknown)
			}
			if got := e.view(); !viewEqual(got, before) {
				t.Fatalf("copy changed:\ngot  %+v\nwant %+v", got, before)
			}
			// The next poll asks again from the epoch held.
			e.sync(t)
			if got := e.n.polls(); got[len(got)-1] != 10 {
				t.Errorf("after the refusal: polled since %d, want 10", got[len(got)-1])
			}
		})
	}
}

func viewEqual(a, b view) bool {
	return a.epoch == b.epoch && a.token1 == b.token1 && a.token2 == b.token2 && a.block1 == b.block1 &&
		a.block2 == b.block2 && a.agentBeforeNow == b.agentBeforeNow && a.asOf.Equal(b.asOf) &&
		a.fresh == b.fresh && slices.Equal(a.keys, b.keys) && a.revokedKey1 == b.revokedKey1
}

// TestPartialAnswers: what is complete and signed is applied, nothing
// after it.
func TestPartialAnswers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cut        func(c1, c2, hb []byte) []byte
		wantEpoch  uint64
		wantToken2 bool
		wantFresh  bool // a newer heartbeat was accepted
		want       error
	}{
		{"fail/cut-mid-second-change", func(c1, c2, hb []byte) []byte { return append(c1, c2[:len(c2)/2]...) }, 11, false, false, syncwire.ErrTruncated},
		{"fail/cut-before-closing-heartbeat", func(c1, c2, hb []byte) []byte { return append(c1, c2...) }, 12, true, false, syncer.ErrTruncated},
		{"fail/cut-mid-heartbeat", func(c1, c2, hb []byte) []byte { return append(append(c1, c2...), hb[:10]...) }, 12, true, false, syncwire.ErrTruncated},
		{"ok/complete", func(c1, c2, hb []byte) []byte { return append(append(c1, c2...), hb...) }, 12, true, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.sync(t)
			asOf, _ := e.s.CurrentAsOf()
			e.clk.Advance(time.Second)
			c1 := change(t, &syncwire.Change{Prev: 10, Epoch: 11, Remove: []syncwire.Entry{tokenEntry(1)}}, e.c.signer)
			c2 := change(t, &syncwire.Change{Prev: 11, Epoch: 12, Add: []syncwire.Entry{tokenEntry(2)}}, e.c.signer)
			hb, _ := syncwire.EncodeHeartbeat(&syncwire.Heartbeat{Epoch: 12, Time: e.clk.Now(), Node: "n"}, e.c.signer)
			e.n.setScript(tc.cut(c1, c2, hb))
			err := e.s.Sync(t.Context())
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			v := e.view()
			gotAsOf, _ := e.s.CurrentAsOf()
			if v.epoch != tc.wantEpoch || v.token1 || v.token2 != tc.wantToken2 || gotAsOf.After(asOf) != tc.wantFresh {
				t.Fatalf("got epoch %d, token 1 %v, token 2 %v, fresher %v; want epoch %d, no token 1, token 2 %v, fresher %v",
					v.epoch, v.token1, v.token2, gotAsOf.After(asOf), tc.wantEpoch, tc.wantToken2, tc.wantFresh)
			}
		})
	}
}

// TestHeartbeatTime: the copy is current as of the heartbeat's time, but
// never later than its arrival, and never goes back.
func TestHeartbeatTime(t *testing.T) {
	for _, tc := range []struct {
		name   string
		offset time.Duration // of the heartbeat's time from the local clock
		want   time.Duration // of CurrentAsOf from the local clock
	}{
		{"ok/on-time", 0, 0},
		{"ok/sent-200ms-before", -200 * time.Millisecond, -200 * time.Millisecond},
		{"ok/issuer-clock-ahead", time.Hour, 0},
		{"ok/older-than-held-changes-nothing", -2 * time.Second, -time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.sync(t)
			e.clk.Advance(time.Second) // held: current as of now − 1s
			hb, _ := syncwire.EncodeHeartbeat(&syncwire.Heartbeat{Epoch: 10, Time: e.clk.Now().Add(tc.offset), Node: "n"}, e.c.signer)
			e.n.setScript(hb)
			e.sync(t)
			if asOf, ok := e.s.CurrentAsOf(); !ok || asOf.Sub(e.clk.Now()) != tc.want {
				t.Fatalf("current as of now %+v, want %v", asOf.Sub(e.clk.Now()), tc.want)
			}
		})
	}
}

// TestReplayedSnapshot: a snapshot older than the copy is refused even
// when it is genuine; the same snapshot again changes nothing.
func TestReplayedSnapshot(t *testing.T) {
	e := newEnv(t)
	e.sync(t)
	old := append(e.c.snapshot(t), e.c.heartbeat(t, "n")...)
	e.c.commit(syncwire.Change{Remove: []syncwire.Entry{tokenEntry(1)}})
	e.sync(t)
	want := e.view()
	for _, tc := range []struct {
		name string
		body []byte
		want error
	}{
		{"fail/replayed-older-snapshot", old, syncer.ErrRollback},
		{"ok/same-epoch-snapshot", append(e.c.snapshot(t), e.c.heartbeat(t, "n")...), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.n.setScript(tc.body)
			if err := e.s.Sync(t.Context()); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if got := e.view(); got.epoch != want.epoch || got.token1 || !got.block1 {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

// TestGap: a change that does not chain makes the syncer ask for a
// snapshot; a heartbeat ahead makes it ask for what it missed.
func TestGap(t *testing.T) {
	for _, tc := range []struct {
		name      string
		answer    func(t *testing.T, e *env) []byte
		wantPolls []uint64
	}{
		{"ok/change-gap-asks-snapshot", func(t *testing.T, e *env) []byte {
			return change(t, &syncwire.Change{Prev: 12, Epoch: 13, Remove: []syncwire.Entry{tokenEntry(1)}}, e.c.signer)
		}, []uint64{0, 10, 0}},
		{"ok/heartbeat-ahead-asks-again", func(t *testing.T, e *env) []byte {
			e.c.mu.Lock()
			defer e.c.mu.Unlock()
			return e.c.heartbeatLocked(t, "n") // the cluster is at 13 already
		}, []uint64{0, 10, 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.sync(t)
			e.c.commit(syncwire.Change{Remove: []syncwire.Entry{tokenEntry(1)}, Add: []syncwire.Entry{tokenEntry(2)}})
			e.n.setScript(tc.answer(t, e))
			e.sync(t) // the second poll, with the gap, is internal to Sync
			if got := e.n.polls(); !slices.Equal(got, tc.wantPolls) {
				t.Errorf("polls: got since %v, want %v", got, tc.wantPolls)
			}
			if v := e.view(); v.epoch != 13 || v.token1 || !v.token2 || !v.fresh {
				t.Errorf("got %+v, want the cluster's copy at epoch 13", v)
			}
		})
	}
}

// TestBootstrap: a snapshot signed by a key the verifier does not hold is
// accepted only when it vouches for itself under spec/sync.md §4.
func TestBootstrap(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pinned []uint32 // Config.Keys
		setup  func(t *testing.T, e *env)
		want   error // of the last Sync
		epoch  uint64
	}{
		{"ok/no-keys-held", nil, func(t *testing.T, e *env) {}, nil, 10},
		{"ok/pinned-signer", []uint32{1}, func(t *testing.T, e *env) {}, nil, 10},
		{"fail/pinned-other-key", []uint32{5}, func(t *testing.T, e *env) {}, syncwire.ErrUnknownSigner, 0},
		{"fail/signer-revoked-inside", nil, func(t *testing.T, e *env) {
			e.c.keys = []syncwire.Key{key(1, syncwire.KeyRevoked), key(2, syncwire.KeyActive)}
		}, syncwire.ErrUnknownSigner, 0},
		{"fail/signer-not-inside", nil, func(t *testing.T, e *env) { e.c.signer = rootKey(7) }, syncwire.ErrUnknownSigner, 0},
		{"fail/small-order-key-inside", nil, func(t *testing.T, e *env) {
			// The identity point verifies (R = identity, S = 0) for any
			// message: a snapshot carrying it could forge anything.
			identity := make([]byte, 32)
			identity[0] = 1
			e.c.keys = []syncwire.Key{key(1, syncwire.KeyActive), {ID: 7, State: syncwire.KeyActive, Public: identity}}
			e.n.setScript(forgeWithIdentity(t, e.c))
		}, syncer.ErrBadAnswer, 0},
		{"fail/rotated-key-fresh-copy", nil, func(t *testing.T, e *env) {
			e.sync(t)
			e.c.keys = []syncwire.Key{key(1, syncwire.KeyRevoked), key(2, syncwire.KeyActive)}
			e.c.signer = rootKey(2)
			e.c.commit(syncwire.Change{Keys: e.c.keys})
		}, syncwire.ErrUnknownSigner, 10},
		{"ok/rotated-key-stale-copy", nil, func(t *testing.T, e *env) {
			e.sync(t)
			e.c.keys = []syncwire.Key{key(1, syncwire.KeyRevoked), key(2, syncwire.KeyActive)}
			e.c.signer = rootKey(2)
			e.c.commit(syncwire.Change{Keys: e.c.keys})
			e.clk.Advance(31 * time.Second)
			// The change is refused (unknown signer) and a snapshot asked for.
			if err := e.s.Sync(t.Context()); !errors.Is(err, syncwire.ErrUnknownSigner) {
				t.Fatalf("first sync: got %v, want an unknown signer", err)
			}
		}, nil, 13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.pinned != nil {
				var rks []verifier.RootKey
				for _, id := range tc.pinned {
					rks = append(rks, verifier.RootKey{ID: id, Public: pubOf(rootKey(id))})
				}
				ks, err := verifier.NewKeySet(rks...)
				if err != nil {
					t.Fatal(err)
				}
				e.s = e.p.newSyncer(t, e.clk, []string{e.n.url}, func(c *syncer.Config) { c.Keys = ks })
				if _, ok := e.s.RootKey(tc.pinned[0]); !ok {
					t.Fatal("pinned key not served before the first snapshot")
				}
			}
			tc.setup(t, e)
			err := e.s.Sync(t.Context())
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if got := e.s.Epoch(); got != tc.epoch {
				t.Fatalf("epoch: got %d, want %d", got, tc.epoch)
			}
		})
	}
}

// forgeWithIdentity returns a snapshot of c (listing key 7, the identity
// point) "signed" by key 7 with the signature R = identity, S = 0.
func forgeWithIdentity(t *testing.T, c *cluster) []byte {
	s := c.snapshot(t)
	sig := s[len(s)-68:]
	sig[0], sig[1], sig[2], sig[3] = 0, 0, 0, 7
	clear(sig[4:])
	sig[4] = 1
	return append(s, c.heartbeat(t, "n")...)
}

// TestKeyRevoked: a key revoked by a change is no longer served and is
// reported revoked; frames it signs are refused.
func TestKeyRevoked(t *testing.T) {
	e := newEnv(t)
	e.c.keys = []syncwire.Key{key(1, syncwire.KeyActive), key(2, syncwire.KeyPrepared)}
	e.sync(t)
	if v := e.view(); !slices.Equal(v.keys, []uint32{1, 2}) || v.revokedKey1 {
		t.Fatalf("got keys %v, key 1 revoked %v; want 1 and 2, none revoked", v.keys, v.revokedKey1)
	}
	e.c.setSigner(rootKey(2))
	e.c.commit(syncwire.Change{Keys: []syncwire.Key{key(1, syncwire.KeyRevoked), key(2, syncwire.KeyActive), key(3, syncwire.KeyRetiring)}})
	e.sync(t)
	if _, ok := e.s.RootKey(1); ok || !e.s.KeyRevoked(1) || e.s.KeyRevoked(2) || e.s.KeyRevoked(9) {
		t.Fatalf("key 1 served %v, revoked %v; key 2 revoked %v; want not served, revoked, and only key 1 revoked", ok, e.s.KeyRevoked(1), e.s.KeyRevoked(2))
	}
	if k, ok := e.s.RootKey(2); !ok || !bytes.Equal(k.Public, pubOf(rootKey(2))) {
		t.Fatalf("key 2: got %v, want the active key", ok)
	}
	if v := e.view(); !slices.Equal(v.keys, []uint32{2, 3}) {
		t.Errorf("RootKeys: got %v, want [2 3] (active, then retiring)", v.keys)
	}
	// Key 1 signs no more.
	e.n.setScript(change(t, &syncwire.Change{Prev: 13, Epoch: 14, Remove: []syncwire.Entry{tokenEntry(1)}}, rootKey(1)))
	if err := e.s.Sync(t.Context()); !errors.Is(err, syncwire.ErrBadSignature) || e.s.Epoch() != 13 {
		t.Fatalf("change signed by the revoked key: got %v at epoch %d, want bad_signature at 13", err, e.s.Epoch())
	}
}

// TestStaleness: the copy's CurrentAsOf follows the heartbeats of a
// running Syncer, and stops when the node stops answering.
func TestStaleness(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	<-e.s.Ready()
	for range 3 {
		e.clk.Advance(time.Second)
		want := e.clk.Now()
		eventually(t, "a heartbeat at "+want.String(), func() bool {
			asOf, ok := e.s.CurrentAsOf()
			return ok && asOf.Equal(want)
		})
	}
	// The node stops vouching: 503 sync_unavailable.
	e.n.setFault(func(w http.ResponseWriter) bool {
		problemAnswer(w, http.StatusServiceUnavailable, "sync_unavailable", 0)
		return true
	})
	n := len(e.n.polls())
	eventually(t, "two refused polls", func() bool { return len(e.n.polls()) >= n+2 })
	stopped, _ := e.s.CurrentAsOf()
	e.clk.Advance(5 * time.Second)
	n = len(e.n.polls())
	eventually(t, "three more refused polls", func() bool { return len(e.n.polls()) >= n+3 })
	if asOf, _ := e.s.CurrentAsOf(); !asOf.Equal(stopped) || e.clk.Now().Sub(asOf) < 5*time.Second {
		t.Fatalf("current as of %v after the node stopped at %v (now %v): want it unchanged, 5s stale", asOf, stopped, e.clk.Now())
	}
	// It answers again: fresh again.
	e.n.setFault(nil)
	eventually(t, "fresh again", func() bool {
		asOf, _ := e.s.CurrentAsOf()
		return asOf.Equal(e.clk.Now())
	})
}

// TestRotation: nodes that refuse or cannot be reached are skipped; the
// Syncer stays on the node that answers and learns the nodes the cluster
// lists.
func TestRotation(t *testing.T) {
	p, clk := newPKI(t), newClock()
	c := newCluster(clk.Now, tokenEntry(1))
	unavailable, behind, good := p.startNode(t, c, "a"), p.startNode(t, c, "b"), p.startNode(t, c, "d")
	unavailable.setFault(func(w http.ResponseWriter) bool {
		problemAnswer(w, http.StatusServiceUnavailable, "sync_unavailable", 0)
		return true
	})
	behind.setFault(func(w http.ResponseWriter) bool {
		problemAnswer(w, http.StatusServiceUnavailable, "sync_behind", 1)
		return true
	})
	learned := p.startNode(t, c, "e")
	c.nodes = []string{good.addr, learned.addr}
	s := p.newSyncer(t, clk, []string{unavailable.url, behind.url, refusedURL(t), good.url})
	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := [3]int{len(unavailable.polls()), len(behind.polls()), len(good.polls())}; got != [3]int{1, 1, 1} {
		t.Errorf("polls of the unavailable, behind and good nodes: got %v, want one each", got)
	}
	if got := s.Nodes(); len(got) != 5 || got[4] != learned.url {
		t.Errorf("nodes: got %v, want the 4 configured and %s", got, learned.url)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	c.commit(syncwire.Change{Add: []syncwire.Entry{tokenEntry(2)}})
	eventually(t, "token 2 revoked", func() bool { return s.Revoked(tokenID(2)) })
	if n := len(unavailable.polls()); n != 1 {
		t.Errorf("while the good node answers: the unavailable node got %d polls, want 1", n)
	}
	// The good node fails too: only the learned node answers.
	good.setFault(func(w http.ResponseWriter) bool {
		problemAnswer(w, http.StatusServiceUnavailable, "sync_unavailable", 0)
		return true
	})
	c.commit(syncwire.Change{Add: []syncwire.Entry{tokenEntry(3)}})
	eventually(t, "token 3 revoked through the learned node", func() bool { return s.Revoked(tokenID(3)) })
	if len(learned.polls()) == 0 {
		t.Error("the learned node was never polled")
	}
}

// TestRestartFromStateFile: a Syncer started while no node answers
// serves the copy of its state file, as current as its last heartbeat;
// a file that fails a check is not used.
func TestRestartFromStateFile(t *testing.T) {
	e0 := newEnv(t)
	path := filepath.Join(t.TempDir(), "sync-state")
	e0.s = e0.p.newSyncer(t, e0.clk, []string{e0.n.url}, func(c *syncer.Config) { c.StateFile = path })
	e0.sync(t)
	e0.clk.Advance(time.Second)
	e0.c.commit(syncwire.Change{Add: []syncwire.Entry{tokenEntry(2)}, Remove: []syncwire.Entry{tokenEntry(1)}})
	e0.c.commit(syncwire.Change{Add: []syncwire.Entry{blockEntry(2)}, Keys: []syncwire.Key{key(1, syncwire.KeyActive), key(2, syncwire.KeyPrepared)}})
	e0.sync(t)
	syncer.Flush(e0.s)
	want := e0.view()
	snapFile, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	changesFile, err := os.ReadFile(path + ".changes")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name             string
		snapshot, chgs   []byte
		wantEpoch        uint64
		wantFresh, ready bool
	}{
		{"ok/snapshot-changes-heartbeat", snapFile, changesFile, 16, true, true},
		{"ok/no-changes-file", snapFile, nil, 10, false, true},
		{"fail/changes-file-tampered", snapFile, flip(changesFile, len(changesFile)/2), 10, false, true},
		{"fail/changes-file-truncated", snapFile, changesFile[:len(changesFile)-1], 10, false, true},
		{"fail/snapshot-file-tampered", flip(snapFile, len(snapFile)/2), changesFile, 0, false, false},
		{"fail/snapshot-file-bad-signature", flip(snapFile, len(snapFile)-1), changesFile, 0, false, false},
		{"fail/changes-file-bad-signature", snapFile, flip(changesFile, len(changesFile)-1), 10, false, true},
		{"fail/snapshot-file-truncated", snapFile[:len(snapFile)-1], changesFile, 0, false, false},
		{"fail/snapshot-file-empty", []byte{}, changesFile, 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "sync-state")
			if err := os.WriteFile(p, tc.snapshot, 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.chgs != nil {
				if err := os.WriteFile(p+".changes", tc.chgs, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			e := &env{p: e0.p, clk: e0.clk}
			e.s = e.p.newSyncer(t, e.clk, []string{refusedURL(t)}, func(c *syncer.Config) { c.StateFile = p })
			select {
			case <-e.s.Ready():
				if !tc.ready {
					t.Fatal("ready, want no copy")
				}
			default:
				if tc.ready {
					t.Fatal("not ready, want the file's copy")
				}
			}
			got := e.view()
			if got.epoch != tc.wantEpoch || got.fresh != tc.wantFresh {
				t.Fatalf("got epoch %d, fresh %v; want %d, %v", got.epoch, got.fresh, tc.wantEpoch, tc.wantFresh)
			}
			if tc.wantEpoch == 16 && !viewEqual(got, want) {
				t.Fatalf("copy from the file:\ngot  %+v\nwant %+v", got, want)
			}
			if err := e.s.Sync(t.Context()); !errors.Is(err, syncer.ErrNoIssuer) || !errors.Is(err, syncer.ErrUnavailable) {
				t.Fatalf("sync with no node: got %v, want ErrNoIssuer and ErrUnavailable", err)
			}
		})
	}
}

// TestRunPersists: Run keeps the state file current, its writes of
// changes coalesced (PersistEvery), and writes what is pending when it
// returns.
func TestRunPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sync-state")
	e := newEnv(t, func(c *syncer.Config) { c.StateFile, c.PersistEvery = path, time.Hour })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.s.Run(ctx) }()
	<-e.s.Ready()
	e.c.commit(syncwire.Change{Add: []syncwire.Entry{tokenEntry(2)}})
	e.c.commit(syncwire.Change{Remove: []syncwire.Entry{tokenEntry(1)}})
	eventually(t, "epoch 16", func() bool { return e.s.Epoch() == 16 })
	loaded := func() uint64 {
		s := e.p.newSyncer(t, e.clk, []string{refusedURL(t)}, func(c *syncer.Config) { c.StateFile = path })
		return s.Epoch()
	}
	// Within PersistEvery of the first write, the changes wait in memory.
	if got := loaded(); got != 10 && got != 13 {
		t.Errorf("state file before Run returned: epoch %d, want the snapshot's 10 (or 13)", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := loaded(); got != 16 {
		t.Fatalf("state file after Run returned: epoch %d, want 16", got)
	}
}

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 1
	return b
}

func TestConfigValidate(t *testing.T) {
	p := newPKI(t)
	base := func() syncer.Config {
		c := syncer.DefaultConfig()
		c.Issuers, c.IssuerID, c.SVID, c.Bundle = []string{"https://127.0.0.1:8443"}, issuerID, p.client, p.ca.Bundle()
		return c
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("base config: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*syncer.Config)
	}{
		{"fail/no-issuers", func(c *syncer.Config) { c.Issuers = nil }},
		{"fail/http-issuer", func(c *syncer.Config) { c.Issuers = []string{"http://127.0.0.1:8443"} }},
		{"fail/issuer-with-query", func(c *syncer.Config) { c.Issuers = []string{"https://h:1/?a=b"} }},
		{"fail/no-issuer-id", func(c *syncer.Config) { c.IssuerID = spiffeid.ID{} }},
		{"fail/no-svid", func(c *syncer.Config) { c.SVID = nil }},
		{"fail/no-bundle", func(c *syncer.Config) { c.Bundle = nil }},
		{"fail/instance-with-space", func(c *syncer.Config) { c.Instance = "a b" }},
		{"fail/instance-65", func(c *syncer.Config) { c.Instance = strings.Repeat("a", 65) }},
		{"fail/staleness-0", func(c *syncer.Config) { c.MaxStaleness = 0 }},
		{"fail/poll-wait-31s", func(c *syncer.Config) { c.PollWait = 31 * time.Second }},
		{"fail/backoff-inverted", func(c *syncer.Config) { c.MinBackoff, c.MaxBackoff = time.Second, time.Millisecond }},
		{"fail/no-clock", func(c *syncer.Config) { c.Now = nil }},
		{"fail/no-rand", func(c *syncer.Config) { c.Rand = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			if err := c.Validate(); !errors.Is(err, syncer.ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
			if _, err := syncer.New(c); !errors.Is(err, syncer.ErrInvalidConfig) {
				t.Fatalf("New: got %v, want ErrInvalidConfig", err)
			}
		})
	}
}
