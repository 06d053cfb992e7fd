package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/writ-dev/writ/spec"
)

// Problem codes the middleware uses besides the decision reasons of spec.
// Each maps to the type URI spec.ProblemType(code).
const (
	// ProblemMissingToken: the request carries no bearer token.
	ProblemMissingToken = "missing_token"
	// ProblemBadRequest: the RouteFunc could not map the request.
	ProblemBadRequest = "bad_request"
)

// RouteFunc maps an HTTP request to the resource and operation it acts on.
// It must not read the body. A returned error makes the middleware answer
// 400 bad_request without calling Authorize. Any Presenter it sets is
// replaced by the middleware's (see WithPresenter).
type RouteFunc func(r *http.Request) (Request, error)

// PathRoute returns a RouteFunc for REST-style services: the resource is
// the URL path after prefix ("/api/" + "crm/contacts/42" gives
// "crm/contacts/42"), and the operation follows the method: GET and HEAD
// are "read", POST, PUT and PATCH are "write", DELETE is "delete". A
// prefix without leading or trailing "/" gets them.
//
// Because prefix rights match resources by string prefix, the path must
// name the resource one way only: the RouteFunc refuses (ErrRoute) other
// methods, paths outside prefix, an empty resource, empty, "." or ".."
// segments, "%2F" escapes, backslashes, "*", control characters, invalid
// UTF-8 and resources longer than spec.MaxResourceBytes.
func PathRoute(prefix string) RouteFunc {
	if !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return func(r *http.Request) (Request, error) {
		var op string
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			op = "read"
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			op = "write"
		case http.MethodDelete:
			op = "delete"
		default:
			return Request{}, fmt.Errorf("%w: method %s", ErrRoute, r.Method)
		}
		res, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			return Request{}, fmt.Errorf("%w: path outside %s", ErrRoute, prefix)
		}
		if err := checkResourcePath(res); err != nil {
			return Request{}, fmt.Errorf("%w: %w", ErrRoute, err)
		}
		if strings.Contains(strings.ToLower(r.URL.RawPath), "%2f") {
			return Request{}, fmt.Errorf("%w: escaped slash in path", ErrRoute)
		}
		return Request{Resource: res, Operation: op}, nil
	}
}

func checkResourcePath(res string) error {
	switch {
	case res == "":
		return errors.New("empty resource")
	case len(res) > spec.MaxResourceBytes:
		return fmt.Errorf("resource longer than %d bytes", spec.MaxResourceBytes)
	case !utf8.ValidString(res):
		return errors.New("resource is not UTF-8")
	case strings.ContainsAny(res, "*\\"):
		return errors.New(`"*" or "\" in resource`)
	}
	for _, c := range res {
		if c < 0x20 || c == 0x7f {
			return errors.New("control character in resource")
		}
	}
	for seg := range strings.SplitSeq(res, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("segment %q in resource", seg)
		}
	}
	return nil
}

// Problem is the RFC 9457 problem details object the middleware writes on
// a denial. Extension members carry the decision's data; none of them
// holds token bytes.
type Problem struct {
	// Type is spec.ProblemType(Reason).
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Reason is the decision reason (spec.Reason…) or ProblemMissingToken
	// or ProblemBadRequest.
	Reason       string        `json:"reason"`
	TokenID      string        `json:"token_id,omitempty"`
	MissingRight *spec.Right   `json:"missing_right,omitempty"`
	FailedChecks []FailedCheck `json:"failed_checks,omitempty"`
	// Decision is the verifier's decision; the zero Decision when the
	// request was refused before Authorize (missing or undecodable token,
	// unroutable request). Not serialized.
	Decision Decision `json:"-"`
}

// DenyWriter writes the response for a denied request. The middleware has
// already set the WWW-Authenticate header when one applies. p is owned by
// the callee for the duration of the call.
type DenyWriter func(w http.ResponseWriter, r *http.Request, p *Problem)

