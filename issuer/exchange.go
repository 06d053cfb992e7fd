package issuer

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

// OAuth 2.0 token exchange (RFC 8693) at POST /v1/token.
const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeJWT       = "urn:ietf:params:oauth:token-type:jwt"
)

// RFC 6749 §5.2 and RFC 8693 §2.2.2 error codes, and the two RFC 6749
// §4.1.2.1 codes used for the issuer's own failures.
const (
	oauthInvalidRequest = "invalid_request"
	oauthInvalidClient  = "invalid_client"
	oauthInvalidScope   = "invalid_scope"
	oauthInvalidTarget  = "invalid_target"
	oauthUnsupported    = "unsupported_grant_type"
	oauthUnavailable    = "temporarily_unavailable"
	oauthServerError    = "server_error"
)

// exchangeParams are the form parameters a token exchange may carry, and
// whether each is required, in the order missing ones are reported. Any
// other parameter (actor_token, client_id, ...) is refused, never ignored.
var exchangeParams = []struct {
	name     string
	required bool
}{
	{"grant_type", true},
	{"subject_token_type", true},
	{"subject_token", true},
	{"scope", true},
	{"audience", false},
	{"resource", false},
	{"requested_token_type", false},
}

func knownExchangeParam(name string) bool {
	for _, p := range exchangeParams {
		if p.name == name {
			return true
		}
	}
	return false
}

// ExchangeResponse is the RFC 8693 §2.2.1 answer of a token exchange.
type ExchangeResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope"`
}

// ExchangeError is the RFC 6749 §5.2 error answer of a token exchange.
type ExchangeError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// parseExchange reads a form-encoded token exchange. The caller is the
// subject of the subject_token JWT-SVID; a TLS client certificate, if
// presented too, must name the same SPIFFE ID. RFC 8693 §2.2.2 makes an
// invalid or unacceptable subject_token an invalid_request.
func (is *Issuer) parseExchange(w http.ResponseWriter, r *http.Request) (*tokenAsk, *tokenFailure) {
	if len(r.Header.Values("Authorization")) > 0 {
		// RFC 6749 §5.2: a client that tried to authenticate gets
		// invalid_client; this issuer knows no OAuth clients.
		return nil, &tokenFailure{status: http.StatusUnauthorized, problem: ProblemUnauthenticated, oauth: oauthInvalidClient,
			detail: "token exchange: no OAuth client authentication here; send the JWT-SVID as subject_token"}
	}
	if r.URL.RawQuery != "" {
		return nil, badRequest("token exchange: parameters belong in the body, not the URL")
	}
	body, f := is.readTokenBody(w, r)
	if f != nil {
		return nil, f
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("token exchange: body is not form-encoded")
	}
	// grant_type first: a request for another grant is answered
	// unsupported_grant_type whatever else it carries.
	switch gt := form["grant_type"]; {
	case len(gt) == 0 || gt[0] == "":
		return nil, badRequest("token exchange: missing parameter grant_type")
	case len(gt) > 1:
		return nil, badRequest("token exchange: parameter grant_type given more than once")
	case gt[0] != grantTokenExchange:
		return nil, &tokenFailure{status: http.StatusBadRequest, problem: ProblemBadRequest, oauth: oauthUnsupported,
			detail: "grant_type: want " + grantTokenExchange}
	}
	for name, vals := range form {
		if !knownExchangeParam(name) {
			return nil, badRequest("token exchange: unsupported parameter " + strconv.Quote(truncate(name, 64)))
		}
		if len(vals) != 1 {
			return nil, badRequest("token exchange: parameter " + name + " given more than once")
		}
	}
	for _, p := range exchangeParams {
		if p.required && form.Get(p.name) == "" {
			return nil, badRequest("token exchange: missing parameter " + p.name)
		}
	}
	if tt := form.Get("subject_token_type"); tt != tokenTypeJWT {
		return nil, badRequest("subject_token_type: want " + tokenTypeJWT + " (a JWT-SVID)")
	}
	if rt := form.Get("requested_token_type"); rt != "" && rt != spec.TokenTypeBiscuit {
		return nil, badRequest("requested_token_type: this issuer issues only " + spec.TokenTypeBiscuit)
	}
	ask := &tokenAsk{requested: strings.Fields(form.Get("scope")), ttl: is.cfg.DefaultTTL}
	if f := ask.setRights(ask.requested, "scope"); f != nil {
		return nil, f
	}
	aud, res := form.Get("audience"), form.Get("resource")
	if aud != "" && res != "" && aud != res {
		return nil, &tokenFailure{status: http.StatusBadRequest, problem: ProblemBadRequest, oauth: oauthInvalidTarget,
			detail: "audience and resource name different services; name one"}
	}
	if target := max(aud, res); target != "" {
		id, err := spiffeid.FromString(target)
		if err != nil {
			return nil, &tokenFailure{status: http.StatusBadRequest, problem: ProblemBadRequest, oauth: oauthInvalidTarget,
				detail: "audience: want the SPIFFE ID of a service: " + err.Error()}
		}
		ask.audience = id
	}
	// Authenticated last: every refusal after this is a policy decision,
	// audited by issue.
	var af *authFailure
	if ask.caller, ask.cred, af = is.authenticate(r, form.Get("subject_token")); af != nil {
		return nil, is.unauthenticated(af)
	}
	return ask, nil
}

// writeExchange writes the RFC 8693 §2.2.1 success answer.
func writeExchange(w http.ResponseWriter, out *issued, now time.Time) {
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, &ExchangeResponse{
		AccessToken:     verifier.EncodeToken(out.token),
		IssuedTokenType: spec.TokenTypeBiscuit,
		TokenType:       "Bearer",
		ExpiresIn:       max(0, int64(out.expiresAt.Sub(now).Seconds())),
		Scope:           strings.Join(out.granted, " "),
	})
}

// writeOAuthError writes an RFC 6749 §5.2 error answer.
func writeOAuthError(w http.ResponseWriter, f *tokenFailure) {
	status := f.status
	switch {
	case f.oauth == oauthInvalidClient:
		status = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", `Bearer realm="writ"`)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		status = http.StatusBadRequest // RFC 6749 §5.2: 400 unless client authentication failed
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(&ExchangeError{Error: f.oauth, ErrorDescription: f.detail})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
