package syncwire

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkSnapshot1M encodes and decodes a snapshot of 1,000,000 token
// or block entries: the cost of a verifier's full sync. Decoding streams
// the entries through Reader.Entries, as the syncer does; "collect" keeps
// them in Snapshot.Entries. Run with -benchtime=3x.
func BenchmarkSnapshot1M(b *testing.B) {
	const n = 1_000_000
	for _, kind := range []struct {
		name  string
		entry func(int) Entry
	}{{"token", tokenEntry}, {"block", blockEntry}} {
		s := testSnapshot()
		s.Entries = make([]Entry, n)
		for i := range s.Entries {
			s.Entries[i] = kind.entry(i)
		}
		data, err := EncodeSnapshot(s, signer1)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(kind.name+"/encode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := WriteSnapshot(io.Discard, s, signer1); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data))/n, "B/entry")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/entry")
		})
		for _, collect := range []bool{false, true} {
			name := kind.name + "/decode-stream"
			if collect {
				name = kind.name + "/decode-collect"
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					r := NewReader(bytes.NewReader(data))
					got := 0
					if !collect {
						r.Entries = func(batch []Entry) error { got += len(batch); return nil }
					}
					u, err := r.Next()
					if err != nil {
						b.Fatal(err)
					}
					if err := u.VerifyWith(held); err != nil {
						b.Fatal(err)
					}
					if got+len(u.Snapshot.Entries) != n {
						b.Fatalf("got %d entries, want %d", got+len(u.Snapshot.Entries), n)
					}
				}
				b.ReportMetric(float64(len(data))/n, "B/entry")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/entry")
			})
		}
	}
}

func BenchmarkHeartbeat(b *testing.B) {
	hb := testHeartbeat()
	b.ReportAllocs()
	for b.Loop() {
		f, err := EncodeHeartbeat(hb, signer1)
		if err != nil {
			b.Fatal(err)
		}
		u, err := NewReader(bytes.NewReader(f)).Next()
		if err != nil {
			b.Fatal(err)
		}
		if err := u.VerifyWith(held); err != nil {
			b.Fatal(err)
		}
	}
}
