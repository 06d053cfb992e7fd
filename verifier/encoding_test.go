package verifier

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// decodeTokenCases are shared by TestDecodeToken and the fuzz seed corpus.
// want is nil for failures; wantErr says which.
var decodeTokenCases = []struct {
	name    string
	in      string
	want    []byte
	wantErr error
}{
	{"ok/padded-1", "_w==", []byte{0xff}, nil},
	{"ok/unpadded-1", "_w", []byte{0xff}, nil},
	{"ok/padded-2", "-_8=", []byte{0xfb, 0xff}, nil},
	{"ok/unpadded-2", "-_8", []byte{0xfb, 0xff}, nil},
	{"ok/no-padding-needed", "AAAA", []byte{0, 0, 0}, nil},
	{"ok/surrounding-whitespace", " \t\r\n_w==\n\v\f ", []byte{0xff}, nil},
	{"ok/url-alphabet", "-_-_", []byte{0xfb, 0xff, 0xbf}, nil},
	{"ok/max-size", EncodeToken(make([]byte, maxDecodedTokenBytes)), make([]byte, maxDecodedTokenBytes), nil},
	{"ok/max-size-unpadded", strings.TrimRight(EncodeToken(make([]byte, maxDecodedTokenBytes)), "="), make([]byte, maxDecodedTokenBytes), nil},

	{"fail/empty", "", nil, ErrMalformed},
	{"fail/only-whitespace", " \t\n", nil, ErrMalformed},
	{"fail/std-alphabet-plus", "+w==", nil, ErrMalformed},
	{"fail/std-alphabet-slash", "/w==", nil, ErrMalformed},
	{"fail/inner-space", "AA AA", nil, ErrMalformed},
	{"fail/inner-newline", "AA\nAA", nil, ErrMalformed},
	{"fail/inner-cr", "AA\rAA", nil, ErrMalformed},
	{"fail/padding-inside", "AA==AAAA", nil, ErrMalformed},
	{"fail/short-padding", "_w=", nil, ErrMalformed},
	{"fail/extra-padding", "_w===", nil, ErrMalformed},
	{"fail/padding-not-needed", "AAAA====", nil, ErrMalformed},
	{"fail/only-padding", "====", nil, ErrMalformed},
	{"fail/one-char", "A", nil, ErrMalformed},
	{"fail/five-chars", "AAAAA", nil, ErrMalformed},
	{"fail/trailing-bits-unpadded", "_x", nil, ErrMalformed},
	{"fail/trailing-bits-padded", "_x==", nil, ErrMalformed},
	{"fail/non-ascii", "AAAé", nil, ErrMalformed},
	{"fail/nul", "AA\x00A", nil, ErrMalformed},
	{"fail/dot", "AA.A", nil, ErrMalformed},
	{"fail/oversize", strings.Repeat("A", maxEncodedTokenBytes+4), nil, ErrLimitsExceeded},
	{"fail/oversize-by-one-byte", strings.Repeat("A", maxEncodedTokenBytes), nil, ErrLimitsExceeded},
	{"fail/oversize-garbage", strings.Repeat("+", maxEncodedTokenBytes+1), nil, ErrLimitsExceeded},
}

func TestDecodeToken(t *testing.T) {
	for _, tt := range decodeTokenCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeToken(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got error %v, want %v", err, tt.wantErr)
				}
				if got != nil {
					t.Fatalf("got %d bytes with an error", len(got))
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d bytes %.40x…, want %d bytes %.40x…", len(got), got, len(tt.want), tt.want)
			}
		})
	}
}

func TestEncodeToken(t *testing.T) {
	for n := range 40 {
		token := make([]byte, n+1)
		for i := range token {
			token[i] = byte(i*37 + n)
		}
		enc := EncodeToken(token)
		if want := base64.URLEncoding.EncodeToString(token); enc != want {
			t.Fatalf("EncodeToken(%x) = %q, want padded base64url %q", token, enc, want)
		}
		for _, s := range []string{enc, strings.TrimRight(enc, "=")} {
			got, err := DecodeToken(s)
			if err != nil || !bytes.Equal(got, token) {
				t.Fatalf("DecodeToken(%q) = %x, %v; want %x", s, got, err, token)
			}
		}
	}
}

func FuzzDecodeToken(f *testing.F) {
	for _, tt := range decodeTokenCases {
		if len(tt.in) < 1024 {
			f.Add(tt.in)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := DecodeToken(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrLimitsExceeded) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		if len(got) == 0 || len(got) > maxDecodedTokenBytes {
			t.Fatalf("decoded %d bytes, want 1..%d", len(got), maxDecodedTokenBytes)
		}
		// One spelling per padding choice: the input, trimmed, is exactly the
		// padded or the unpadded encoding of what it decodes to.
		trimmed := strings.Trim(s, " \t\r\n\v\f")
		padded := EncodeToken(got)
		if trimmed != padded && trimmed != strings.TrimRight(padded, "=") {
			t.Fatalf("%q decodes to %x, whose encodings are %q and unpadded", s, got, padded)
		}
	})
}
