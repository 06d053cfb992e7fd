package spiffefile

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Config says which files a Source reads and how often it checks them.
type Config struct {
	// CertFile holds the PEM certificate chain of the X.509-SVID, leaf
	// first. Required.
	CertFile string

	// KeyFile holds the PEM PKCS#8 private key of the leaf. Required. It
	// may be the same file as CertFile.
	KeyFile string

	// Bundles maps each trust domain to the file holding its authorities:
	// PEM CA certificates (X.509 only), or a SPIFFE bundle (JSON JWK set
	// with X.509 and JWT authorities). At least one is required. Each trust
	// domain is served only from its own file.
	Bundles map[spiffeid.TrustDomain]string

	// Interval is the poll period of Run. Zero means DefaultInterval;
	// otherwise it must be between MinInterval and MaxInterval.
	Interval time.Duration

	// Logger receives reload results. Nil discards them. Key material is
	// never logged.
	Logger *slog.Logger

	// Now returns the current time, used to refuse an SVID that is expired
	// or not yet valid. Nil means time.Now.
	Now func() time.Time
}

// DefaultConfig returns a Config with Interval set to DefaultInterval and
// no files; the caller sets CertFile, KeyFile and Bundles.
func DefaultConfig() Config {
	return Config{Interval: DefaultInterval}
}

// Validate reports whether c can be used by New. It does not touch the
// files. Its errors wrap ErrInvalidConfig.
func (c Config) Validate() error {
	switch {
	case c.CertFile == "":
		return fmt.Errorf("%w: CertFile is required", ErrInvalidConfig)
	case c.KeyFile == "":
		return fmt.Errorf("%w: KeyFile is required", ErrInvalidConfig)
	case len(c.Bundles) == 0:
		return fmt.Errorf("%w: at least one trust bundle file is required", ErrInvalidConfig)
	case c.Interval < 0 || (c.Interval != 0 && (c.Interval < MinInterval || c.Interval > MaxInterval)):
		return fmt.Errorf("%w: Interval %v must be 0 (default %v) or between %v and %v",
			ErrInvalidConfig, c.Interval, DefaultInterval, MinInterval, MaxInterval)
	}
	for td, file := range c.Bundles {
		if td.IsZero() {
			return fmt.Errorf("%w: bundle file %q has a zero trust domain", ErrInvalidConfig, file)
		}
		if file == "" {
			return fmt.Errorf("%w: bundle file for trust domain %q is empty", ErrInvalidConfig, td)
		}
	}
	return nil
}
