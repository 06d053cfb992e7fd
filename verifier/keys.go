package verifier

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
)

// JWK member values writ's key endpoint uses (GET /v1/keys).
const (
	jwkKeyType   = "OKP"
	jwkCurve     = "Ed25519"
	jwkUse       = "sig"
	jwkAlgorithm = "EdDSA"
)

// KeySet is a fixed set of root public keys. It implements KeySource.
//
// A KeySet is immutable after construction and safe for concurrent use;
// to rotate keys, build a new KeySet. It owns copies of the keys it was
// given and hands out copies, so no caller can change it.
type KeySet struct {
	keys []RootKey // construction order
	byID map[uint32]int
}

var _ KeySource = (*KeySet)(nil)

// NewKeySet returns a KeySet holding keys, in the given order (the order
// RootKeys and MarshalJWKS use). It copies the keys.
//
// It returns an error wrapping ErrInvalidKeySet when keys is empty or has
// more than 64 keys, when two keys share an id, or when a key is not a
// canonical encoding of an Ed25519 point outside the small-order subgroup
// (such keys would let anyone forge signatures).
func NewKeySet(keys ...RootKey) (*KeySet, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrInvalidKeySet)
	}
	if len(keys) > maxKeySetKeys {
		return nil, fmt.Errorf("%w: %d keys, at most %d allowed", ErrInvalidKeySet, len(keys), maxKeySetKeys)
	}
	s := &KeySet{
		keys: make([]RootKey, 0, len(keys)),
		byID: make(map[uint32]int, len(keys)),
	}
	for _, k := range keys {
		if _, dup := s.byID[k.ID]; dup {
			return nil, fmt.Errorf("%w: duplicate key id %d", ErrInvalidKeySet, k.ID)
		}
		if err := checkEd25519PublicKey(k.Public); err != nil {
			return nil, fmt.Errorf("%w: key id %d: %w", ErrInvalidKeySet, k.ID, err)
		}
		s.byID[k.ID] = len(s.keys)
		s.keys = append(s.keys, RootKey{ID: k.ID, Public: slices.Clone(k.Public)})
	}
	return s, nil
}

// RootKey returns a copy of the key with the given id, or false.
func (s *KeySet) RootKey(id uint32) (RootKey, bool) {
	i, ok := s.byID[id]
	if !ok {
		return RootKey{}, false
	}
	k := s.keys[i]
	return RootKey{ID: k.ID, Public: slices.Clone(k.Public)}, true
}

// RootKeys returns copies of every key, in construction order.
func (s *KeySet) RootKeys() []RootKey {
	out := make([]RootKey, len(s.keys))
	for i, k := range s.keys {
		out[i] = RootKey{ID: k.ID, Public: slices.Clone(k.Public)}
	}
	return out
}

// Len returns the number of keys.
func (s *KeySet) Len() int { return len(s.keys) }

// jwk is one key exactly as writ publishes it. Field order is the output
// order of MarshalJWKS.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// MarshalJWKS returns the key set as a JSON Web Key Set (RFC 7517), one
// member per key in construction order:
//
//	{"keys":[{"kty":"OKP","crv":"Ed25519","x":"<base64url>","kid":"<decimal id>","use":"sig","alg":"EdDSA"}]}
//
// The issuer serves this document at GET /v1/keys; ParseJWKS reads it
// back. The output is deterministic. The error is always nil today; it is
// there for encoders that can fail.
func (s *KeySet) MarshalJWKS() ([]byte, error) {
	doc := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, len(s.keys))}
	for i, k := range s.keys {
		doc.Keys[i] = jwk{
			Kty: jwkKeyType,
			Crv: jwkCurve,
			X:   base64.RawURLEncoding.EncodeToString(k.Public),
			Kid: strconv.FormatUint(uint64(k.ID), 10),
			Use: jwkUse,
			Alg: jwkAlgorithm,
		}
	}
	return json.Marshal(doc)
}

