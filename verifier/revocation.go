package verifier

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Lengths of the two kinds of ids a RevocationList holds (token.md §1, §2).
const (
	tokenIDHexLen      = 32  // token_id: 16 random bytes
	revocationIDHexLen = 128 // a block's Ed25519 signature: 64 bytes
)

// revKey is how a RevocationList stores one id in 16 bytes:
//
//   - a token id (16 bytes) is stored as is: exact;
//   - a revocation id (a 64-byte Ed25519 signature R‖S) is stored as its
//     first 16 bytes, i.e. half of the encoded point R.
//
// Two maps keep the kinds apart. Storing 64-byte signatures whole would
// cost more than the 40 bytes per entry the verifier budgets (1,000,000
// entries), so revocation ids are compared by a 128-bit prefix:
//
//   - R is rB for a nonce r the signer derives by hashing (RFC 8032), so
//     for honest signers the prefix is uniform: a signature that is not
//     revoked matches one of n revoked ones with probability n/2¹²⁸ per
//     lookup (below 2⁻¹⁰⁸ for a million entries). Two signatures sharing
//     R with different messages reveal the signing key, so reused R is
//     already a broken signer.
//   - A mismatch can only deny a token, never allow one: a revoked id
//     always matches itself. Making a block of one's own collide with a
//     revoked id denies only tokens carrying that block; matching the R of
//     someone else's signature without knowing its nonce costs a 2¹²⁸
//     search.
//
// A SHA-256 digest instead of the prefix gives the same bound and costs
// about 200 ns more per lookup; the verifier asks once per block per call.
type revKey [16]byte

// RevocationList is an in-memory set of revoked ids. It implements
// RevocationSource. Ids are lowercase or uppercase hex: 32 digits for a
// token id, 128 for a block revocation id (token.md §1); they are
// normalized, so "AB…" and "ab…" are the same id.
//
// A RevocationList is safe for concurrent use; Revoked never blocks on
// I/O. The zero value is not usable; call NewRevocationList.
type RevocationList struct {
	mu     sync.RWMutex
	tokens map[revKey]struct{}
	blocks map[revKey]struct{}
}

var _ RevocationSource = (*RevocationList)(nil)

// NewRevocationList returns a list holding ids. It returns an error
// wrapping ErrInvalidRevocationID, and no list, if any id is not 32 or
// 128 hex digits, and ErrInvalidRevocationList if there are more than
// 2,000,000 ids.
func NewRevocationList(ids ...string) (*RevocationList, error) {
	l := &RevocationList{
		tokens: make(map[revKey]struct{}),
		blocks: make(map[revKey]struct{}),
	}
	if err := l.Add(ids...); err != nil {
		return nil, err
	}
	return l, nil
}

// Add adds ids to the list. Either every id is added or, when one is
// invalid (see NewRevocationList) or the list would exceed 2,000,000
// entries, none is and the error says why. Adding an id twice is not an
// error.
func (l *RevocationList) Add(ids ...string) error {
	type parsed struct {
		key   revKey
		block bool
	}
	keys := make([]parsed, len(ids))
	for i, id := range ids {
		k, block, ok := parseRevocationID(id)
		if !ok {
			return fmt.Errorf("%w: entry %d: want 32 or 128 hex digits", ErrInvalidRevocationID, i)
		}
		keys[i] = parsed{k, block}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.tokens)+len(l.blocks)+len(keys) > maxRevocations {
		// Duplicates may make this refuse a batch that would fit; at this
		// size that is the safer mistake.
		return fmt.Errorf("%w: more than %d entries", ErrInvalidRevocationList, maxRevocations)
	}
	for _, k := range keys {
		if k.block {
			l.blocks[k.key] = struct{}{}
		} else {
			l.tokens[k.key] = struct{}{}
		}
	}
	return nil
}

// Revoked reports whether id (a token id or a revocation id, any hex case)
// is in the list. An id that is not 32 or 128 hex digits is never revoked.
func (l *RevocationList) Revoked(id string) bool {
	k, block, ok := parseRevocationID(id)
	if !ok {
		return false
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if block {
		_, hit := l.blocks[k]
		return hit
	}
	_, hit := l.tokens[k]
	return hit
}

// Len returns the number of distinct ids in the list.
func (l *RevocationList) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.tokens) + len(l.blocks)
}

// RevocationKey returns the 16 bytes a revocation id is held under, as
// a RevocationList and the sync stream (spec/sync.md §3) hold it: a
// token id (32 hex digits, either case) whole, a block revocation id (128
// hex digits, all checked) by its first 16 bytes; block says which; ok is
// false for anything else. It does not allocate.
func RevocationKey(id string) (key [16]byte, block bool, ok bool) {
	return parseRevocationID(id)
}

