package client

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/writ-dev/writ/spec"
)

// Config configures a Client. Start from DefaultConfig, set IssuerURL,
// IssuerID, Bundles, exactly one of X509SVID and JWTSVID, and Rights.
type Config struct {
	// IssuerURL is the issuer's base URL, "https://host:port", optionally
	// with a path prefix; the client posts to IssuerURL + "/v1/token".
	// Required; only https.
	IssuerURL string
	// IssuerID is the issuer's SPIFFE ID. The server certificate must be
	// an X.509-SVID of exactly this ID; the host name in IssuerURL is not
	// what authenticates the issuer. Required. With JWTSVID it is also the
	// audience of the JWT-SVIDs the client asks for.
	IssuerID spiffeid.ID
	// Bundles verifies the issuer's certificate: the bundle of IssuerID's
	// trust domain is used, never a merged pool. Required.
	Bundles x509bundle.Source
	// X509SVID is presented as TLS client certificate: the caller is
	// authenticated by mTLS. Exactly one of X509SVID and JWTSVID is set.
	X509SVID x509svid.Source
	// JWTSVID is asked for a JWT-SVID with audience IssuerID before each
	// token request, sent as "Authorization: Bearer"; no client
	// certificate is presented. Use it where the workload cannot do mTLS
	// to the issuer (a TLS-terminating proxy in between); JWTFile reads one
	// from a file.
	JWTSVID jwtsvid.Source
	// Rights are requested as "RESOURCE:OPERATION" (1 to 64). Required.
	Rights []string
	// TTL is the lifetime asked for; 0 leaves it to the issuer's default.
	// The policy and the issuer's maximum may shorten it.
	TTL time.Duration
	// Audience, when set, is the SPIFFE ID of the one service the token is
	// for; the policy must allow it.
	Audience spiffeid.ID

	// RenewFraction is the share of a token's remaining lifetime (measured
	// when it arrives) that is left when the client renews it: 1/3 renews
	// a 5 minute token about 3m20s after it arrived. Default 1/3; between
	// 0.01 and 0.75.
	RenewFraction float64
	// RenewJitter spreads renewals of many agents: the time left at
	// renewal is RenewFraction × lifetime × (1 ± RenewJitter), uniformly.
	// Default 0.1; between 0 and 0.2.
	RenewJitter float64
	// ExpiryMargin: a token is never returned when it expires within this
	// margin (time to reach the resource, clock skew with verifiers).
	// Default 5s; between 0 and 1h. Must be shorter than the tokens'
	// lifetime, or every token is refused with ErrShortLived.
	ExpiryMargin time.Duration
	// MinBackoff and MaxBackoff bound the delay between failed token
	// requests. After the n-th consecutive temporary failure (network,
	// TLS, 5xx, 429) the delay is uniform in [MinBackoff,
	// min(MaxBackoff, MinBackoff × 2^(n−1))] (full jitter above a floor),
	// or the issuer's Retry-After clamped to the bounds. A permanent
	// refusal (any other 4xx) waits MaxBackoff. Defaults 250ms and 30s;
	// MinBackoff at least 1ms, MaxBackoff at most 1h.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one token request, JWT-SVID fetch included.
	// Default 10s; at most 10m.
	Timeout time.Duration
	// WrapTransport, when set, wraps the HTTP transport the client builds
	// (for tracing or metrics). The client's TLS configuration is always
	// its own: there is no way to pass an *http.Client that would skip the
	// issuer's authentication. It must return a non-nil RoundTripper that
	// calls the one it was given.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// Logger receives renewal and failure records (token id, never the
	// token or an SVID). nil discards.
	Logger *slog.Logger
	// Now is the clock of every cache, renewal and backoff decision.
	// Required; DefaultConfig sets time.Now.
	Now func() time.Time
	// Rand returns uniform numbers in [0, 1) for jitter; it must be safe
	// for concurrent use. Required; DefaultConfig sets math/rand/v2's
	// Float64.
	Rand func() float64
}

// Defaults of DefaultConfig.
const (
	DefaultRenewFraction = 1.0 / 3
	DefaultRenewJitter   = 0.1
	DefaultExpiryMargin  = 5 * time.Second
	DefaultMinBackoff    = 250 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
	DefaultTimeout       = 10 * time.Second
)

