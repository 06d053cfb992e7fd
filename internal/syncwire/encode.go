package syncwire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// EncodeSnapshot returns the frames of s: snapshot_begin, its entries in
// snapshot_entries frames of at most 65,536 entries and 1 MiB each, and
// snapshot_end signed by sg. It is WriteSnapshot into memory; use
// WriteSnapshot for large snapshots.
//
// The caller guarantees that each entry appears once in s.Entries (the
// encoder keeps no set). Errors wrap ErrInvalid.
func EncodeSnapshot(s *Snapshot, sg Signer) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(512 + len(s.Entries)*idEntrySize + (len(s.Entries)/(MaxBody/idEntrySize)+1)*(headerSize+4))
	if _, err := WriteSnapshot(&buf, s, sg); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteSnapshot writes the frames of s to w as EncodeSnapshot returns
// them, one frame per Write, holding at most one 1 MiB frame in memory. It
// returns the number of bytes written.
//
// s is checked before anything is written: an error wrapping ErrInvalid
// means nothing was written, any other error is w's, wrapped.
func WriteSnapshot(w io.Writer, s *Snapshot, sg Signer) (int64, error) {
	if err := sg.check(); err != nil {
		return 0, err
	}
	if s.Epoch == 0 {
		return 0, invalid("snapshot epoch 0 (epochs start at 1)")
	}
	if uint64(len(s.Entries)) > math.MaxUint32 {
		return 0, invalid("%d entries, at most %d", len(s.Entries), uint64(math.MaxUint32))
	}
	for i := range s.Entries {
		if err := checkEntry(&s.Entries[i]); err != nil {
			return 0, fmt.Errorf("entry %d: %w", i, err)
		}
	}
	count := uint32(len(s.Entries))

	b := make([]byte, headerSize, headerSize+beginMin+MaxKeys*keySize+MaxNodes*(2+MaxNodeLen))
	b = binary.BigEndian.AppendUint64(b, s.Epoch)
	b = binary.BigEndian.AppendUint64(b, uint64(s.Time.UnixMilli()))
	b, err := appendKeys(b, s.Keys)
	if err != nil {
		return 0, err
	}
	if b, err = appendNodes(b, s.Nodes); err != nil {
		return 0, err
	}
	b = binary.BigEndian.AppendUint32(b, count)

	var total int64
	write := func(frame []byte) error {
		n, err := w.Write(frame)
		total += int64(n)
		if err != nil {
			return fmt.Errorf("syncwire: write %s frame: %w", FrameType(frame[0]), err)
		}
		return nil
	}
	digest := sha256.New()
	putHeader(b, TypeSnapshotBegin)
	digest.Write(b[headerSize:])
	if err := write(b); err != nil {
		return total, err
	}

	if count > 0 {
		b = make([]byte, 0, min(headerSize+MaxBody, headerSize+4+len(s.Entries)*idEntrySize+len(s.Entries)/MaxChunkEntries*4))
	}
	for i := 0; i < len(s.Entries); {
		b = b[:headerSize+4] // header and n, written when the frame is full
		n := 0
		for ; i < len(s.Entries) && n < MaxChunkEntries; i++ {
			if len(b)-headerSize+entrySize(&s.Entries[i]) > MaxBody {
				break
			}
			b = appendEntry(b, &s.Entries[i])
			n++
		}
		binary.BigEndian.PutUint32(b[headerSize:], uint32(n))
		putHeader(b, TypeSnapshotEntries)
		digest.Write(b[headerSize:])
		if err := write(b); err != nil {
			return total, err
		}
	}

	e := signedBuf(TypeSnapshotEnd, endBodySize)
	e = binary.BigEndian.AppendUint64(e, s.Epoch)
	e = binary.BigEndian.AppendUint32(e, count)
	e = digest.Sum(e)
	e, _ = sign(e, TypeSnapshotEnd, sg) // 44 bytes: never too large
	return total, write(e)
}

// EncodeChange returns the change frame of c signed by sg. Errors wrap
// ErrInvalid, or ErrTooLarge when the body would exceed 1 MiB (the issuer
// then answers a snapshot, spec/sync.md §2).
func EncodeChange(c *Change, sg Signer) ([]byte, error) {
	if err := sg.check(); err != nil {
		return nil, err
	}
	switch {
	case c.Epoch == 0:
		return nil, invalid("change epoch 0 (epochs start at 1)")
	case c.Epoch <= c.Prev:
		return nil, invalid("change epoch %d is not after prev %d", c.Epoch, c.Prev)
	case !c.NodesChanged && c.Nodes != nil:
		return nil, invalid("change has Nodes but NodesChanged is false")
	case c.Keys != nil && len(c.Keys) == 0:
		return nil, invalid("change has an empty, non-nil key list (nil means unchanged)")
	}
	size := changeMin
	for _, list := range [][]Entry{c.Add, c.Remove} {
		if len(list) > MaxBody/minEntrySize {
			return nil, fmt.Errorf("%w: %d entries", ErrTooLarge, len(list))
		}
		for i := range list {
			if err := checkEntry(&list[i]); err != nil {
				return nil, fmt.Errorf("entry %d: %w", i, err)
			}
			size += entrySize(&list[i])
		}
	}
	size += len(c.Keys) * keySize
	if size > MaxBody {
		return nil, fmt.Errorf("%w: change body of at least %d bytes", ErrTooLarge, size)
	}
	b := signedBuf(TypeChange, size+1+MaxNodes*(2+MaxNodeLen))
	b = binary.BigEndian.AppendUint64(b, c.Epoch)
	b = binary.BigEndian.AppendUint64(b, c.Prev)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Time.UnixMilli()))
	for _, list := range [][]Entry{c.Add, c.Remove} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(list)))
		for i := range list {
			b = appendEntry(b, &list[i])
		}
	}
	var err error
	if c.Keys == nil {
		b = append(b, 0)
	} else if b, err = appendKeys(append(b, 1), c.Keys); err != nil {
		return nil, err
	}
	if !c.NodesChanged {
		b = append(b, 0)
	} else if b, err = appendNodes(append(b, 1), c.Nodes); err != nil {
		return nil, err
	}
	return sign(b, TypeChange, sg)
}

