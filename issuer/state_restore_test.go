package issuer

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/goleak"

	"github.com/writ-dev/writ/cluster"
	"github.com/writ-dev/writ/issuer/policy"
)

var restoreTestNow = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// fillState applies, from index next on: an active key and a policy (if
// the state has none), revs token revocations, then auditN mint records
// in commands of 500. It returns the next free index.
func fillState(tb testing.TB, s *State, kek *KEK, next uint64, revs, auditN int, tag string) uint64 {
	tb.Helper()
	apply := func(cmds ...*command) {
		entries := make([]cluster.Entry, len(cmds))
		for i, c := range cmds {
			b, err := encodeCommand(c)
			if err != nil {
				tb.Fatal(err)
			}
			entries[i] = cluster.Entry{Index: next, Cmd: b}
			next++
		}
		for i, r := range s.ApplyBatch(entries) {
			if err := r.(applyResult).err; err != nil {
				tb.Fatalf("apply %s: %v", cmds[i].Type, err)
			}
		}
	}
	adminAudit := func(kind string) []*AuditRecord {
		return []*AuditRecord{{Time: restoreTestNow, Kind: kind, Caller: "spiffe://a/admin"}}
	}
	if _, _, err := s.ActiveKey(); err != nil {
		pub, priv, _ := ed25519.GenerateKey(nil)
		sealed, err := kek.seal(1, priv)
		if err != nil {
			tb.Fatal(err)
		}
		apply(&command{Type: cmdKeyAdd, Key: &keyRecord{ID: 1, Public: pub, Sealed: sealed, State: keyActive, CreatedAt: restoreTestNow}, Audit: adminAudit(AuditKeyAdd)})
		src := []byte(nodeTestPolicy + "# " + tag + "\n")
		p, err := policy.Parse(src)
		if err != nil {
			tb.Fatal(err)
		}
		apply(&command{Type: cmdPolicySet, Policy: &policyRecord{Version: p.Version(), Source: src}, Audit: adminAudit(AuditPolicySet)})
	}
	var cmds []*command
	for i := range revs {
		cmds = append(cmds, &command{Type: cmdRevoke, Revocation: &revocationRecord{Kind: RevokeToken, ID: fmt.Sprintf("%016x%016x", next, i),
			By: "spiffe://a/admin", At: restoreTestNow, ExpiresAt: restoreTestNow.Add(time.Hour)}, Audit: adminAudit(AuditRevoke)})
		if len(cmds) == 100 {
			apply(cmds...)
			cmds = nil
		}
	}
	for done := 0; done < auditN; {
		n := min(500, auditN-done)
		recs := make([]*AuditRecord, n)
		for i := range recs {
			recs[i] = &AuditRecord{Time: restoreTestNow, Kind: AuditMint, Caller: "spiffe://a/agents/" + tag,
				Requested: []string{"<crm>:read"}, TokenID: fmt.Sprintf("%032x", done+i), ExpiresAt: restoreTestNow.Add(time.Minute)}
		}
		cmds = append(cmds, &command{Type: cmdAuditAppend, Audit: recs})
		done += n
		if len(cmds) == 10 {
			apply(cmds...)
			cmds = nil
		}
	}
	if len(cmds) > 0 {
		apply(cmds...)
	}
	return next
}

