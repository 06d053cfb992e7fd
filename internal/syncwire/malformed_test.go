package syncwire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// body builds frame bodies byte by byte, for streams the encoders refuse
// to write.
type body []byte

func (b body) u8(v byte) body     { return append(b, v) }
func (b body) u16(v int) body     { return binary.BigEndian.AppendUint16(b, uint16(v)) }
func (b body) u32(v int) body     { return binary.BigEndian.AppendUint32(b, uint32(v)) }
func (b body) u64(v uint64) body  { return binary.BigEndian.AppendUint64(b, v) }
func (b body) raw(p ...byte) body { return append(b, p...) }
func (b body) str(s string) body  { return append(b, s...) }

// key appends one key record.
func (b body) key(id int, state byte) body {
	return b.u32(id).u8(state).raw(pub1...).u64(0)
}

// keys1 appends the list "key 1, active".
func (b body) keys1() body { return b.u8(1).key(1, byte(KeyActive)) }

func (b body) token(i int) body { e := tokenEntry(i); return b.u8(byte(EntryToken)).raw(e.ID[:]...) }

func (b body) agent(name string) body {
	return b.u8(byte(EntryAgent)).u64(uint64(t0.UnixMilli())).u16(len(name)).str(name)
}

// frame returns header ‖ b with type t.
func frame(t FrameType, b body) []byte {
	f := []byte{byte(t)}
	f = binary.BigEndian.AppendUint32(f, uint32(len(b)))
	return append(f, b...)
}

// signed returns the frame of type t whose payload is p, signed by key 1
// as type st (st ≠ t forges a cross-type signature).
func signed(t, st FrameType, p body) []byte {
	b := signedBuf(st, len(p))
	b = append(b, p...)
	f, err := sign(b, st, signer1)
	if err != nil {
		panic(err)
	}
	f[0] = byte(t)
	return f
}

// beginBody is a snapshot_begin body at epoch with count entries.
func beginBody(epoch uint64, count int) body {
	return body{}.u64(epoch).u64(uint64(t0.UnixMilli())).keys1().u8(0).u32(count)
}

// snapshotFrames returns begin, one entries frame per chunk, and a signed
// end frame whose digest covers them; endEpoch and endCount go in the end
// frame.
func snapshotFrames(begin body, chunks []body, endEpoch uint64, endCount int) []byte {
	h := sha256.New()
	h.Write(begin)
	out := frame(TypeSnapshotBegin, begin)
	for _, c := range chunks {
		h.Write(c)
		out = append(out, frame(TypeSnapshotEntries, c)...)
	}
	end := body{}.u64(endEpoch).u32(endCount).raw(h.Sum(nil)...)
	return append(out, signed(TypeSnapshotEnd, TypeSnapshotEnd, end)...)
}

func heartbeatBody(epoch uint64, node string) body {
	return body{}.u64(epoch).u64(uint64(t0.UnixMilli())).u16(len(node)).str(node)
}

