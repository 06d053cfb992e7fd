package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var codecCases = []struct {
	name string
	log  raft.Log
}{
	{"ok/minimal", raft.Log{Index: 1, Term: 1, Type: raft.LogNoop}},
	{"ok/command", raft.Log{Index: 42, Term: 7, Type: raft.LogCommand, Data: []byte("hello")}},
	{"ok/all-fields", raft.Log{
		Index: 1 << 40, Term: 1 << 33, Type: raft.LogConfiguration,
		Data: []byte{0, 1, 2, 0xff}, Extensions: []byte("ext"),
		AppendedAt: time.Date(2026, 11, 27, 10, 0, 0, 999999999, time.UTC),
	}},
	{"ok/max-index", raft.Log{Index: math.MaxUint64, Term: math.MaxUint64, Type: raft.LogBarrier}},
	{"ok/pre-epoch-time", raft.Log{Index: 3, Term: 1, AppendedAt: time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC)}},
	{"ok/large-data", raft.Log{Index: 9, Term: 2, Data: bytes.Repeat([]byte("x"), 70000)}},
}

func TestLogCodecRoundTrip(t *testing.T) {
	for _, tc := range codecCases {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := appendLog(nil, &tc.log)
			if err != nil {
				t.Fatalf("appendLog: %v", err)
			}
			var got raft.Log
			if err := decodeLog(enc, &got); err != nil {
				t.Fatalf("decodeLog: %v", err)
			}
			want := tc.log
			if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
				!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
				!got.AppendedAt.Equal(want.AppendedAt) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
			// Decoded slices must not alias the input.
			if len(got.Data) > 0 {
				for i := range enc {
					enc[i] = 0
				}
				if !bytes.Equal(got.Data, want.Data) {
					t.Fatal("decoded Data aliases the encoded bytes")
				}
			}
		})
	}
}

// withCRC returns body followed by its CRC-32C, so that tests reach the
// checks behind the checksum.
func withCRC(body []byte) []byte {
	return binary.BigEndian.AppendUint32(append([]byte(nil), body...), crc32.Checksum(body, crcTable))
}

func TestLogCodecRejects(t *testing.T) {
	good, err := appendLog(nil, &raft.Log{Index: 5, Term: 2, Type: raft.LogCommand, Data: []byte("abc"),
		AppendedAt: time.Unix(1700000000, 5)})
	if err != nil {
		t.Fatal(err)
	}
	body := good[:len(good)-4]
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-6] ^= 1

	cases := []struct {
		name string
		in   []byte
	}{
		{"fail/empty", nil},
		{"fail/short", []byte{1, 0, 0}},
		{"fail/bad-checksum", flipped},
		{"fail/truncated", good[:len(good)-1]},
		{"fail/trailing-bytes", withCRC(append(append([]byte(nil), body...), 0))},
		{"fail/unknown-version", withCRC(append([]byte{2}, body[1:]...))},
		{"fail/unknown-type", withCRC(append([]byte{1, 6}, body[2:]...))},
		{"fail/unknown-flag", withCRC(append([]byte{1, 0, 0x3}, body[3:]...))},
		{"fail/non-minimal-index", withCRC([]byte{1, 0, 0, 0x85, 0x00, 2, 0, 0})},
		{"fail/varint-overflow", withCRC([]byte{1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})},
		{"fail/data-length-beyond-input", withCRC([]byte{1, 0, 0, 5, 2, 10, 'a'})},
		{"fail/nanoseconds-out-of-range", withCRC(append([]byte{1, 0, 1, 5, 2, 0}, binary.AppendUvarint(nil, 1e9)...))},
		{"fail/zero-time-with-flag", withCRC(append(append([]byte{1, 0, 1, 5, 2},
			binary.AppendVarint(nil, time.Time{}.Unix())...), 0, 0, 0))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var l raft.Log
			err := decodeLog(tc.in, &l)
			if !errors.Is(err, ErrCorruptLog) {
				t.Fatalf("decodeLog: got error %v, want ErrCorruptLog", err)
			}
		})
	}
}

func TestLogCodecEncodeRefusesUnknownType(t *testing.T) {
	if _, err := appendLog(nil, &raft.Log{Index: 1, Type: raft.LogType(99)}); err == nil {
		t.Fatal("appendLog: got nil error for unknown type, want error")
	}
}

// FuzzDecodeLog checks that decoding never panics and that whatever it
// accepts is the canonical encoding of what it returns.
func FuzzDecodeLog(f *testing.F) {
	for _, tc := range codecCases {
		enc, err := appendLog(nil, &tc.log)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
		f.Add(enc[:len(enc)/2])
	}
	f.Add([]byte{})
	f.Add(withCRC([]byte{1, 0, 0, 0x85, 0x00, 2, 0, 0}))
	f.Fuzz(func(t *testing.T, in []byte) {
		var l raft.Log
		if err := decodeLog(in, &l); err != nil {
			if !errors.Is(err, ErrCorruptLog) {
				t.Fatalf("decodeLog error %v does not wrap ErrCorruptLog", err)
			}
			return
		}
		again, err := appendLog(nil, &l)
		if err != nil {
			t.Fatalf("re-encode accepted entry: %v", err)
		}
		if !bytes.Equal(again, in) {
			t.Fatalf("accepted non-canonical input:\n in  %x\n out %x", in, again)
		}
	})
}
