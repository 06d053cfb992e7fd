package verifier

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestNewRevocationList(t *testing.T) {
	tok := randomHex(t, 16)
	sig := randomHex(t, 64)
	tests := []struct {
		name    string
		ids     []string
		wantLen int
		wantErr error
	}{
		{"ok/empty", nil, 0, nil},
		{"ok/token-id", []string{tok}, 1, nil},
		{"ok/revocation-id", []string{sig}, 1, nil},
		{"ok/both", []string{tok, sig}, 2, nil},
		{"ok/duplicates-counted-once", []string{tok, tok, sig, strings.ToUpper(sig)}, 2, nil},
		{"fail/empty-id", []string{""}, 0, ErrInvalidRevocationID},
		{"fail/odd-length", []string{tok[:31]}, 0, ErrInvalidRevocationID},
		{"fail/token-id-short", []string{tok[:30]}, 0, ErrInvalidRevocationID},
		{"fail/token-id-long", []string{tok + "00"}, 0, ErrInvalidRevocationID},
		{"fail/revocation-id-short", []string{sig[:126]}, 0, ErrInvalidRevocationID},
		{"fail/revocation-id-long", []string{sig + "00"}, 0, ErrInvalidRevocationID},
		{"fail/not-hex", []string{"g" + tok[1:]}, 0, ErrInvalidRevocationID},
		{"fail/not-hex-at-end", []string{sig[:127] + "z"}, 0, ErrInvalidRevocationID},
		{"fail/prefixed", []string{"0x" + tok[2:]}, 0, ErrInvalidRevocationID},
		{"fail/space", []string{" " + tok[1:]}, 0, ErrInvalidRevocationID},
		{"fail/one-bad-among-good", []string{tok, sig, "nope"}, 0, ErrInvalidRevocationID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewRevocationList(tt.ids...)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if got := l.Len(); got != tt.wantLen {
				t.Fatalf("got Len %d, want %d", got, tt.wantLen)
			}
			for _, id := range tt.ids {
				if !l.Revoked(id) {
					t.Errorf("Revoked(%s) = false, want true", id)
				}
			}
		})
	}
}