// parseRevocationID validates id and returns its storage key without
// allocating.
func parseRevocationID(id string) (k revKey, block bool, ok bool) {
	switch len(id) {
	case tokenIDHexLen:
		return k, false, decodeHex(k[:], id)
	case revocationIDHexLen:
		return k, true, decodeHex(k[:], id[:2*len(k)]) && isHex(id[2*len(k):])
	default:
		return revKey{}, false, false
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if hexValue[s[i]] > 0xf {
			return false
		}
	}
	return true
}

// decodeHex decodes s (either case) into dst, which must be len(s)/2
// bytes. Unlike hex.Decode it takes a string and so never allocates.
func decodeHex(dst []byte, s string) bool {
	for i := range dst {
		hi, lo := hexValue[s[2*i]], hexValue[s[2*i+1]]
		if hi > 0xf || lo > 0xf {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

// hexValue maps a hex digit (either case) to its value and anything else
// to 0xff.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
		t[c-'a'+'A'] = byte(c-'a') + 10
	}
	return t
}()

// LoadRevocations reads a revocation file:
//
//	{"revoked": ["<32 or 128 hex digits>", ...]}
//
// The decoder is strict: a member other than "revoked", a duplicate or
// missing "revoked", a value that is not an array of strings, data after
// the object, a file over its size limit (about 320 MB) or more than
// 2,000,000 entries are refused with an error wrapping
// ErrInvalidRevocationList; an invalid id with one wrapping
// ErrInvalidRevocationID. The file is streamed, not read whole.
func LoadRevocations(path string) (*RevocationList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load revocations: %w", err)
	}
	defer f.Close()
	l, err := readRevocations(f, maxRevocationFileBytes)
	if err != nil {
		return nil, fmt.Errorf("load revocations from %s: %w", path, err)
	}
	return l, nil
}

// limitedReader fails with an error wrapping ErrInvalidRevocationList
// past its limit instead of reporting a silent EOF.
type limitedReader struct {
	r     io.Reader
	left  int64
	limit int64
}

func (lr *limitedReader) Read(p []byte) (int, error) {
	if lr.left <= 0 {
		// At the limit: fine if the file ends here.
		var one [1]byte
		if n, err := io.ReadFull(lr.r, one[:]); n == 0 && err == io.EOF {
			return 0, io.EOF
		}
		return 0, fmt.Errorf("%w: file larger than %d bytes", ErrInvalidRevocationList, lr.limit)
	}
	if int64(len(p)) > lr.left {
		p = p[:lr.left]
	}
	n, err := lr.r.Read(p)
	lr.left -= int64(n)
	return n, err
}

func readRevocations(r io.Reader, limit int64) (*RevocationList, error) {
	l, _ := NewRevocationList()
	dec := json.NewDecoder(&limitedReader{r: r, left: limit, limit: limit})
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidRevocationList, fmt.Sprintf(format, args...))
	}
	token := func() (json.Token, error) {
		t, err := dec.Token()
		if errors.Is(err, ErrInvalidRevocationList) {
			return nil, err
		}
		if err != nil {
			return nil, bad("invalid JSON: %v", err)
		}
		return t, nil
	}
	t, err := token()
	if err != nil {
		return nil, err
	}
	if t != json.Delim('{') {
		return nil, bad("want a JSON object")
	}
	seen := false
	const batch = 4096
	ids := make([]string, 0, batch)
	for dec.More() {
		t, err := token()
		if err != nil {
			return nil, err
		}
		if name, _ := t.(string); name != "revoked" {
			return nil, bad("unknown member %q", name)
		}
		if seen {
			return nil, bad("duplicate member \"revoked\"")
		}
		seen = true
		if t, err = token(); err != nil {
			return nil, err
		}
		if t != json.Delim('[') {
			return nil, bad("\"revoked\" is not an array")
		}
		for i := 0; dec.More(); i++ {
			if t, err = token(); err != nil {
				return nil, err
			}
			id, ok := t.(string)
			if !ok {
				return nil, bad("entry %d is not a string", i)
			}
			ids = append(ids, id)
			if len(ids) == batch {
				if err := l.Add(ids...); err != nil {
					return nil, fmt.Errorf("entries %d–%d: %w", i+1-batch, i, err)
				}
				ids = ids[:0]
			}
		}
		if err := l.Add(ids...); err != nil {
			return nil, fmt.Errorf("last %d entries: %w", len(ids), err)
		}
		ids = ids[:0]
		if _, err := token(); err != nil { // ']'
			return nil, err
		}
	}
	if _, err := token(); err != nil { // '}'
		return nil, err
	}
	if !seen {
		return nil, bad("missing member \"revoked\"")
	}
	if _, err := dec.Token(); err != io.EOF {
		if errors.Is(err, ErrInvalidRevocationList) {
			return nil, err
		}
		return nil, bad("data after the object")
	}
	return l, nil
}
