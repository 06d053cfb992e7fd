package clustertest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// NodePathPrefix is the SPIFFE ID path under which CA.NodeID names nodes.
const NodePathPrefix = "/writ/node/"

// CA is an in-memory certificate authority for one SPIFFE trust domain.
type CA struct {
	td     spiffeid.TrustDomain
	cert   *x509.Certificate
	key    crypto.Signer
	bundle *x509bundle.Bundle
}

// NewCA creates a CA for trustDomain (for example "writ.test").
func NewCA(tb testing.TB, trustDomain string) *CA {
	tb.Helper()
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		tb.Fatalf("trust domain %q: %v", trustDomain, err)
	}
	key := newKey(tb)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: "clustertest CA " + trustDomain},
		URIs:                  []*url.URL{td.ID().URL()},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatalf("create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("parse CA certificate: %v", err)
	}
	return &CA{td: td, cert: cert, key: key, bundle: x509bundle.FromX509Authorities(td, []*x509.Certificate{cert})}
}

// TrustDomain returns the CA's trust domain.
func (ca *CA) TrustDomain() spiffeid.TrustDomain { return ca.td }

// Bundle returns the CA's X.509 bundle (its trust anchor).
func (ca *CA) Bundle() *x509bundle.Bundle { return ca.bundle }

// NodeID returns the SPIFFE ID of the node named name:
// spiffe://<trust domain>/writ/node/<name>.
func (ca *CA) NodeID(tb testing.TB, name string) spiffeid.ID {
	tb.Helper()
	id, err := spiffeid.FromPath(ca.td, NodePathPrefix+name)
	if err != nil {
		tb.Fatalf("node id %q: %v", name, err)
	}
	return id
}

// SVID issues an X.509-SVID for id, valid for an hour.
func (ca *CA) SVID(tb testing.TB, id spiffeid.ID) *x509svid.SVID {
	tb.Helper()
	now := time.Now()
	return ca.SVIDValid(tb, id, now.Add(-time.Minute), now.Add(time.Hour))
}

// SVIDValid issues an X.509-SVID for id valid from notBefore to notAfter
// (for expired or not-yet-valid certificates).
func (ca *CA) SVIDValid(tb testing.TB, id spiffeid.ID, notBefore, notAfter time.Time) *x509svid.SVID {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		URIs:                  []*url.URL{id.URL()},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		tb.Fatalf("create SVID for %s: %v", id, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("marshal SVID key: %v", err)
	}
	svid, err := x509svid.ParseRaw(der, keyDER)
	if err != nil {
		tb.Fatalf("parse SVID for %s: %v", id, err)
	}
	return svid
}

// NodeTLS returns the server and client mTLS configs for the node named
// name, built with go-spiffe's tlsconfig: both present the node's SVID and
// accept only peers whose SVID is one of the node IDs in peers (which
// should include name itself, as a node dials itself in some raft paths).
func (ca *CA) NodeTLS(tb testing.TB, name string, peers ...string) (server, client *tls.Config) {
	tb.Helper()
	svid := ca.SVID(tb, ca.NodeID(tb, name))
	ids := make([]spiffeid.ID, 0, len(peers))
	for _, p := range peers {
		ids = append(ids, ca.NodeID(tb, p))
	}
	auth := tlsconfig.AuthorizeOneOf(ids...)
	return tlsconfig.MTLSServerConfig(svid, ca.bundle, auth), tlsconfig.MTLSClientConfig(svid, ca.bundle, auth)
}

// ClusterTLS returns the server and client mTLS configs for the node named
// name that accept any node of the CA's trust domain — any SPIFFE ID whose
// path starts with NodePathPrefix — so that nodes can join later without
// reconfiguring the others.
func (ca *CA) ClusterTLS(tb testing.TB, name string) (server, client *tls.Config) {
	tb.Helper()
	svid := ca.SVID(tb, ca.NodeID(tb, name))
	auth := tlsconfig.AdaptMatcher(func(id spiffeid.ID) error {
		if !id.MemberOf(ca.td) || !strings.HasPrefix(id.Path(), NodePathPrefix) {
			return fmt.Errorf("clustertest: %s is not a node of %s", id, ca.td)
		}
		return nil
	})
	return tlsconfig.MTLSServerConfig(svid, ca.bundle, auth), tlsconfig.MTLSClientConfig(svid, ca.bundle, auth)
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("generate key: %v", err)
	}
	return key
}

func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		tb.Fatalf("serial: %v", err)
	}
	return n
}
