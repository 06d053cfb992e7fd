package issuer

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/issuer/policy"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

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
		{"POST", "/v1/token", is.memberOnly(http.HandlerFunc(is.handleToken))},
		{"GET", "/v1/keys", http.HandlerFunc(is.handleKeys)},
		{"GET", "/healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })},
		{"GET", "/readyz", http.HandlerFunc(is.handleReady)},
		{"GET", "/metrics", promhttp.HandlerFor(is.registry, promhttp.HandlerOpts{})},
		{"GET", "/v1/admin/policy", is.admin(is.handleGetPolicy)},
		{"PUT", "/v1/admin/policy", is.admin(is.handlePutPolicy)},
		{"GET", "/v1/admin/audit", is.admin(is.handleAudit)},
		{"GET", "/v1/admin/cluster", is.admin(is.handleClusterStatus)},
		{"POST", "/v1/admin/cluster/join", is.admin(is.handleJoin)},
		{"POST", "/v1/admin/cluster/remove", is.admin(is.handleRemove)},
		{"POST", "/v1/admin/cluster/step-down", is.admin(is.handleStepDown)},
		{"GET", "/v1/sync", is.memberOnly(http.HandlerFunc(is.handleSync))},
		{"POST", "/v1/admin/revocations", is.admin(is.handleRevoke)},
		{"GET", "/v1/admin/revocations", is.admin(is.handleListRevocations)},
		{"GET", "/v1/admin/revocations/status", is.admin(is.handleSyncStatus)},
		{"GET", "/v1/admin/keys", is.admin(is.handleListKeys)},
		{"POST", "/v1/admin/keys/rotate", is.admin(is.handleRotate)},
		{"POST", "/v1/admin/keys/{id}/revoke", is.admin(is.handleRevokeKey)},
		{"POST", "/v1/internal/apply", http.HandlerFunc(is.handleInternalApply)},
		{"GET", "/v1/internal/receipts", http.HandlerFunc(is.handleInternalReceipts)},
		{"POST", "/v1/internal/read-index", http.HandlerFunc(is.handleReadIndex)},
		{"GET", "/v1/internal/status", http.HandlerFunc(is.handleInternalStatus)},
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

func (is *Issuer) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := readLimited(w, r, is.cfg.MaxBodyBytes)
	switch {
	case err == errTooLarge:
		writeProblem(w, http.StatusRequestEntityTooLarge, ProblemTooLarge, "body larger than "+strconv.FormatInt(is.cfg.MaxBodyBytes, 10)+" bytes", nil)
		return nil, false
	case err != nil:
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "cannot read body", nil)
		return nil, false
	}
	return body, true
}

// errTooLarge is returned by readLimited for a body over the limit.
var errTooLarge = errors.New("issuer: request body too large")

// readLimited reads at most limit bytes of the request body.
func readLimited(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errTooLarge
		}
		return nil, err
	}
	return body, nil
}

// pageLimit reads the limit query parameter of a paged read: 1 to 1000,
// default 100. A bad value is answered 400 and ok is false.
func pageLimit(w http.ResponseWriter, q url.Values) (limit int, ok bool) {
	v := q.Get("limit")
	if v == "" {
		return 100, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "limit: want 1 to 1000", nil)
		return 0, false
	}
	return n, true
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

// maxLeaderSilence is how long a follower may go without hearing from the
// leader and still call itself ready: past it, its view (the policy it
// mints under) may be arbitrarily stale.
const maxLeaderSilence = 5 * time.Second

func (is *Issuer) handleReady(w http.ResponseWriter, r *http.Request) {
	if why := is.notReady(); len(why) > 0 {
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, strings.Join(why, "; "), nil)
		return
	}
	w.Write([]byte("ready\n"))
}

// notReady lists why this node should not take traffic; empty when ready.
func (is *Issuer) notReady() []string {
	var why []string
	if r := is.removedReason(); r != "" {
		why = append(why, r)
	}
	if !is.booted.Load() {
		why = append(why, "starting")
	}
	if !is.node.Ready() {
		why = append(why, "raft not ready")
	}
	if st := is.node.Stats(); st.State == "Follower" && !st.LastContact.IsZero() && is.cfg.Now().Sub(st.LastContact) > maxLeaderSilence {
		why = append(why, "no contact with the leader for "+is.cfg.Now().Sub(st.LastContact).Round(time.Millisecond).String())
	}
	if _, _, err := is.state.ActiveKey(); err != nil {
		why = append(why, "no root key")
	}
	if _, err := is.state.Policy(); err != nil {
		why = append(why, "no policy")
	}
	return why
}

func (is *Issuer) handleGetPolicy(w http.ResponseWriter, r *http.Request, _ spiffeid.ID) {
	if err := is.linearize(r.Context()); err != nil {
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "cannot read the current policy", nil)
		return
	}
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
	from := uint64(1)
	limit, ok := pageLimit(w, q)
	if !ok {
		return
	}
	if v := q.Get("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "from: want a sequence number >= 1", nil)
			return
		}
		from = n
	}
	if err := is.linearize(r.Context()); err != nil {
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
