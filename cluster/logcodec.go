package cluster

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/hashicorp/raft"
)

// Encoding of one raft.Log as a pebble value (format version 1):
//
//	byte     version (1)
//	byte     type (raft.LogType; only the types raft v1.8.0 defines)
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
	logFormatV1      byte = 1
	logFlagAppended  byte = 1 << 0
	logFlagsKnown         = logFlagAppended
	maxKnownLogType       = raft.LogConfiguration
	logChecksumBytes      = 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendLog appends the encoding of l to dst.
func appendLog(dst []byte, l *raft.Log) ([]byte, error) {
	if l.Type > maxKnownLogType {
		return dst, fmt.Errorf("cluster: encode log %d: unknown log type %d", l.Index, l.Type)
	}
	start := len(dst)
	var flags byte
	if !l.AppendedAt.IsZero() {
		flags |= logFlagAppended
	}
	dst = append(dst, logFormatV1, byte(l.Type), flags)
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	if flags&logFlagAppended != 0 {
		dst = binary.AppendVarint(dst, l.AppendedAt.Unix())
		dst = binary.AppendUvarint(dst, uint64(l.AppendedAt.Nanosecond()))
	}
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], crcTable))
	return dst, nil
}

// decodeLog decodes b into l, copying Data and Extensions so that b may be
// reused. It returns an error wrapping ErrCorruptLog for any input that
// appendLog would not have produced, and never panics.
func decodeLog(b []byte, l *raft.Log) error {
	if len(b) < 3+logChecksumBytes {
		return fmt.Errorf("%w: %d bytes is too short", ErrCorruptLog, len(b))
	}
	body := b[:len(b)-logChecksumBytes]
	if got, want := crc32.Checksum(body, crcTable), binary.BigEndian.Uint32(b[len(body):]); got != want {
		return fmt.Errorf("%w: checksum %08x, want %08x", ErrCorruptLog, got, want)
	}
	if body[0] != logFormatV1 {
		return fmt.Errorf("%w: unknown format version %d", ErrCorruptLog, body[0])
	}
	typ := raft.LogType(body[1])
	if typ > maxKnownLogType {
		return fmt.Errorf("%w: unknown log type %d", ErrCorruptLog, body[1])
	}
	flags := body[2]
	if flags&^logFlagsKnown != 0 {
		return fmt.Errorf("%w: unknown flags %#x", ErrCorruptLog, flags)
	}
	d := decoder{b: body[3:]}
	index := d.uvarint("index")
	term := d.uvarint("term")
	var appended time.Time
	if flags&logFlagAppended != 0 {
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
	*l = raft.Log{
		Index:      index,
		Term:       term,
		Type:       typ,
		Data:       data,
		Extensions: ext,
		AppendedAt: appended,
	}
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
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrCorruptLog}, args...)...)
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