// changeBody is an empty change from prev to epoch, with extra appended
// after nremove (haskeys, hasnodes and anything else).
func changeBody(epoch, prev uint64) body {
	return body{}.u64(epoch).u64(prev).u64(uint64(t0.UnixMilli())).u32(0).u32(0)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

type streamCase struct {
	name  string
	data  []byte
	units int   // units decoded and verified before the error
	want  error // nil: the stream ends cleanly
}

func streamCases() []streamCase {
	hb := signed(TypeHeartbeat, TypeHeartbeat, heartbeatBody(7, "n1"))
	good := cat(snapshotFrames(beginBody(7, 2), []body{body{}.u32(2).token(1).agent("a")}, 7, 2), hb)
	entries1 := body{}.u32(1).token(1)
	return []streamCase{
		{"ok/empty-stream", nil, 0, nil},
		{"ok/snapshot-heartbeat", good, 2, nil},
		{"ok/snapshot-without-entries", snapshotFrames(beginBody(7, 0), nil, 7, 0), 1, nil},
		{"ok/change-no-keys-empty-nodes", signed(TypeChange, TypeChange, changeBody(8, 7).u8(0).u8(1).u8(0)), 1, nil},

		{"fail/type-0", cat(hb, frame(0, heartbeatBody(7, "n1"))), 1, ErrMalformed},
		{"fail/type-6", frame(6, nil), 0, ErrMalformed},
		{"fail/length-over-1MiB", []byte{byte(TypeChange), 0, 0x10, 0, 1}, 0, ErrMalformed},
		{"fail/truncated-header", cat(hb, hb[:3]), 1, ErrTruncated},
		{"fail/truncated-body", cat(hb, hb[:len(hb)-1]), 1, ErrTruncated},
		{"fail/truncated-inside-snapshot", good[:len(good)-len(hb)-endBodySize-headerSize], 0, ErrTruncated},
		{"fail/truncated-inside-end-frame", good[:len(good)-len(hb)-1], 0, ErrTruncated},

		{"fail/entries-outside-snapshot", frame(TypeSnapshotEntries, entries1), 0, ErrMalformed},
		{"fail/end-outside-snapshot", cat(hb, good[len(good)-len(hb)-headerSize-endBodySize:]), 1, ErrMalformed},
		{"fail/heartbeat-inside-snapshot", cat(frame(TypeSnapshotBegin, beginBody(7, 1)), hb), 0, ErrMalformed},
		{"fail/change-inside-snapshot", cat(frame(TypeSnapshotBegin, beginBody(7, 1)),
			signed(TypeChange, TypeChange, changeBody(8, 7).u8(0).u8(0))), 0, ErrMalformed},
		{"fail/begin-inside-snapshot", cat(frame(TypeSnapshotBegin, beginBody(7, 1)), frame(TypeSnapshotBegin, beginBody(7, 1))), 0, ErrMalformed},
		{"fail/fewer-entries-than-count", snapshotFrames(beginBody(7, 3), []body{body{}.u32(2).token(1).token(2)}, 7, 3), 0, ErrMalformed},
		{"fail/more-entries-than-count", snapshotFrames(beginBody(7, 1), []body{body{}.u32(2).token(1).token(2)}, 7, 1), 0, ErrMalformed},
		{"fail/end-count-differs", snapshotFrames(beginBody(7, 1), []body{entries1}, 7, 2), 0, ErrMalformed},
		{"fail/end-epoch-differs", snapshotFrames(beginBody(7, 1), []body{entries1}, 8, 1), 0, ErrMalformed},
		{"fail/snapshot-epoch-0", snapshotFrames(beginBody(0, 0), nil, 0, 0), 0, ErrMalformed},
		{"fail/entries-n-0", snapshotFrames(beginBody(7, 1), []body{body{}.u32(0), entries1}, 7, 1), 0, ErrMalformed},
		{"fail/entries-n-over-65536", cat(frame(TypeSnapshotBegin, beginBody(7, 1<<20)), frame(TypeSnapshotEntries, body{}.u32(MaxChunkEntries+1))), 0, ErrMalformed},
		{"fail/entries-n-beyond-body", cat(frame(TypeSnapshotBegin, beginBody(7, 1000)), frame(TypeSnapshotEntries, body{}.u32(1000).token(1))), 0, ErrMalformed},
		{"fail/entries-trailing-bytes", snapshotFrames(beginBody(7, 1), []body{entries1.u8(0)}, 7, 1), 0, ErrMalformed},
		{"fail/entry-kind-0", snapshotFrames(beginBody(7, 1), []body{body{}.u32(1).u8(0).raw(make([]byte, 16)...)}, 7, 1), 0, ErrMalformed},
		{"fail/entry-kind-4", snapshotFrames(beginBody(7, 1), []body{body{}.u32(1).u8(4).raw(make([]byte, 16)...)}, 7, 1), 0, ErrMalformed},
		{"fail/agent-empty", snapshotFrames(beginBody(7, 1), []body{body{}.u32(1).agent("").raw(make([]byte, 8)...)}, 7, 1), 0, ErrMalformed},
		{"fail/agent-2049", snapshotFrames(beginBody(7, 1), []body{body{}.u32(1).agent(strings.Repeat("a", 2049))}, 7, 1), 0, ErrMalformed},
		{"fail/agent-cut", snapshotFrames(beginBody(7, 1), []body{body{}.u32(1).agent("abc")[:4+1+8+2+2]}, 7, 1), 0, ErrMalformed},
		{"fail/keys-0", snapshotFrames(body{}.u64(7).u64(0).u8(0).u8(0).u32(0), nil, 7, 0), 0, ErrMalformed},
		{"fail/keys-65", snapshotFrames(func() body {
			b := body{}.u64(7).u64(0).u8(65)
			for i := range 65 {
				b = b.key(i+1, byte(KeyActive))
			}
			return b.u8(0).u32(0)
		}(), nil, 7, 0), 0, ErrMalformed},
		{"fail/key-ids-equal", snapshotFrames(body{}.u64(7).u64(0).u8(2).key(1, 2).key(1, 2).u8(0).u32(0), nil, 7, 0), 0, ErrMalformed},
		{"fail/key-ids-decreasing", snapshotFrames(body{}.u64(7).u64(0).u8(2).key(2, 2).key(1, 2).u8(0).u32(0), nil, 7, 0), 0, ErrMalformed},
		{"fail/key-state-0", snapshotFrames(body{}.u64(7).u64(0).u8(1).key(1, 0).u8(0).u32(0), nil, 7, 0), 0, ErrMalformed},
		{"fail/key-state-5", snapshotFrames(body{}.u64(7).u64(0).u8(1).key(1, 5).u8(0).u32(0), nil, 7, 0), 0, ErrMalformed},
		{"fail/keys-cut", snapshotFrames(body{}.u64(7).u64(0).u8(2).key(1, 2), nil, 7, 0), 0, ErrMalformed},
		{"fail/nodes-17", snapshotFrames(func() body {
			b := body{}.u64(7).u64(0).keys1().u8(17)
			for range 17 {
				b = b.u16(1).u8('n')
			}
			return b.u32(0)
		}(), nil, 7, 0), 0, ErrMalformed},
		{"fail/node-empty", snapshotFrames(body{}.u64(7).u64(0).keys1().u8(1).u16(0).u32(0), nil, 7, 0), 0, ErrMalformed},
		{"fail/node-256", snapshotFrames(body{}.u64(7).u64(0).keys1().u8(1).u16(256).str(strings.Repeat("n", 256)).u32(0), nil, 7, 0), 0, ErrMalformed},
		{"fail/begin-trailing-bytes", snapshotFrames(beginBody(7, 0).u8(0), nil, 7, 0), 0, ErrMalformed},
		{"fail/digest-mismatch", func() []byte {
			s := snapshotFrames(beginBody(7, 1), []body{entries1}, 7, 1)
			s[len(frame(TypeSnapshotBegin, beginBody(7, 1)))+headerSize+4+5] ^= 1 // an id byte of the entry
			return s
		}(), 0, ErrBadSignature},
		{"fail/begin-time-changed", func() []byte {
			s := snapshotFrames(beginBody(7, 0), nil, 7, 0)
			s[headerSize+15] ^= 1
			return s
		}(), 0, ErrBadSignature},

		{"fail/change-epoch-0", signed(TypeChange, TypeChange, changeBody(0, 0).u8(0).u8(0)), 0, ErrMalformed},
		{"fail/change-epoch-equals-prev", signed(TypeChange, TypeChange, changeBody(7, 7).u8(0).u8(0)), 0, ErrMalformed},
		{"fail/change-epoch-before-prev", signed(TypeChange, TypeChange, changeBody(6, 7).u8(0).u8(0)), 0, ErrMalformed},
		{"fail/change-haskeys-2", signed(TypeChange, TypeChange, changeBody(8, 7).u8(2).u8(0)), 0, ErrMalformed},
		{"fail/change-hasnodes-2", signed(TypeChange, TypeChange, changeBody(8, 7).u8(0).u8(2)), 0, ErrMalformed},
		{"fail/change-haskeys-without-keys", signed(TypeChange, TypeChange, changeBody(8, 7).u8(1).u8(0)), 0, ErrMalformed},
		{"fail/change-trailing-bytes", signed(TypeChange, TypeChange, changeBody(8, 7).u8(0).u8(0).u8(0)), 0, ErrMalformed},
		{"fail/change-nadd-beyond-body", signed(TypeChange, TypeChange,
			body{}.u64(8).u64(7).u64(0).u32(1<<30).token(1).u32(0).u8(0).u8(0)), 0, ErrMalformed},
		{"fail/change-without-signature", frame(TypeChange, changeBody(8, 7).u8(0).u8(0)), 0, ErrMalformed},
		{"fail/heartbeat-epoch-0", signed(TypeHeartbeat, TypeHeartbeat, heartbeatBody(0, "n1")), 0, ErrMalformed},
		{"fail/heartbeat-node-empty", signed(TypeHeartbeat, TypeHeartbeat, heartbeatBody(7, "")), 0, ErrMalformed},
		{"fail/heartbeat-node-256", signed(TypeHeartbeat, TypeHeartbeat, heartbeatBody(7, strings.Repeat("n", 256))), 0, ErrMalformed},
		{"fail/heartbeat-node-beyond-body", signed(TypeHeartbeat, TypeHeartbeat, body{}.u64(7).u64(0).u16(200).raw('n')), 0, ErrMalformed},
		{"fail/heartbeat-trailing-bytes", signed(TypeHeartbeat, TypeHeartbeat, heartbeatBody(7, "n1").u8(0)), 0, ErrMalformed},
		{"fail/heartbeat-signed-as-change", cat(hb, signed(TypeHeartbeat, TypeChange, heartbeatBody(7, "n1"))), 1, ErrBadSignature},
	}
}

func TestStreamCases(t *testing.T) {
	for _, tc := range streamCases() {
		t.Run(tc.name, func(t *testing.T) {
			units, err := readAll(tc.data)
			if len(units) != tc.units {
				t.Errorf("got %d units before the end, want %d", len(units), tc.units)
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v, want a clean end", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var fe *FrameError
			var se *SignatureError
			if errors.Is(tc.want, ErrBadSignature) && !errors.As(err, &se) || !errors.Is(tc.want, ErrBadSignature) && !errors.As(err, &fe) {
				t.Errorf("got %T, want *FrameError or *SignatureError", err)
			}
			if errors.Is(err, ErrTruncated) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("truncation %v does not wrap io.ErrUnexpectedEOF", err)
			}
		})
	}
}

// TestNoAllocationFromCount: a frame announcing 1 MiB, or a snapshot
// announcing 4 billion entries, makes the Reader allocate for what
// arrived, not for what was announced.
func TestNoAllocationFromCount(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"fail/length-1MiB-then-eof", append([]byte{byte(TypeChange), 0, 0x10, 0, 0}, 1, 2, 3)},
		{"fail/count-4G-then-eof", frame(TypeSnapshotBegin, beginBody(7, 1<<32-1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			allocs := testing.AllocsPerRun(20, func() {
				r := NewReader(bytes.NewReader(tc.data))
				if _, err := r.Next(); !errors.Is(err, ErrTruncated) {
					t.Fatalf("got %v, want ErrTruncated", err)
				}
				if cap(r.buf) > 2*readStep { // one step ahead of the bytes at most
					t.Fatalf("buffer of %d bytes for %d bytes of input", cap(r.buf), len(tc.data))
				}
			})
			if allocs > 20 {
				t.Errorf("got %v allocations, want a handful", allocs)
			}
		})
	}
}

