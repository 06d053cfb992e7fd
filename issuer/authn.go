package issuer

import (
	"errors"
	"net/http"
	"strings"

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
		return spiffeid.ID{}, &authFailure{reason, "JWT-SVID refused: " + reason}
	}
	return svid.ID, nil
}

// peerID returns the SPIFFE ID of the TLS client certificate, which the
// handshake has verified (serverTLS); ok is false when none was presented.
func peerID(r *http.Request) (id spiffeid.ID, ok bool, f *authFailure) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return spiffeid.ID{}, false, nil
	}
	id, err := x509svid.IDFromCert(r.TLS.PeerCertificates[0])
	if err != nil {
		return spiffeid.ID{}, false, &authFailure{"x509_not_svid", "client certificate is not an X.509-SVID"}
	}
	return id, true, nil
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
	certID, hasCert, f := peerID(r)
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
		id, ok, f := peerID(r)
		switch {
		case f != nil:
			writeProblem(w, http.StatusUnauthorized, ProblemUnauthenticated, f.detail, nil)
			return
		case !ok:
			writeProblem(w, http.StatusUnauthorized, ProblemUnauthenticated, "admin endpoints require an admin X.509-SVID as TLS client certificate", nil)
			return
		case !is.admins[id]:
			is.log.Warn("admin endpoint refused", "caller", id.String(), "path", r.URL.Path)
			writeProblem(w, http.StatusForbidden, ProblemForbidden, "admin SVID required", nil)
			return
		}
		h(w, r, id)
	}
}