// EncodeHeartbeat returns the heartbeat frame of h signed by sg. Errors
// wrap ErrInvalid.
func EncodeHeartbeat(h *Heartbeat, sg Signer) ([]byte, error) {
	if err := sg.check(); err != nil {
		return nil, err
	}
	if h.Epoch == 0 {
		return nil, invalid("heartbeat epoch 0 (epochs start at 1)")
	}
	if len(h.Node) == 0 || len(h.Node) > MaxNodeLen {
		return nil, invalid("heartbeat node is %d bytes, want 1 to %d", len(h.Node), MaxNodeLen)
	}
	b := signedBuf(TypeHeartbeat, heartbeatMin+len(h.Node))
	b = binary.BigEndian.AppendUint64(b, h.Epoch)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Time.UnixMilli()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Node)))
	b = append(b, h.Node...)
	return sign(b, TypeHeartbeat, sg)
}

func (sg Signer) check() error {
	if len(sg.Key) != ed25519.PrivateKeySize {
		return invalid("signer key is %d bytes, want an ed25519.PrivateKey of %d", len(sg.Key), ed25519.PrivateKeySize)
	}
	return nil
}

// signedBuf returns a buffer for a signed frame of type t whose payload
// is appended to it: the signed message prefix (domain ‖ type) comes
// first, and the frame header later overwrites its last 5 bytes.
func signedBuf(t FrameType, payloadHint int) []byte {
	b := make([]byte, headroom, headroom+payloadHint+sigSize)
	copy(b, domain)
	b[headroom-1] = byte(t)
	return b
}

// sign signs the message b (domain ‖ type ‖ payload) built by signedBuf,
// appends the signature, and returns the frame: header ‖ payload ‖ sig.
func sign(b []byte, t FrameType, sg Signer) ([]byte, error) {
	if len(b)-headroom+sigSize > MaxBody {
		return nil, fmt.Errorf("%w: %s body of %d bytes", ErrTooLarge, t, len(b)-headroom+sigSize)
	}
	sig := ed25519.Sign(sg.Key, b)
	b = binary.BigEndian.AppendUint32(b, sg.KeyID)
	b = append(b, sig...)
	frame := b[headroom-headerSize:]
	putHeader(frame, t)
	return frame, nil
}

// putHeader writes the header of frame, whose body follows it.
func putHeader(frame []byte, t FrameType) {
	frame[0] = byte(t)
	binary.BigEndian.PutUint32(frame[1:headerSize], uint32(len(frame)-headerSize))
}

func appendKeys(b []byte, keys []Key) ([]byte, error) {
	if len(keys) == 0 || len(keys) > MaxKeys {
		return nil, invalid("%d keys, want 1 to %d", len(keys), MaxKeys)
	}
	b = append(b, byte(len(keys)))
	for i, k := range keys {
		switch {
		case i > 0 && k.ID <= keys[i-1].ID:
			return nil, invalid("key ids not strictly increasing: %d after %d", k.ID, keys[i-1].ID)
		case !k.State.valid():
			return nil, invalid("key %d: state %d", k.ID, k.State)
		case len(k.Public) != ed25519.PublicKeySize:
			return nil, invalid("key %d: public key is %d bytes, want %d", k.ID, len(k.Public), ed25519.PublicKeySize)
		}
		b = binary.BigEndian.AppendUint32(b, k.ID)
		b = append(b, byte(k.State))
		b = append(b, k.Public...)
		b = binary.BigEndian.AppendUint64(b, uint64(unixMilli(k.NotAfter)))
	}
	return b, nil
}

func appendNodes(b []byte, nodes []string) ([]byte, error) {
	if len(nodes) > MaxNodes {
		return nil, invalid("%d nodes, at most %d", len(nodes), MaxNodes)
	}
	b = append(b, byte(len(nodes)))
	for _, n := range nodes {
		if len(n) == 0 || len(n) > MaxNodeLen {
			return nil, invalid("node address of %d bytes, want 1 to %d", len(n), MaxNodeLen)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(n)))
		b = append(b, n...)
	}
	return b, nil
}

func checkEntry(e *Entry) error {
	switch e.Kind {
	case EntryToken, EntryBlock:
		if e.Agent != "" || !e.Before.IsZero() {
			return invalid("%s entry with Agent or Before set", e.Kind)
		}
	case EntryAgent:
		switch {
		case len(e.Agent) == 0 || len(e.Agent) > MaxAgentLen:
			return invalid("agent of %d bytes, want 1 to %d", len(e.Agent), MaxAgentLen)
		case e.Before.IsZero():
			return invalid("agent entry without Before")
		case e.ID != [16]byte{}:
			return invalid("agent entry with ID set")
		}
	default:
		return invalid("entry kind %d", e.Kind)
	}
	return nil
}

func entrySize(e *Entry) int {
	if e.Kind == EntryAgent {
		return 1 + 8 + 2 + len(e.Agent)
	}
	return idEntrySize
}

// appendEntry appends e, which checkEntry accepted.
func appendEntry(b []byte, e *Entry) []byte {
	b = append(b, byte(e.Kind))
	if e.Kind != EntryAgent {
		return append(b, e.ID[:]...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(e.Before.UnixMilli()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Agent)))
	return append(b, e.Agent...)
}