func TestSignatures(t *testing.T) {
	snap := must(t)(EncodeSnapshot(testSnapshot(), signer1))
	bySigner3 := must(t)(EncodeSnapshot(testSnapshot(), signer3))
	hb := must(t)(EncodeHeartbeat(testHeartbeat(), signer1))
	byKey9 := must(t)(EncodeHeartbeat(testHeartbeat(), Signer{KeyID: 9, Key: priv1}))
	noDomain := func() []byte {
		// A signature over the bare payload, without domain and type.
		f := bytes.Clone(hb)
		payload := f[headerSize : len(f)-sigSize]
		copy(f[len(f)-64:], ed25519Sign(priv1, payload))
		return f
	}()
	onlyPub2 := func(uint32) (ed25519.PublicKey, bool) { return pub2, true }
	for _, tc := range []struct {
		name    string
		data    []byte
		verify  func(u *Unit) error
		want    error
		unknown bool
	}{
		{"ok/held-key", snap, func(u *Unit) error { return u.VerifyWith(held) }, nil, false},
		{"ok/bootstrap", snap, (*Unit).VerifyBootstrap, nil, false},
		{"fail/wrong-key", snap, func(u *Unit) error { return u.VerifyWith(onlyPub2) }, ErrBadSignature, false},
		{"fail/unknown-signer", byKey9, func(u *Unit) error { return u.VerifyWith(held) }, ErrBadSignature, true},
		{"fail/revoked-signer", bySigner3, func(u *Unit) error { return u.VerifyWith(held) }, ErrBadSignature, true},
		{"fail/bootstrap-signer-revoked-inside", bySigner3, (*Unit).VerifyBootstrap, ErrBadSignature, true},
		{"fail/bootstrap-not-a-snapshot", hb, (*Unit).VerifyBootstrap, ErrBadSignature, true},
		{"fail/no-domain-prefix", noDomain, func(u *Unit) error { return u.VerifyWith(held) }, ErrBadSignature, false},
		{"fail/short-public-key", hb, func(u *Unit) error { return u.Verify(pub1[:31]) }, ErrBadSignature, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := NewReader(bytes.NewReader(tc.data)).Next()
			if err != nil {
				t.Fatal(err)
			}
			err = tc.verify(u)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || errors.Is(err, ErrUnknownSigner) != tc.unknown {
				t.Fatalf("got %v (unknown signer: %v), want %v (unknown signer: %v)", err, errors.Is(err, ErrUnknownSigner), tc.want, tc.unknown)
			}
		})
	}
}

// TestTamperAnyByte: flipping any bit of any byte of a stream makes it
// fail to decode or to verify; no tampered stream is accepted whole.
func TestTamperAnyByte(t *testing.T) {
	s := testSnapshot()
	stream := cat(must(t)(EncodeSnapshot(s, signer1)), must(t)(EncodeChange(testChange(), signer1)), must(t)(EncodeHeartbeat(testHeartbeat(), signer1)))
	if _, err := readAll(stream); err != nil {
		t.Fatal(err)
	}
	for i := range stream {
		for _, bit := range []byte{0x01, 0x80} {
			data := bytes.Clone(stream)
			data[i] ^= bit
			if units, err := readAll(data); err == nil {
				t.Fatalf("byte %d ^ %#x: got %d units accepted, want an error", i, bit, len(units))
			}
		}
	}
}
