package spiffefile

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
)

// snapshot is one consistent, fully validated load of every file. It is
// never modified after it is published.
type snapshot struct {
	svid       *x509svid.SVID
	bundles    map[spiffeid.TrustDomain]*x509bundle.Bundle
	jwtBundles map[spiffeid.TrustDomain]*jwtbundle.Bundle // only trust domains whose file is a SPIFFE bundle with JWT authorities
	expiry     time.Time                                  // earliest NotAfter of the SVID chain
	sum        [32]byte                                   // hash of the file contents it was built from
}

// contents are the raw bytes of every file, read once per load so that
// what is hashed is exactly what is parsed.
type contents struct {
	cert, key []byte
	bundles   map[spiffeid.TrustDomain][]byte
	sum       [32]byte
}

// readAll reads every configured file and hashes the contents in a fixed
// order (tds is sorted).
func readAll(cfg *Config, tds []spiffeid.TrustDomain) (*contents, error) {
	c := &contents{bundles: make(map[spiffeid.TrustDomain][]byte, len(tds))}
	var err error
	if c.cert, err = readFile(cfg.CertFile); err != nil {
		return nil, err
	}
	if cfg.KeyFile == cfg.CertFile {
		c.key = c.cert
	} else if c.key, err = readFile(cfg.KeyFile); err != nil {
		return nil, err
	}
	h := sha256.New()
	writeField := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	writeField(c.cert)
	writeField(c.key)
	for _, td := range tds {
		b, err := readFile(cfg.Bundles[td])
		if err != nil {
			return nil, err
		}
		c.bundles[td] = b
		writeField([]byte(td.Name()))
		writeField(b)
	}
	h.Sum(c.sum[:0])
	return c, nil
}

// readFile reads at most MaxFileBytes from path.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, MaxFileBytes)
	}
	return b, nil
}

// build parses and checks c into a snapshot. now is the time the SVID must
// be valid at.
func build(cfg *Config, c *contents, now time.Time) (*snapshot, error) {
	bundles := make(map[spiffeid.TrustDomain]*x509bundle.Bundle, len(c.bundles))
	jwtBundles := make(map[spiffeid.TrustDomain]*jwtbundle.Bundle)
	for td, data := range c.bundles {
		b, jb, err := parseBundle(td, data)
		if err != nil {
			return nil, fmt.Errorf("bundle %s for %q: %w", cfg.Bundles[td], td, err)
		}
		bundles[td] = b
		if jb != nil {
			jwtBundles[td] = jb
		}
	}
	svid, err := parseSVID(c.cert, c.key)
	if err != nil {
		return nil, fmt.Errorf("SVID %s, %s: %w", cfg.CertFile, cfg.KeyFile, err)
	}
	expiry, err := checkSVID(svid, bundles, now)
	if err != nil {
		return nil, fmt.Errorf("SVID %s: %w", cfg.CertFile, err)
	}
	return &snapshot{svid: svid, bundles: bundles, jwtBundles: jwtBundles, expiry: expiry, sum: c.sum}, nil
}

// parseSVID decodes a PEM chain and a PEM PKCS#8 key strictly (a truncated
// last block is an error, not the end of the file) and lets go-spiffe
// check that they form an X.509-SVID whose key matches the leaf. certPEM
// may also hold the key and keyPEM the chain.
func parseSVID(certPEM, keyPEM []byte) (*x509svid.SVID, error) {
	certs, err := decodePEM(certPEM, pemCertificate, pemPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate file: %w", ErrInvalidSVID, err)
	}
	keys, err := decodePEM(keyPEM, pemPrivateKey, pemCertificate)
	if err != nil {
		return nil, fmt.Errorf("%w: key file: %w", ErrInvalidSVID, err)
	}
	if len(keys) != 1 {
		return nil, fmt.Errorf("%w: key file holds %d private keys, want 1", ErrInvalidSVID, len(keys))
	}
	svid, err := x509svid.ParseRaw(bytes.Join(certs, nil), keys[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSVID, err)
	}
	return svid, nil
}

