package issuer

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// pacedWriter records how writePaced writes: every chunk and the write
// deadline set before it. It fails the write numbered failAt (1-based).
type pacedWriter struct {
	deadlines []time.Time
	writes    [][]byte
	failAt    int
	// unpaced counts writes without a deadline set since the last one.
	unpaced int
	pending bool
}

func (w *pacedWriter) setDeadline(t time.Time) error {
	w.deadlines = append(w.deadlines, t)
	w.pending = true
	return nil
}

func (w *pacedWriter) Write(p []byte) (int, error) {
	if !w.pending {
		w.unpaced++
	}
	w.pending = false
	w.writes = append(w.writes, bytes.Clone(p))
	if len(w.writes) == w.failAt {
		return 0, errWriteFailed
	}
	return len(p), nil
}

var errWriteFailed = errors.New("connection reset")

// TestWritePaced: a snapshot goes out in chunks of at most syncChunk, each
// under a write deadline syncChunkWait from when it starts, so a slow but
// steady verifier gets a snapshot of any size; a failed write ends it.
func TestWritePaced(t *testing.T) {
	data := make([]byte, 3*syncChunk+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, tc := range []struct {
		name       string
		size       int
		failAt     int
		wantWrites int
		wantErr    bool
	}{
		{"ok/empty", 0, 0, 0, false},
		{"ok/small", 100, 0, 1, false},
		{"ok/one-chunk", syncChunk, 0, 1, false},
		{"ok/chunks-and-a-bit", 3*syncChunk + 123, 0, 4, false},
		{"fail/second-write", 3*syncChunk + 123, 2, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &pacedWriter{failAt: tc.failAt}
			before := time.Now()
			err := writePaced(w, w.setDeadline, data[:tc.size])
			after := time.Now()
			if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, errWriteFailed)) {
				t.Fatalf("error: got %v, want error %v", err, tc.wantErr)
			}
			if len(w.writes) != tc.wantWrites || len(w.deadlines) != tc.wantWrites || w.unpaced != 0 {
				t.Fatalf("got %d writes, %d deadlines, %d writes without a new deadline; want %d, %d, 0",
					len(w.writes), len(w.deadlines), w.unpaced, tc.wantWrites, tc.wantWrites)
			}
			for i, d := range w.deadlines {
				if d.Before(before.Add(syncChunkWait)) || d.After(after.Add(syncChunkWait)) {
					t.Errorf("deadline %d: got %v from the start, want %v", i, d.Sub(before), syncChunkWait)
				}
			}
			var got []byte
			for i, c := range w.writes {
				if len(c) > syncChunk || len(c) == 0 {
					t.Errorf("write %d: got %d bytes, want 1 to %d", i, len(c), syncChunk)
				}
				got = append(got, c...)
			}
			want := data[:tc.size]
			if tc.wantErr {
				want = data[:min(len(got), tc.size)] // a prefix, cut at the failed write
			}
			if !bytes.Equal(got, want) {
				t.Errorf("written bytes differ from the snapshot's (%d written of %d)", len(got), tc.size)
			}
		})
	}
}