func snapshotBytes(tb testing.TB, s *State) []byte {
	tb.Helper()
	snap, err := s.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	defer snap.Release()
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// stateDump is everything a reader can see of a state.
type stateDump struct {
	Applied     uint64
	AuditSeq    uint64
	AuditHash   string
	SyncEpoch   uint64
	Revocations int
	Keys        []PublicKey
	PolicyVer   string
	Audit       []AuditRecord
	Revoked     []Revocation
}

func dumpState(tb testing.TB, s *State) stateDump {
	tb.Helper()
	var d stateDump
	d.Applied = s.Applied()
	d.AuditSeq, d.AuditHash = s.AuditHead()
	d.SyncEpoch, d.Revocations = s.SyncEpoch()
	d.Keys = s.PublicKeys()
	d.PolicyVer, _, _ = s.PolicySource()
	for from := uint64(1); ; {
		page, err := s.AuditRecords(from, 1000)
		if err != nil {
			tb.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		d.Audit = append(d.Audit, page...)
		from = page[len(page)-1].Seq + 1
	}
	for after := []byte(nil); ; {
		page, next, err := s.Revocations(after, 1000)
		if err != nil {
			tb.Fatal(err)
		}
		d.Revoked = append(d.Revoked, page...)
		if next == nil {
			break
		}
		after = next
	}
	return d
}

func checkSameState(t *testing.T, got, want stateDump) {
	t.Helper()
	if got.Applied != want.Applied || got.AuditSeq != want.AuditSeq || got.AuditHash != want.AuditHash ||
		got.SyncEpoch != want.SyncEpoch || got.Revocations != want.Revocations || got.PolicyVer != want.PolicyVer {
		t.Fatalf("got applied %d head %d/%s epoch %d revocations %d policy %s; want %d %d/%s %d %d %s",
			got.Applied, got.AuditSeq, got.AuditHash, got.SyncEpoch, got.Revocations, got.PolicyVer,
			want.Applied, want.AuditSeq, want.AuditHash, want.SyncEpoch, want.Revocations, want.PolicyVer)
	}
	if !reflect.DeepEqual(got.Keys, want.Keys) {
		t.Fatalf("got keys %v, want %v", got.Keys, want.Keys)
	}
	if len(got.Audit) != len(want.Audit) || !reflect.DeepEqual(got.Audit, want.Audit) {
		t.Fatalf("got %d audit records, want %d (or they differ)", len(got.Audit), len(want.Audit))
	}
	if !reflect.DeepEqual(got.Revoked, want.Revoked) {
		t.Fatalf("got %d revocations listed, want %d (or they differ)", len(got.Revoked), len(want.Revoked))
	}
}

// checkNoLeftovers fails if a restore left a sibling directory behind.
func checkNoLeftovers(t *testing.T, s *State) {
	t.Helper()
	for _, p := range []string{s.dir + restoreSuffix, s.dir + oldSuffix} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: got %v, want it gone", filepath.Base(p), err)
		}
	}
}