// privateJWKMembers are the JWK members that carry private or symmetric
// key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2). A public key
// set carrying any of them is refused: the publisher leaked a secret.
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// ParseJWKS parses a JSON Web Key Set in the format MarshalJWKS writes.
//
// Members other than "keys" at the top level, and members a key does not
// need (e.g. "x5c"), are ignored. Everything that could change the meaning
// of a key is refused with an error wrapping ErrInvalidKeySet: input over
// 1 MiB, invalid JSON or duplicate member names, a key type, curve, "use"
// or "alg" other than OKP, Ed25519, "sig" and "EdDSA" ("use" and "alg" may
// be absent), "key_ops" other than ["verify"], private key material ("d"
// and friends), a "kid" that is not a canonical decimal uint32, a
// duplicate "kid", an "x" that is not the unpadded base64url of a valid
// Ed25519 public key, no keys, or more than 64 keys.
func ParseJWKS(data []byte) (*KeySet, error) {
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("%w: document is %d bytes, at most %d allowed", ErrInvalidKeySet, len(data), maxJWKSBytes)
	}
	if err := checkJSONStrict(data, maxJWKSDepth); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKeySet, err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrInvalidKeySet)
	}
	rawKeys, ok := top["keys"]
	if !ok {
		return nil, fmt.Errorf("%w: missing \"keys\"", ErrInvalidKeySet)
	}
	var members []json.RawMessage
	if err := json.Unmarshal(rawKeys, &members); err != nil || members == nil {
		return nil, fmt.Errorf("%w: \"keys\" is not an array", ErrInvalidKeySet)
	}
	if len(members) > maxKeySetKeys {
		return nil, fmt.Errorf("%w: %d keys, at most %d allowed", ErrInvalidKeySet, len(members), maxKeySetKeys)
	}
	keys := make([]RootKey, 0, len(members))
	for i, m := range members {
		k, err := parseJWK(m)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d: %w", ErrInvalidKeySet, i, err)
		}
		keys = append(keys, k)
	}
	return NewKeySet(keys...)
}

func parseJWK(raw json.RawMessage) (RootKey, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return RootKey{}, errors.New("not a JSON object")
	}
	for _, name := range privateJWKMembers {
		if _, ok := obj[name]; ok {
			return RootKey{}, fmt.Errorf("carries private key material (%q); publish public keys only", name)
		}
	}
	want := []struct {
		name, value string
		required    bool
	}{
		{"kty", jwkKeyType, true},
		{"crv", jwkCurve, true},
		{"use", jwkUse, false},
		{"alg", jwkAlgorithm, false},
	}
	for _, w := range want {
		v, present, err := jwkString(obj, w.name)
		if err != nil {
			return RootKey{}, err
		}
		if !present {
			if w.required {
				return RootKey{}, fmt.Errorf("missing %q", w.name)
			}
			continue
		}
		if v != w.value {
			return RootKey{}, fmt.Errorf("%q is %q, want %q", w.name, v, w.value)
		}
	}
	if ops, ok := obj["key_ops"]; ok {
		var list []string
		if err := json.Unmarshal(ops, &list); err != nil || len(list) != 1 || list[0] != "verify" {
			return RootKey{}, errors.New(`"key_ops" must be ["verify"] when present`)
		}
	}
	kid, present, err := jwkString(obj, "kid")
	if err != nil {
		return RootKey{}, err
	}
	if !present {
		return RootKey{}, errors.New(`missing "kid"`)
	}
	id, err := parseKeyID(kid)
	if err != nil {
		return RootKey{}, err
	}
	x, present, err := jwkString(obj, "x")
	if err != nil {
		return RootKey{}, err
	}
	if !present {
		return RootKey{}, fmt.Errorf("kid %s: missing \"x\"", kid)
	}
	pub, err := base64.RawURLEncoding.Strict().DecodeString(x)
	// The decoder skips CR and LF; re-encoding catches those and any other
	// non-canonical spelling of the same bytes.
	if err != nil || base64.RawURLEncoding.EncodeToString(pub) != x {
		return RootKey{}, fmt.Errorf("kid %s: \"x\" is not unpadded base64url", kid)
	}
	if len(pub) != ed25519.PublicKeySize {
		return RootKey{}, fmt.Errorf("kid %s: \"x\" is %d bytes, want %d", kid, len(pub), ed25519.PublicKeySize)
	}
	return RootKey{ID: id, Public: ed25519.PublicKey(pub)}, nil
}

