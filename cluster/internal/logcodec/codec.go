package logcodec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// Format version 1:
//
//	byte     version (1)
//	byte     type (0..MaxType)
//	byte     flags (bit 0: AppendedAt present; other bits must be 0)
//	uvarint  index
//	uvarint  term
//	[varint  AppendedAt seconds since the Unix epoch,
//	 uvarint AppendedAt nanoseconds (< 1e9)]      only if flag bit 0
//	uvarint  len(Data), Data
//	uvarint  len(Extensions), Extensions
//	4 bytes  CRC-32C (Castagnoli) of all bytes before it, big-endian
//
// Decoding is strict: varints must be minimal, lengths must fit, no bytes
// may trail, and the checksum must match, so every accepted input is the
// one encoding of its value.
const (
	// Version is the format version Append writes and Decode accepts.
	Version byte = 1
	// MaxType is the highest entry type accepted: raft v1.8.0's
	// LogConfiguration. Newer types are refused, not misread.
	MaxType byte = 5

	flagAppended  byte = 1 << 0
	flagsKnown         = flagAppended
	checksumBytes      = 4
	headerBytes        = 3
)

// ErrCorrupt is wrapped by every Decode error.
var ErrCorrupt = errors.New("logcodec: corrupt entry")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Entry mirrors raft.Log field for field.
type Entry struct {
	Index      uint64
	Term       uint64
	Type       byte
	Data       []byte
	Extensions []byte
	AppendedAt time.Time // zero means absent
}

// Append appends the encoding of e to dst. It fails only for a Type above
// MaxType.
func Append(dst []byte, e *Entry) ([]byte, error) {
	if e.Type > MaxType {
		return dst, fmt.Errorf("logcodec: encode entry %d: unknown type %d", e.Index, e.Type)
	}
	start := len(dst)
	var flags byte
	if !e.AppendedAt.IsZero() {
		flags |= flagAppended
	}
	dst = append(dst, Version, e.Type, flags)
	dst = binary.AppendUvarint(dst, e.Index)
	dst = binary.AppendUvarint(dst, e.Term)
	if flags&flagAppended != 0 {
		dst = binary.AppendVarint(dst, e.AppendedAt.Unix())
		dst = binary.AppendUvarint(dst, uint64(e.AppendedAt.Nanosecond()))
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Data)))
	dst = append(dst, e.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(e.Extensions)))
	dst = append(dst, e.Extensions...)
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], crcTable))
	return dst, nil
}

// Decode decodes b into e, copying Data and Extensions (nil when empty) so
// that b may be reused. On error e is left unchanged.
func Decode(b []byte, e *Entry) error {
	if len(b) < headerBytes+checksumBytes {
		return fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, len(b))
	}
	body := b[:len(b)-checksumBytes]
	if got, want := crc32.Checksum(body, crcTable), binary.BigEndian.Uint32(b[len(body):]); got != want {
		return fmt.Errorf("%w: checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	if body[0] != Version {
		return fmt.Errorf("%w: unknown format version %d", ErrCorrupt, body[0])
	}
	typ := body[1]
	if typ > MaxType {
		return fmt.Errorf("%w: unknown log type %d", ErrCorrupt, typ)
	}
	flags := body[2]
	if flags&^flagsKnown != 0 {
		return fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, flags)
	}
	d := decoder{b: body[headerBytes:]}
	index := d.uvarint("index")
	term := d.uvarint("term")
	var appended time.Time
	if flags&flagAppended != 0 {
		sec := d.varint("appended-at seconds")
		nsec := d.uvarint("appended-at nanoseconds")
		if d.err == nil && nsec >= uint64(time.Second) {
			d.fail("appended-at nanoseconds %d out of range", nsec)
		}
		if d.err == nil {
			appended = time.Unix(sec, int64(nsec))
			if appended.IsZero() {
				d.fail("appended-at flag set for the zero time")
			}
		}
	}
	data := d.bytes("data")
	ext := d.bytes("extensions")
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return d.err
	}
	*e = Entry{Index: index, Term: term, Type: typ, Data: data, Extensions: ext, AppendedAt: appended}
	return nil
}

// decoder reads canonical varints and length-prefixed byte strings; the
// first failure sticks and later reads return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint for %s", field)
		return 0
	}
	if n != uvarintLen(v) {
		d.fail("non-minimal varint for %s", field)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint for %s", field)
		return 0
	}
	// Zig-zag: the minimal length is that of the unsigned zig-zag value.
	ux := uint64(v) << 1
	if v < 0 {
		ux = ^ux
	}
	if n != uvarintLen(ux) {
		d.fail("non-minimal varint for %s", field)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(field string) []byte {
	n := d.uvarint(field + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("%s length %d exceeds the %d bytes left", field, n, len(d.b))
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]byte, n)
	copy(out, d.b[:n])
	d.b = d.b[n:]
	return out
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
