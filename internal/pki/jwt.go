package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// File names inside a CA directory for JWT-SVIDs.
const (
	// JWTKeyFile holds the PEM PKCS#8 key that signs JWT-SVIDs, mode 0600.
	JWTKeyFile = "jwt-key.pem"
	// BundleFile holds the SPIFFE bundle (JWK set) of the trust domain:
	// the CA certificate as X.509 authority and the JWT key as JWT
	// authority.
	BundleFile = "bundle.json"
)

// JWTAuthority signs JWT-SVIDs for one trust domain with an ECDSA P-256
// key (ES256). It is immutable and safe for concurrent use.
type JWTAuthority struct {
	td  spiffeid.TrustDomain
	key *ecdsa.PrivateKey
	kid string
}

// NewJWTAuthority creates a JWT authority for td with a fresh key.
func NewJWTAuthority(td spiffeid.TrustDomain) (*JWTAuthority, error) {
	if td.IsZero() {
		return nil, errors.New("pki: new JWT authority: trust domain is zero")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: new JWT authority: %w", err)
	}
	return newJWTAuthority(td, key)
}

func newJWTAuthority(td spiffeid.TrustDomain, key *ecdsa.PrivateKey) (*JWTAuthority, error) {
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("pki: JWT authority: %w", err)
	}
	// The key id is derived from the key, so a reloaded key keeps its id.
	sum := sha256.Sum256(spki)
	return &JWTAuthority{td: td, key: key, kid: base64.RawURLEncoding.EncodeToString(sum[:16])}, nil
}

// KeyID is the "kid" of the signing key in JWT-SVID headers and bundles.
func (a *JWTAuthority) KeyID() string { return a.kid }

// Public returns the verification key.
func (a *JWTAuthority) Public() crypto.PublicKey { return a.key.Public() }

// Sign issues a JWT-SVID for id (which must be in the authority's trust
// domain) with the given audience, issued at now and valid for ttl.
func (a *JWTAuthority) Sign(id spiffeid.ID, audience []string, now time.Time, ttl time.Duration) (string, error) {
	switch {
	case id.TrustDomain() != a.td:
		return "", fmt.Errorf("pki: sign JWT-SVID: %w: %q is not in %q", ErrTrustDomainMismatch, id, a.td)
	case len(audience) == 0:
		return "", errors.New("pki: sign JWT-SVID: an audience is required")
	case ttl <= 0:
		return "", fmt.Errorf("pki: sign JWT-SVID: ttl %v is not positive", ttl)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: a.key, KeyID: a.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("pki: sign JWT-SVID: %w", err)
	}
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{
		Subject:  id.String(),
		Audience: jwt.Audience(audience),
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(ttl)),
	}).Serialize()
	if err != nil {
		return "", fmt.Errorf("pki: sign JWT-SVID: %w", err)
	}
	return tok, nil
}

// LoadOrCreateJWTAuthority loads dir/jwt-key.pem as the JWT authority of
// td, or creates and writes a new one if the file does not exist.
func LoadOrCreateJWTAuthority(dir string, td spiffeid.TrustDomain) (a *JWTAuthority, created bool, err error) {
	path := filepath.Join(dir, JWTKeyFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		der, err := decodeOnePEM(data, pemPrivateKey)
		if err != nil {
			return nil, false, fmt.Errorf("pki: load JWT authority %s: %w", path, err)
		}
		k, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, false, fmt.Errorf("pki: load JWT authority %s: %w", path, err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok || ek.Curve != elliptic.P256() {
			return nil, false, fmt.Errorf("pki: load JWT authority %s: want an ECDSA P-256 key", path)
		}
		a, err := newJWTAuthority(td, ek)
		return a, false, err
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, fmt.Errorf("pki: load JWT authority: %w", err)
	}
	a, err = NewJWTAuthority(td)
	if err != nil {
		return nil, false, err
	}
	pemKey, err := encodeKey(a.key)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return nil, false, err
	}
	if err := createFile(path, pemKey, keyPerm); err != nil {
		return nil, false, fmt.Errorf("pki: write JWT authority: %w", err)
	}
	return a, true, nil
}

// SPIFFEBundle returns the trust domain's SPIFFE bundle: ca's certificate
// as X.509 authority and jwtAuth's key as JWT authority.
func SPIFFEBundle(ca *CA, jwtAuth *JWTAuthority) (*spiffebundle.Bundle, error) {
	if ca.td != jwtAuth.td {
		return nil, fmt.Errorf("pki: SPIFFE bundle: %w: CA %q, JWT authority %q", ErrTrustDomainMismatch, ca.td, jwtAuth.td)
	}
	b := spiffebundle.New(ca.td)
	b.AddX509Authority(ca.cert)
	if err := b.AddJWTAuthority(jwtAuth.kid, jwtAuth.key.Public()); err != nil {
		return nil, fmt.Errorf("pki: SPIFFE bundle: %w", err)
	}
	return b, nil
}

// WriteSPIFFEBundle writes SPIFFEBundle(ca, jwtAuth) to dir/bundle.json
// (mode 0644), atomically replacing it.
func WriteSPIFFEBundle(dir string, ca *CA, jwtAuth *JWTAuthority) error {
	b, err := SPIFFEBundle(ca, jwtAuth)
	if err != nil {
		return err
	}
	doc, err := b.Marshal()
	if err != nil {
		return fmt.Errorf("pki: SPIFFE bundle: %w", err)
	}
	return replaceFile(filepath.Join(dir, BundleFile), append(doc, '\n'), certPerm)
}
