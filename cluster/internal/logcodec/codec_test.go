package logcodec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"testing"
	"time"
)

var cases = []struct {
	name  string
	entry Entry
}{
	{"ok/minimal", Entry{Index: 1, Term: 1, Type: 1}},
	{"ok/command", Entry{Index: 42, Term: 7, Type: 0, Data: []byte("hello")}},
	{"ok/all-fields", Entry{
		Index: 1 << 40, Term: 1 << 33, Type: MaxType,
		Data: []byte{0, 1, 2, 0xff}, Extensions: []byte("ext"),
		AppendedAt: time.Date(2026, 11, 27, 10, 0, 0, 999999999, time.UTC),
	}},
	{"ok/max-index", Entry{Index: math.MaxUint64, Term: math.MaxUint64, Type: 4}},
	{"ok/pre-epoch-time", Entry{Index: 3, Term: 1, AppendedAt: time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC)}},
	{"ok/large-data", Entry{Index: 9, Term: 2, Data: bytes.Repeat([]byte("x"), 70000)}},
}

func equal(a, b Entry) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := Append(nil, &tc.entry)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			var got Entry
			if err := Decode(enc, &got); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !equal(got, tc.entry) {
				t.Fatalf("got %+v, want %+v", got, tc.entry)
			}
			// Decoded slices must not alias the input.
			clear(enc)
			if !equal(got, tc.entry) {
				t.Fatal("decoded entry aliases the encoded bytes")
			}
		})
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	prefix := []byte("prefix")
	out, err := Append(append([]byte(nil), prefix...), &cases[1].entry)
	if err != nil {
		t.Fatal(err)
	}
	var got Entry
	if !bytes.HasPrefix(out, prefix) {
		t.Fatalf("Append overwrote dst: got %q", out)
	}
	if err := Decode(out[len(prefix):], &got); err != nil || !equal(got, cases[1].entry) {
		t.Fatalf("Decode after prefix: got (%+v, %v), want %+v", got, err, cases[1].entry)
	}
}

// withCRC returns body followed by its CRC-32C, so that tests reach the
// checks behind the checksum.
func withCRC(body []byte) []byte {
	return binary.BigEndian.AppendUint32(append([]byte(nil), body...), crc32.Checksum(body, crcTable))
}

func rejectCases(t testing.TB) []struct {
	name string
	in   []byte
} {
	good, err := Append(nil, &Entry{Index: 5, Term: 2, Data: []byte("abc"), AppendedAt: time.Unix(1700000000, 5)})
	if err != nil {
		t.Fatal(err)
	}
	body := good[:len(good)-checksumBytes]
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-6] ^= 1
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	return []struct {
		name string
		in   []byte
	}{
		{"fail/empty", nil},
		{"fail/short", []byte{1, 0, 0}},
		{"fail/bad-checksum", flipped},
		{"fail/truncated", good[:len(good)-1]},
		{"fail/trailing-bytes", withCRC(cat(body, []byte{0}))},
		{"fail/unknown-version", withCRC(cat([]byte{2}, body[1:]))},
		{"fail/unknown-type", withCRC(cat([]byte{1, MaxType + 1}, body[2:]))},
		{"fail/unknown-flag", withCRC(cat([]byte{1, 0, 0x3}, body[3:]))},
		{"fail/non-minimal-index", withCRC([]byte{1, 0, 0, 0x85, 0x00, 2, 0, 0})},
		{"fail/non-minimal-seconds", withCRC([]byte{1, 0, 1, 5, 2, 0x82, 0x00, 0, 0, 0})},
		{"fail/varint-overflow", withCRC([]byte{1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})},
		{"fail/data-length-beyond-input", withCRC([]byte{1, 0, 0, 5, 2, 10, 'a'})},
		{"fail/missing-extensions-length", withCRC([]byte{1, 0, 0, 5, 2, 1, 'a'})},
		{"fail/nanoseconds-out-of-range", withCRC(cat([]byte{1, 0, 1, 5, 2, 0}, binary.AppendUvarint(nil, 1e9)))},
		{"fail/zero-time-with-flag", withCRC(cat([]byte{1, 0, 1, 5, 2},
			binary.AppendVarint(nil, time.Time{}.Unix()), []byte{0, 0, 0}))},
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range rejectCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			before := Entry{Index: 99}
			got := before
			err := Decode(tc.in, &got)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode: got error %v, want ErrCorrupt", err)
			}
			if !equal(got, before) {
				t.Fatalf("Decode changed the entry on error: got %+v", got)
			}
		})
	}
}

func TestAppendRefusesUnknownType(t *testing.T) {
	if _, err := Append(nil, &Entry{Index: 1, Type: MaxType + 1}); err == nil {
		t.Fatal("Append: got nil error for unknown type, want error")
	}
}

// FuzzDecode checks that decoding never panics and that whatever it
// accepts is the canonical encoding of what it returns.
func FuzzDecode(f *testing.F) {
	for _, tc := range cases {
		if len(tc.entry.Data) > 1024 {
			continue // large seeds only slow the mutator down
		}
		enc, err := Append(nil, &tc.entry)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	for _, tc := range rejectCases(f) {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var e Entry
		if err := Decode(in, &e); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := Append(nil, &e)
		if err != nil {
			t.Fatalf("re-encode accepted entry: %v", err)
		}
		if !bytes.Equal(again, in) {
			t.Fatalf("accepted non-canonical input:\n in  %x\n out %x", in, again)
		}
	})
}
