package issuer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/writ-dev/writ/issuer/mint"
	"github.com/writ-dev/writ/issuer/policy"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

// TokenRequest is the body of POST /v1/token.
type TokenRequest struct {
	// Rights asked for, as "RESOURCE:OPERATION".
	Rights []string `json:"rights"`
	// TTL as a Go duration ("5m"); empty means the default.
	TTL string `json:"ttl,omitempty"`
}

// TokenResponse is the body of a successful POST /v1/token.
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

// handler returns the HTTP API. Identity comes from the TLS peer
// certificate, which only the server TLS config of New verifies: the
// handler is therefore never exported for serving elsewhere.
func (is *Issuer) handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range is.routes() {
		mux.Handle(rt.method+" "+rt.path, rt.h)
	}
	allowed := map[string][]string{}
	for _, rt := range is.routes() {
		allowed[rt.path] = append(allowed[rt.path], rt.method)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if methods, ok := allowed[r.URL.Path]; ok {
			w.Header().Set("Allow", strings.Join(methods, ", "))
			writeProblem(w, http.StatusMethodNotAllowed, ProblemMethod, "allowed: "+strings.Join(methods, ", "), nil)
			return
		}
		writeProblem(w, http.StatusNotFound, ProblemNotFound, "no such endpoint", nil)
	})
	return is.instrument(mux)
}

type route struct {
	method, path string
	h            http.Handler
}

// routes is the API surface; spec/openapi.yaml must list each of them (a
// test holds the two together).
func (is *Issuer) routes() []route {
	return []route{
		{"POST", "/v1/token", http.HandlerFunc(is.handleToken)},
		{"GET", "/v1/keys", http.HandlerFunc(is.handleKeys)},
		{"GET", "/healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })},
		{"GET", "/readyz", http.HandlerFunc(is.handleReady)},
		{"GET", "/metrics", promhttp.HandlerFor(is.registry, promhttp.HandlerOpts{})},
		{"GET", "/v1/admin/policy", is.admin(is.handleGetPolicy)},
		{"PUT", "/v1/admin/policy", is.admin(is.handlePutPolicy)},
		{"GET", "/v1/admin/audit", is.admin(is.handleAudit)},
	}
}

func (is *Issuer) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: 200}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "other"
		}
		is.metrics.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// caller returns the verified SPIFFE ID of the TLS peer, or writes a 401.
func (is *Issuer) caller(w http.ResponseWriter, r *http.Request) (spiffeid.ID, bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		writeProblem(w, http.StatusUnauthorized, ProblemUnauthenticated, "present an X.509-SVID as TLS client certificate", nil)
		return spiffeid.ID{}, false
	}
	id, err := x509svid.IDFromCert(r.TLS.PeerCertificates[0])
	if err != nil {
		writeProblem(w, http.StatusUnauthorized, ProblemUnauthenticated, "client certificate is not an X.509-SVID", nil)
		return spiffeid.ID{}, false
	}
	if !is.tds[id.TrustDomain()] {
		if r.Pattern == "POST /v1/token" {
			// A verified identity was refused: that is a denial, and every
			// denial is on the record.
			rec := &AuditRecord{Time: is.cfg.Now().UTC(), Node: is.cfg.NodeID, Kind: AuditDeny, Caller: id.String(), Reason: reasonTrustDomain}
			if !is.commitAudit(w, r, rec) {
				return spiffeid.ID{}, false
			}
			is.metrics.denied.WithLabelValues(reasonTrustDomain).Inc()
		}
		is.log.Info("caller refused", "caller", id.String(), "reason", reasonTrustDomain, "path", r.URL.Path)
		writeProblem(w, http.StatusForbidden, ProblemForbidden, "trust domain not accepted by this issuer", nil)
		return spiffeid.ID{}, false
	}
	return id, true
}

// reasonTrustDomain is the audit reason for callers of a trust domain the
// issuer does not serve.
const reasonTrustDomain = "trust_domain_not_accepted"

func (is *Issuer) admin(h func(http.ResponseWriter, *http.Request, spiffeid.ID)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := is.caller(w, r)
		if !ok {
			return
		}
		if !is.admins[id] {
			is.log.Warn("admin endpoint refused", "caller", id.String(), "path", r.URL.Path)
			writeProblem(w, http.StatusForbidden, ProblemForbidden, "admin SVID required", nil)
			return
		}
		h(w, r, id)
	}
}