// jwkString returns the string member name of obj. A member that is
// present but not a JSON string (null included) is an error.
func jwkString(obj map[string]json.RawMessage, name string) (string, bool, error) {
	raw, ok := obj[name]
	if !ok {
		return "", false, nil
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", true, fmt.Errorf("%q is not a string", name)
	}
	return s, true, nil
}

// parseKeyID parses a kid: the decimal spelling of a uint32, without sign,
// leading zeros or spaces, so that each id has exactly one spelling.
func parseKeyID(kid string) (uint32, error) {
	n, err := strconv.ParseUint(kid, 10, 32)
	if err != nil || strconv.FormatUint(n, 10) != kid {
		return 0, fmt.Errorf("kid %q is not a decimal uint32", kid)
	}
	return uint32(n), nil
}

// checkJSONStrict reports whether data is exactly one JSON value, nested
// at most maxDepth deep, with no object holding the same member name twice
// (encoding/json would silently keep the last one).
func checkJSONStrict(data []byte, maxDepth int) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object    bool
		expectKey bool
		names     map[string]struct{}
	}
	var stack []frame
	done := false // the top-level value is complete
	for !done {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("invalid JSON: %w", err)
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expectKey {
			top := &stack[n-1]
			if tok == json.Delim('}') {
				stack = stack[:n-1]
			} else {
				name, _ := tok.(string)
				if _, dup := top.names[name]; dup {
					return fmt.Errorf("duplicate member %q", name)
				}
				top.names[name] = struct{}{}
				top.expectKey = false
				continue
			}
		} else {
			switch tok {
			case json.Delim('{'), json.Delim('['):
				if len(stack) >= maxDepth {
					return fmt.Errorf("JSON nested deeper than %d", maxDepth)
				}
				obj := tok == json.Delim('{')
				f := frame{object: obj, expectKey: obj}
				if obj {
					f.names = make(map[string]struct{})
				}
				stack = append(stack, f)
				continue
			case json.Delim(']'):
				stack = stack[:len(stack)-1]
			}
		}
		// A value just ended.
		if n := len(stack); n == 0 {
			done = true
		} else if stack[n-1].object {
			stack[n-1].expectKey = true
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid JSON: data after the top-level value")
	}
	return nil
}

// LoadKeys reads a JWKS (see ParseJWKS) from src: an https URL, fetched
// with client under ctx, or else a file path. Documents over 1 MiB are
// refused before they are read in full. Plain http URLs are refused, and
// so are redirects to anything but https. A nil client means a client
// with Go's default transport. Errors wrap ErrInvalidKeySet when the
// document is bad; I/O and HTTP errors are returned wrapped with the step.
func LoadKeys(ctx context.Context, src string, client *http.Client) (*KeySet, error) {
	var (
		data []byte
		err  error
	)
	switch {
	case strings.HasPrefix(src, "https://"):
		data, err = fetchJWKS(ctx, src, client)
	case strings.Contains(src, "://"):
		return nil, fmt.Errorf("load keys: %q: only https URLs and file paths are supported", src)
	default:
		data, err = readJWKSFile(ctx, src)
	}
	if err != nil {
		return nil, fmt.Errorf("load keys: %w", err)
	}
	s, err := ParseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("load keys from %s: %w", src, err)
	}
	return s, nil
}

