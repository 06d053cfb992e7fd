package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// File names inside a CA directory, see (*CA).WriteFiles and LoadCA.
const (
	// CACertFile holds the PEM CA certificate. It is also the trust bundle
	// file for LoadBundle.
	CACertFile = "ca.pem"
	// CAKeyFile holds the PEM PKCS#8 CA private key, mode 0600.
	CAKeyFile = "ca-key.pem"
)

const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"

	certPerm = 0o644
	keyPerm  = 0o600
	dirPerm  = 0o700
)

// WriteOption changes how the WriteFiles methods write.
type WriteOption func(*writeConfig)

type writeConfig struct {
	overwrite bool
}

// WithOverwrite lets WriteFiles replace existing files. Each file is
// replaced atomically (written to a temporary file, then renamed), but the
// pair is not: a crash in between can leave a certificate and a key that
// do not match.
func WithOverwrite() WriteOption {
	return func(c *writeConfig) { c.overwrite = true }
}

// WriteFiles writes the CA certificate to dir/ca.pem (mode 0644) and its
// PKCS#8 private key to dir/ca-key.pem (mode 0600), creating dir with mode
// 0700 if it does not exist.
//
// Unless WithOverwrite is given it returns an error wrapping ErrFileExists
// if either file exists, and leaves both untouched. Other errors come from
// the file system.
func (ca *CA) WriteFiles(dir string, opts ...WriteOption) error {
	key, err := encodeKey(ca.key)
	if err != nil {
		return fmt.Errorf("pki: write CA: %w", err)
	}
	if err := writePair(dir, CACertFile, CAKeyFile, encodeCerts([]*x509.Certificate{ca.cert}), key, opts); err != nil {
		return fmt.Errorf("pki: write CA: %w", err)
	}
	return nil
}

// WriteFiles writes the certificate chain to dir/<name>.pem (mode 0644)
// and the PKCS#8 private key to dir/<name>-key.pem (mode 0600), creating
// dir with mode 0700 if it does not exist. LoadSVID reads them back.
//
// name must be a plain file name without a path separator. Unless
// WithOverwrite is given it returns an error wrapping ErrFileExists if
// either file exists, and leaves both untouched. Other errors come from
// the file system or from encoding the key.
func (s *SVID) WriteFiles(dir, name string, opts ...WriteOption) error {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name || !filepath.IsLocal(name) {
		return fmt.Errorf("pki: write SVID: invalid file name %q", name)
	}
	if len(s.Certificates) == 0 {
		return errors.New("pki: write SVID: no certificates")
	}
	key, err := encodeKey(s.PrivateKey)
	if err != nil {
		return fmt.Errorf("pki: write SVID: %w", err)
	}
	if err := writePair(dir, name+".pem", name+"-key.pem", encodeCerts(s.Certificates), key, opts); err != nil {
		return fmt.Errorf("pki: write SVID: %w", err)
	}
	return nil
}

// LoadCA reads a CA written by (*CA).WriteFiles from dir.
//
// It returns an error matching fs.ErrNotExist if a file is missing, and one
// wrapping ErrInvalidCA if ca.pem does not hold exactly one CA certificate
// with keyCertSign and exactly one URI SAN that is a trust domain SPIFFE ID,
// or ca-key.pem does not hold exactly one PKCS#8 key matching it. It does
// not check the validity period; LoadOrCreateCA does.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("pki: load CA: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("pki: load CA: %w", err)
	}
	ca, err := parseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: load CA from %s: %w", dir, err)
	}
	return ca, nil
}

// LoadOrCreateCA loads the CA in dir, or, if neither of its files exists,
// creates one with NewCA(td, now, ttl) and writes it there. created reports
// which happened. This is what `writ dev` does so that restarts keep their
// trust domain.
//
// It returns an error wrapping ErrTrustDomainMismatch if the stored CA is
// for another trust domain, ErrCANotValid if it is not valid at now,
// ErrFileExists if only one of the two files exists, and the errors of
// LoadCA, NewCA and WriteFiles otherwise. It is not safe to run from two
// processes on one dir at the same time.
func LoadOrCreateCA(dir string, td spiffeid.TrustDomain, now time.Time, ttl time.Duration) (ca *CA, created bool, err error) {
	ca, err = LoadCA(dir)
	switch {
	case err == nil:
		if ca.td != td {
			return nil, false, fmt.Errorf("pki: CA in %s is for %q, want %q: %w", dir, ca.td, td, ErrTrustDomainMismatch)
		}
		if now.Before(ca.cert.NotBefore) || now.After(ca.cert.NotAfter) {
			return nil, false, fmt.Errorf("pki: CA in %s: %w: at %v, valid %v to %v",
				dir, ErrCANotValid, now.UTC(), ca.cert.NotBefore, ca.cert.NotAfter)
		}
		return ca, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, err
	}
	ca, err = NewCA(td, now, ttl)
	if err != nil {
		return nil, false, err
	}
	if err := ca.WriteFiles(dir); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

// LoadBundle reads a PEM file of root certificates (such as ca.pem) as the
// X.509 bundle of td.
//
// It returns an error matching fs.ErrNotExist if the file is missing, and
// an error if it cannot be parsed, holds no certificate, or holds a
// certificate that is not a CA.
func LoadBundle(td spiffeid.TrustDomain, file string) (*x509bundle.Bundle, error) {
	b, err := x509bundle.Load(td, file)
	if err != nil {
		return nil, fmt.Errorf("pki: load bundle: %w", err)
	}
	auths := b.X509Authorities()
	if len(auths) == 0 {
		return nil, fmt.Errorf("pki: load bundle %s: no certificates", file)
	}
	for i, c := range auths {
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, fmt.Errorf("pki: load bundle %s: certificate %d is not a CA", file, i)
		}
	}
	return b, nil
}

