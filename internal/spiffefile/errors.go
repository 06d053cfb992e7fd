package spiffefile

import "errors"

var (
	// ErrInvalidConfig is wrapped by the errors of (Config).Validate and so
	// by New when it is given an invalid Config.
	ErrInvalidConfig = errors.New("spiffefile: invalid config")

	// ErrUnknownTrustDomain is returned by GetX509BundleForTrustDomain for a
	// trust domain that has no bundle file in the Config. Bundles are never
	// merged or borrowed from another trust domain.
	ErrUnknownTrustDomain = errors.New("spiffefile: no bundle for trust domain")

	// ErrInvalidSVID is wrapped when the certificate and key files do not
	// hold a usable X.509-SVID: unparsable or truncated PEM, a key that does
	// not match the leaf, a leaf that is not a valid SVID, an SVID that is
	// not valid at the current time, or one that does not chain to the
	// configured bundle of its own trust domain.
	ErrInvalidSVID = errors.New("spiffefile: invalid X.509-SVID")

	// ErrInvalidBundle is wrapped when a bundle file does not hold at least
	// one CA certificate (PEM, or the x509-svid keys of a SPIFFE bundle),
	// or holds anything else.
	ErrInvalidBundle = errors.New("spiffefile: invalid trust bundle")
)
