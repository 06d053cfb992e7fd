package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ/spec"
)

// The wire format of POST /v1/token (spec/openapi.yaml). These structs
// mirror the issuer's own (a test holds them together) so that agents do
// not import the issuer package, which pulls raft and pebble.

// tokenRequest is the JSON body of POST /v1/token.
type tokenRequest struct {
	Rights   []string `json:"rights"`
	TTL      string   `json:"ttl,omitempty"`
	Audience string   `json:"audience,omitempty"`
}

// tokenResponse is the body of a 200 answer. Unknown members are ignored:
// the OpenAPI schema lets the issuer add members, and refusing them would
// break every agent on an issuer upgrade. Required members are checked.
type tokenResponse struct {
	Token         string        `json:"token"`
	TokenID       string        `json:"token_id"`
	ExpiresAt     time.Time     `json:"expires_at"`
	Granted       []string      `json:"granted"`
	Denied        []DeniedRight `json:"denied"`
	PolicyVersion string        `json:"policy_version"`
	KeyID         *uint32       `json:"key_id"`
}

// problemBody is an RFC 9457 problem as the issuer writes it.
type problemBody struct {
	Type          string        `json:"type"`
	Title         string        `json:"title"`
	Status        int           `json:"status"`
	Detail        string        `json:"detail"`
	Denied        []DeniedRight `json:"denied"`
	PolicyVersion string        `json:"policy_version"`
	// Leader is set on not_leader answers of the admin membership
	// endpoints, which agents never call; decoded for parity only.
	Leader string `json:"leader"`
}

// requestBody encodes the token request of cfg.
func requestBody(cfg *Config) ([]byte, error) {
	req := tokenRequest{Rights: cfg.Rights}
	if cfg.TTL > 0 {
		req.TTL = cfg.TTL.String()
	}
	if !cfg.Audience.IsZero() {
		req.Audience = cfg.Audience.String()
	}
	return json.Marshal(&req)
}

// decodeTokenResponse decodes and checks a 200 answer. Errors wrap
// ErrBadResponse and never contain the token.
func decodeTokenResponse(body []byte) (*Token, error) {
	var r tokenResponse
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadResponse, jsonErrorText(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrBadResponse)
	}
	switch {
	case !headerSafeToken(r.Token):
		return nil, fmt.Errorf("%w: token: want 1 to %d characters of padded or unpadded base64url", ErrBadResponse, maxTokenChars)
	case !isTokenID(r.TokenID):
		return nil, fmt.Errorf("%w: token_id: want 32 lowercase hex digits", ErrBadResponse)
	case r.ExpiresAt.IsZero():
		return nil, fmt.Errorf("%w: expires_at missing", ErrBadResponse)
	case len(r.Granted) == 0 || len(r.Granted) > maxListEntries:
		return nil, fmt.Errorf("%w: granted: want 1 to %d rights, got %d", ErrBadResponse, maxListEntries, len(r.Granted))
	case len(r.Denied) > maxListEntries:
		return nil, fmt.Errorf("%w: denied: more than %d entries", ErrBadResponse, maxListEntries)
	case r.PolicyVersion == "" || len(r.PolicyVersion) > maxTextChars:
		return nil, fmt.Errorf("%w: policy_version: want 1 to %d characters", ErrBadResponse, maxTextChars)
	case r.KeyID == nil:
		return nil, fmt.Errorf("%w: key_id missing", ErrBadResponse)
	}
	for i, g := range r.Granted {
		if _, err := spec.ParseRight(g); err != nil {
			return nil, fmt.Errorf("%w: granted[%d]: %v", ErrBadResponse, i, err)
		}
	}
	return &Token{
		Value:         r.Token,
		ID:            r.TokenID,
		ExpiresAt:     r.ExpiresAt.UTC(),
		Granted:       r.Granted,
		Denied:        boundDenied(r.Denied),
		PolicyVersion: r.PolicyVersion,
		KeyID:         *r.KeyID,
	}, nil
}

// problemFromResponse builds the ProblemError of a non-200 answer whose
// body (at most maxProblemBytes, possibly cut) is body. It never fails: a
// body that is not a writ problem leaves only the status. now dates a
// Retry-After given as an HTTP date.
func problemFromResponse(resp *http.Response, body []byte, now func() time.Time) *ProblemError {
	pe := &ProblemError{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), now)}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var p problemBody
	if mt != "application/problem+json" || json.Unmarshal(body, &p) != nil {
		if mt != "" {
			pe.Detail = "answer is " + cut(mt, 64) + ", not a problem"
		}
		return pe
	}
	pe.Type = cut(p.Type, maxTextChars)
	if code, ok := strings.CutPrefix(p.Type, spec.ProblemTypeBase); ok && isCode(code) {
		pe.Code = code
	}
	pe.Title, pe.Detail = cut(p.Title, maxTextChars), cut(p.Detail, maxTextChars)
	pe.Denied, pe.PolicyVersion = boundDenied(p.Denied), cut(p.PolicyVersion, maxTextChars)
	return pe
}

// retryAfter parses a Retry-After value (seconds or an HTTP date); 0 when
// absent or unparsable. now is only used for dates.
func retryAfter(v string, now func() time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
		return min(time.Duration(s)*time.Second, 24*time.Hour)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now()), 0), 24*time.Hour)
	}
	return 0
}

func boundDenied(in []DeniedRight) []DeniedRight {
	if len(in) > maxListEntries {
		in = in[:maxListEntries]
	}
	for i := range in {
		in[i].Right, in[i].Reason = cut(in[i].Right, maxTextChars), cut(in[i].Reason, maxTextChars)
		if len(in[i].Alternatives) > maxListEntries {
			in[i].Alternatives = in[i].Alternatives[:maxListEntries]
		}
	}
	return in
}

// cut returns s shortened to at most n bytes, on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// isCode reports whether s looks like a writ problem code (snake_case).
func isCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func isTokenID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// headerSafeToken reports whether s is base64url text (with or without
// "=" padding) of at most maxTokenChars characters: safe to put in an
// Authorization header as is.
func headerSafeToken(s string) bool {
	if s == "" || len(s) > maxTokenChars {
		return false
	}
	body := strings.TrimRight(s, "=")
	if pad := len(s) - len(body); pad > 2 || (pad > 0 && len(s)%4 != 0) || body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// headerSafeJWT reports whether a JWT-SVID can be sent as a bearer token:
// three non-empty dot-separated base64url segments.
func headerSafeJWT(s string) bool {
	if len(s) > maxJWTFileBytes {
		return false
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || !headerSafeToken(p) || strings.HasSuffix(p, "=") {
			return false
		}
	}
	return true
}

// jsonErrorText describes a decoding error without echoing the input.
func jsonErrorText(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "invalid JSON at offset " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return "member " + cut(te.Field, 64) + " has the wrong type"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	}
	return "invalid JSON"
}
