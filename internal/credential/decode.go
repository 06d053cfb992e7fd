package credential

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// strictB64 decodes unpadded base64url and refuses non-canonical encodings
// (non-zero trailing bits), so that one byte string has one encoding.
var strictB64 = base64.RawURLEncoding.Strict()

// b64Chars marks the bytes of the base64url alphabet.
var b64Chars = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'] = true, true
	return t
}()

// compact is a compact JWS split into its decoded segments.
type compact struct {
	header    []byte
	payload   []byte
	signature []byte
}

// splitCompact checks the shape of token (size, alphabet, segment count)
// in one pass before decoding anything.
func splitCompact(token string) (compact, error) {
	switch {
	case len(token) > MaxTokenBytes:
		return compact{}, fmt.Errorf("token of %d bytes exceeds %d: %w", len(token), MaxTokenBytes, ErrTooLarge)
	case token == "":
		return compact{}, fmt.Errorf("empty token: %w", ErrMalformed)
	case token[0] == '{':
		return compact{}, fmt.Errorf("JWS JSON serialization is not accepted, only compact: %w", ErrMalformed)
	}
	var dots [4]int
	n := 0
	for i := 0; i < len(token); i++ {
		c := token[i]
		if c == '.' {
			if n < len(dots) {
				dots[n] = i
			}
			n++
			continue
		}
		if !b64Chars[c] {
			return compact{}, fmt.Errorf("byte at offset %d is not base64url: %w", i, ErrMalformed)
		}
	}
	switch n {
	case 2:
	case 4:
		return compact{}, fmt.Errorf("five segments: %w", ErrEncrypted)
	default:
		return compact{}, fmt.Errorf("%d segments, want 3: %w", n+1, ErrMalformed)
	}
	h, p, s := token[:dots[0]], token[dots[0]+1:dots[1]], token[dots[1]+1:]
	switch {
	case len(h) > MaxHeaderBytes:
		return compact{}, fmt.Errorf("header segment of %d bytes exceeds %d: %w", len(h), MaxHeaderBytes, ErrTooLarge)
	case strictB64.DecodedLen(len(s)) > MaxSignatureBytes:
		return compact{}, fmt.Errorf("signature segment of %d bytes exceeds %d decoded: %w", len(s), MaxSignatureBytes, ErrTooLarge)
	case h == "":
		return compact{}, fmt.Errorf("empty header segment: %w", ErrMalformed)
	case p == "":
		return compact{}, fmt.Errorf("empty payload segment: %w", ErrMalformed)
	}
	var c compact
	var err error
	if c.header, err = strictB64.DecodeString(h); err != nil {
		return compact{}, fmt.Errorf("header segment is not canonical base64url: %w", ErrMalformed)
	}
	if c.payload, err = strictB64.DecodeString(p); err != nil {
		return compact{}, fmt.Errorf("payload segment is not canonical base64url: %w", ErrMalformed)
	}
	if c.signature, err = strictB64.DecodeString(s); err != nil {
		return compact{}, fmt.Errorf("signature segment is not canonical base64url: %w", ErrMalformed)
	}
	return c, nil
}

var errNotObject = errors.New("not a single JSON object")

// decodeObject decodes b, which must be valid UTF-8 holding exactly one
// JSON object, into its members. It refuses duplicate member names (which
// encoding/json and go-jose would resolve silently, possibly differently)
// and more than maxMembers members. Member names are kept exactly as
// decoded: callers compare them case-sensitively.
func decodeObject(b []byte, maxMembers int) (map[string]json.RawMessage, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errNotObject
	}
	m := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errNotObject
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errNotObject
		}
		if _, dup := m[name]; dup {
			return nil, errors.New("duplicate member")
		}
		if len(m) == maxMembers {
			return nil, fmt.Errorf("more than %d members", maxMembers)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errNotObject
		}
		m[name] = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errNotObject
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return m, nil
}

// jsonString decodes raw as a JSON string. Unlike json.Unmarshal into a
// string, it refuses null.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// numericDate decodes raw as a JWT NumericDate restricted to a JSON
// integer between 0 and maxNumericDate, without sign, fraction or exponent.
func numericDate(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 || len(raw) > 12 || (raw[0] == '0' && len(raw) > 1) {
		return 0, false
	}
	var n int64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if n > maxNumericDate {
		return 0, false
	}
	return n, true
}
