package verifier

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Config configures a Verifier. Start from DefaultConfig and set Keys.
type Config struct {
	// Keys supplies the root public keys. Required.
	Keys KeySource
	// Revocations answers whether a block or token id is revoked; nil
	// means nothing is revoked. When it also implements
	// AgentRevocationSource, revoked agents are refused too; when Keys
	// implements KeyRevocationSource, so are tokens of revoked root keys.
	Revocations RevocationSource
	// Freshness tells how current the copy behind Revocations and Keys
	// is (spec/sync.md §5). nil means no freshness bound: the list is
	// taken as current whatever its age (a static list), and tokens
	// carrying their own max_staleness bound are denied
	// revocation_stale (token.md §2: they fail closed).
	Freshness FreshnessSource
	// MaxStaleness is the largest staleness (Now minus
	// Freshness.CurrentAsOf) at which tokens are still accepted; beyond
	// it every token is denied revocation_stale. Used only when
	// Freshness is set; then it must be > 0 and at most 24 h.
	// DefaultConfig sets DefaultMaxStaleness.
	MaxStaleness time.Duration
	// Now is the clock the ambient time and local_time facts come from.
	// Required; DefaultConfig sets time.Now.
	Now func() time.Time
	// Limits bound tokens and requests (token.md §8).
	Limits Limits
	// Service is this service's SPIFFE ID, the service fact of requests
	// that do not name one; a request naming another service is denied
	// service_mismatch. Empty means no default: tokens restricted to
	// services are then denied unless the request names one.
	Service string
	// CacheSize is the number of decoded, signature-verified tokens kept
	// (keyed by the SHA-256 of their bytes); 0 disables the cache. An
	// entry takes about 7 times the token's size (9 KiB for a 1.2 KiB
	// token with 3 attenuation blocks).
	CacheSize int
	// Logger receives debug records of decisions (reason, token id, never
	// the token). nil discards.
	Logger *slog.Logger
}

// DefaultMaxStaleness is the MaxStaleness of DefaultConfig (spec/sync.md §5).
const DefaultMaxStaleness = 30 * time.Second

// maxMaxStaleness bounds Config.MaxStaleness.
const maxMaxStaleness = 24 * time.Hour

// DefaultCacheSize is the CacheSize of DefaultConfig.
const DefaultCacheSize = 4096

// maxCacheSize bounds Config.CacheSize (each entry holds one decoded
// token, a few KiB at most).
const maxCacheSize = 1 << 22

// DefaultConfig returns a Config with the default limits, the wall clock,
// a cache of DefaultCacheSize tokens, a MaxStaleness of
// DefaultMaxStaleness (used once Freshness is set) and no keys.
func DefaultConfig() Config {
	return Config{
		Now:          time.Now,
		Limits:       DefaultLimits(),
		CacheSize:    DefaultCacheSize,
		MaxStaleness: DefaultMaxStaleness,
	}
}

// Validate reports the first problem of c: missing Keys or Now, limits
// out of range, CacheSize outside 0 to 4194304, a MaxStaleness outside
// (0, 24h] when Freshness is set, or a Service that is not
// a spiffe:// URI. Errors wrap ErrInvalidConfig.
func (c Config) Validate() error {
	if c.Keys == nil {
		return fmt.Errorf("%w: Keys is required", ErrInvalidConfig)
	}
	if c.Now == nil {
		return fmt.Errorf("%w: Now is required (use time.Now)", ErrInvalidConfig)
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	if c.CacheSize < 0 || c.CacheSize > maxCacheSize {
		return fmt.Errorf("%w: CacheSize is %d, want 0 (no cache) to %d", ErrInvalidConfig, c.CacheSize, maxCacheSize)
	}
	if c.Freshness != nil && (c.MaxStaleness <= 0 || c.MaxStaleness > maxMaxStaleness) {
		return fmt.Errorf("%w: MaxStaleness is %v, want more than 0 and at most %v when Freshness is set", ErrInvalidConfig, c.MaxStaleness, maxMaxStaleness)
	}
	if c.Service != "" && !strings.HasPrefix(c.Service, "spiffe://") {
		return fmt.Errorf("%w: Service %q is not a SPIFFE ID (spiffe://…)", ErrInvalidConfig, c.Service)
	}
	return nil
}