func openStateAt(t *testing.T, dir string, kek *KEK) *State {
	t.Helper()
	s, err := OpenState(dir, kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// stateDir is a state directory whose siblings are private to the test.
func stateDir(t *testing.T) string { return filepath.Join(t.TempDir(), "state") }

func TestRestoreLargeState(t *testing.T) {
	kek := testKEK(t)
	src := openStateAt(t, stateDir(t), kek)
	fillState(t, src, kek, 1, 300, 50_000, "src")
	snap := snapshotBytes(t, src)
	want := dumpState(t, src)

	// dst holds another, smaller state that the snapshot replaces whole.
	dst := openStateAt(t, stateDir(t), kek)
	fillState(t, dst, kek, 1, 10, 700, "dst")
	if err := dst.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	checkSameState(t, dumpState(t, dst), want)
	checkNoLeftovers(t, dst)
	if _, _, err := dst.ActiveKey(); err != nil {
		t.Fatalf("active key after restore: %v", err)
	}
	// The restored state applies the log on, and survives a reopen.
	next := fillState(t, src, kek, want.Applied+1, 1, 10, "src")
	fillState(t, dst, kek, want.Applied+1, 1, 10, "src")
	if got := dst.Applied(); got != next-1 {
		t.Fatalf("applied after restore and apply: got %d, want %d", got, next-1)
	}
	want = dumpState(t, src)
	dir := dst.dir
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	checkSameState(t, dumpState(t, openStateAt(t, dir, kek)), want)
}

// decodeSnapshot returns the key/value pairs of a snapshot stream.
func decodeSnapshot(t *testing.T, b []byte) [][2][]byte {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(b[len(snapshotMagic) : len(b)-sha256.Size]))
	var kvs [][2][]byte
	read := func() []byte {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, n)
		if _, err := io.ReadFull(r, out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for {
		kl, err := binary.ReadUvarint(r)
		if err != nil {
			t.Fatal(err)
		}
		if kl == 0 {
			return kvs
		}
		k := make([]byte, kl-1)
		if _, err := io.ReadFull(r, k); err != nil {
			t.Fatal(err)
		}
		kvs = append(kvs, [2][]byte{k, read()})
	}
}

// encodeSnapshot writes kvs as a valid snapshot stream (checksum included).
func encodeSnapshot(kvs [][2][]byte) []byte {
	var b []byte
	b = append(b, snapshotMagic...)
	for _, kv := range kvs {
		b = binary.AppendUvarint(b, uint64(len(kv[0]))+1)
		b = append(b, kv[0]...)
		b = binary.AppendUvarint(b, uint64(len(kv[1])))
		b = append(b, kv[1]...)
	}
	b = append(b, 0)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

func TestRestoreRefusedKeepsState(t *testing.T) {
	kek := testKEK(t)
	src := openStateAt(t, stateDir(t), kek)
	fillState(t, src, kek, 1, 20, 3000, "src")
	good := snapshotBytes(t, src)

	otherKEK, err := NewKEK(bytes.Repeat([]byte{2}, KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	foreign := openStateAt(t, stateDir(t), otherKEK)
	fillState(t, foreign, otherKEK, 1, 0, 10, "foreign")

	badPolicy := func() []byte {
		kvs := decodeSnapshot(t, good)
		edited := 0
		for i, kv := range kvs {
			if bytes.HasPrefix(kv[0], kPolPrefix) {
				var pr policyRecord
				if err := json.Unmarshal(kv[1], &pr); err != nil {
					t.Fatal(err)
				}
				pr.Source = []byte("version: 99\nrules: [[[\n")
				kvs[i][1], _ = json.Marshal(&pr)
				edited++
			}
		}
		if edited == 0 {
			t.Fatal("no policy in the snapshot")
		}
		return encodeSnapshot(kvs)
	}

	for _, tc := range []struct {
		name string
		snap func() []byte
		want string // substring of the error
	}{
		{"fail/truncated", func() []byte { return good[:len(good)-10] }, "checksum"},
		{"fail/truncated-mid-entry", func() []byte { return good[:len(good)/2] }, "truncated"},
		{"fail/bit-flip", func() []byte { c := bytes.Clone(good); c[len(c)/2] ^= 1; return c }, ""},
		{"fail/bit-flip-checksum", func() []byte { c := bytes.Clone(good); c[len(c)-1] ^= 1; return c }, "checksum"},
		{"fail/not-a-snapshot", func() []byte { return []byte("hello") }, "not a state snapshot"},
		{"fail/empty", func() []byte { return nil }, "not a state snapshot"},
		{"fail/wrong-kek", func() []byte { return snapshotBytes(t, foreign) }, ErrBadKEK.Error()},
		{"fail/bad-policy", badPolicy, "stored policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := openStateAt(t, stateDir(t), kek)
			next := fillState(t, dst, kek, 1, 5, 600, "dst")
			before := dumpState(t, dst)
			err := dst.Restore(bytes.NewReader(tc.snap()))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			checkNoLeftovers(t, dst)
			checkSameState(t, dumpState(t, dst), before)
			// The state is still usable, and a good snapshot still restores.
			fillState(t, dst, kek, next, 1, 1, "dst")
			if err := dst.Restore(bytes.NewReader(good)); err != nil {
				t.Fatalf("good snapshot after a refused one: %v", err)
			}
			checkSameState(t, dumpState(t, dst), dumpState(t, src))
		})
	}
}

// TestRestoreConcurrentReaders: reads that run while restores swap the
// database neither fail nor see a broken state.
func TestRestoreConcurrentReaders(t *testing.T) {
	// Registered first, so it runs after the states' cleanups close them.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	kek := testKEK(t)
	a := openStateAt(t, stateDir(t), kek)
	fillState(t, a, kek, 1, 30, 2000, "a")
	b := openStateAt(t, stateDir(t), kek)
	fillState(t, b, kek, 1, 60, 3000, "b")
	snaps := [][]byte{snapshotBytes(t, a), snapshotBytes(t, b)}
	heads := map[uint64]bool{}
	for _, s := range []*State{a, b} {
		seq, _ := s.AuditHead()
		heads[seq] = true
	}

	dst := openStateAt(t, stateDir(t), kek)
	if err := dst.Restore(bytes.NewReader(snaps[0])); err != nil {
		t.Fatal(err)
	}
	var (
		stop  atomic.Bool
		wg    sync.WaitGroup
		reads atomic.Int64
		errMu sync.Mutex
		errs  []error
	)
	fail := func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
	}
	readers := map[string]func() error{
		"audit": func() error {
			recs, err := dst.AuditRecords(1, 200)
			if err != nil {
				return err
			}
			if len(recs) != 200 {
				return fmt.Errorf("got %d records, want 200", len(recs))
			}
			return VerifyAuditChain("", 1, recs)
		},
		"revocations": func() error {
			revs, next, err := dst.Revocations(nil, 20)
			if err == nil && (len(revs) != 20 || next == nil) {
				err = fmt.Errorf("got %d revocations (next %x), want 20 and more", len(revs), next)
			}
			if err == nil {
				var ek []byte
				if ek, err = revocationKey(revs[0]); err == nil {
					// It may be gone if a restore came in between.
					_, _, err = dst.revocation(ek)
				}
			}
			return err
		},
		"sync-snapshot": func() error {
			ss := dst.syncSnapshot()
			defer ss.snap.Close()
			_, n := dst.SyncEpoch() // a State method while the snapshot is held
			entries, err := ss.entries(n)
			if err == nil && len(entries) != 30 && len(entries) != 60 {
				err = fmt.Errorf("got %d entries, want 30 or 60", len(entries))
			}
			return err
		},
		"prune-due": func() error {
			dst.pruneDue(restoreTestNow)
			if seq, _ := dst.AuditHead(); !heads[seq] {
				return fmt.Errorf("audit head %d, want one of %v", seq, heads)
			}
			return nil
		},
	}
	for name, read := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if err := read(); err != nil {
					fail(fmt.Errorf("%s: %w", name, err))
					return
				}
				reads.Add(1)
			}
		}()
	}
	for i := range 6 {
		if err := dst.Restore(bytes.NewReader(snaps[(i+1)%2])); err != nil {
			fail(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	if reads.Load() == 0 {
		t.Fatal("no read ran during the restores")
	}
	checkSameState(t, dumpState(t, dst), dumpState(t, a))
}

// revocationKey rebuilds the entry key of a listed token revocation.
func revocationKey(r Revocation) ([]byte, error) {
	rec := revocationRecord(r)
	if err := rec.validate(); err != nil {
		return nil, err
	}
	return rec.entryKey(), nil
}

// TestRestoreWaitsForSnapshot: a raft snapshot being written when a
// restore comes keeps its database until it is released, and holds the
// state from before the restore.
func TestRestoreWaitsForSnapshot(t *testing.T) {
	kek := testKEK(t)
	src := openStateAt(t, stateDir(t), kek)
	fillState(t, src, kek, 1, 5, 1000, "src")
	newer := snapshotBytes(t, src)

	dst := openStateAt(t, stateDir(t), kek)
	fillState(t, dst, kek, 1, 3, 400, "dst")
	before := dumpState(t, dst)
	held, err := dst.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- dst.Restore(bytes.NewReader(newer)) }()
	var buf bytes.Buffer
	if _, err := held.WriteTo(&buf); err != nil {
		t.Fatalf("snapshot written during a restore: %v", err)
	}
	held.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkSameState(t, dumpState(t, dst), dumpState(t, src))
	check := openStateAt(t, stateDir(t), kek)
	if err := check.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	checkSameState(t, dumpState(t, check), before)
}

// TestOpenStateRecoversRestore: whatever step of a restore's directory
// swap a crash interrupts, OpenState opens a complete state (the old one
// before the new one is in place, the new one after) and removes the
// leftovers.
func TestOpenStateRecoversRestore(t *testing.T) {
	kek := testKEK(t)
	// build makes a closed state directory at dir, returning its dump.
	build := func(t *testing.T, dir, tag string, auditN int) stateDump {
		s, err := OpenState(dir, kek, nil)
		if err != nil {
			t.Fatal(err)
		}
		fillState(t, s, kek, 1, 3, auditN, tag)
		d := dumpState(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tc := range []struct {
		name string
		// crash lays out dir and its siblings, given a complete old and
		// new state in oldDir and newDir; it returns which state OpenState
		// must find.
		crash func(t *testing.T, dir, oldDir, newDir string) (wantNew bool)
	}{
		{"ok/no-restore", func(t *testing.T, dir, oldDir, newDir string) bool {
			mustRename(t, oldDir, dir)
			return false
		}},
		{"ok/crash-while-streaming", func(t *testing.T, dir, oldDir, newDir string) bool {
			mustRename(t, oldDir, dir)
			// A partial new database: a few files, no complete state.
			mustRename(t, newDir, dir+restoreSuffix)
			mustRemoveSome(t, dir+restoreSuffix)
			return false
		}},
		{"ok/crash-before-renames", func(t *testing.T, dir, oldDir, newDir string) bool {
			mustRename(t, oldDir, dir)
			mustRename(t, newDir, dir+restoreSuffix)
			return false
		}},
		{"ok/crash-between-renames", func(t *testing.T, dir, oldDir, newDir string) bool {
			mustRename(t, oldDir, dir+oldSuffix)
			mustRename(t, newDir, dir+restoreSuffix)
			return false
		}},
		{"ok/crash-after-renames", func(t *testing.T, dir, oldDir, newDir string) bool {
			mustRename(t, oldDir, dir+oldSuffix)
			mustRename(t, newDir, dir)
			return true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			oldDir, newDir := filepath.Join(root, "a"), filepath.Join(root, "b")
			oldState := build(t, oldDir, "old", 300)
			newState := build(t, newDir, "new", 500)
			dir := filepath.Join(root, "state")
			want := oldState
			if tc.crash(t, dir, oldDir, newDir) {
				want = newState
			}
			s := openStateAt(t, dir, kek)
			checkSameState(t, dumpState(t, s), want)
			checkNoLeftovers(t, s)
		})
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// mustRemoveSome removes the tables and the manifest of the database in
// dir, as if it had been cut short.
func mustRemoveSome(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".sst") || strings.HasPrefix(e.Name(), "MANIFEST") {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// restoreInMemory is the restore this package used before streaming: the
// whole snapshot in one indexed batch. Kept for BenchmarkRestoreMemory.
func restoreInMemory(s *State, r io.Reader) error {
	h := sha256.New()
	raw := bufio.NewReader(r)
	br := &hashReader{r: raw, h: h}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return errors.New("not a state snapshot")
	}
	b := s.db.NewIndexedBatch()
	defer b.Close()
	b.DeleteRange([]byte{}, kEnd, nil)
	var kb, vb []byte
	for {
		kl, err := binary.ReadUvarint(br)
		if err != nil {
			return err
		}
		if kl == 0 {
			break
		}
		if kb, err = readInto(br, kb, kl-1); err != nil {
			return err
		}
		vl, err := binary.ReadUvarint(br)
		if err != nil {
			return err
		}
		if vb, err = readInto(br, vb, vl); err != nil {
			return err
		}
		b.Set(kb, vb, nil)
	}
	sum := h.Sum(nil)
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(raw, got); err != nil || !bytes.Equal(got, sum) {
		return errors.New("checksum mismatch")
	}
	v, err := buildView(b, s.kek)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	s.view = *v
	return nil
}

// BenchmarkRestoreMemory reports how far the Go heap in use and the
// resident set (pebble's memtables and block cache live outside the Go
// heap) grow at most during a
// restore of a state with 300,000 audit records, streamed ("stream") and
// the old way in one indexed batch ("in-memory"). Run with -benchtime=1x.
func BenchmarkRestoreMemory(b *testing.B) {
	kek, err := NewKEK(bytes.Repeat([]byte{1}, KEKSize))
	if err != nil {
		b.Fatal(err)
	}
	src, err := OpenState(filepath.Join(b.TempDir(), "state"), kek, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	fillState(b, src, kek, 1, 10_000, 300_000, "src")
	var snapFile = filepath.Join(b.TempDir(), "snap")
	f, err := os.Create(snapFile)
	if err != nil {
		b.Fatal(err)
	}
	snap, err := src.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	size, err := snap.WriteTo(f)
	snap.Release()
	if err != nil || f.Close() != nil {
		b.Fatal(err)
	}
	wantSeq, _ := src.AuditHead()

	for _, mode := range []struct {
		name    string
		restore func(*State, io.Reader) error
	}{
		{"stream", (*State).Restore},
		{"in-memory", restoreInMemory},
	} {
		b.Run(mode.name, func(b *testing.B) {
			var peakHeap, peakRSS uint64
			for b.Loop() {
				b.StopTimer()
				dst, err := OpenState(filepath.Join(b.TempDir(), "state"), kek, nil)
				if err != nil {
					b.Fatal(err)
				}
				in, err := os.Open(snapFile)
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				stop := make(chan struct{})
				var wg sync.WaitGroup
				var heap, rss uint64
				baseRSS := residentBytes()
				var ms0 runtime.MemStats
				runtime.ReadMemStats(&ms0)
				wg.Add(1)
				go func() {
					defer wg.Done()
					var ms runtime.MemStats
					t := time.NewTicker(5 * time.Millisecond)
					defer t.Stop()
					for {
						runtime.ReadMemStats(&ms)
						if ms.HeapInuse > ms0.HeapInuse {
							heap = max(heap, ms.HeapInuse-ms0.HeapInuse)
						}
						if r := residentBytes(); r > baseRSS {
							rss = max(rss, r-baseRSS)
						}
						select {
						case <-stop:
							return
						case <-t.C:
						}
					}
				}()
				b.StartTimer()
				err = mode.restore(dst, bufio.NewReaderSize(in, 1<<20))
				b.StopTimer()
				close(stop)
				wg.Wait()
				in.Close()
				if seq, _ := dst.AuditHead(); err != nil || seq != wantSeq {
					b.Fatalf("restore: %v, audit head %d, want %d", err, seq, wantSeq)
				}
				dst.Close()
				peakHeap, peakRSS = max(peakHeap, heap), max(peakRSS, rss)
				b.StartTimer()
			}
			b.ReportMetric(float64(size)/(1<<20), "snapshot-MB")
			b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-growth-MB")
			b.ReportMetric(float64(peakRSS)/(1<<20), "peak-rss-growth-MB")
		})
	}
}

// residentBytes is the process's resident set size (0 if unknown).
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}
