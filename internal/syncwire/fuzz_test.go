package syncwire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// FuzzReader: no input makes the Reader panic, loop or return a unit that
// is not canonical: a change or heartbeat that decodes and verifies
// re-encodes to exactly its bytes, and streaming entries through the hook
// yields what collecting them does.
func FuzzReader(f *testing.F) {
	for _, tc := range streamCases() {
		f.Add(tc.data)
	}
	f.Add(cat(must(f)(EncodeSnapshot(testSnapshot(), signer1)), must(f)(EncodeChange(testChange(), signer1)),
		must(f)(EncodeHeartbeat(testHeartbeat(), signer2))))
	signers := map[uint32]Signer{1: signer1, 2: signer2}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		var raw [][]byte
		r.Frame = func(b []byte) error { raw = append(raw, bytes.Clone(b)); return nil }
		var streamed [][]Entry
		r2 := NewReader(bytes.NewReader(data))
		r2.Entries = func(batch []Entry) error { streamed = append(streamed, append([]Entry(nil), batch...)); return nil }
		for {
			raw = raw[:0]
			u, err := r.Next()
			u2, err2 := r2.Next()
			if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
				t.Fatalf("collecting: %v; streaming: %v", err, err2)
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrBadSignature) {
					t.Fatalf("error wraps no sentinel: %v", err)
				}
				return
			}
			if u.Snapshot != nil {
				var all []Entry
				for _, b := range streamed {
					all = append(all, b...)
				}
				streamed = streamed[:0]
				if len(all) != len(u.Snapshot.Entries) || len(all) > 0 && !reflect.DeepEqual(all, u.Snapshot.Entries) {
					t.Fatalf("streamed %d entries, collected %d, or they differ", len(all), len(u.Snapshot.Entries))
				}
				if u2.Count != len(all) {
					t.Fatalf("count %d, streamed %d", u2.Count, len(all))
				}
			}
			if u.VerifyWith(held) != nil {
				continue
			}
			sg := signers[u.KeyID]
			var again []byte
			switch {
			case u.Change != nil:
				again, err = EncodeChange(u.Change, sg)
			case u.Heartbeat != nil:
				again, err = EncodeHeartbeat(u.Heartbeat, sg)
			default:
				continue
			}
			if err != nil || len(raw) != 1 || !bytes.Equal(again, raw[0]) {
				t.Fatalf("verified %s does not re-encode to its bytes: %v", u.Type, err)
			}
		}
	})
}
