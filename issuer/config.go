package issuer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/writ-dev/writ/cluster"
	"github.com/writ-dev/writ/internal/credential"
)

// Config configures one issuer node. Required fields have no default.
type Config struct {
	// NodeID names this node in the raft cluster (e.g. "writ-1").
	NodeID string
	// ListenAddr is the HTTPS API address ("127.0.0.1:8443"; port 0 picks one).
	ListenAddr string
	// RaftAddr is the raft transport address (mTLS, issuer nodes only).
	RaftAddr string
	// AdvertiseAPIAddr is the host:port other nodes reach this node's API
	// at (to forward writes to it while it leads). Empty: the bound
	// ListenAddr, which must then be a concrete address.
	AdvertiseAPIAddr string
	// DataDir holds the raft log, snapshots and state (created if missing).
	DataDir string
	// Bootstrap makes this node the single voter of a new cluster on its
	// first start (no effect once raft state exists). Set it on exactly one
	// node; the others join it.
	Bootstrap bool
	// KEK seals the root keys at rest and in the replicated log. Required.
	KEK *KEK
	// SVID is the issuer's own X.509-SVID (server certificate and raft
	// client certificate); its SPIFFE ID is the token "issuer" fact.
	SVID x509svid.Source
	// Bundles holds the X.509 trust bundle of each trust domain the issuer
	// accepts callers from. The bundle is always selected by the caller's
	// trust domain, never merged.
	Bundles x509bundle.Source
	// JWTBundles holds the JWT authorities of each trust domain, for
	// callers that authenticate with a JWT-SVID (bearer header or token
	// exchange). The bundle is always selected by the trust domain of the
	// JWT-SVID's subject. Nil refuses every JWT-SVID.
	JWTBundles jwtbundle.Source
	// JWT validates JWT-SVIDs. A zero Audience means the issuer's own
	// SPIFFE ID, which is what callers must put in "aud"; its clock is
	// replaced by Now.
	JWT credential.JWTConfig
	// X509 bounds the client certificate chains callers present.
	X509 credential.X509Config
	// TrustDomains are the trust domains whose agents may request tokens.
	// Defaults to the issuer's own trust domain.
	TrustDomains []spiffeid.TrustDomain
	// Admins may call /v1/admin/ endpoints.
	Admins []spiffeid.ID
	// InitialPolicy is applied when the cluster has no policy yet (YAML).
	InitialPolicy []byte
	// DefaultTTL applies when a request names none; MaxTTL caps every token
	// whatever the policy says.
	DefaultTTL time.Duration
	MaxTTL     time.Duration
	// MaxBodyBytes bounds request bodies; MaxHeaderBytes bounds headers.
	MaxBodyBytes   int64
	MaxHeaderBytes int
	// AuditBatch is the most audit records per raft entry; AuditWorkers the
	// number of batches in flight.
	AuditBatch   int
	AuditWorkers int
	// SyncHeartbeat is how often the node signs a heartbeat for verifiers
	// (spec/sync.md §5); zero means 1 s.
	SyncHeartbeat time.Duration
	// MaintainInterval is how often the leader prunes expired revocations
	// and keys and checks the key rotation schedule; zero means 10 s.
	MaintainInterval time.Duration
	// KeyLifetime: the active root key is replaced after this long — a
	// new key is prepared at half of it and activated once every live
	// verifier holds it (at the latest at the full lifetime). Zero turns
	// automatic rotation off (writ keys rotate still works).
	KeyLifetime time.Duration
	// KeyPublishDelay: a prepared key is not activated by the schedule
	// before it has been published this long (verifiers that were briefly
	// disconnected catch up); zero means 30 s.
	KeyPublishDelay time.Duration
	// Now is the clock; Rand the randomness for token ids and keys.
	Now  func() time.Time
	Rand io.Reader
	// Logger receives structured logs; nil discards.
	Logger *slog.Logger
	// Registry receives the Prometheus metrics; nil uses a private registry.
	Registry *prometheus.Registry

	// Fault-injection hooks for tests that partition nodes; all three are
	// nil in production, where they cost one nil check per new connection
	// or leader change.
	//
	// RaftDialHook wraps each new outbound raft connection
	// (cluster.Config.DialHook: it can delay, refuse or wrap the mutually
	// authenticated connection, never replace it).
	RaftDialHook cluster.DialHook
	// ForwardDialContext, when set, opens the TCP connections of this
	// node's HTTPS client to other nodes (forwarded writes, read-index,
	// status and receipts); TLS runs on top of what it returns, so it can
	// delay, refuse or drop traffic but not bypass mutual TLS.
	ForwardDialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// RaftOnLeaderChange is cluster.Config.OnLeaderChange: called on
	// raft's goroutine at each change of this node's view of the leader;
	// it must return quickly and must not call the Issuer.
	RaftOnLeaderChange func(cluster.LeaderChange)
}

