package issuer

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/writ-dev/writ/internal/credential"
)

// How a caller proved its identity; recorded in audit records.
const (
	credX509 = "x509-svid"
	credJWT  = "jwt-svid"
)

// authFailure says why a caller could not be authenticated. reason is a
// stable code (metrics label and problem detail); it never contains the
// credential.
type authFailure struct {
	reason string
	detail string
}

// String is the problem detail: the stable reason code, then the text.
func (f *authFailure) String() string { return f.reason + ": " + f.detail }

// jwtReasons maps credential's sentinels to the stable reason codes the
// API reports (spec/openapi.yaml).
var jwtReasons = []struct {
	err    error
	reason string
}{
	{credential.ErrTooLarge, "jwt_too_large"},
	{credential.ErrEncrypted, "jwt_encrypted"},
	{credential.ErrHeader, "jwt_header"},
	{credential.ErrSubject, "jwt_subject"},
	{credential.ErrMalformed, "jwt_malformed"},
	{credential.ErrAlgorithm, "jwt_algorithm"},
	{credential.ErrKeyID, "jwt_key_id"},
	{credential.ErrAudience, "jwt_audience"},
	{credential.ErrExpired, "jwt_expired"},
	{credential.ErrNotYetValid, "jwt_not_yet_valid"},
	{credential.ErrLifetime, "jwt_lifetime"},
	{credential.ErrSignature, "jwt_signature"},
}

// verifyJWT validates a JWT-SVID presented by a caller and returns its
// subject.
func (is *Issuer) verifyJWT(token string) (spiffeid.ID, *authFailure) {
	if is.cfg.JWTBundles == nil {
		return spiffeid.ID{}, &authFailure{"jwt_not_accepted", "this issuer accepts no JWT-SVIDs (no JWT bundle source configured)"}
	}
	svid, err := credential.VerifyJWTSVID(token, is.cfg.JWTBundles, is.cfg.JWT)
	if err != nil {
		reason := "jwt_invalid"
		for _, jr := range jwtReasons {
			if errors.Is(err, jr.err) {
				reason = jr.reason
				break
			}
		}
		is.log.Info("JWT-SVID refused", "reason", reason, "err", err)
		return spiffeid.ID{}, &authFailure{reason, "JWT-SVID refused"}
	}
	return svid.ID, nil
}

// connAuth remembers, per TLS connection, the last successful
// verification of the client certificate: a keep-alive connection can
// outlive the certificate's validity or the CA that signed it, and a
// resumed TLS session skips the handshake's verification.
type connAuth struct {
	mu       sync.Mutex
	id       spiffeid.ID
	bundle   *x509bundle.Bundle // the bundle it verified against
	notAfter time.Time          // earliest NotAfter of the presented chain
	ok       bool
}

type connAuthKey struct{}

// withConnAuth is the http.Server's ConnContext: each connection gets its
// own verification cache.
func withConnAuth(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connAuthKey{}, &connAuth{})
}

// peerID returns the SPIFFE ID of the TLS client certificate; ok is false
// when none was presented. The certificate is verified on every request
// against the current bundle of its trust domain at the issuer's clock
// (credential.VerifyPeer); the result is reused on a connection while the
// bundle is unchanged and the chain still valid, which costs a bundle
// lookup and comparison instead of a signature check.
func (is *Issuer) peerID(r *http.Request) (id spiffeid.ID, ok bool, f *authFailure) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return spiffeid.ID{}, false, nil
	}
	leaf := r.TLS.PeerCertificates[0]
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return spiffeid.ID{}, false, &authFailure{"x509_not_svid", "client certificate is not an X.509-SVID"}
	}
	now := is.cfg.Now()
	bundle, err := is.cfg.Bundles.GetX509BundleForTrustDomain(id.TrustDomain())
	if err != nil {
		return spiffeid.ID{}, false, &authFailure{"x509_untrusted", "no trust bundle for the client certificate's trust domain"}
	}
	ca, _ := r.Context().Value(connAuthKey{}).(*connAuth)
	if ca == nil {
		ca = &connAuth{} // not served by New's server: verify every time
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if ca.ok && ca.id == id && now.Before(ca.notAfter) && ca.bundle.Equal(bundle) {
		return id, true, nil
	}
	notAfter := leaf.NotAfter
	for _, c := range r.TLS.PeerCertificates {
		if c.NotAfter.Before(notAfter) {
			notAfter = c.NotAfter
		}
	}
	vid, err := is.verifyPeer(r.TLS.PeerCertificates)
	if err != nil || vid != id {
		ca.ok = false
		is.log.Info("client certificate refused", "caller", id.String(), "err", err)
		return spiffeid.ID{}, false, &authFailure{"x509_untrusted", "client certificate no longer verifies (expired, or its CA left the trust bundle): reconnect with a current SVID"}
	}
	ca.id, ca.bundle, ca.notAfter, ca.ok = id, bundle, notAfter, true
	return id, true, nil
}

