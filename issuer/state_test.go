package issuer

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/cluster"
)

func testKEK(t *testing.T) *KEK {
	t.Helper()
	k, err := NewKEK(bytes.Repeat([]byte{1}, KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDecodeCommandStrict(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want string // substring of the error; "" means ok
	}{
		{"ok/audit", `{"v":1,"type":"audit.append","audit":[{"kind":"token.mint","caller":"spiffe://a/b","time":"2026-01-01T00:00:00Z","seq":0,"prev":"","hash":""}]}`, ""},
		{"fail/version-2", `{"v":2,"type":"audit.append","audit":[{}]}`, "version 2"},
		{"fail/no-version", `{"type":"audit.append","audit":[{}]}`, "version 0"},
		{"fail/unknown-type", `{"v":1,"type":"token.burn"}`, `unknown type "token.burn"`},
		{"fail/unknown-field", `{"v":1,"type":"audit.append","audit":[{}],"extra":1}`, "unknown field"},
		{"fail/trailing", `{"v":1,"type":"audit.append","audit":[{}]}{}`, "trailing data"},
		{"fail/mixed-payload", `{"v":1,"type":"key.add","key":{"id":1},"policy":{"version":"x"},"audit":[{}]}`, "wants exactly a key"},
		{"fail/key-without-audit", `{"v":1,"type":"key.add","key":{"id":1}}`, "and its audit record"},
		{"fail/policy-without-audit", `{"v":1,"type":"policy.set","policy":{"version":"x"}}`, "and its audit record"},
		{"fail/empty-audit", `{"v":1,"type":"audit.append"}`, "audit records only"},
		{"fail/not-json", `\x00\x01`, "bad command"},
		{"ok/with-id", `{"v":1,"type":"audit.append","id":"0123456789abcdef0123456789abcdef","audit":[{}]}`, ""},
		{"fail/id-short", `{"v":1,"type":"audit.append","id":"0123","audit":[{}]}`, "32 lowercase hex"},
		{"fail/id-upper", `{"v":1,"type":"audit.append","id":"0123456789ABCDEF0123456789ABCDEF","audit":[{}]}`, "32 lowercase hex"},
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

func FuzzDecodeCommand(f *testing.F) {
	f.Add([]byte(`{"v":1,"type":"audit.append","audit":[{"kind":"x"}]}`))
	f.Add([]byte(`{"v":1,"type":"key.add","key":{"id":1,"public":"AAAA"}}`))
	f.Add([]byte(`{"v":1,"type":"policy.set","policy":{"version":"sha256:00","source":"dmVyc2lvbjogMQ=="}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := OpenState(t.TempDir(), testKEK(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// Apply must never panic, whatever the bytes.
		s.Apply(1, b)
	})
}

func applyOK(t *testing.T, s *State, index uint64, c *command) {
	t.Helper()
	b, err := encodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.Apply(index, b).(applyResult); r.err != nil {
		t.Fatalf("apply %s: %v", c.Type, r.err)
	}
}

func TestStateSnapshotRestore(t *testing.T) {
	kek := testKEK(t)
	src, err := OpenState(t.TempDir(), kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	pub, priv, _ := ed25519.GenerateKey(nil)
	sealed, err := kek.seal(1, priv)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	applyOK(t, src, 1, &command{Type: cmdKeyAdd, Key: &keyRecord{ID: 1, Public: pub, Sealed: sealed, State: keyActive, CreatedAt: now}, Audit: []*AuditRecord{{Time: now, Kind: AuditKeyAdd, Caller: "spiffe://a/writ", KeyID: 1}}})
	for i := 0; i < 10; i++ {
		applyOK(t, src, uint64(2+i), &command{Type: cmdAuditAppend, Audit: []*AuditRecord{{Time: now, Kind: AuditMint, Caller: "spiffe://a/b", TokenID: strings.Repeat("0", 31) + string(rune('0'+i))}}})
	}
	// A replayed index is ignored.
	b, _ := encodeCommand(&command{Type: cmdAuditAppend, Audit: []*AuditRecord{{Kind: AuditMint}}})
	src.Apply(5, b)
	if seq, _ := src.AuditHead(); seq != 11 {
		t.Fatalf("after replay: audit seq %d, want 11", seq)
	}

	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	dst, err := OpenState(t.TempDir(), kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := dst.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	s1, h1 := src.AuditHead()
	s2, h2 := dst.AuditHead()
	id, _, err := dst.ActiveKey()
	if s1 != s2 || h1 != h2 || err != nil || id != 1 || dst.Applied() != src.Applied() {
		t.Fatalf("restored: head %d/%s key %d err %v applied %d, want %d/%s key 1 applied %d", s2, h2, id, err, dst.Applied(), s1, h1, src.Applied())
	}
	recs, err := dst.AuditRecords(1, 100)
	if err != nil || VerifyAuditChain("", 1, recs) != nil || len(recs) != 11 {
		t.Fatalf("restored chain: %d records, err %v", len(recs), err)
	}

	for _, tc := range []struct {
		name string
		mod  func([]byte) []byte
	}{
		{"fail/truncated", func(b []byte) []byte { return b[:len(b)-10] }},
		{"fail/bit-flip", func(b []byte) []byte { c := bytes.Clone(b); c[len(c)/2] ^= 1; return c }},
		{"fail/not-a-snapshot", func(b []byte) []byte { return []byte("hello") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad, err := OpenState(t.TempDir(), kek, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer bad.Close()
			if err := bad.Restore(bytes.NewReader(tc.mod(buf.Bytes()))); err == nil {
				t.Fatal("restore succeeded, want error")
			}
			if seq, _ := bad.AuditHead(); seq != 0 {
				t.Fatalf("failed restore changed state: seq %d", seq)
			}
		})
	}
}

func TestKEK(t *testing.T) {
	kek := testKEK(t)
	_, priv, _ := ed25519.GenerateKey(nil)
	sealed, err := kek.seal(3, priv)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := kek.open(3, sealed); err != nil || !got.Equal(priv) {
		t.Fatalf("open: %v", err)
	}
	if _, err := kek.open(4, sealed); !errors.Is(err, ErrBadKEK) {
		t.Errorf("moved to another id: got %v, want ErrBadKEK", err)
	}
	other, _ := NewKEK(bytes.Repeat([]byte{2}, KEKSize))
	if _, err := other.open(3, sealed); !errors.Is(err, ErrBadKEK) {
		t.Errorf("wrong KEK: got %v, want ErrBadKEK", err)
	}
	for _, in := range []string{"", "abc", strings.Repeat("a", 63), strings.Repeat("zz", 32)} {
		if _, err := ParseKEK(in); !errors.Is(err, ErrBadKEK) {
			t.Errorf("ParseKEK(%q): got %v, want ErrBadKEK", in, err)
		}
	}
	if _, err := ParseKEK(strings.Repeat("ab", 32) + "\n"); err != nil {
		t.Errorf("hex KEK: %v", err)
	}
}

var _ cluster.BatchFSM = (*State)(nil)

// TestAuditAppendWireForm: the audit log's pre-encoded command is byte for
// byte the command the state machine decodes.
func TestAuditAppendWireForm(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	recs := []*AuditRecord{
		{Time: now, Kind: AuditMint, Caller: "spiffe://a/b", Requested: []string{"<crm>:read"}, TokenID: strings.Repeat("a", 32), ExpiresAt: now},
		{Time: now, Kind: AuditDeny, Caller: "spiffe://a/c", Reason: "not_granted", Denied: []AuditDenial{{Right: "x:y", Reason: "no_matching_rule"}}},
	}
	raws := make([]json.RawMessage, len(recs))
	for i, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		raws[i] = b
	}
	id := strings.Repeat("ab", 16)
	got, err := json.Marshal(&auditAppend{V: commandVersion, Type: cmdAuditAppend, ID: id, Audit: raws})
	if err != nil {
		t.Fatal(err)
	}
	want, err := encodeCommand(&command{Type: cmdAuditAppend, ID: id, Audit: recs})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if _, err := decodeCommand(got); err != nil {
		t.Fatal(err)
	}
}

// TestCommandIDsApplyOnce: a retried command (same ID, later log index)
// returns the first result and changes nothing; after commandIDRetention
// entries the ID is forgotten on every node alike.
func TestCommandIDsApplyOnce(t *testing.T) {
	s, err := OpenState(t.TempDir(), testKEK(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	cmd, err := encodeCommand(&command{Type: cmdAuditAppend, Audit: []*AuditRecord{{Time: now, Kind: AuditMint, Caller: "spiffe://a/b"}}})
	if err != nil {
		t.Fatal(err)
	}
	first := s.Apply(1, cmd).(applyResult)
	if first.err != nil || len(first.seqs) != 1 || first.duplicate {
		t.Fatalf("first apply: got %+v", first)
	}
	again := s.Apply(2, cmd).(applyResult)
	if again.err != nil || !again.duplicate || len(again.seqs) != 1 || again.seqs[0] != first.seqs[0] {
		t.Fatalf("retry: got %+v, want duplicate of %v", again, first.seqs)
	}
	if seq, _ := s.AuditHead(); seq != 1 {
		t.Fatalf("audit head after retry: got %d, want 1", seq)
	}
	if err := checkApplied(again, 1); err != nil {
		t.Fatalf("a retried command's result must satisfy its writer: %v", err)
	}
	// Far enough in the log, the ID is forgotten and the command applies
	// again (a retry that late is a new request).
	late := s.Apply(2+commandIDRetention, cmd).(applyResult)
	if late.err != nil || late.duplicate || late.seqs[0] != 2 {
		t.Fatalf("after retention: got %+v, want a fresh application", late)
	}
	// Within one raft batch: the repeat is a duplicate of the first.
	cmd2, err := encodeCommand(&command{Type: cmdAuditAppend, Audit: []*AuditRecord{{Time: now, Kind: AuditMint, Caller: "spiffe://a/c"}}})
	if err != nil {
		t.Fatal(err)
	}
	res := s.ApplyBatch([]cluster.Entry{{Index: 3 + commandIDRetention, Cmd: cmd2}, {Index: 4 + commandIDRetention, Cmd: cmd2}})
	a, b := res[0].(applyResult), res[1].(applyResult)
	if a.duplicate || !b.duplicate || len(b.seqs) != 1 || b.seqs[0] != a.seqs[0] {
		t.Fatalf("same batch: got %+v then %+v, want one application and its duplicate", a, b)
	}
	if seq, _ := s.AuditHead(); seq != 3 {
		t.Fatalf("audit head: got %d, want 3", seq)
	}
}