// checkSVID checks that every certificate of the chain is valid at now and,
// when a bundle for the SVID's trust domain is configured, that the chain
// verifies against it. It returns the earliest NotAfter of the chain.
func checkSVID(svid *x509svid.SVID, bundles map[spiffeid.TrustDomain]*x509bundle.Bundle, now time.Time) (time.Time, error) {
	var expiry time.Time
	for i, c := range svid.Certificates {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return time.Time{}, fmt.Errorf("%w: certificate %d of %q is valid %v to %v, not at %v",
				ErrInvalidSVID, i, svid.ID, c.NotBefore.UTC(), c.NotAfter.UTC(), now.UTC())
		}
		if expiry.IsZero() || c.NotAfter.Before(expiry) {
			expiry = c.NotAfter
		}
	}
	if b, ok := bundles[svid.ID.TrustDomain()]; ok {
		if _, _, err := x509svid.Verify(svid.Certificates, b, x509svid.WithTime(now)); err != nil {
			return time.Time{}, fmt.Errorf("%w: %q does not chain to its trust bundle: %w", ErrInvalidSVID, svid.ID, err)
		}
	}
	return expiry, nil
}

// parseBundle decodes a bundle file strictly. A file whose first non-space
// byte is '{' is a SPIFFE bundle (RFC 7517 JWK set with "x509-svid" and
// "jwt-svid" keys, as `spire-server bundle show -format spiffe` writes it)
// and yields both bundles; anything else is PEM CA certificates and yields
// no JWT bundle. Either way at least one X.509 authority is required, and
// every one must be a CA certificate.
func parseBundle(td spiffeid.TrustDomain, data []byte) (*x509bundle.Bundle, *jwtbundle.Bundle, error) {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		sb, err := spiffebundle.Parse(td, data)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: SPIFFE bundle: %w", ErrInvalidBundle, err)
		}
		certs := sb.X509Authorities()
		if err := checkAuthorities(certs); err != nil {
			return nil, nil, err
		}
		var jb *jwtbundle.Bundle
		if len(sb.JWTAuthorities()) > 0 {
			jb = sb.JWTBundle()
		}
		return sb.X509Bundle(), jb, nil
	}
	ders, err := decodePEM(data, pemCertificate, "")
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidBundle, err)
	}
	certs := make([]*x509.Certificate, 0, len(ders))
	for i, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: certificate %d: %w", ErrInvalidBundle, i, err)
		}
		certs = append(certs, c)
	}
	if err := checkAuthorities(certs); err != nil {
		return nil, nil, err
	}
	return x509bundle.FromX509Authorities(td, certs), nil, nil
}

// checkAuthorities requires at least one certificate and only CAs.
func checkAuthorities(certs []*x509.Certificate) error {
	if len(certs) == 0 {
		return fmt.Errorf("%w: no certificates", ErrInvalidBundle)
	}
	for i, c := range certs {
		if !c.BasicConstraintsValid || !c.IsCA {
			return fmt.Errorf("%w: certificate %d is not a CA", ErrInvalidBundle, i)
		}
	}
	return nil
}

// decodePEM returns the contents of the PEM blocks of type want in data,
// in order. Blocks of type skip (if not empty) are ignored; any other type
// is an error. Text before a block is allowed, as pem.Decode allows it,
// but anything other than white space after the last complete block is an
// error: that is what a file cut short in the middle of a write looks like.
// At least one block of any accepted type must be present.
func decodePEM(data []byte, want, skip string) ([][]byte, error) {
	var out [][]byte
	found := false
	rest := data
	for {
		block, r := pem.Decode(rest)
		if block == nil {
			break
		}
		rest = r
		found = true
		switch block.Type {
		case want:
			out = append(out, block.Bytes)
		case skip:
			if skip == "" {
				return nil, fmt.Errorf("unexpected PEM block type %q", block.Type)
			}
		default:
			return nil, fmt.Errorf("unexpected PEM block type %q", block.Type)
		}
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		if !found {
			return nil, errors.New("no complete PEM block")
		}
		return nil, errors.New("truncated or trailing data after the last PEM block")
	}
	if !found {
		return nil, errors.New("no PEM block")
	}
	return out, nil
}
