package syncwire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
)

// Unit is one complete signed unit of a stream: a whole snapshot, a
// change or a heartbeat, exactly one of which is set. It is decoded but
// not verified: call VerifyWith (or VerifyBootstrap) before trusting it.
// A Unit owns its memory; the Reader does not touch it again.
type Unit struct {
	// Type is the type of the signed frame: TypeSnapshotEnd for a
	// snapshot, TypeChange or TypeHeartbeat.
	Type      FrameType
	Snapshot  *Snapshot
	Change    *Change
	Heartbeat *Heartbeat
	// KeyID is the id of the key the unit says signed it.
	KeyID uint32
	// Size is the number of stream bytes of the unit, headers included.
	Size int64
	// Count is the number of entries of a snapshot (also when they went to
	// Reader.Entries instead of Snapshot.Entries).
	Count int

	msg []byte // domain ‖ type ‖ payload
	sig []byte
}

// Epoch returns the epoch of the unit.
func (u *Unit) Epoch() uint64 {
	switch {
	case u.Snapshot != nil:
		return u.Snapshot.Epoch
	case u.Change != nil:
		return u.Change.Epoch
	case u.Heartbeat != nil:
		return u.Heartbeat.Epoch
	}
	return 0
}

// Verify checks the unit's signature with pub, the key of id u.KeyID. The
// error is a *SignatureError wrapping ErrBadSignature.
func (u *Unit) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return &SignatureError{Type: u.Type, KeyID: u.KeyID, Reason: "public key of the wrong size"}
	}
	if len(u.sig) != ed25519.SignatureSize || !ed25519.Verify(pub, u.msg, u.sig) {
		return &SignatureError{Type: u.Type, KeyID: u.KeyID, Reason: "signature does not verify"}
	}
	return nil
}

// VerifyWith checks the unit's signature with the key keys returns for
// u.KeyID. keys must return false for a key the caller does not hold in a
// signing state (prepared, active, retiring); the error then also wraps
// ErrUnknownSigner.
func (u *Unit) VerifyWith(keys func(id uint32) (ed25519.PublicKey, bool)) error {
	pub, ok := keys(u.KeyID)
	if !ok {
		return &SignatureError{Type: u.Type, KeyID: u.KeyID, Unknown: true, Reason: "signer not held in a signing state"}
	}
	return u.Verify(pub)
}

// VerifyBootstrap checks a snapshot's signature with the key of id
// u.KeyID listed inside it in state prepared, active or retiring
// (spec/sync.md §4). Only a caller allowed to bootstrap may use it: the
// snapshot then vouches for itself. The caller must still check that the
// key is a valid Ed25519 point of large order. It fails for other units.
func (u *Unit) VerifyBootstrap() error {
	if u.Snapshot == nil {
		return &SignatureError{Type: u.Type, KeyID: u.KeyID, Unknown: true, Reason: "only a snapshot can vouch for itself"}
	}
	return u.VerifyWith(func(id uint32) (ed25519.PublicKey, bool) {
		for _, k := range u.Snapshot.Keys {
			if k.ID == id && k.State.Verifies() {
				return k.Public, true
			}
		}
		return nil, false
	})
}

