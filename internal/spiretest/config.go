package spiretest

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Config describes a deployment. Zero fields take the value of
// DefaultConfig, so Config{TrustDomain: td} is a valid configuration.
type Config struct {
	// TrustDomain of the server and the agent.
	TrustDomain spiffeid.TrustDomain
	// Dir holds configuration, data, sockets (when the path is short
	// enough for a unix socket) and logs. Empty means t.TempDir().
	Dir string
	// X509SVIDTTL is the server's default_x509_svid_ttl; entries may
	// override it (WithX509SVIDTTL). The agent renews an SVID at half its
	// lifetime.
	X509SVIDTTL time.Duration
	// JWTSVIDTTL is the server's default_jwt_svid_ttl.
	JWTSVIDTTL time.Duration
	// CATTL is the server's ca_ttl; it must exceed X509SVIDTTL.
	CATTL time.Duration
	// SyncInterval sets both the server's entry cache reload interval and
	// the agent's sync interval: it bounds how long a new or updated entry
	// takes to reach the agent (about two intervals).
	SyncInterval time.Duration
	// StartTimeout bounds how long Start waits for each process to become
	// healthy.
	StartTimeout time.Duration
	// LogLevel of both processes: DEBUG, INFO, WARN or ERROR. Register
	// and Rotate need INFO or DEBUG.
	LogLevel string
	// Logger receives the harness's progress messages; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration used for zero Config fields:
// trust domain writ.test, X.509-SVIDs for 1h, JWT-SVIDs for 5m, CA for 24h,
// a 1s sync interval, 90s start timeout and INFO logs.
func DefaultConfig() Config {
	return Config{
		TrustDomain:  spiffeid.RequireTrustDomainFromString("writ.test"),
		X509SVIDTTL:  time.Hour,
		JWTSVIDTTL:   5 * time.Minute,
		CATTL:        24 * time.Hour,
		SyncInterval: time.Second,
		StartTimeout: 90 * time.Second,
		LogLevel:     "INFO",
	}
}

// withDefaults returns c with every zero field set from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.TrustDomain.IsZero() {
		c.TrustDomain = d.TrustDomain
	}
	if c.X509SVIDTTL == 0 {
		c.X509SVIDTTL = d.X509SVIDTTL
	}
	if c.JWTSVIDTTL == 0 {
		c.JWTSVIDTTL = d.JWTSVIDTTL
	}
	if c.CATTL == 0 {
		c.CATTL = d.CATTL
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = d.SyncInterval
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = d.StartTimeout
	}
	if c.LogLevel == "" {
		c.LogLevel = d.LogLevel
	}
	return c
}

// Validate reports the first field of c (after defaults are applied) that
// SPIRE or the harness would not accept.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := validateTTL("X509SVIDTTL", c.X509SVIDTTL); err != nil {
		return err
	}
	if err := validateTTL("JWTSVIDTTL", c.JWTSVIDTTL); err != nil {
		return err
	}
	if err := validateTTL("CATTL", c.CATTL); err != nil {
		return err
	}
	if c.CATTL <= c.X509SVIDTTL {
		return fmt.Errorf("spiretest: CATTL %v must exceed X509SVIDTTL %v: SPIRE caps SVIDs at the CA's expiry", c.CATTL, c.X509SVIDTTL)
	}
	if c.SyncInterval < 100*time.Millisecond || c.SyncInterval > time.Minute {
		return fmt.Errorf("spiretest: SyncInterval %v must be between 100ms and 1m", c.SyncInterval)
	}
	if c.StartTimeout < time.Second {
		return fmt.Errorf("spiretest: StartTimeout %v must be at least 1s", c.StartTimeout)
	}
	switch strings.ToUpper(c.LogLevel) {
	case "DEBUG", "INFO":
	default:
		return fmt.Errorf("spiretest: LogLevel %q must be DEBUG or INFO: Register and Rotate read INFO lines of the agent log", c.LogLevel)
	}
	if strings.ContainsAny(c.Dir, "\x00\n\r\"\\") {
		return fmt.Errorf("spiretest: Dir %q must not contain quotes, backslashes or line breaks: it is written into HCL", c.Dir)
	}
	return nil
}

// validateTTL accepts whole seconds from 1s on: SPIRE entry TTLs are
// integral seconds.
func validateTTL(name string, d time.Duration) error {
	if d < time.Second {
		return fmt.Errorf("spiretest: %s %v must be at least 1s", name, d)
	}
	if d%time.Second != 0 {
		return fmt.Errorf("spiretest: %s %v must be whole seconds", name, d)
	}
	return nil
}