func (is *Issuer) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, is.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeProblem(w, http.StatusRequestEntityTooLarge, ProblemTooLarge, "body larger than "+strconv.FormatInt(is.cfg.MaxBodyBytes, 10)+" bytes", nil)
		} else {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "cannot read body", nil)
		}
		return nil, false
	}
	return body, true
}

func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after JSON object")
	}
	return nil
}

func (is *Issuer) handleToken(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	caller, ok := is.caller(w, r)
	if !ok {
		return
	}
	body, ok := is.readBody(w, r)
	if !ok {
		return
	}
	var req TokenRequest
	if err := decodeStrict(body, &req); err != nil {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "body: "+err.Error(), nil)
		return
	}
	if len(req.Rights) == 0 || len(req.Rights) > maxRightsPerRequest {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "rights: want 1 to "+strconv.Itoa(maxRightsPerRequest)+" rights", nil)
		return
	}
	rights := make([]spec.Right, len(req.Rights))
	for i, s := range req.Rights {
		rt, err := spec.ParseRight(s)
		if err != nil {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "rights["+strconv.Itoa(i)+"]: "+err.Error(), nil)
			return
		}
		rights[i] = rt
	}
	ttl := is.cfg.DefaultTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "ttl: want a positive Go duration like 5m", nil)
			return
		}
		ttl = d
	}
	ttl = min(ttl, is.cfg.MaxTTL)

	pol, err := is.state.Policy()
	if err != nil {
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "no issuance policy yet", nil)
		return
	}
	keyID, priv, err := is.state.ActiveKey()
	if err != nil {
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "no root key yet", nil)
		return
	}
	now := is.cfg.Now().UTC().Truncate(time.Second)
	res := pol.Evaluate(policy.Request{Subject: caller, Rights: rights, TTL: ttl, Now: now})
	denied := make([]DeniedRight, len(res.Denied))
	auditDenied := make([]AuditDenial, len(res.Denied))
	for i, d := range res.Denied {
		denied[i] = DeniedRight{Right: d.Right.String(), Reason: d.Reason, Alternatives: rightStrings(d.Alternatives)}
		auditDenied[i] = AuditDenial{Right: d.Right.String(), Reason: d.Reason}
	}
	rec := &AuditRecord{Time: now, Node: is.cfg.NodeID, Caller: caller.String(), Requested: req.Rights, Denied: auditDenied, PolicyVersion: pol.Version()}

	if len(res.Granted) == 0 {
		rec.Kind, rec.Reason = AuditDeny, spec.ReasonNotGranted
		is.metrics.denied.WithLabelValues(spec.ReasonNotGranted).Inc()
		is.log.Info("token denied", "caller", caller.String(), "reason", spec.ReasonNotGranted, "policy_version", pol.Version())
		if !is.commitAudit(w, r, rec) {
			return
		}
		writeProblem(w, http.StatusForbidden, ProblemNotGranted, "the policy grants none of the requested rights", func(p *Problem) {
			p.Denied, p.PolicyVersion = denied, pol.Version()
		})
		return
	}

	windows := make([][]spec.TimeWindow, len(res.Windows))
	for i, ws := range res.Windows {
		windows[i] = ws
	}
	claims := mint.Claims{
		Issuer: is.id.String(), Agent: caller.String(), IssuedAt: now, Expiry: now.Add(min(ttl, res.TTL)),
		PolicyVersion: pol.Version(), Rights: res.Granted, MaxRecords: res.MaxRecords, Fields: res.Fields,
		Windows: windows, Services: res.Services,
	}
	if res.BindPresenter {
		claims.Presenters = []string{caller.String()}
	}
	token, tokenID, err := mint.Mint(is.cfg.Rand, mint.Key{ID: keyID, Private: priv}, claims)
	if err != nil {
		is.log.Error("mint failed", "caller", caller.String(), "err", err)
		writeProblem(w, http.StatusInternalServerError, ProblemInternal, "cannot mint token", nil)
		return
	}
	rec.Kind, rec.Granted, rec.TokenID, rec.ExpiresAt, rec.KeyID = AuditMint, rightStrings(res.Granted), tokenID, claims.Expiry, keyID
	if !is.commitAudit(w, r, rec) {
		return // fail closed: a token whose issuance is not on the record is never handed out
	}
	is.metrics.minted.Inc()
	is.metrics.mintTime.Observe(time.Since(start).Seconds())
	is.log.Info("token minted", "caller", caller.String(), "token_id", tokenID, "granted", len(res.Granted), "denied", len(res.Denied), "policy_version", pol.Version())
	writeJSON(w, http.StatusOK, &TokenResponse{
		Token: base64.URLEncoding.EncodeToString(token), TokenID: tokenID, ExpiresAt: claims.Expiry,
		Granted: rightStrings(res.Granted), Denied: denied, PolicyVersion: pol.Version(), KeyID: keyID,
	})
}

