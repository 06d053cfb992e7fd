package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// ClockSkew is subtracted from the issuing time to get NotBefore, so that
// a peer whose clock runs slightly behind accepts a fresh certificate.
const ClockSkew = time.Minute

// CA is a certificate authority for one SPIFFE trust domain: a self-signed
// root certificate and its private key.
//
// A CA is immutable after construction and safe for concurrent use.
type CA struct {
	td   spiffeid.TrustDomain
	cert *x509.Certificate
	key  crypto.Signer
}

// NewCA creates a CA for td with a fresh ECDSA P-256 key. Its certificate
// is valid from now-ClockSkew to now+ttl, carries the URI SAN spiffe://td,
// basicConstraints CA=true with path length 0 (it signs leaves only) and
// key usage keyCertSign and cRLSign.
//
// It returns an error if td or now is zero, ttl is not positive, or key
// generation or signing fails.
func NewCA(td spiffeid.TrustDomain, now time.Time, ttl time.Duration) (*CA, error) {
	switch {
	case td.IsZero():
		return nil, errors.New("pki: new CA: trust domain is zero")
	case now.IsZero():
		return nil, errors.New("pki: new CA: time is zero")
	case ttl <= 0:
		return nil, fmt.Errorf("pki: new CA: ttl %v is not positive", ttl)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: new CA: generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("pki: new CA: %w", err)
	}
	now = now.UTC()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{"writ"},
			CommonName:   "writ CA " + td.Name(),
		},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(ttl),
		URIs:                  []*url.URL{td.ID().URL()},
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: new CA: sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: new CA: parse certificate: %w", err)
	}
	return &CA{td: td, cert: cert, key: key}, nil
}

// TrustDomain returns the trust domain the CA issues for.
func (ca *CA) TrustDomain() spiffeid.TrustDomain { return ca.td }

// Certificate returns the CA's root certificate. The certificate is shared:
// callers must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Bundle returns a new X.509 bundle for the CA's trust domain holding the
// CA certificate as its only authority. Each call returns a fresh bundle
// that the caller owns and may extend (for example during rotation).
func (ca *CA) Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(ca.td, []*x509.Certificate{ca.cert})
}

// Option changes a certificate issued by IssueSVID.
type Option func(*issueConfig)

type issueConfig struct {
	dns       []string
	ips       []netip.Addr
	isCA      bool
	extraURIs []*url.URL
	noURI     bool
	notBefore time.Time
	notAfter  time.Time
	validity  bool
}

// WithDNS adds DNS SANs, for servers that plain TLS clients (curl, browsers)
// reach by host name, for example "localhost".
func WithDNS(names ...string) Option {
	return func(c *issueConfig) { c.dns = append(c.dns, names...) }
}

// WithIP adds IP address SANs, for servers that plain TLS clients reach by
// address, for example 127.0.0.1. IssueSVID fails on an invalid address.
func WithIP(addrs ...netip.Addr) Option {
	return func(c *issueConfig) { c.ips = append(c.ips, addrs...) }
}

// WithCA sets basicConstraints CA to isCA. A leaf with CA=true is not a
// valid X.509-SVID: this option exists to test that verifiers reject it.
func WithCA(isCA bool) Option {
	return func(c *issueConfig) { c.isCA = isCA }
}

// WithExtraURI adds URI SANs after the SPIFFE ID. An SVID with more than
// one URI SAN is invalid: this option exists to test that verifiers reject
// it.
func WithExtraURI(uris ...*url.URL) Option {
	return func(c *issueConfig) { c.extraURIs = append(c.extraURIs, uris...) }
}

// WithNoURI leaves the SPIFFE ID out of the certificate (extra URIs from
// WithExtraURI are still added). An SVID without a URI SAN is invalid: this
// option exists to test that verifiers reject it.
func WithNoURI() Option {
	return func(c *issueConfig) { c.noURI = true }
}

// WithValidity sets NotBefore and NotAfter exactly, replacing the window
// computed from now and ttl; it is not clamped to the CA's validity. It
// exists to issue expired and not-yet-valid certificates for tests.
// IssueSVID fails if notAfter is before notBefore.
func WithValidity(notBefore, notAfter time.Time) Option {
	return func(c *issueConfig) {
		c.notBefore, c.notAfter, c.validity = notBefore, notAfter, true
	}
}

// IssueSVID issues an X.509-SVID for id with a fresh ECDSA P-256 key. The
// certificate is valid from now-ClockSkew to now+ttl, clamped to the CA's
// NotAfter, unless WithValidity is given. The returned chain holds the leaf
// only; the CA certificate is distributed as the bundle.
//
// It returns an error wrapping ErrTrustDomainMismatch if id is not in the
// CA's trust domain, ErrCANotValid if the CA is not valid at now, and an
// error if id has no path (a trust domain ID is not a workload identity),
// now is zero, ttl is not positive, an option is invalid, or signing fails.
func (ca *CA) IssueSVID(id spiffeid.ID, now time.Time, ttl time.Duration, opts ...Option) (*SVID, error) {
	var cfg issueConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	switch {
	case id.IsZero():
		return nil, errors.New("pki: issue SVID: SPIFFE ID is zero")
	case !id.MemberOf(ca.td):
		return nil, fmt.Errorf("pki: issue SVID %q: %w: CA is for %q", id, ErrTrustDomainMismatch, ca.td)
	case id.Path() == "":
		return nil, fmt.Errorf("pki: issue SVID %q: SPIFFE ID has no path", id)
	case now.IsZero():
		return nil, fmt.Errorf("pki: issue SVID %q: time is zero", id)
	case ttl <= 0:
		return nil, fmt.Errorf("pki: issue SVID %q: ttl %v is not positive", id, ttl)
	case now.Before(ca.cert.NotBefore) || now.After(ca.cert.NotAfter):
		return nil, fmt.Errorf("pki: issue SVID %q: %w: at %v, CA valid %v to %v",
			id, ErrCANotValid, now.UTC(), ca.cert.NotBefore, ca.cert.NotAfter)
	}

	now = now.UTC()
	notBefore, notAfter := now.Add(-ClockSkew), now.Add(ttl)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	if cfg.validity {
		notBefore, notAfter = cfg.notBefore.UTC(), cfg.notAfter.UTC()
		if notAfter.Before(notBefore) {
			return nil, fmt.Errorf("pki: issue SVID %q: NotAfter %v before NotBefore %v", id, notAfter, notBefore)
		}
	}

	var uris []*url.URL
	if !cfg.noURI {
		uris = append(uris, id.URL())
	}
	uris = append(uris, cfg.extraURIs...)
	ips := make([]net.IP, 0, len(cfg.ips))
	for _, a := range cfg.ips {
		if !a.IsValid() {
			return nil, fmt.Errorf("pki: issue SVID %q: invalid IP address option", id)
		}
		ips = append(ips, net.IP(a.Unmap().AsSlice()))
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: issue SVID %q: generate key: %w", id, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("pki: issue SVID %q: %w", id, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"writ"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		URIs:                  uris,
		DNSNames:              cfg.dns,
		IPAddresses:           ips,
		IsCA:                  cfg.isCA,
		BasicConstraintsValid: true,
		// ECDHE key exchange with an ECDSA key needs only digitalSignature;
		// keyEncipherment applies to RSA key transport and keyAgreement to
		// static ECDH, neither of which these certificates are used for.
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: issue SVID %q: sign certificate: %w", id, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: issue SVID %q: parse certificate: %w", id, err)
	}
	return &SVID{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key}, nil
}

// serialLimit is 2^128: serial numbers are uniform in [1, 2^128).
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

func newSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}