func TestRevoked(t *testing.T) {
	tok := randomHex(t, 16)
	sig := randomHex(t, 64)
	l, err := NewRevocationList(strings.ToUpper(tok), sig)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string, i int) string { // change digit i
		c := byte('0')
		if s[i] == '0' {
			c = '1'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	tests := []struct {
		name string
		id   string
		want bool
	}{
		{"revoked/token-id", tok, true},
		{"revoked/token-id-uppercase", strings.ToUpper(tok), true},
		{"revoked/revocation-id", sig, true},
		{"revoked/revocation-id-uppercase", strings.ToUpper(sig), true},
		{"not/other-token-id-last-digit", flip(tok, 31), false},
		{"not/other-token-id-first-digit", flip(tok, 0), false},
		{"not/other-revocation-id-first-digit", flip(sig, 0), false},
		{"not/other-revocation-id-in-R-prefix", flip(sig, 31), false},
		// Documented: revocation ids are compared on their first 16 bytes
		// (half of R); a signature sharing them is treated as revoked.
		{"revoked/same-R-prefix", flip(sig, 127), true},
		{"not/same-R-prefix-invalid-tail", sig[:127] + "g", false},
		{"not/first-byte-differs", "ff" + sig[2:], false},
		{"not/revocation-id-prefix-is-token-id", sig[:32], false},
		{"not/token-id-padded-to-revocation-id", tok + strings.Repeat("0", 96), false},
		{"not/empty", "", false},
		{"not/invalid-hex", "x" + tok[1:], false},
		{"not/wrong-length", tok[:30], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := l.Revoked(tt.id); got != tt.want {
				t.Fatalf("Revoked(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

func TestRevocationListAddIsAllOrNothing(t *testing.T) {
	l, err := NewRevocationList()
	if err != nil {
		t.Fatal(err)
	}
	good := randomHex(t, 16)
	if err := l.Add(good, "bad"); !errors.Is(err, ErrInvalidRevocationID) {
		t.Fatalf("got error %v, want ErrInvalidRevocationID", err)
	}
	if l.Revoked(good) || l.Len() != 0 {
		t.Fatalf("a failed Add left %d entries (good id revoked: %v), want none", l.Len(), l.Revoked(good))
	}
	if err := l.Add(good); err != nil {
		t.Fatal(err)
	}
	if !l.Revoked(good) {
		t.Fatalf("Revoked after Add = false, want true")
	}
}

func TestRevocationListConcurrent(t *testing.T) {
	l, err := NewRevocationList()
	if err != nil {
		t.Fatal(err)
	}
	const writers, perWriter = 4, 200
	ids := make([][]string, writers)
	for w := range ids {
		for range perWriter {
			ids[w] = append(ids[w], randomHex(t, 64))
		}
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for _, id := range ids[w] {
				if err := l.Add(id); err != nil {
					t.Error(err)
					return
				}
				if !l.Revoked(id) {
					t.Errorf("Revoked(%s) = false right after Add", id)
					return
				}
			}
		})
		wg.Go(func() {
			for range perWriter {
				_ = l.Revoked(ids[w][0])
				_ = l.Len()
			}
		})
	}
	wg.Wait()
	if got, want := l.Len(), writers*perWriter; got != want {
		t.Fatalf("got Len %d, want %d", got, want)
	}
}

func TestLoadRevocations(t *testing.T) {
	tok := randomHex(t, 16)
	sig := randomHex(t, 64)
	tests := []struct {
		name    string
		doc     string
		want    []string
		wantErr error
	}{
		{"ok/empty-list", `{"revoked":[]}`, nil, nil},
		{"ok/two", `{"revoked":["` + tok + `","` + sig + `"]}`, []string{tok, sig}, nil},
		{"ok/uppercase", `{"revoked":["` + strings.ToUpper(sig) + `"]}`, []string{sig}, nil},
		{"ok/pretty", "{\n  \"revoked\": [\n    \"" + tok + "\"\n  ]\n}\n", []string{tok}, nil},
		{"fail/empty-file", ``, nil, ErrInvalidRevocationList},
		{"fail/not-object", `["` + tok + `"]`, nil, ErrInvalidRevocationList},
		{"fail/null", `null`, nil, ErrInvalidRevocationList},
		{"fail/missing-revoked", `{}`, nil, ErrInvalidRevocationList},
		{"fail/unknown-member", `{"revoked":[],"since":"2026-01-01"}`, nil, ErrInvalidRevocationList},
		{"fail/unknown-member-first", `{"version":1,"revoked":[]}`, nil, ErrInvalidRevocationList},
		{"fail/member-case", `{"Revoked":[]}`, nil, ErrInvalidRevocationList},
		{"fail/duplicate-revoked", `{"revoked":["` + tok + `"],"revoked":[]}`, nil, ErrInvalidRevocationList},
		{"fail/revoked-null", `{"revoked":null}`, nil, ErrInvalidRevocationList},
		{"fail/revoked-string", `{"revoked":"` + tok + `"}`, nil, ErrInvalidRevocationList},
		{"fail/entry-number", `{"revoked":[1]}`, nil, ErrInvalidRevocationList},
		{"fail/entry-null", `{"revoked":[null]}`, nil, ErrInvalidRevocationList},
		{"fail/entry-array", `{"revoked":[["` + tok + `"]]}`, nil, ErrInvalidRevocationList},
		{"fail/entry-invalid", `{"revoked":["` + tok + `","abc"]}`, nil, ErrInvalidRevocationID},
		{"fail/trailing-comma", `{"revoked":["` + tok + `",]}`, nil, ErrInvalidRevocationList},
		{"fail/unterminated", `{"revoked":["` + tok + `"]`, nil, ErrInvalidRevocationList},
		{"fail/data-after-object", `{"revoked":[]} {}`, nil, ErrInvalidRevocationList},
		{"fail/garbage-after-object", `{"revoked":[]} x`, nil, ErrInvalidRevocationList},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("%d.json", i))
			if err := os.WriteFile(path, []byte(tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := LoadRevocations(path)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if got := l.Len(); got != len(tt.want) {
				t.Fatalf("got Len %d, want %d", got, len(tt.want))
			}
			for _, id := range tt.want {
				if !l.Revoked(id) {
					t.Errorf("Revoked(%s) = false, want true", id)
				}
			}
		})
	}
	t.Run("fail/missing-file", func(t *testing.T) {
		if _, err := LoadRevocations(filepath.Join(dir, "nope.json")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("got error %v, want os.ErrNotExist", err)
		}
	})
}

// endlessSpaces is an io.Reader of a JSON prefix followed by endlessSpaces spaces.
type endlessSpaces struct{ prefix string }

func (e *endlessSpaces) Read(p []byte) (int, error) {
	n := copy(p, e.prefix)
	e.prefix = e.prefix[n:]
	for i := n; i < len(p); i++ {
		p[i] = ' '
	}
	return len(p), nil
}

func TestReadRevocationsSizeLimit(t *testing.T) {
	doc := `{"revoked":["` + randomHex(t, 16) + `"]}`
	tests := []struct {
		name  string
		r     io.Reader
		limit int64
		ok    bool
	}{
		{"ok/exactly-at-limit", strings.NewReader(doc), int64(len(doc)), true},
		{"fail/one-byte-over", strings.NewReader(doc + " "), int64(len(doc)), false},
		{"fail/endlessSpaces-whitespace", &endlessSpaces{prefix: `{"revoked":[`}, 1 << 16, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readRevocations(tt.r, tt.limit)
			if tt.ok {
				if err != nil {
					t.Fatalf("got error %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidRevocationList) {
				t.Fatalf("got error %v, want ErrInvalidRevocationList", err)
			}
		})
	}
}

func FuzzLoadRevocations(f *testing.F) {
	f.Add([]byte(`{"revoked":["00112233445566778899aabbccddeeff"]}`))
	f.Add([]byte(`{"revoked":[]}`))
	f.Add([]byte(`{"revoked":[],"x":1}`))
	f.Add([]byte(`{"revoked":[1]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := readRevocations(strings.NewReader(string(data)), 1<<20)
		if err != nil {
			if !errors.Is(err, ErrInvalidRevocationList) && !errors.Is(err, ErrInvalidRevocationID) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if l.Len() < 0 {
			t.Fatalf("negative Len")
		}
	})
}

func BenchmarkRevoked(b *testing.B) {
	const n = 100_000
	ids := make([]string, 0, n)
	for i := range n {
		if i%2 == 0 {
			ids = append(ids, randomHex(b, 16))
		} else {
			ids = append(ids, randomHex(b, 64))
		}
	}
	l, err := NewRevocationList(ids...)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		id   string
		want bool
	}{
		{"hit-token-id", ids[0], true},
		{"hit-revocation-id", ids[1], true},
		{"miss-token-id", randomHex(b, 16), false},
		{"miss-revocation-id", randomHex(b, 64), false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if l.Revoked(bc.id) != bc.want {
					b.Fatal("wrong answer")
				}
			}
		})
	}
	b.Run("parallel-miss-revocation-id", func(b *testing.B) {
		id := randomHex(b, 64)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if l.Revoked(id) {
					b.Error("wrong answer")
				}
			}
		})
	})
}

// BenchmarkRevocationListMemory measures the heap a RevocationList of
// 1,000,000 entries holds and reports it as bytes/entry, for each kind of
// id. Run with -benchtime=1x.
func BenchmarkRevocationListMemory(b *testing.B) {
	const n = 1_000_000
	for _, kind := range []struct {
		name  string
		bytes int
	}{{"revocation-ids", 64}, {"token-ids", 16}} {
		b.Run(kind.name, func(b *testing.B) {
			var perEntry float64
			for b.Loop() {
				perEntry = revocationListBytesPerEntry(b, n, kind.bytes)
			}
			b.ReportMetric(perEntry, "bytes/entry")
		})
	}
}

func revocationListBytesPerEntry(b *testing.B, n, idBytes int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l, err := NewRevocationList()
	if err != nil {
		b.Fatal(err)
	}
	raw := make([]byte, idBytes)
	batch := make([]string, 0, 1024)
	for i := 0; i < n; i++ {
		if _, err := rand.Read(raw); err != nil {
			b.Fatal(err)
		}
		batch = append(batch, hex.EncodeToString(raw))
		if len(batch) == cap(batch) || i == n-1 {
			if err := l.Add(batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	batch = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	if l.Len() != n {
		b.Fatalf("got Len %d, want %d", l.Len(), n)
	}
	held := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	runtime.KeepAlive(l)
	return held / float64(n)
}