// DefaultConfig returns a Config with every optional field set.
func DefaultConfig() Config {
	return Config{
		NodeID:         "writ-1",
		Bootstrap:      true,
		ListenAddr:     "127.0.0.1:8443",
		RaftAddr:       "127.0.0.1:8444",
		DefaultTTL:     5 * time.Minute,
		MaxTTL:         1 * time.Hour,
		JWT:            credential.DefaultJWTConfig(),
		X509:           credential.DefaultX509Config(),
		MaxBodyBytes:   64 << 10,
		MaxHeaderBytes: 16 << 10,
		AuditBatch:     512,
		AuditWorkers:   4,
		SyncHeartbeat:  time.Second,
		KeyLifetime:    30 * 24 * time.Hour,
		Now:            time.Now,
		Rand:           rand.Reader,
	}
}

// Validate reports the first field that is missing or out of bounds.
func (c *Config) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("issuer: config: node id is required")
	case c.DataDir == "":
		return errors.New("issuer: config: data dir is required")
	case c.KEK == nil:
		return fmt.Errorf("issuer: config: %w: a key-encryption key is required", ErrBadKEK)
	case isNil(c.SVID) || isNil(c.Bundles):
		return errors.New("issuer: config: an SVID source and a bundle source are required")
	case c.DefaultTTL <= 0 || c.MaxTTL <= 0 || c.DefaultTTL > c.MaxTTL:
		return fmt.Errorf("issuer: config: want 0 < default ttl (%v) <= max ttl (%v)", c.DefaultTTL, c.MaxTTL)
	case c.MaxTTL > 24*time.Hour:
		return fmt.Errorf("issuer: config: max ttl %v is over 24h; writ tokens are short-lived", c.MaxTTL)
	case c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 16<<20:
		return fmt.Errorf("issuer: config: max body bytes %d outside [1 KiB, 16 MiB]", c.MaxBodyBytes)
	case c.MaxHeaderBytes < 1024 || c.MaxHeaderBytes > 1<<20:
		return fmt.Errorf("issuer: config: max header bytes %d outside [1 KiB, 1 MiB]", c.MaxHeaderBytes)
	case c.AuditBatch < 1 || c.AuditBatch > 4096:
		return fmt.Errorf("issuer: config: audit batch %d outside [1, 4096]", c.AuditBatch)
	case c.AuditWorkers < 1 || c.AuditWorkers > 64:
		return fmt.Errorf("issuer: config: audit workers %d outside [1, 64]", c.AuditWorkers)
	case c.Now == nil || c.Rand == nil:
		return errors.New("issuer: config: clock and randomness are required")
	case c.SyncHeartbeat < 0 || c.SyncHeartbeat > time.Minute:
		return fmt.Errorf("issuer: config: sync heartbeat %v outside [0, 1m]", c.SyncHeartbeat)
	case c.MaintainInterval < 0 || c.MaintainInterval > time.Hour:
		return fmt.Errorf("issuer: config: maintain interval %v outside [0, 1h]", c.MaintainInterval)
	case c.KeyLifetime < 0 || (c.KeyLifetime > 0 && c.KeyLifetime < 2*c.MaxTTL):
		return fmt.Errorf("issuer: config: key lifetime %v: want 0 (no automatic rotation) or at least twice max ttl (%v)", c.KeyLifetime, c.MaxTTL)
	case c.KeyPublishDelay < 0:
		return fmt.Errorf("issuer: config: key publish delay %v is negative", c.KeyPublishDelay)
	}
	return nil
}

// withDefaults fills the optional durations left at zero.
func (c Config) withDefaults() Config {
	if c.SyncHeartbeat == 0 {
		c.SyncHeartbeat = time.Second
	}
	if c.MaintainInterval == 0 {
		c.MaintainInterval = 10 * time.Second
	}
	if c.KeyPublishDelay == 0 {
		c.KeyPublishDelay = 30 * time.Second
	}
	return c
}

// isNil reports whether v is nil or an interface holding a nil pointer,
// map, slice, func or channel (a typed nil, which == nil misses).
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return rv.IsNil()
	}
	return false
}