// parseCA decodes and checks a CA certificate and key in PEM form.
func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	der, err := decodeOnePEM(certPEM, pemCertificate)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate: %w", ErrInvalidCA, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: parse certificate: %w", ErrInvalidCA, err)
	}
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA:
		return nil, fmt.Errorf("%w: certificate is not a CA", ErrInvalidCA)
	case cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return nil, fmt.Errorf("%w: certificate lacks keyCertSign", ErrInvalidCA)
	case len(cert.URIs) != 1:
		return nil, fmt.Errorf("%w: certificate has %d URI SANs, want 1", ErrInvalidCA, len(cert.URIs))
	}
	id, err := spiffeid.FromURI(cert.URIs[0])
	if err != nil {
		return nil, fmt.Errorf("%w: URI SAN: %w", ErrInvalidCA, err)
	}
	if id.Path() != "" {
		return nil, fmt.Errorf("%w: URI SAN %q is not a trust domain ID", ErrInvalidCA, id)
	}

	der, err = decodeOnePEM(keyPEM, pemPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("%w: key: %w", ErrInvalidCA, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: parse key: %w", ErrInvalidCA, err)
	}
	key, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: key type %T cannot sign", ErrInvalidCA, k)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: key does not match certificate", ErrInvalidCA)
	}
	return &CA{td: id.TrustDomain(), cert: cert, key: key}, nil
}

// decodeOnePEM returns the bytes of the only PEM block in data, which must
// be of type typ; anything but white space around it is an error.
func decodeOnePEM(data []byte, typ string) ([]byte, error) {
	block, rest := pem.Decode(data)
	switch {
	case block == nil:
		return nil, errors.New("no PEM block")
	case block.Type != typ:
		return nil, fmt.Errorf("PEM block type %q, want %q", block.Type, typ)
	case len(bytes.TrimSpace(rest)) != 0:
		return nil, errors.New("data after the PEM block")
	}
	return block.Bytes, nil
}

func encodeCerts(certs []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		// Encoding to a bytes.Buffer fails only on invalid headers; there are none.
		_ = pem.Encode(&buf, &pem.Block{Type: pemCertificate, Bytes: c.Raw})
	}
	return buf.Bytes()
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// writePair writes a certificate file and its key file into dir.
func writePair(dir, certName, keyName string, certPEM, keyPEM []byte, opts []WriteOption) error {
	var cfg writeConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return err
	}
	certPath, keyPath := filepath.Join(dir, certName), filepath.Join(dir, keyName)
	if cfg.overwrite {
		if err := replaceFile(keyPath, keyPEM, keyPerm); err != nil {
			return err
		}
		return replaceFile(certPath, certPEM, certPerm)
	}
	// Key first: if the certificate cannot be created, the key that was
	// just created is removed again, so a refusal changes nothing.
	if err := createFile(keyPath, keyPEM, keyPerm); err != nil {
		return err
	}
	if err := createFile(certPath, certPEM, certPerm); err != nil {
		_ = os.Remove(keyPath)
		return err
	}
	return nil
}

// createFile creates path with data and perm; it fails with ErrFileExists
// if path exists, and removes what it created on any other failure.
func createFile(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w", path, ErrFileExists)
	}
	if err != nil {
		return err
	}
	if err := finishFile(f, data, perm); err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

// replaceFile atomically replaces path with data and perm.
func replaceFile(path string, data []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if err := finishFile(f, data, perm); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// finishFile sets perm (the umask may have narrowed it), writes data,
// syncs and closes f.
func finishFile(f *os.File, data []byte, perm fs.FileMode) error {
	err := f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