// verifyPeer checks a presented client certificate chain with
// credential.VerifyPeer against the current bundles at the issuer's clock.
func (is *Issuer) verifyPeer(certs []*x509.Certificate) (spiffeid.ID, error) {
	raw := make([][]byte, len(certs))
	for i, c := range certs {
		raw[i] = c.Raw
	}
	return credential.VerifyPeer(raw, is.cfg.Bundles, is.cfg.X509)
}

// bearer returns the credential of an "Authorization: Bearer" header;
// present is false when there is no Authorization header at all.
func bearer(r *http.Request) (token string, present bool, f *authFailure) {
	vals := r.Header.Values("Authorization")
	switch {
	case len(vals) == 0:
		return "", false, nil
	case len(vals) > 1:
		return "", true, &authFailure{"bad_authorization", "more than one Authorization header"}
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
		return "", true, &authFailure{"bad_authorization", `Authorization: want "Bearer <JWT-SVID>"`}
	}
	return tok, true, nil
}

// authenticate returns the caller of a token request: the subject of a
// JWT-SVID (jwt, from a bearer header or a token-exchange subject_token)
// or the X.509-SVID of the TLS client certificate. When both are
// presented they must name the same SPIFFE ID.
func (is *Issuer) authenticate(r *http.Request, jwt string) (spiffeid.ID, string, *authFailure) {
	certID, hasCert, f := is.peerID(r)
	if f != nil {
		return spiffeid.ID{}, "", f
	}
	if jwt == "" {
		if !hasCert {
			return spiffeid.ID{}, "", &authFailure{"no_credential", "present an X.509-SVID as TLS client certificate or a JWT-SVID as bearer token"}
		}
		return certID, credX509, nil
	}
	id, f := is.verifyJWT(jwt)
	if f != nil {
		return spiffeid.ID{}, "", f
	}
	if hasCert && certID != id {
		return spiffeid.ID{}, "", &authFailure{"credentials_disagree", "the client certificate and the JWT-SVID name different SPIFFE IDs"}
	}
	return id, credJWT, nil
}

// admin wraps an admin handler: the caller must present an X.509-SVID
// listed in Config.Admins over mTLS. Bearer credentials are never accepted
// here: an admin's JWT-SVID can be replayed by whoever it was shown to.
func (is *Issuer) admin(h func(http.ResponseWriter, *http.Request, spiffeid.ID)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := is.requirePeer(w, r, func(id spiffeid.ID) bool { return is.admins[id] },
			"admin endpoints require an admin X.509-SVID as TLS client certificate", "admin SVID required")
		if ok {
			h(w, r, id)
		}
	}
}

// requirePeer admits a request whose TLS client certificate is a verified
// X.509-SVID that allowed accepts; otherwise it answers 401 (none, or one
// that no longer verifies: missing says what to present) or 403 (refused)
// and returns false.
func (is *Issuer) requirePeer(w http.ResponseWriter, r *http.Request, allowed func(spiffeid.ID) bool, missing, refused string) (spiffeid.ID, bool) {
	id, ok, f := is.peerID(r)
	switch {
	case f != nil:
		writeProblem(w, http.StatusUnauthorized, ProblemUnauthenticated, f.String(), nil)
		return spiffeid.ID{}, false
	case !ok:
		writeProblem(w, http.StatusUnauthorized, ProblemUnauthenticated, missing, nil)
		return spiffeid.ID{}, false
	case !allowed(id):
		is.log.Warn("endpoint refused", "caller", id.String(), "path", r.URL.Path)
		writeProblem(w, http.StatusForbidden, ProblemForbidden, refused, nil)
		return spiffeid.ID{}, false
	}
	return id, true
}
