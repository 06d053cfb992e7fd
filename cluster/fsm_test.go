package cluster_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/writ-dev/writ/cluster"
)

// applied is one command as the test FSM saw it.
type applied struct {
	Index uint64
	Cmd   string
}

// testFSM records every applied command in order. Apply returns the
// index, so callers can match their command to its log position.
type testFSM struct {
	mu       sync.Mutex
	entries  []applied
	restores int
	// gate, if not nil, is received from before each Apply: tests use it
	// to hold the FSM still.
	gate chan struct{}
}

var _ cluster.FSM = (*testFSM)(nil)

func (f *testFSM) Apply(index uint64, cmd []byte) any {
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, applied{Index: index, Cmd: string(cmd)})
	return index
}

func (f *testFSM) Snapshot() (cluster.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &testSnapshot{entries: slices.Clone(f.entries)}, nil
}

func (f *testFSM) Restore(r io.Reader) error {
	entries, err := readEntries(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = entries
	f.restores++
	return nil
}

func (f *testFSM) applied() []applied {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}

func (f *testFSM) restoreCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restores
}

// testSnapshot serialises entries as (uvarint index, uvarint len, cmd)*.
type testSnapshot struct {
	entries []applied
}

func (s *testSnapshot) WriteTo(w io.Writer) (int64, error) {
	var buf []byte
	for _, e := range s.entries {
		buf = binary.AppendUvarint(buf, e.Index)
		buf = binary.AppendUvarint(buf, uint64(len(e.Cmd)))
		buf = append(buf, e.Cmd...)
	}
	n, err := w.Write(buf)
	return int64(n), err
}

func (s *testSnapshot) Release() {}

func readEntries(r io.Reader) ([]applied, error) {
	br := bufio.NewReader(r)
	var out []applied
	for {
		idx, err := binary.ReadUvarint(br)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read index: %w", err)
		}
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, fmt.Errorf("read length: %w", err)
		}
		if n > 1<<20 {
			return nil, fmt.Errorf("command length %d too large", n)
		}
		cmd := make([]byte, n)
		if _, err := io.ReadFull(br, cmd); err != nil {
			return nil, fmt.Errorf("read command: %w", err)
		}
		out = append(out, applied{Index: idx, Cmd: string(cmd)})
	}
}

// batchFSM is a testFSM that also implements cluster.BatchFSM and counts
// how it was called.
type batchFSM struct {
	testFSM
	mu          sync.Mutex
	batchCalls  int
	singleCalls int
	maxBatch    int
}

var _ cluster.BatchFSM = (*batchFSM)(nil)

func (b *batchFSM) Apply(index uint64, cmd []byte) any {
	b.mu.Lock()
	b.singleCalls++
	b.mu.Unlock()
	return b.testFSM.Apply(index, cmd)
}

func (b *batchFSM) ApplyBatch(entries []cluster.Entry) []any {
	b.mu.Lock()
	b.batchCalls++
	b.maxBatch = max(b.maxBatch, len(entries))
	b.mu.Unlock()
	out := make([]any, len(entries))
	for i, e := range entries {
		out[i] = b.testFSM.Apply(e.Index, e.Cmd)
	}
	return out
}

func (b *batchFSM) calls() (batch, single, maxBatch int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.batchCalls, b.singleCalls, b.maxBatch
}