// commitAudit commits rec through the audit log. When that fails it logs,
// answers 503 and returns false: no answer leaves the issuer unaudited.
func (is *Issuer) commitAudit(w http.ResponseWriter, r *http.Request, rec *AuditRecord) bool {
	if err := is.audit.Commit(r.Context(), rec); err != nil {
		is.log.Error("audit commit failed", "err", err, "kind", rec.Kind, "token_id", rec.TokenID)
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "audit trail unavailable", nil)
		return false
	}
	return true
}

func rightStrings(rs []spec.Right) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// JWKS returns the published root keys as a JSON Web Key Set.
func (is *Issuer) JWKS() ([]byte, error) {
	pks := is.state.PublicKeys()
	keys := make([]verifier.RootKey, len(pks))
	for i, k := range pks {
		keys[i] = verifier.RootKey{ID: k.ID, Public: k.Public}
	}
	ks, err := verifier.NewKeySet(keys...)
	if err != nil {
		return nil, err
	}
	return ks.MarshalJWKS()
}

func (is *Issuer) handleKeys(w http.ResponseWriter, r *http.Request) {
	b, err := is.JWKS()
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, ProblemInternal, "cannot encode keys", nil)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "max-age=60")
	w.Write(b)
}

func (is *Issuer) handleReady(w http.ResponseWriter, r *http.Request) {
	var why []string
	if !is.booted.Load() {
		why = append(why, "starting")
	}
	if !is.node.Ready() {
		why = append(why, "raft not ready")
	}
	if _, _, err := is.state.ActiveKey(); err != nil {
		why = append(why, "no root key")
	}
	if _, err := is.state.Policy(); err != nil {
		why = append(why, "no policy")
	}
	if len(why) > 0 {
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, strings.Join(why, "; "), nil)
		return
	}
	w.Write([]byte("ready\n"))
}

func (is *Issuer) handleGetPolicy(w http.ResponseWriter, r *http.Request, _ spiffeid.ID) {
	version, src, err := is.state.PolicySource()
	if err != nil {
		writeProblem(w, http.StatusNotFound, ProblemNotFound, "no policy set", nil)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Writ-Policy-Version", version)
	w.Write(src)
}

func (is *Issuer) handlePutPolicy(w http.ResponseWriter, r *http.Request, admin spiffeid.ID) {
	body, ok := is.readBody(w, r)
	if !ok {
		return
	}
	if _, err := policy.Parse(body); err != nil {
		writeProblem(w, http.StatusBadRequest, ProblemBadPolicy, err.Error(), nil)
		return
	}
	version, err := is.SetPolicy(r.Context(), admin, body)
	if err != nil {
		is.log.Error("set policy failed", "err", err)
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "cannot commit policy", nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"policy_version": version})
}

// AuditPage is the body of GET /v1/admin/audit.
type AuditPage struct {
	Records  []AuditRecord `json:"records"`
	HeadSeq  uint64        `json:"head_seq"`
	HeadHash string        `json:"head_hash"`
	// Verified is true when the returned records chain to each other (and
	// to the genesis when from=1). It checks consistency of this page only;
	// auditors should re-verify from genesis with VerifyAuditChain and
	// compare the head hash with one recorded independently.
	Verified bool `json:"verified"`
}

func (is *Issuer) handleAudit(w http.ResponseWriter, r *http.Request, _ spiffeid.ID) {
	q := r.URL.Query()
	from, limit := uint64(1), 100
	if v := q.Get("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "from: want a sequence number >= 1", nil)
			return
		}
		from = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "limit: want 1 to 1000", nil)
			return
		}
		limit = n
	}
	if err := is.node.Barrier(r.Context()); err != nil {
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "cannot read a linearizable audit view", nil)
		return
	}
	recs, err := is.state.AuditRecords(from, limit)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, ProblemInternal, "cannot read audit records", nil)
		return
	}
	if recs == nil {
		recs = []AuditRecord{}
	}
	page := AuditPage{Records: recs}
	page.HeadSeq, page.HeadHash = is.state.AuditHead()
	if len(recs) > 0 {
		page.Verified = VerifyAuditChain(recs[0].Prev, recs[0].Seq, recs) == nil && (recs[0].Seq != 1 || recs[0].Prev == "")
	}
	writeJSON(w, http.StatusOK, &page)
}
