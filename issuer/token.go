package issuer

import (
	"context"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/issuer/mint"
	"github.com/writ-dev/writ/issuer/policy"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

// TokenRequest is the JSON body of POST /v1/token.
type TokenRequest struct {
	// Rights asked for, as "RESOURCE:OPERATION".
	Rights []string `json:"rights"`
	// TTL as a Go duration ("5m"); empty means the default.
	TTL string `json:"ttl,omitempty"`
	// Audience, when set, is the SPIFFE ID of the one service the token is
	// for; the policy must allow that service.
	Audience string `json:"audience,omitempty"`
}

// TokenResponse is the body of a successful JSON POST /v1/token.
type TokenResponse struct {
	Token         string        `json:"token"`
	TokenID       string        `json:"token_id"`
	ExpiresAt     time.Time     `json:"expires_at"`
	Granted       []string      `json:"granted"`
	Denied        []DeniedRight `json:"denied,omitempty"`
	PolicyVersion string        `json:"policy_version"`
	KeyID         uint32        `json:"key_id"`
}

// DeniedRight says why one requested right was not granted and what could
// be requested instead.
type DeniedRight struct {
	Right        string   `json:"right"`
	Reason       string   `json:"reason"`
	Alternatives []string `json:"alternatives,omitempty"`
}

// maxRightsPerRequest bounds the rights one token request may name.
const maxRightsPerRequest = 64

// reasonTrustDomain is the audit reason for callers of a trust domain the
// issuer does not serve; reasonService for an audience the policy does not
// allow.
const (
	reasonTrustDomain = "trust_domain_not_accepted"
	reasonService     = "service_not_allowed"
)

// tokenAsk is a token request in either dialect (JSON or RFC 8693 token
// exchange), parsed and authenticated.
type tokenAsk struct {
	caller    spiffeid.ID
	cred      string // credX509 or credJWT
	requested []string
	rights    []spec.Right
	ttl       time.Duration
	audience  spiffeid.ID // zero: any service the policy allows
}

// issued is a minted token.
type issued struct {
	token         []byte
	tokenID       string
	expiresAt     time.Time
	granted       []string
	denied        []DeniedRight
	policyVersion string
	keyID         uint32
}

// tokenFailure is a refused token request. It is written as a problem
// (JSON dialect) or an RFC 6749 §5.2 error (token exchange); oauth is the
// error code of the latter.
type tokenFailure struct {
	status        int
	problem       string
	oauth         string
	detail        string
	denied        []DeniedRight
	policyVersion string
}

func badRequest(detail string) *tokenFailure {
	return &tokenFailure{status: http.StatusBadRequest, problem: ProblemBadRequest, oauth: oauthInvalidRequest, detail: detail}
}

// handleToken serves POST /v1/token: token exchange when the body is
// form-encoded, the JSON request otherwise.
func (is *Issuer) handleToken(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		ask, f := is.parseExchange(w, r)
		if f == nil {
			var out *issued
			if out, f = is.issue(r.Context(), ask); f == nil {
				is.metrics.mintTime.Observe(time.Since(start).Seconds())
				writeExchange(w, out, is.cfg.Now())
				return
			}
		}
		writeOAuthError(w, f)
		return
	}
	ask, f := is.parseJSON(w, r)
	if f == nil {
		var out *issued
		if out, f = is.issue(r.Context(), ask); f == nil {
			is.metrics.mintTime.Observe(time.Since(start).Seconds())
			writeJSON(w, http.StatusOK, &TokenResponse{
				Token: verifier.EncodeToken(out.token), TokenID: out.tokenID, ExpiresAt: out.expiresAt,
				Granted: out.granted, Denied: out.denied, PolicyVersion: out.policyVersion, KeyID: out.keyID,
			})
			return
		}
	}
	if f.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="writ"`) // or an X.509-SVID client certificate
	}
	writeProblem(w, f.status, f.problem, f.detail, func(p *Problem) {
		p.Denied, p.PolicyVersion = f.denied, f.policyVersion
	})
}

// parseJSON reads the JSON dialect: the caller is the TLS client
// certificate or an "Authorization: Bearer <JWT-SVID>" header.
func (is *Issuer) parseJSON(w http.ResponseWriter, r *http.Request) (*tokenAsk, *tokenFailure) {
	// The request is parsed before the caller is authenticated, so that
	// every refusal after authentication is a policy decision, audited by
	// issue.
	body, f := is.readTokenBody(w, r)
	if f != nil {
		return nil, f
	}
	var req TokenRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, badRequest("body: " + err.Error())
	}
	ask := &tokenAsk{requested: req.Rights, ttl: is.cfg.DefaultTTL}
	if f := ask.setRights(req.Rights, "rights"); f != nil {
		return nil, f
	}
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return nil, badRequest("ttl: want a positive Go duration like 5m")
		}
		ask.ttl = d
	}
	if req.Audience != "" {
		id, err := spiffeid.FromString(req.Audience)
		if err != nil {
			return nil, badRequest("audience: want the SPIFFE ID of a service: " + err.Error())
		}
		ask.audience = id
	}
	jwt, _, af := bearer(r)
	if af != nil {
		return nil, is.unauthenticated(af)
	}
	if ask.caller, ask.cred, af = is.authenticate(r, jwt); af != nil {
		return nil, is.unauthenticated(af)
	}
	return ask, nil
}

func (ask *tokenAsk) setRights(in []string, field string) *tokenFailure {
	if len(in) == 0 || len(in) > maxRightsPerRequest {
		f := badRequest(field + ": want 1 to " + strconv.Itoa(maxRightsPerRequest) + " rights")
		f.oauth = oauthInvalidScope
		return f
	}
	ask.rights = make([]spec.Right, len(in))
	for i, s := range in {
		rt, err := spec.ParseRight(s)
		if err != nil {
			f := badRequest(field + "[" + strconv.Itoa(i) + "]: " + err.Error())
			f.oauth = oauthInvalidScope
			return f
		}
		ask.rights[i] = rt
	}
	return nil
}

func (is *Issuer) readTokenBody(w http.ResponseWriter, r *http.Request) ([]byte, *tokenFailure) {
	body, err := readLimited(w, r, is.cfg.MaxBodyBytes)
	if err != nil {
		if err == errTooLarge {
			return nil, &tokenFailure{status: http.StatusRequestEntityTooLarge, problem: ProblemTooLarge, oauth: oauthInvalidRequest,
				detail: "body larger than " + strconv.FormatInt(is.cfg.MaxBodyBytes, 10) + " bytes"}
		}
		return nil, badRequest("cannot read body")
	}
	return body, nil
}

// unauthenticated logs and counts an authentication failure.
func (is *Issuer) unauthenticated(af *authFailure) *tokenFailure {
	is.metrics.authFailures.WithLabelValues(af.reason).Inc()
	return &tokenFailure{status: http.StatusUnauthorized, problem: ProblemUnauthenticated, oauth: oauthInvalidRequest, detail: af.String()}
}

// issue decides and mints. Every answer that follows authentication, a
// grant or a denial, is committed to the audit trail before it is given;
// when that fails the answer is 503 and no token.
func (is *Issuer) issue(ctx context.Context, ask *tokenAsk) (*issued, *tokenFailure) {
	now := is.cfg.Now().UTC().Truncate(time.Second)
	rec := &AuditRecord{Time: now, Node: is.cfg.NodeID, Caller: ask.caller.String(), Credential: ask.cred, Requested: ask.requested}
	if !is.tds[ask.caller.TrustDomain()] {
		// A verified identity was refused: that is a denial, and every
		// denial is on the record.
		return nil, is.deny(ctx, rec, reasonTrustDomain, &tokenFailure{status: http.StatusForbidden, problem: ProblemForbidden,
			oauth: oauthInvalidRequest, detail: "trust domain not accepted by this issuer"})
	}
	pol, err := is.state.Policy()
	if err != nil {
		return nil, unavailable("no issuance policy yet")
	}
	keyID, priv, err := is.state.ActiveKey()
	if err != nil {
		return nil, unavailable("no root key yet")
	}
	ttl := min(ask.ttl, is.cfg.MaxTTL)
	res := pol.Evaluate(policy.Request{Subject: ask.caller, Rights: ask.rights, TTL: ttl, Now: now})
	denied := make([]DeniedRight, len(res.Denied))
	rec.Denied = make([]AuditDenial, len(res.Denied))
	for i, d := range res.Denied {
		denied[i] = DeniedRight{Right: d.Right.String(), Reason: d.Reason, Alternatives: rightStrings(d.Alternatives)}
		rec.Denied[i] = AuditDenial{Right: d.Right.String(), Reason: d.Reason}
	}
	rec.PolicyVersion = pol.Version()

	services := res.Services
	if !ask.audience.IsZero() && len(res.Granted) > 0 {
		services = narrowServices(res.Services, ask.audience.String())
		if services == nil {
			return nil, is.deny(ctx, rec, reasonService, &tokenFailure{status: http.StatusForbidden, problem: ProblemNotGranted,
				oauth: oauthInvalidTarget, detail: "the policy does not allow tokens for audience " + ask.audience.String(), policyVersion: pol.Version()})
		}
	}
	if len(res.Granted) == 0 {
		return nil, is.deny(ctx, rec, spec.ReasonNotGranted, &tokenFailure{status: http.StatusForbidden, problem: ProblemNotGranted,
			oauth: oauthInvalidScope, detail: "the policy grants none of the requested rights", denied: denied, policyVersion: pol.Version()})
	}

	windows := make([][]spec.TimeWindow, len(res.Windows))
	for i, ws := range res.Windows {
		windows[i] = ws
	}
	claims := mint.Claims{
		Issuer: is.id.String(), Agent: ask.caller.String(), IssuedAt: now, Expiry: now.Add(min(ttl, res.TTL)),
		PolicyVersion: pol.Version(), Rights: res.Granted, MaxRecords: res.MaxRecords, Fields: res.Fields,
		Windows: windows, Services: services, MaxStaleness: res.MaxStaleness,
	}
	if res.BindPresenter {
		claims.Presenters = []string{ask.caller.String()}
	}
	token, tokenID, err := mint.Mint(is.cfg.Rand, mint.Key{ID: keyID, Private: priv}, claims)
	if err != nil {
		is.log.Error("mint failed", "caller", ask.caller.String(), "err", err)
		return nil, &tokenFailure{status: http.StatusInternalServerError, problem: ProblemInternal, oauth: oauthServerError, detail: "cannot mint token"}
	}
	granted := rightStrings(res.Granted)
	rec.Kind, rec.Granted, rec.TokenID, rec.ExpiresAt, rec.KeyID = AuditMint, granted, tokenID, claims.Expiry, keyID
	if f := is.commit(ctx, rec); f != nil {
		return nil, f // fail closed: a token whose issuance is not on the record is never handed out
	}
	is.metrics.minted.Inc()
	is.log.Info("token minted", "caller", ask.caller.String(), "credential", ask.cred, "token_id", tokenID,
		"granted", len(res.Granted), "denied", len(res.Denied), "policy_version", pol.Version())
	return &issued{token: token, tokenID: tokenID, expiresAt: claims.Expiry, granted: granted, denied: denied,
		policyVersion: pol.Version(), keyID: keyID}, nil
}

// deny commits rec as a denial for reason, counts and logs it, and returns
// refusal — or a 503 failure if the denial cannot be put on the record.
func (is *Issuer) deny(ctx context.Context, rec *AuditRecord, reason string, refusal *tokenFailure) *tokenFailure {
	rec.Kind, rec.Reason = AuditDeny, reason
	if f := is.commit(ctx, rec); f != nil {
		return f
	}
	is.metrics.denied.WithLabelValues(reason).Inc()
	is.log.Info("token denied", "caller", rec.Caller, "reason", reason, "policy_version", rec.PolicyVersion)
	return refusal
}

// narrowServices returns the services a token for audience may name: just
// audience, if the policy allows any service (nil) or lists it; nil if it
// does not.
func narrowServices(allowed []string, audience string) []string {
	if allowed == nil {
		return []string{audience}
	}
	for _, s := range allowed {
		if s == audience {
			return []string{audience}
		}
	}
	return nil
}

func unavailable(detail string) *tokenFailure {
	return &tokenFailure{status: http.StatusServiceUnavailable, problem: ProblemUnavailable, oauth: oauthUnavailable, detail: detail}
}

// commit commits rec through the audit log; on failure it logs and returns
// a 503 failure: no answer leaves the issuer unaudited.
func (is *Issuer) commit(ctx context.Context, rec *AuditRecord) *tokenFailure {
	if err := is.audit.Commit(ctx, rec); err != nil {
		is.log.Error("audit commit failed", "err", err, "kind", rec.Kind, "token_id", rec.TokenID)
		return unavailable("audit trail unavailable")
	}
	return nil
}
