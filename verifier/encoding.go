package verifier

import (
	"encoding/base64"
	"fmt"
)

// maxDecodedTokenBytes is the ceiling DecodeToken applies before it
// decodes anything: 4× the default Limits.MaxTokenBytes, so that the
// configured limit, not the encoding, normally decides (Authorize refuses
// larger tokens with limits_exceeded).
const maxDecodedTokenBytes = 64 << 10

// maxEncodedTokenBytes is the longest padded base64url text of a token of
// maxDecodedTokenBytes bytes.
const maxEncodedTokenBytes = (maxDecodedTokenBytes + 2) / 3 * 4

// DecodeToken decodes a token as it travels in HTTP headers and on the
// command line: base64url (RFC 4648 §5), with or without "=" padding,
// surrounded by optional ASCII whitespace.
//
// It is strict: empty text, the standard alphabet ('+', '/'), whitespace
// or padding inside the text, wrong padding and non-zero trailing bits are
// refused with an error wrapping ErrMalformed (reason malformed), so that
// every token has one spelling per padding choice. Text that could decode
// to more than 64 KiB is refused with an error wrapping ErrLimitsExceeded
// before decoding; Authorize then applies Limits.MaxTokenBytes (16 KiB by
// default), so a MaxTokenBytes above 64 KiB does not help base64url
// tokens. The bytes are not checked to be a token.
func DecodeToken(s string) ([]byte, error) {
	s = trimASCIISpace(s)
	if len(s) > maxEncodedTokenBytes {
		return nil, fmt.Errorf("%w: encoded token is %d characters, at most %d allowed", ErrLimitsExceeded, len(s), maxEncodedTokenBytes)
	}
	if s == "" {
		return nil, fmt.Errorf("%w: empty token text", ErrMalformed)
	}
	body := s
	for len(body) > 0 && body[len(body)-1] == '=' {
		body = body[:len(body)-1]
	}
	for i := 0; i < len(body); i++ {
		if !isBase64URLByte(body[i]) {
			return nil, fmt.Errorf("%w: token text is not base64url: invalid character at offset %d", ErrMalformed, i)
		}
	}
	if pad := len(s) - len(body); pad > 0 && len(s)%4 != 0 {
		return nil, fmt.Errorf("%w: token text has wrong base64 padding", ErrMalformed)
	}
	// body holds only alphabet characters now, so the decoder cannot skip
	// anything; Strict refuses non-zero trailing bits.
	enc := base64.RawURLEncoding.Strict()
	if len(body) != len(s) {
		enc = base64.URLEncoding.Strict()
		body = s
	}
	out, err := enc.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: token text is not base64url: %v", ErrMalformed, err)
	}
	if len(out) > maxDecodedTokenBytes {
		return nil, fmt.Errorf("%w: token is %d bytes, at most %d allowed", ErrLimitsExceeded, len(out), maxDecodedTokenBytes)
	}
	return out, nil
}

// EncodeToken returns token as padded base64url, the form the Biscuit
// reference implementation (Rust) writes; DecodeToken reads it back.
func EncodeToken(token []byte) string {
	return base64.URLEncoding.EncodeToString(token)
}

func isBase64URLByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

func isASCIISpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func trimASCIISpace(s string) string {
	for len(s) > 0 && isASCIISpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isASCIISpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}
