package syncwire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testKey returns a deterministic key pair.
func testKey(seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return priv.Public().(ed25519.PublicKey), priv
}

var (
	pub1, priv1 = testKey(1)
	pub2, priv2 = testKey(2)
	pub3, priv3 = testKey(3)
	signer1     = Signer{KeyID: 1, Key: priv1}
	signer2     = Signer{KeyID: 2, Key: priv2}
	signer3     = Signer{KeyID: 3, Key: priv3}
	t0          = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
)

// testKeys: 1 active, 2 prepared, 3 revoked.
func testKeys() []Key {
	return []Key{
		{ID: 1, State: KeyActive, Public: pub1},
		{ID: 2, State: KeyPrepared, Public: pub2, NotAfter: t0.Add(24 * time.Hour)},
		{ID: 3, State: KeyRevoked, Public: pub3},
	}
}

// held is the lookup of a verifier holding testKeys.
func held(id uint32) (ed25519.PublicKey, bool) {
	for _, k := range testKeys() {
		if k.ID == id && k.State.Verifies() {
			return k.Public, true
		}
	}
	return nil, false
}

func tokenEntry(i int) Entry {
	e := Entry{Kind: EntryToken}
	binary.BigEndian.PutUint64(e.ID[8:], uint64(i)+1)
	e.ID[0] = 0x5f
	return e
}

func blockEntry(i int) Entry {
	e := tokenEntry(i)
	e.Kind = EntryBlock
	e.ID[0] = 0xb1
	return e
}

func agentEntry(i int) Entry {
	return Entry{Kind: EntryAgent, Agent: fmt.Sprintf("spiffe://acme.example/agents/a%d", i), Before: t0.Add(time.Duration(i) * time.Millisecond)}
}

func testSnapshot() *Snapshot {
	return &Snapshot{
		Epoch: 42, Time: t0, Keys: testKeys(), Nodes: []string{"10.0.0.1:8443", "issuer-2.acme.example:8443"},
		Entries: []Entry{tokenEntry(0), blockEntry(1), agentEntry(2), tokenEntry(3)},
	}
}

func testChange() *Change {
	return &Change{
		Epoch: 44, Prev: 42, Time: t0.Add(time.Second),
		Add:    []Entry{tokenEntry(10), agentEntry(11)},
		Remove: []Entry{tokenEntry(3)},
		Keys:   []Key{{ID: 1, State: KeyRetiring, Public: pub1}, {ID: 2, State: KeyActive, Public: pub2}},
		Nodes:  []string{"10.0.0.3:8443"}, NodesChanged: true,
	}
}

func testHeartbeat() *Heartbeat {
	return &Heartbeat{Epoch: 44, Time: t0.Add(2 * time.Second), Node: "node-1"}
}

// must returns a function that fails t on an encoding error.
func must(t testing.TB) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// readAll decodes every unit of data and verifies each with held.
func readAll(data []byte) ([]*Unit, error) {
	r := NewReader(bytes.NewReader(data))
	var units []*Unit
	for {
		u, err := r.Next()
		if err == io.EOF {
			return units, nil
		}
		if err != nil {
			return units, err
		}
		if err := u.VerifyWith(held); err != nil {
			return units, err
		}
		units = append(units, u)
	}
}