// Reader decodes a stream of frames into units. It is not safe for
// concurrent use.
type Reader struct {
	// Entries, when set, receives a snapshot's entries one
	// snapshot_entries frame at a time, in order, instead of
	// Snapshot.Entries, so that a large snapshot is never held twice. The
	// slice is reused after the call returns. The entries are not yet
	// verified: they belong to a snapshot whose signature is checked at
	// its end. An error ends Next with that error.
	Entries func(batch []Entry) error
	// Frame, when set, receives every frame as read (header and body),
	// before it is decoded; the slice is only valid during the call. An
	// error ends Next with that error.
	Frame func(raw []byte) error

	r     io.Reader
	off   int64  // stream offset of the next frame
	buf   []byte // headroom ‖ body of the frame being read
	batch []Entry

	// The snapshot being read, between its begin and end frames.
	snap      *Snapshot
	snapStart int64
	count     uint32 // announced by snapshot_begin
	seen      uint32 // entries read so far
	digest    hash.Hash
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Offset returns the number of bytes consumed so far.
func (r *Reader) Offset() int64 { return r.off }

// Next returns the next unit. It returns io.EOF when the stream ends
// cleanly between units. Errors: a *FrameError wrapping ErrMalformed or
// ErrTruncated, a *SignatureError wrapping ErrBadSignature when a
// snapshot's entries do not match its signed digest, an error of the
// underlying reader or of the Entries and Frame hooks, wrapped. After an
// error the stream must not be read further.
func (r *Reader) Next() (*Unit, error) {
	for {
		start := r.off
		t, body, err := r.readFrame()
		if err != nil {
			return nil, err
		}
		fail := func(format string, args ...any) error {
			return &FrameError{Offset: start, Type: t, Reason: fmt.Sprintf(format, args...)}
		}
		if r.snap == nil && (t == TypeSnapshotEntries || t == TypeSnapshotEnd) {
			return nil, fail("outside a snapshot")
		}
		if r.snap != nil && t != TypeSnapshotEntries && t != TypeSnapshotEnd {
			return nil, fail("inside a snapshot (after snapshot_begin at byte %d)", r.snapStart)
		}
		d := decoder{b: body}
		switch t {
		case TypeSnapshotBegin:
			s := &Snapshot{Epoch: d.u64(), Time: fromMilli(d.i64())}
			s.Keys = d.keys()
			s.Nodes = d.nodes()
			count := d.u32()
			if err := d.end(s.Epoch); err != nil {
				return nil, fail("%v", err)
			}
			r.snap, r.snapStart, r.count, r.seen = s, start, count, 0
			r.digest = sha256.New()
			r.digest.Write(body)
		case TypeSnapshotEntries:
			n := d.u32()
			switch {
			case d.bad != "":
			case n == 0 || n > MaxChunkEntries:
				return nil, fail("%d entries, want 1 to %d", n, MaxChunkEntries)
			case n > r.count-r.seen:
				return nil, fail("%d more entries than the %d snapshot_begin announced", n-(r.count-r.seen), r.count)
			}
			r.batch = d.entries(r.batch[:0], n)
			if err := d.end(1); err != nil {
				return nil, fail("%v", err)
			}
			r.seen += n
			r.digest.Write(body)
			if r.Entries != nil {
				if err := r.Entries(r.batch); err != nil {
					return nil, fmt.Errorf("syncwire: snapshot entries at byte %d: %w", start, err)
				}
			} else {
				r.snap.Entries = append(r.snap.Entries, r.batch...)
			}
			clear(r.batch) // drop the agent strings
		case TypeSnapshotEnd:
			epoch, count, digest := d.u64(), d.u32(), d.bytes(sha256.Size)
			keyID, sig := d.u32(), d.bytes(ed25519.SignatureSize)
			if err := d.end(epoch); err != nil {
				return nil, fail("%v", err)
			}
			s := r.snap
			switch {
			case epoch != s.Epoch:
				return nil, fail("epoch %d, snapshot_begin said %d", epoch, s.Epoch)
			case count != r.count:
				return nil, fail("count %d, snapshot_begin said %d", count, r.count)
			case r.seen != r.count:
				return nil, fail("%d entries, snapshot_begin said %d", r.seen, r.count)
			}
			u := &Unit{Type: t, Snapshot: s, KeyID: keyID, Size: r.off - r.snapStart, Count: int(count),
				msg: r.message(t, len(body)-sigSize), sig: slices.Clone(sig)}
			sum := r.digest.Sum(nil)
			r.snap, r.digest = nil, nil
			if !bytes.Equal(sum, digest) {
				return nil, &SignatureError{Type: t, KeyID: keyID, Reason: "entries do not match the signed digest"}
			}
			return u, nil
		case TypeChange:
			c := &Change{Epoch: d.u64(), Prev: d.u64(), Time: fromMilli(d.i64())}
			c.Add = d.entries(nil, d.u32())
			c.Remove = d.entries(nil, d.u32())
			switch d.u8() {
			case 0:
			case 1:
				c.Keys = d.keys()
			default:
				d.fail("haskeys is neither 0 nor 1")
			}
			switch d.u8() {
			case 0:
			case 1:
				c.NodesChanged = true
				if c.Nodes = d.nodes(); c.Nodes == nil {
					c.Nodes = []string{}
				}
			default:
				d.fail("hasnodes is neither 0 nor 1")
			}
			keyID, sig := d.u32(), d.bytes(ed25519.SignatureSize)
			if err := d.end(c.Epoch); err != nil {
				return nil, fail("%v", err)
			}
			if c.Epoch <= c.Prev {
				return nil, fail("epoch %d is not after prev %d", c.Epoch, c.Prev)
			}
			return &Unit{Type: t, Change: c, KeyID: keyID, Size: r.off - start,
				msg: r.message(t, len(body)-sigSize), sig: slices.Clone(sig)}, nil
		case TypeHeartbeat:
			h := &Heartbeat{Epoch: d.u64(), Time: fromMilli(d.i64())}
			n := d.u16()
			if d.bad == "" && (n == 0 || n > MaxNodeLen) {
				d.fail(fmt.Sprintf("node of %d bytes, want 1 to %d", n, MaxNodeLen))
			}
			h.Node = string(d.bytes(int(n)))
			keyID, sig := d.u32(), d.bytes(ed25519.SignatureSize)
			if err := d.end(h.Epoch); err != nil {
				return nil, fail("%v", err)
			}
			return &Unit{Type: t, Heartbeat: h, KeyID: keyID, Size: r.off - start,
				msg: r.message(t, len(body)-sigSize), sig: slices.Clone(sig)}, nil
		}
	}
}

// message returns a copy of the signed message of the frame in r.buf:
// domain ‖ type ‖ the first n bytes of the body.
func (r *Reader) message(t FrameType, n int) []byte {
	m := make([]byte, headroom+n)
	copy(m, domain)
	m[headroom-1] = byte(t)
	copy(m[headroom:], r.buf[headroom:headroom+n])
	return m
}

// readFrame reads one frame into r.buf and returns its type and body.
func (r *Reader) readFrame() (FrameType, []byte, error) {
	start := r.off
	if cap(r.buf) < headroom {
		r.buf = make([]byte, headroom, 4096)
	}
	hdr := r.buf[headroom-headerSize : headroom]
	n, err := io.ReadFull(r.r, hdr)
	r.off += int64(n)
	if err != nil {
		if err == io.EOF && r.snap == nil {
			return 0, nil, io.EOF
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			e := &FrameError{Offset: start, Reason: "stream ends inside a frame header", truncated: true}
			if n == 0 {
				e.Reason = fmt.Sprintf("stream ends inside the snapshot begun at byte %d", r.snapStart)
			} else {
				e.Type = FrameType(hdr[0])
			}
			return 0, nil, e
		}
		return 0, nil, fmt.Errorf("syncwire: read frame at byte %d: %w", start, err)
	}
	t := FrameType(hdr[0])
	length := binary.BigEndian.Uint32(hdr[1:])
	if t < TypeSnapshotBegin || t > TypeHeartbeat {
		return t, nil, &FrameError{Offset: start, Type: t, Reason: "unknown frame type"}
	}
	if length > MaxBody {
		return t, nil, &FrameError{Offset: start, Type: t, Reason: fmt.Sprintf("length %d over %d", length, MaxBody)}
	}
	// Grow the buffer as the bytes arrive, never by more than readStep
	// ahead of them: the length field alone allocates nothing.
	b := r.buf[:headroom]
	for want := headroom + int(length); len(b) < want; {
		step := min(want-len(b), readStep)
		b = slices.Grow(b, step)
		n, err := io.ReadFull(r.r, b[len(b):len(b)+step])
		b = b[:len(b)+n]
		r.off += int64(n)
		if err != nil {
			r.buf = b
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return t, nil, &FrameError{Offset: start, Type: t, truncated: true,
					Reason: fmt.Sprintf("stream ends after %d of %d body bytes", len(b)-headroom, length)}
			}
			return t, nil, fmt.Errorf("syncwire: read %s frame at byte %d: %w", t, start, err)
		}
	}
	r.buf = b
	if r.Frame != nil {
		if err := r.Frame(b[headroom-headerSize:]); err != nil {
			return t, nil, fmt.Errorf("syncwire: %s frame at byte %d: %w", t, start, err)
		}
	}
	return t, b[headroom:], nil
}

