package credential

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// X509Config says which peer chains VerifyPeer accepts. Build it with
// DefaultX509Config and check it with Validate. It is a value, safe to
// share between goroutines.
type X509Config struct {
	// MaxChainDepth bounds the number of certificates in the presented
	// chain (leaf and intermediates, plus a root if the peer sends one)
	// and in every chain verified to a bundle root (leaf to root
	// inclusive). Default DefaultMaxChainDepth (4); between MinChainDepth
	// and MaxChainDepthLimit.
	MaxChainDepth int

	// Now returns the verification time for validity periods. Required;
	// DefaultX509Config sets time.Now. It is passed to go-spiffe with
	// x509svid.WithTime, so it is the only clock VerifyPeer reads.
	Now func() time.Time
}

// DefaultX509Config returns an X509Config with MaxChainDepth
// DefaultMaxChainDepth and Now time.Now.
func DefaultX509Config() X509Config {
	return X509Config{MaxChainDepth: DefaultMaxChainDepth, Now: time.Now}
}

// Validate reports whether c can be used by VerifyPeer. Its errors wrap
// ErrInvalidConfig.
func (c X509Config) Validate() error {
	switch {
	case c.MaxChainDepth < MinChainDepth || c.MaxChainDepth > MaxChainDepthLimit:
		return fmt.Errorf("%w: MaxChainDepth %d must be between %d and %d (default %d)",
			ErrInvalidConfig, c.MaxChainDepth, MinChainDepth, MaxChainDepthLimit, DefaultMaxChainDepth)
	case c.Now == nil:
		return fmt.Errorf("%w: Now is required", ErrInvalidConfig)
	}
	return nil
}