func TestRoundTrip(t *testing.T) {
	snap := testSnapshot()
	ch := testChange()
	hb := testHeartbeat()
	var stream []byte
	stream = append(stream, must(t)(EncodeSnapshot(snap, signer1))...)
	stream = append(stream, must(t)(EncodeChange(ch, signer1))...)
	stream = append(stream, must(t)(EncodeHeartbeat(hb, signer2))...)
	stream = append(stream, must(t)(EncodeChange(&Change{Epoch: 45, Prev: 44, Time: t0}, signer1))...)
	stream = append(stream, must(t)(EncodeChange(&Change{Epoch: 46, Prev: 45, Time: t0, NodesChanged: true, Nodes: []string{}}, signer1))...)

	units, err := readAll(stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 5 {
		t.Fatalf("got %d units, want 5", len(units))
	}
	if !reflect.DeepEqual(units[0].Snapshot, snap) {
		t.Errorf("snapshot:\ngot  %+v\nwant %+v", units[0].Snapshot, snap)
	}
	if !reflect.DeepEqual(units[1].Change, ch) {
		t.Errorf("change:\ngot  %+v\nwant %+v", units[1].Change, ch)
	}
	if !reflect.DeepEqual(units[2].Heartbeat, hb) {
		t.Errorf("heartbeat: got %+v, want %+v", units[2].Heartbeat, hb)
	}
	if c := units[3].Change; c.Keys != nil || c.Nodes != nil || c.NodesChanged || c.Add != nil || c.Remove != nil {
		t.Errorf("empty change: got %+v, want nothing changed", c)
	}
	if c := units[4].Change; c.Nodes == nil || len(c.Nodes) != 0 || !c.NodesChanged {
		t.Errorf("change to no nodes: got nodes %#v changed %v, want an empty list", c.Nodes, c.NodesChanged)
	}
	for i, want := range []struct {
		typ   FrameType
		key   uint32
		epoch uint64
	}{{TypeSnapshotEnd, 1, 42}, {TypeChange, 1, 44}, {TypeHeartbeat, 2, 44}, {TypeChange, 1, 45}, {TypeChange, 1, 46}} {
		if u := units[i]; u.Type != want.typ || u.KeyID != want.key || u.Epoch() != want.epoch {
			t.Errorf("unit %d: got %s by %d at %d, want %s by %d at %d", i, u.Type, u.KeyID, u.Epoch(), want.typ, want.key, want.epoch)
		}
	}
	var total int64
	for _, u := range units {
		total += u.Size
	}
	if total != int64(len(stream)) {
		t.Errorf("unit sizes add up to %d, want %d", total, len(stream))
	}
}

// TestSnapshotChunks: a large snapshot is split by entry count and by
// the 1 MiB body limit, WriteSnapshot writes exactly EncodeSnapshot's
// bytes, and the Entries hook sees every entry in order.
func TestSnapshotChunks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries func(i int) Entry
		n       int
		frames  int // snapshot_entries frames
	}{
		{"ok/tokens-split-by-body", tokenEntry, 2*61680 + 1, 3},
		{"ok/agents-split-by-body", func(i int) Entry {
			e := agentEntry(i)
			e.Agent = strings.Repeat("a", MaxAgentLen)
			return e
		}, 1200, 3},
		{"ok/empty", nil, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testSnapshot()
			s.Entries = make([]Entry, tc.n)
			for i := range s.Entries {
				s.Entries[i] = tc.entries(i)
			}
			data := must(t)(EncodeSnapshot(s, signer1))
			var buf bytes.Buffer
			n, err := WriteSnapshot(&buf, s, signer1)
			if err != nil || n != int64(len(data)) || !bytes.Equal(buf.Bytes(), data) {
				t.Fatalf("WriteSnapshot: got %d bytes, %v, equal %v; want the %d bytes of EncodeSnapshot", n, err, bytes.Equal(buf.Bytes(), data), len(data))
			}
			frames, seen := 0, 0
			r := NewReader(bytes.NewReader(data))
			r.Frame = func(raw []byte) error {
				if FrameType(raw[0]) == TypeSnapshotEntries {
					frames++
					if len(raw)-headerSize > MaxBody || binary.BigEndian.Uint32(raw[headerSize:]) > MaxChunkEntries {
						t.Errorf("entries frame of %d bytes, %d entries: over the limits", len(raw)-headerSize, binary.BigEndian.Uint32(raw[headerSize:]))
					}
				}
				return nil
			}
			r.Entries = func(batch []Entry) error {
				for _, e := range batch {
					if !reflect.DeepEqual(e, s.Entries[seen]) {
						t.Fatalf("entry %d: got %+v, want %+v", seen, e, s.Entries[seen])
					}
					seen++
				}
				return nil
			}
			u, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if err := u.VerifyWith(held); err != nil {
				t.Fatal(err)
			}
			if frames != tc.frames || seen != tc.n || u.Count != tc.n || u.Snapshot.Entries != nil {
				t.Errorf("got %d frames, %d entries seen, count %d, %d collected; want %d frames, %d entries, none collected",
					frames, seen, u.Count, len(u.Snapshot.Entries), tc.frames, tc.n)
			}
			if _, err := r.Next(); err != io.EOF {
				t.Errorf("after the snapshot: got %v, want io.EOF", err)
			}
		})
	}
}