// WriteProblem is the default DenyWriter: it writes p as
// application/problem+json with status p.Status and Cache-Control: no-store.
func WriteProblem(w http.ResponseWriter, _ *http.Request, p *Problem) {
	body, err := json.Marshal(p)
	if err != nil {
		// Problem holds only strings, ints and slices of them.
		body = []byte(`{"type":"about:blank","status":500}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}

// MiddlewareOption configures Middleware.
type MiddlewareOption func(*middleware)

// WithLogger makes the middleware log every denial at Info and every
// allowed request at Debug, with reason, token id, resource, operation and
// presenter; never the token. nil (the default) discards.
func WithLogger(l *slog.Logger) MiddlewareOption {
	return func(m *middleware) { m.log = l }
}

// WithDenyWriter replaces WriteProblem for denials. nil keeps WriteProblem.
func WithDenyWriter(fn DenyWriter) MiddlewareOption {
	return func(m *middleware) {
		if fn != nil {
			m.deny = fn
		}
	}
}

// WithPresenter replaces how the middleware learns the caller's SPIFFE ID
// (default: PeerPresenter). Return "" when unknown. Use it only with a
// source at least as trustworthy as a verified mTLS peer, e.g. a header
// set by a proxy that terminated and verified mTLS and strips the header
// from clients.
func WithPresenter(fn func(r *http.Request) string) MiddlewareOption {
	return func(m *middleware) {
		if fn != nil {
			m.presenter = fn
		}
	}
}

// PeerPresenter returns the SPIFFE ID in the URI SAN of the TLS peer's leaf
// certificate, or "" when there is no TLS, no client certificate, or the
// certificate has no single SPIFFE ID.
//
// It does not verify the certificate: that is the TLS layer's job. The
// server must require and verify client X509-SVIDs, e.g. with go-spiffe's
// tlsconfig.MTLSServerConfig and an x509bundle source; with a plain
// tls.Config using RequestClientCert or RequireAnyClientCert, anyone can
// claim any presenter.
func PeerPresenter(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	id, err := x509svid.IDFromCert(r.TLS.PeerCertificates[0])
	if err != nil {
		return ""
	}
	return id.String()
}

type decisionKey struct{}

// DecisionFromContext returns the Decision Middleware stored for an allowed
// request, or false outside Middleware.
func DecisionFromContext(ctx context.Context) (Decision, bool) {
	d, ok := ctx.Value(decisionKey{}).(Decision)
	return d, ok
}

type middleware struct {
	v         *Verifier
	route     RouteFunc
	log       *slog.Logger
	deny      DenyWriter
	presenter func(*http.Request) string
}

// Middleware returns net/http middleware that authorizes every request
// with v before calling the next handler.
//
// For each request it takes the token from the one Authorization header
// ("Bearer <base64url>", scheme case-insensitive, see DecodeToken), maps
// the request with route, sets Request.Presenter from the verified mTLS
// peer (see PeerPresenter, WithPresenter) and calls v.Authorize with the
// request's context. When allowed, the next handler runs with the
// Decision in its context (DecisionFromContext); it must apply
// Decision.Constraints. Otherwise the next handler does not run and the
// response is a Problem:
//
//   - 401 with WWW-Authenticate `Bearer` when there is no bearer token
//     (no header, or another scheme): missing_token;
//   - 401 with `Bearer error="invalid_token"` when the token is unusable
//     whatever the request: malformed (including two Authorization
//     headers, an empty token, bad base64url), limits_exceeded (including
//     an oversize header), unsupported, unknown_key, bad_signature,
//     revoked, expired: the client needs a new token;
//   - 400 bad_request when route fails;
//   - 403 with `Bearer error="insufficient_scope"` for the other reasons
//     (presenter_mismatch, service_mismatch, outside_time_window,
//     constraint_violated, check_failed, not_granted);
//   - 503 with `Retry-After: 1` and no WWW-Authenticate for
//     revocation_stale: the service's copy of the revocation list is not
//     fresh enough to decide (token.md §10); the token may be fine, the
//     client should retry, at this or another replica.
//
// It panics if v or route is nil. The handler is safe for concurrent use.
func Middleware(v *Verifier, route RouteFunc, opts ...MiddlewareOption) func(http.Handler) http.Handler {
	if v == nil || route == nil {
		panic("verifier: Middleware needs a Verifier and a RouteFunc")
	}
	m := &middleware{v: v, route: route, deny: WriteProblem, presenter: PeerPresenter}
	for _, o := range opts {
		o(m)
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.serve(w, r, next)
		})
	}
}

func (m *middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	ctx := r.Context()
	token, code := bearerToken(r)
	if code != "" {
		m.refuse(w, r, code, Decision{}, Request{})
		return
	}
	req, err := m.route(r)
	if err != nil {
		m.log.LogAttrs(ctx, slog.LevelInfo, "request not routable",
			slog.String("method", r.Method), slog.String("error", err.Error()))
		m.refuse(w, r, ProblemBadRequest, Decision{}, Request{})
		return
	}
	req.Presenter = m.presenter(r)
	if req.Service == "" {
		// The service fact is the verifier's own identity (token.md §3); a
		// route naming another one is denied service_mismatch by Authorize.
		req.Service = m.v.service
	}
	d := m.v.Authorize(ctx, token, req)
	if !d.Allowed || d.Reason != spec.ReasonAllowed {
		if d.Reason == "" || d.Reason == spec.ReasonAllowed {
			// Inconsistent decision: fail closed.
			d.Reason = spec.ReasonCheckFailed
		}
		m.refuse(w, r, d.Reason, d, req)
		return
	}
	m.log.LogAttrs(ctx, slog.LevelDebug, "request allowed",
		slog.String("token_id", d.TokenID),
		slog.String("agent", d.Agent),
		slog.String("resource", req.Resource),
		slog.String("operation", req.Operation),
		slog.String("presenter", req.Presenter))
	next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, decisionKey{}, d)))
}

// bearerToken returns the decoded token, or the problem code that refuses
// the request.
func bearerToken(r *http.Request) ([]byte, string) {
	vals := r.Header.Values("Authorization")
	switch {
	case len(vals) == 0:
		return nil, ProblemMissingToken
	case len(vals) > 1:
		return nil, spec.ReasonMalformed
	}
	v := vals[0]
	if len(v) > maxAuthorizationBytes {
		return nil, spec.ReasonLimitsExceeded
	}
	v = trimASCIISpace(v)
	scheme, cred, _ := strings.Cut(v, " ")
	if scheme == "" {
		return nil, spec.ReasonMalformed
	}
	if !strings.EqualFold(scheme, "Bearer") {
		// RFC 6750 §3.1: another authentication scheme is no bearer token.
		return nil, ProblemMissingToken
	}
	token, err := DecodeToken(cred)
	switch {
	case errors.Is(err, ErrLimitsExceeded):
		return nil, spec.ReasonLimitsExceeded
	case err != nil:
		return nil, spec.ReasonMalformed
	}
	return token, ""
}

// retryAfterStale is the Retry-After of a revocation_stale answer, in
// seconds: issuer nodes send a heartbeat at least every second
// (spec/sync.md §5), so a verifier that is catching up is usually fresh
// again within one.
const retryAfterStale = "1"

type problemText struct {
	status        int
	title, detail string
}

// problemTexts are fixed so that no response text depends on token
// content.
var problemTexts = map[string]problemText{
	ProblemMissingToken:           {http.StatusUnauthorized, "Bearer token required", "Send the writ token in an Authorization: Bearer header."},
	ProblemBadRequest:             {http.StatusBadRequest, "Bad request", "The request does not map to a resource and operation."},
	spec.ReasonMalformed:          {http.StatusUnauthorized, "Malformed token", "The token or its Authorization header could not be decoded."},
	spec.ReasonLimitsExceeded:     {http.StatusUnauthorized, "Token exceeds limits", "The token is larger or more complex than this service accepts."},
	spec.ReasonUnsupported:        {http.StatusUnauthorized, "Unsupported token", "The token uses a feature this verifier does not support."},
	spec.ReasonUnknownKey:         {http.StatusUnauthorized, "Unknown signing key", "The token is not signed by a root key this service trusts."},
	spec.ReasonBadSignature:       {http.StatusUnauthorized, "Bad signature", "A signature of the token does not verify."},
	spec.ReasonRevoked:            {http.StatusUnauthorized, "Token revoked", "The token or a token it was derived from has been revoked."},
	spec.ReasonRevocationStale:    {http.StatusServiceUnavailable, "Revocation list not current", "This service cannot currently confirm the token is not revoked; retry shortly."},
	spec.ReasonExpired:            {http.StatusUnauthorized, "Token expired", "The token has expired; request a new one."},
	spec.ReasonPresenterMismatch:  {http.StatusForbidden, "Wrong presenter", "The token is bound to other workloads than the caller."},
	spec.ReasonServiceMismatch:    {http.StatusForbidden, "Wrong service", "The token is not valid for this service."},
	spec.ReasonOutsideTimeWindow:  {http.StatusForbidden, "Outside time window", "The token is not valid at this time of day or week."},
	spec.ReasonConstraintViolated: {http.StatusForbidden, "Constraint violated", "The request exceeds a record or field limit of the token."},
	spec.ReasonCheckFailed:        {http.StatusForbidden, "Check failed", "A check of the token failed."},
	spec.ReasonNotGranted:         {http.StatusForbidden, "Not granted", "The token grants no right for this operation on this resource."},
}

func (m *middleware) refuse(w http.ResponseWriter, r *http.Request, code string, d Decision, req Request) {
	t, ok := problemTexts[code]
	if !ok {
		t = problemText{http.StatusForbidden, "Denied", "The request is not authorized."}
	}
	switch {
	case code == ProblemMissingToken:
		w.Header().Set("WWW-Authenticate", "Bearer")
	case t.status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	case t.status == http.StatusForbidden:
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope"`)
	case t.status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfterStale)
	}
	m.log.LogAttrs(r.Context(), slog.LevelInfo, "request denied",
		slog.String("reason", code),
		slog.Int("status", t.status),
		slog.String("token_id", d.TokenID),
		slog.String("agent", d.Agent),
		slog.String("resource", req.Resource),
		slog.String("operation", req.Operation),
		slog.String("presenter", req.Presenter),
		slog.Int("failed_checks", len(d.FailedChecks)))
	m.deny(w, r, &Problem{
		Type:         spec.ProblemType(code),
		Title:        t.title,
		Status:       t.status,
		Detail:       t.detail,
		Reason:       code,
		TokenID:      d.TokenID,
		MissingRight: d.MissingRight,
		FailedChecks: d.FailedChecks,
		Decision:     d,
	})
}