// VerifyPeer verifies the raw peer chain (leaf first, DER, as
// tls.Config.VerifyPeerCertificate receives it) against the X.509 bundle
// of the leaf's own trust domain and returns the leaf's SPIFFE ID.
//
// Checks, in order, each before the more expensive next one:
//
//   - chain length at most cfg.MaxChainDepth, each certificate at most
//     MaxCertBytes (ErrChainTooDeep, ErrTooLarge; nothing is parsed yet);
//     an empty chain is ErrNotSVID;
//   - every certificate parses (ErrMalformed);
//   - the leaf is an X.509-SVID: not a CA, key usage present with
//     digitalSignature and without keyCertSign and cRLSign, exactly one
//     URI SAN holding a SPIFFE ID with a workload path (ErrNotSVID);
//   - the leaf is valid at cfg.Now (ErrExpired, ErrNotYetValid);
//   - the bundle of the leaf's trust domain exists and the chain verifies
//     to one of its roots with go-spiffe's x509svid.Verify at cfg.Now
//     (ErrUntrusted); the roots of other trust domains are never used;
//   - every verified chain has at most cfg.MaxChainDepth certificates
//     (ErrChainTooDeep).
//
// Extended key usage is not checked (go-spiffe accepts any), so a leaf
// with only serverAuth is accepted as a client.
//
// Errors wrap exactly one sentinel of errors.go. bundles must be non-nil
// and safe for concurrent use if VerifyPeer is called concurrently;
// VerifyPeer keeps no state and does not retain raw.
func VerifyPeer(raw [][]byte, bundles x509bundle.Source, cfg X509Config) (spiffeid.ID, error) {
	if err := cfg.Validate(); err != nil {
		return spiffeid.ID{}, fmt.Errorf("verify peer: %w", err)
	}
	if bundles == nil {
		return spiffeid.ID{}, fmt.Errorf("verify peer: %w: bundle source is nil", ErrInvalidConfig)
	}
	switch {
	case len(raw) == 0:
		return spiffeid.ID{}, fmt.Errorf("verify peer: no certificate: %w", ErrNotSVID)
	case len(raw) > cfg.MaxChainDepth:
		return spiffeid.ID{}, fmt.Errorf("verify peer: %d certificates presented, at most %d: %w",
			len(raw), cfg.MaxChainDepth, ErrChainTooDeep)
	}
	for i, der := range raw {
		if len(der) > MaxCertBytes {
			return spiffeid.ID{}, fmt.Errorf("verify peer: certificate %d of %d bytes exceeds %d: %w",
				i, len(der), MaxCertBytes, ErrTooLarge)
		}
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return spiffeid.ID{}, fmt.Errorf("verify peer: certificate %d: %v: %w", i, err, ErrMalformed)
		}
		certs[i] = c
	}

	leaf := certs[0]
	id, err := leafID(leaf)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("verify peer: leaf: %w", err)
	}
	now := cfg.Now()
	switch {
	case now.After(leaf.NotAfter):
		return spiffeid.ID{}, fmt.Errorf("verify peer: leaf %q expired at %v (now %v): %w",
			id, leaf.NotAfter.UTC(), now.UTC(), ErrExpired)
	case now.Before(leaf.NotBefore):
		return spiffeid.ID{}, fmt.Errorf("verify peer: leaf %q not valid before %v (now %v): %w",
			id, leaf.NotBefore.UTC(), now.UTC(), ErrNotYetValid)
	}

	td := id.TrustDomain()
	bundle, err := bundles.GetX509BundleForTrustDomain(td)
	if err != nil || bundle == nil {
		return spiffeid.ID{}, fmt.Errorf("verify peer: no X.509 bundle for trust domain %q: %w", td, ErrUntrusted)
	}
	if bundle.TrustDomain() != td {
		return spiffeid.ID{}, fmt.Errorf("verify peer: bundle source returned the bundle of %q for %q: %w",
			bundle.TrustDomain(), td, ErrUntrusted)
	}
	// The bundle itself is the source handed to go-spiffe: it answers only
	// for td, so no other trust domain's roots can be consulted.
	gotID, chains, err := x509svid.Verify(certs, bundle, x509svid.WithTime(now))
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("verify peer: %q: %v: %w", id, err, ErrUntrusted)
	}
	if gotID != id {
		// Unreachable: both read the one URI SAN of the leaf.
		return spiffeid.ID{}, fmt.Errorf("verify peer: go-spiffe read %q, we read %q: %w", gotID, id, ErrNotSVID)
	}
	if len(chains) == 0 {
		return spiffeid.ID{}, fmt.Errorf("verify peer: %q: no verified chain: %w", id, ErrUntrusted)
	}
	for _, chain := range chains {
		if len(chain) > cfg.MaxChainDepth {
			return spiffeid.ID{}, fmt.Errorf("verify peer: %q: verified chain of %d certificates, at most %d: %w",
				id, len(chain), cfg.MaxChainDepth, ErrChainTooDeep)
		}
	}
	return id, nil
}

// leafID checks that leaf is an X.509-SVID and returns its SPIFFE ID. Its
// errors wrap ErrNotSVID.
func leafID(leaf *x509.Certificate) (spiffeid.ID, error) {
	switch {
	case leaf.IsCA:
		return spiffeid.ID{}, fmt.Errorf("CA flag set: %w", ErrNotSVID)
	case leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0:
		return spiffeid.ID{}, fmt.Errorf("key usage lacks digitalSignature: %w", ErrNotSVID)
	case leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0:
		return spiffeid.ID{}, fmt.Errorf("key usage has keyCertSign or cRLSign: %w", ErrNotSVID)
	case len(leaf.URIs) == 0:
		return spiffeid.ID{}, fmt.Errorf("no URI SAN: %w", ErrNotSVID)
	case len(leaf.URIs) > 1:
		return spiffeid.ID{}, fmt.Errorf("%d URI SANs, want 1: %w", len(leaf.URIs), ErrNotSVID)
	}
	id, err := spiffeid.FromURI(leaf.URIs[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("URI SAN is not a SPIFFE ID: %w", ErrNotSVID)
	}
	if id.Path() == "" {
		return spiffeid.ID{}, fmt.Errorf("SPIFFE ID %q is a trust domain, not a workload: %w", id, ErrNotSVID)
	}
	return id, nil
}