func readJWKSFile(ctx context.Context, path string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readBounded(f, maxJWKSBytes, path)
}

func fetchJWKS(ctx context.Context, url string, client *http.Client) ([]byte, error) {
	c := http.Client{}
	if client != nil {
		c = *client
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return fmt.Errorf("redirect to %s refused: not https", req.URL.Redacted())
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %s", req.URL.Redacted(), resp.Status)
	}
	return readBounded(resp.Body, maxJWKSBytes, req.URL.Redacted())
}

// readBounded reads all of r, refusing more than limit bytes.
func readBounded(r io.Reader, limit int64, name string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalidKeySet, name, limit)
	}
	return data, nil
}

// Ed25519 field and curve constants (RFC 8032 §5.1).
var (
	ed25519P = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	ed25519D = func() *big.Int {
		// d = -121665 / 121666 mod p
		n := new(big.Int).Sub(ed25519P, big.NewInt(121665))
		inv := new(big.Int).ModInverse(big.NewInt(121666), ed25519P)
		return n.Mul(n, inv).Mod(n, ed25519P)
	}()
	// x25519Probe is a fixed X25519 private key used only to detect
	// small-order points: any clamped scalar maps them to zero.
	x25519Probe = func() *ecdh.PrivateKey {
		k, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{0x5a}, 32))
		if err != nil {
			panic(err) // 32 bytes is always a valid X25519 key
		}
		return k
	}()
)

// checkEd25519PublicKey reports whether pub is the canonical encoding of a
// point on Ed25519 that does not have small order. Verification with a
// small-order key (the identity above all) accepts forged signatures.
func checkEd25519PublicKey(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	// Decode y (little-endian, top bit is the sign of x).
	be := make([]byte, 32)
	for i := range 32 {
		be[i] = pub[31-i]
	}
	sign := be[0] >> 7
	be[0] &= 0x7f
	y := new(big.Int).SetBytes(be)
	if y.Cmp(ed25519P) >= 0 {
		return errors.New("public key is not canonically encoded")
	}
	// x² = (y² − 1) / (d·y² + 1) must have a square root.
	y2 := new(big.Int).Mul(y, y)
	y2.Mod(y2, ed25519P)
	num := new(big.Int).Sub(y2, big.NewInt(1))
	num.Mod(num, ed25519P)
	den := new(big.Int).Mul(ed25519D, y2)
	den.Add(den, big.NewInt(1)).Mod(den, ed25519P)
	x2 := new(big.Int).ModInverse(den, ed25519P)
	if x2 == nil {
		return errors.New("public key is not a curve point")
	}
	x2.Mul(x2, num).Mod(x2, ed25519P)
	if x2.Sign() == 0 {
		if sign == 1 {
			return errors.New("public key is not canonically encoded")
		}
	} else if big.Jacobi(x2, ed25519P) != 1 {
		return errors.New("public key is not a curve point")
	}
	// Small order: map to Montgomery u = (1+y)/(1−y) and let X25519 decide
	// (it refuses an all-zero shared secret, which a clamped scalar yields
	// exactly for points of order dividing 8). y = 1 is the identity.
	oneMinusY := new(big.Int).Sub(big.NewInt(1), y)
	oneMinusY.Mod(oneMinusY, ed25519P)
	if oneMinusY.Sign() == 0 {
		return errors.New("public key is a small-order point")
	}
	u := new(big.Int).ModInverse(oneMinusY, ed25519P)
	u.Mul(u, new(big.Int).Add(y, big.NewInt(1))).Mod(u, ed25519P)
	ub := u.FillBytes(make([]byte, 32))
	slices.Reverse(ub)
	peer, err := ecdh.X25519().NewPublicKey(ub)
	if err != nil {
		return fmt.Errorf("public key: %w", err)
	}
	if _, err := x25519Probe.ECDH(peer); err != nil {
		return errors.New("public key is a small-order point")
	}
	return nil
}
