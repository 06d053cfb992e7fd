package client

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/writ-dev/writ/spec"
)

// Errors callers branch on. Every error the package returns wraps at most
// one of them, a *ProblemError, or an error of the network or TLS stack.
var (
	// ErrInvalidConfig: Config.Validate refused the configuration; the
	// message names the field and its bounds.
	ErrInvalidConfig = errors.New("client: invalid config")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("client: closed")
	// ErrBackoff: the last token request failed and the next one is not
	// due yet; Token returns it, wrapping the failure that caused it,
	// instead of asking the issuer again.
	ErrBackoff = errors.New("client: backing off after a failed token request")
	// ErrIssuerUnverified: the server's certificate is not an X.509-SVID
	// of Config.IssuerID that chains to the bundle of its trust domain. The
	// TLS handshake was aborted before anything was sent.
	ErrIssuerUnverified = errors.New("client: issuer certificate refused")
	// ErrCredential: the client's own JWT-SVID could not be obtained from
	// Config.JWTSVID, or is unusable as a header value.
	ErrCredential = errors.New("client: cannot get own credential")
	// ErrBadResponse: the issuer answered 200 with a body that is not a
	// well-formed token response.
	ErrBadResponse = errors.New("client: malformed issuer response")
	// ErrShortLived: the issuer returned a token that expires, by the
	// client's clock, within Config.ExpiryMargin: lower the margin, raise
	// the TTL, or fix the clock skew between client and issuer.
	ErrShortLived = errors.New("client: token expires within the expiry margin")
	// ErrInsecureTransport: Transport refused to send a token in clear
	// text to a host that is not a loopback address.
	ErrInsecureTransport = errors.New("client: refusing to send a token over plain HTTP")
)

// Problem codes of the issuer's HTTP API (spec/openapi.yaml), the Code of
// a ProblemError.
const (
	ProblemUnauthenticated = "unauthenticated"     // the credential was refused (401)
	ProblemForbidden       = "forbidden"           // e.g. the caller's trust domain is not served (403)
	ProblemNotGranted      = spec.ReasonNotGranted // the policy grants none of the rights, or not the audience (403)
	ProblemBadRequest      = "bad_request"         // malformed rights, ttl or audience (400)
	ProblemTooLarge        = "request_too_large"   // body over the issuer's limit (413)
	ProblemUnavailable     = "unavailable"         // no leader, key, policy or audit trail (503)
	ProblemInternal        = "internal"            // (500)
)

// DeniedRight says why one requested right was not granted and what could
// be requested instead.
type DeniedRight struct {
	Right        string   `json:"right"`
	Reason       string   `json:"reason"`
	Alternatives []string `json:"alternatives,omitempty"`
}

// ProblemError is a refusal by the issuer: any answer to a token request
// other than 200. It carries the RFC 9457 problem the issuer sent, or only
// the status when the answer was not a problem (a proxy's error page).
//
// Temporary reports whether the client retries it with exponential
// backoff (5xx, 429, 408); every other status is treated as permanent for
// the current configuration and retried only after Config.MaxBackoff, so
// that a policy change or a rotated SVID is eventually noticed without
// hammering the issuer.
type ProblemError struct {
	// Status is the HTTP status code of the answer.
	Status int
	// Code is the writ problem code (ProblemNotGranted, ...): the last
	// segment of a type https://writ.dev/problems/<code>. Empty when the
	// answer was not a writ problem.
	Code string
	// Type is the problem type URI as sent (empty if none).
	Type string
	// Title and Detail are the issuer's human-readable explanation,
	// truncated to a bounded length.
	Title, Detail string
	// Denied lists the rights that were not granted (not_granted only).
	Denied []DeniedRight
	// PolicyVersion is the policy that decided (not_granted only).
	PolicyVersion string
	// RetryAfter is the delay the issuer asked for in a Retry-After
	// header; 0 when it sent none.
	RetryAfter time.Duration
}

// Error returns "client: issuer refused: <status> <code>: <detail>".
func (e *ProblemError) Error() string {
	var b strings.Builder
	b.WriteString("client: issuer refused: ")
	fmt.Fprintf(&b, "%d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	} else if t := http.StatusText(e.Status); t != "" {
		b.WriteString(" " + t)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if len(e.Denied) > 0 {
		fmt.Fprintf(&b, " (%d rights denied)", len(e.Denied))
	}
	return b.String()
}

// Temporary reports whether the refusal may go away by itself soon: a
// 5xx, 429 Too Many Requests or 408 Request Timeout.
func (e *ProblemError) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout
}

// permanent reports whether err will come back on every retry until the
// configuration (or the issuer's policy) changes.
func permanent(err error) bool {
	var pe *ProblemError
	if errors.As(err, &pe) {
		return !pe.Temporary()
	}
	return errors.Is(err, ErrShortLived)
}