// decoder reads a body. The first problem is kept in bad; reads after it
// return zero values, so that a decode can run to its end and report once.
type decoder struct {
	b   []byte
	bad string
}

func (d *decoder) fail(reason string) {
	if d.bad == "" {
		d.bad = reason
	}
	d.b = nil
}

func (d *decoder) bytes(n int) []byte {
	if d.bad != "" {
		return nil
	}
	if n > len(d.b) {
		d.fail(fmt.Sprintf("body ends %d bytes short", n-len(d.b)))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() byte {
	if b := d.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if b := d.bytes(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if b := d.bytes(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.bytes(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (d *decoder) i64() int64 { return int64(d.u64()) }

// end reports the first problem, trailing bytes, or an epoch of 0.
func (d *decoder) end(epoch uint64) error {
	switch {
	case d.bad != "":
		return errors.New(d.bad)
	case len(d.b) > 0:
		return fmt.Errorf("%d trailing bytes", len(d.b))
	case epoch == 0:
		return errors.New("epoch 0")
	}
	return nil
}

func (d *decoder) keys() []Key {
	n := int(d.u8())
	if d.bad != "" {
		return nil
	}
	if n == 0 || n > MaxKeys {
		d.fail(fmt.Sprintf("%d keys, want 1 to %d", n, MaxKeys))
		return nil
	}
	if n*keySize > len(d.b) {
		d.fail(fmt.Sprintf("%d keys in %d bytes", n, len(d.b)))
		return nil
	}
	keys := make([]Key, n)
	for i := range keys {
		k := &keys[i]
		k.ID, k.State = d.u32(), KeyState(d.u8())
		k.Public = ed25519.PublicKey(slices.Clone(d.bytes(ed25519.PublicKeySize)))
		if ms := d.i64(); ms != 0 {
			k.NotAfter = fromMilli(ms)
		}
		switch {
		case !k.State.valid():
			d.fail(fmt.Sprintf("key %d: unknown state %d", k.ID, k.State))
		case i > 0 && k.ID <= keys[i-1].ID:
			d.fail(fmt.Sprintf("key ids not strictly increasing: %d after %d", k.ID, keys[i-1].ID))
		}
	}
	return keys
}

func (d *decoder) nodes() []string {
	n := int(d.u8())
	if d.bad != "" {
		return nil
	}
	if n > MaxNodes {
		d.fail(fmt.Sprintf("%d nodes, at most %d", n, MaxNodes))
		return nil
	}
	if n*3 > len(d.b) {
		d.fail(fmt.Sprintf("%d nodes in %d bytes", n, len(d.b)))
		return nil
	}
	var nodes []string
	for range n {
		l := int(d.u16())
		if d.bad == "" && (l == 0 || l > MaxNodeLen) {
			d.fail(fmt.Sprintf("node address of %d bytes, want 1 to %d", l, MaxNodeLen))
		}
		b := d.bytes(l)
		if d.bad != "" {
			return nil
		}
		nodes = append(nodes, string(b))
	}
	return nodes
}

// entries appends n entries to dst; n is checked against the bytes left
// before anything is allocated.
func (d *decoder) entries(dst []Entry, n uint32) []Entry {
	if d.bad != "" {
		return dst
	}
	if uint64(n)*minEntrySize > uint64(len(d.b)) {
		d.fail(fmt.Sprintf("%d entries in %d bytes", n, len(d.b)))
		return dst
	}
	dst = slices.Grow(dst, int(n))
	for range n {
		var e Entry
		e.Kind = EntryKind(d.u8())
		switch e.Kind {
		case EntryToken, EntryBlock:
			copy(e.ID[:], d.bytes(16))
		case EntryAgent:
			e.Before = fromMilli(d.i64())
			l := int(d.u16())
			if d.bad == "" && (l == 0 || l > MaxAgentLen) {
				d.fail(fmt.Sprintf("agent of %d bytes, want 1 to %d", l, MaxAgentLen))
			}
			e.Agent = string(d.bytes(l))
		default:
			d.fail(fmt.Sprintf("unknown entry kind %d", e.Kind))
		}
		if d.bad != "" {
			return dst
		}
		dst = append(dst, e)
	}
	return dst
}