func TestEncodeInvalid(t *testing.T) {
	key := func(f func(k []Key) []Key) *Snapshot { s := testSnapshot(); s.Keys = f(s.Keys); return s }
	entry := func(e Entry) *Snapshot { s := testSnapshot(); s.Entries = []Entry{e}; return s }
	for _, tc := range []struct {
		name string
		enc  func() error
		want error
	}{
		{"fail/snapshot-epoch-0", func() error { s := testSnapshot(); s.Epoch = 0; _, err := EncodeSnapshot(s, signer1); return err }, ErrInvalid},
		{"fail/no-keys", func() error { _, err := EncodeSnapshot(key(func([]Key) []Key { return nil }), signer1); return err }, ErrInvalid},
		{"fail/65-keys", func() error {
			_, err := EncodeSnapshot(key(func([]Key) []Key {
				ks := make([]Key, 65)
				for i := range ks {
					ks[i] = Key{ID: uint32(i), State: KeyActive, Public: pub1}
				}
				return ks
			}), signer1)
			return err
		}, ErrInvalid},
		{"fail/key-ids-not-increasing", func() error {
			_, err := EncodeSnapshot(key(func(k []Key) []Key { k[1].ID = 1; return k }), signer1)
			return err
		}, ErrInvalid},
		{"fail/key-state-5", func() error {
			_, err := EncodeSnapshot(key(func(k []Key) []Key { k[0].State = 5; return k }), signer1)
			return err
		}, ErrInvalid},
		{"fail/key-short", func() error {
			_, err := EncodeSnapshot(key(func(k []Key) []Key { k[0].Public = k[0].Public[:31]; return k }), signer1)
			return err
		}, ErrInvalid},
		{"fail/17-nodes", func() error {
			s := testSnapshot()
			s.Nodes = make([]string, 17)
			_, err := EncodeSnapshot(s, signer1)
			return err
		}, ErrInvalid},
		{"fail/empty-node", func() error {
			s := testSnapshot()
			s.Nodes = []string{""}
			_, err := EncodeSnapshot(s, signer1)
			return err
		}, ErrInvalid},
		{"fail/entry-kind-0", func() error { _, err := EncodeSnapshot(entry(Entry{}), signer1); return err }, ErrInvalid},
		{"fail/token-entry-with-agent", func() error {
			_, err := EncodeSnapshot(entry(Entry{Kind: EntryToken, Agent: "a"}), signer1)
			return err
		}, ErrInvalid},
		{"fail/agent-entry-without-before", func() error {
			_, err := EncodeSnapshot(entry(Entry{Kind: EntryAgent, Agent: "a"}), signer1)
			return err
		}, ErrInvalid},
		{"fail/agent-too-long", func() error {
			_, err := EncodeSnapshot(entry(Entry{Kind: EntryAgent, Agent: strings.Repeat("a", 2049), Before: t0}), signer1)
			return err
		}, ErrInvalid},
		{"fail/bad-signer", func() error { _, err := EncodeSnapshot(testSnapshot(), Signer{KeyID: 1}); return err }, ErrInvalid},
		{"fail/change-epoch-not-after-prev", func() error { _, err := EncodeChange(&Change{Epoch: 4, Prev: 4}, signer1); return err }, ErrInvalid},
		{"fail/change-nodes-without-flag", func() error {
			_, err := EncodeChange(&Change{Epoch: 5, Prev: 4, Nodes: []string{"a:1"}}, signer1)
			return err
		}, ErrInvalid},
		{"fail/change-empty-keys", func() error { _, err := EncodeChange(&Change{Epoch: 5, Prev: 4, Keys: []Key{}}, signer1); return err }, ErrInvalid},
		{"fail/change-over-1MiB", func() error {
			c := &Change{Epoch: 5, Prev: 4, Add: make([]Entry, MaxBody/idEntrySize+1)}
			for i := range c.Add {
				c.Add[i] = tokenEntry(i)
			}
			_, err := EncodeChange(c, signer1)
			return err
		}, ErrTooLarge},
		{"fail/heartbeat-epoch-0", func() error { _, err := EncodeHeartbeat(&Heartbeat{Node: "n"}, signer1); return err }, ErrInvalid},
		{"fail/heartbeat-no-node", func() error { _, err := EncodeHeartbeat(&Heartbeat{Epoch: 1}, signer1); return err }, ErrInvalid},
		{"fail/heartbeat-node-256", func() error {
			_, err := EncodeHeartbeat(&Heartbeat{Epoch: 1, Node: strings.Repeat("n", 256)}, signer1)
			return err
		}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.enc(); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func ed25519Sign(priv ed25519.PrivateKey, m []byte) []byte { return ed25519.Sign(priv, m) }