// DefaultConfig returns a Config with every optional field set and no
// issuer, credential or rights.
func DefaultConfig() Config {
	return Config{
		RenewFraction: DefaultRenewFraction,
		RenewJitter:   DefaultRenewJitter,
		ExpiryMargin:  DefaultExpiryMargin,
		MinBackoff:    DefaultMinBackoff,
		MaxBackoff:    DefaultMaxBackoff,
		Timeout:       DefaultTimeout,
		Now:           time.Now,
		Rand:          rand.Float64,
	}
}

// Validate reports the first field that is missing or out of bounds; the
// error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	if _, err := tokenURL(c.IssuerURL); err != nil {
		return err
	}
	switch {
	case c.IssuerID.IsZero():
		return invalid("IssuerID is required (the issuer's SPIFFE ID)")
	case c.Bundles == nil:
		return invalid("Bundles is required (to verify the issuer's certificate)")
	case c.X509SVID == nil && c.JWTSVID == nil:
		return invalid("set X509SVID (mTLS) or JWTSVID (bearer JWT-SVID)")
	case c.X509SVID != nil && c.JWTSVID != nil:
		return invalid("set only one of X509SVID and JWTSVID: the issuer authenticates one caller per request")
	case len(c.Rights) == 0 || len(c.Rights) > maxRights:
		return invalid(fmt.Sprintf("Rights: want 1 to %d, got %d", maxRights, len(c.Rights)))
	case c.TTL < 0 || c.TTL > 24*time.Hour:
		return invalid(fmt.Sprintf("TTL %v: want 0 (issuer default) to 24h", c.TTL))
	case !(c.RenewFraction >= 0.01 && c.RenewFraction <= 0.75):
		return invalid(fmt.Sprintf("RenewFraction %v: want 0.01 to 0.75 (default %.3f)", c.RenewFraction, DefaultRenewFraction))
	case !(c.RenewJitter >= 0 && c.RenewJitter <= 0.2):
		return invalid(fmt.Sprintf("RenewJitter %v: want 0 to 0.2 (default %v)", c.RenewJitter, DefaultRenewJitter))
	case c.ExpiryMargin < 0 || c.ExpiryMargin > time.Hour:
		return invalid(fmt.Sprintf("ExpiryMargin %v: want 0 to 1h (default %v)", c.ExpiryMargin, DefaultExpiryMargin))
	case c.MinBackoff < time.Millisecond || c.MaxBackoff < c.MinBackoff || c.MaxBackoff > time.Hour:
		return invalid(fmt.Sprintf("backoff %v to %v: want 1ms <= MinBackoff <= MaxBackoff <= 1h (defaults %v, %v)",
			c.MinBackoff, c.MaxBackoff, DefaultMinBackoff, DefaultMaxBackoff))
	case c.Timeout <= 0 || c.Timeout > 10*time.Minute:
		return invalid(fmt.Sprintf("Timeout %v: want more than 0 and at most 10m (default %v)", c.Timeout, DefaultTimeout))
	case c.Now == nil:
		return invalid("Now is required (use time.Now)")
	case c.Rand == nil:
		return invalid("Rand is required (use math/rand/v2.Float64)")
	}
	for i, r := range c.Rights {
		if _, err := spec.ParseRight(r); err != nil {
			return invalid(fmt.Sprintf("Rights[%d]: %v", i, err))
		}
	}
	return nil
}

func invalid(msg string) error { return fmt.Errorf("%w: %s", ErrInvalidConfig, msg) }

// tokenURL returns the token endpoint of the issuer at base.
func tokenURL(base string) (string, error) {
	u, err := url.Parse(base)
	switch {
	case base == "":
		return "", invalid("IssuerURL is required (https://host:port)")
	case err != nil:
		return "", invalid(fmt.Sprintf("IssuerURL: %v", err))
	case u.Scheme != "https":
		return "", invalid(fmt.Sprintf("IssuerURL %q: want an https URL", base))
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return "", invalid(fmt.Sprintf("IssuerURL %q: want https://host[:port][/path] without user, query or fragment", base))
	}
	return strings.TrimSuffix(u.String(), "/") + "/v1/token", nil
}
