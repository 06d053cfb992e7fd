package syncer

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/writ-dev/writ/verifier"
)

// Config configures a Syncer. Start from DefaultConfig and set Issuers,
// IssuerID, SVID and Bundle.
type Config struct {
	// Issuers are base URLs of issuer nodes, "https://host:port" with an
	// optional path prefix; the syncer polls Issuer + "/v1/sync". More
	// nodes are learned from the node lists the cluster signs. 1 to 64,
	// https only.
	Issuers []string
	// IssuerID is the issuers' SPIFFE ID: every node's certificate must
	// be an X.509-SVID of exactly this ID. Required.
	IssuerID spiffeid.ID
	// SVID is presented as TLS client certificate (spec/sync.md §2: an
	// SVID of a trust domain the issuer trusts for agents). Required.
	SVID x509svid.Source
	// Bundle verifies the nodes' certificates (the bundle of IssuerID's
	// trust domain is used). Required.
	Bundle x509bundle.Source
	// Instance tells replicas sharing a SPIFFE ID apart in the issuers'
	// receipts: 1 to 64 characters of [A-Za-z0-9._-]. Empty means a
	// random one chosen by New.
	Instance string
	// StateFile, when set, is where the copy is kept across restarts
	// (spec/sync.md §7): the snapshot in StateFile and the changes and
	// last heartbeat after it in StateFile + ".changes". Its directory
	// must exist and be writable.
	StateFile string
	// MaxStaleness is the staleness bound of the verifier this syncer
	// feeds: a copy older than it may be replaced by a snapshot that
	// vouches for itself (bootstrap, spec/sync.md §4). Default 30s;
	// between 1s and 24h.
	MaxStaleness time.Duration
	// Keys, when set, are pinned root keys: they are the keys held until
	// the first snapshot, which must then be signed by one of them (no
	// bootstrap from an unknown key). Optional.
	Keys verifier.KeySource
	// PollWait is the wait parameter of each poll: how long a node holds
	// a poll open when nothing changes. Default 1s; between 100ms and
	// 30s. The freshness of the copy is refreshed about as often.
	PollWait time.Duration
	// Timeout bounds the silence of a node: no answer header, or no byte
	// of the body, for PollWait + Timeout aborts the poll (and the TLS
	// handshake must take less than Timeout). Default 10s; between 1s
	// and 10m.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the delay between failed polls once
	// every known node has failed in a row (each node is tried once
	// first, without delay): uniform in [MinBackoff, min(MaxBackoff,
	// MinBackoff × 2^(n−1))] after the n-th failed round, or the node's
	// Retry-After clamped to the bounds. Defaults 250ms and 30s;
	// 1ms <= MinBackoff <= MaxBackoff <= 1h.
	MinBackoff, MaxBackoff time.Duration
	// PersistEvery is how often at most the changes file is rewritten
	// after changes or heartbeats; a new snapshot is written when it is
	// applied. Default 5s; between 10ms and 1h.
	PersistEvery time.Duration
	// Now is the clock of freshness, staleness and persistence decisions.
	// Required; DefaultConfig sets time.Now.
	Now func() time.Time
	// Rand returns uniform numbers in [0, 1) for jitter; safe for
	// concurrent use. Required; DefaultConfig sets math/rand/v2's Float64.
	Rand func() float64
	// Logger receives sync records (epochs, nodes, counts, never keys).
	// nil discards.
	Logger *slog.Logger
}

// Defaults of DefaultConfig.
const (
	DefaultMaxStaleness = 30 * time.Second
	DefaultPollWait     = time.Second
	DefaultTimeout      = 10 * time.Second
	DefaultMinBackoff   = 250 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultPersistEvery = 5 * time.Second
)

// DefaultConfig returns a Config with every optional field set and no
// issuer or credentials.
func DefaultConfig() Config {
	return Config{
		MaxStaleness: DefaultMaxStaleness,
		PollWait:     DefaultPollWait,
		Timeout:      DefaultTimeout,
		MinBackoff:   DefaultMinBackoff,
		MaxBackoff:   DefaultMaxBackoff,
		PersistEvery: DefaultPersistEvery,
		Now:          time.Now,
		Rand:         rand.Float64,
	}
}

// Validate reports the first field that is missing or out of bounds; the
// error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	switch {
	case len(c.Issuers) == 0 || len(c.Issuers) > maxIssuers:
		return invalid("Issuers: want 1 to %d https URLs, got %d", maxIssuers, len(c.Issuers))
	case c.IssuerID.IsZero():
		return invalid("IssuerID is required (the issuers' SPIFFE ID)")
	case c.SVID == nil:
		return invalid("SVID is required (the verifier's X.509-SVID, presented to the issuers)")
	case c.Bundle == nil:
		return invalid("Bundle is required (to verify the issuers' certificates)")
	case c.Instance != "" && !validInstance(c.Instance):
		return invalid("Instance %q: want 1 to 64 characters of [A-Za-z0-9._-]", c.Instance)
	case c.MaxStaleness < time.Second || c.MaxStaleness > 24*time.Hour:
		return invalid("MaxStaleness %v: want 1s to 24h (default %v)", c.MaxStaleness, DefaultMaxStaleness)
	case c.PollWait < 100*time.Millisecond || c.PollWait > 30*time.Second:
		return invalid("PollWait %v: want 100ms to 30s (default %v)", c.PollWait, DefaultPollWait)
	case c.Timeout < time.Second || c.Timeout > 10*time.Minute:
		return invalid("Timeout %v: want 1s to 10m (default %v)", c.Timeout, DefaultTimeout)
	case c.MinBackoff < time.Millisecond || c.MaxBackoff < c.MinBackoff || c.MaxBackoff > time.Hour:
		return invalid("backoff %v to %v: want 1ms <= MinBackoff <= MaxBackoff <= 1h (defaults %v, %v)",
			c.MinBackoff, c.MaxBackoff, DefaultMinBackoff, DefaultMaxBackoff)
	case c.PersistEvery < 10*time.Millisecond || c.PersistEvery > time.Hour:
		return invalid("PersistEvery %v: want 10ms to 1h (default %v)", c.PersistEvery, DefaultPersistEvery)
	case c.Now == nil:
		return invalid("Now is required (use time.Now)")
	case c.Rand == nil:
		return invalid("Rand is required (use math/rand/v2.Float64)")
	}
	for i, s := range c.Issuers {
		if _, err := baseURL(s); err != nil {
			return invalid("Issuers[%d]: %v", i, err)
		}
	}
	return nil
}

// baseURL normalizes an issuer base URL: https, a host, no user, query or
// fragment, no trailing slash.
func baseURL(s string) (string, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", err
	case u.Scheme != "https":
		return "", fmt.Errorf("%q: want an https URL", s)
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return "", fmt.Errorf("%q: want https://host[:port][/path] without user, query or fragment", s)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

func validInstance(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
