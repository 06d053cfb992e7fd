package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// SVID is an X.509-SVID with its private key.
//
// The fields are shared with the values returned by TLSCertificate and
// X509SVID: treat an SVID as read-only once issued or loaded. Reading it
// from several goroutines is safe.
type SVID struct {
	// ID is the SPIFFE ID the SVID was issued for. With WithNoURI or
	// WithExtraURI the certificate does not carry exactly this ID.
	ID spiffeid.ID

	// Certificates is the chain: the leaf first, then any intermediates.
	// Roots are not included; they come from the trust bundle.
	Certificates []*x509.Certificate

	// PrivateKey is the leaf's private key.
	PrivateKey crypto.Signer
}

// TLSCertificate returns the SVID as a tls.Certificate, for servers and
// clients configured without go-spiffe's tlsconfig helpers.
func (s *SVID) TLSCertificate() tls.Certificate {
	raw := make([][]byte, len(s.Certificates))
	for i, c := range s.Certificates {
		raw[i] = c.Raw
	}
	var leaf *x509.Certificate
	if len(s.Certificates) > 0 {
		leaf = s.Certificates[0]
	}
	return tls.Certificate{Certificate: raw, PrivateKey: s.PrivateKey, Leaf: leaf}
}

// X509SVID returns the SVID as go-spiffe's type, which is also an
// x509svid.Source for spiffetls/tlsconfig. The certificate slice is copied;
// the certificates and key are shared.
func (s *SVID) X509SVID() *x509svid.SVID {
	return &x509svid.SVID{
		ID:           s.ID,
		Certificates: append([]*x509.Certificate(nil), s.Certificates...),
		PrivateKey:   s.PrivateKey,
	}
}

// LoadSVID loads an X.509-SVID from a PEM certificate chain (leaf first)
// and a PEM PKCS#8 private key, as written by (*SVID).WriteFiles. certFile
// and keyFile may be the same file.
//
// It uses go-spiffe's x509svid.Load, so it returns an error if a file
// cannot be read or parsed, the leaf does not carry exactly one SPIFFE ID
// with a path, the leaf is a CA or lacks digitalSignature or has
// keyCertSign or cRLSign, an intermediate is not a CA, or the key does not
// match the leaf. It does not verify the chain against a bundle: use
// x509svid.Verify for that. Missing files match fs.ErrNotExist.
func LoadSVID(certFile, keyFile string) (*SVID, error) {
	s, err := x509svid.Load(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("pki: load SVID: %w", err)
	}
	return &SVID{ID: s.ID, Certificates: s.Certificates, PrivateKey: s.PrivateKey}, nil
}
