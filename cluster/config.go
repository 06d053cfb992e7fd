package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// Config configures a Node. Start from DefaultConfig, set NodeID, DataDir
// and the two TLS configs, then call Validate (New calls it too).
type Config struct {
	// NodeID is this node's raft server ID, stable across restarts and
	// unique in the cluster: 1..MaxNodeIDBytes visible ASCII characters.
	NodeID string

	// DataDir holds the node's durable state. The node owns two entries in
	// it, "log" (the pebble log and stable store) and "snapshots"; other
	// names are free for the caller (e.g. the FSM's own database).
	DataDir string

	// BindAddr is the host:port the raft transport listens on. Port 0 picks
	// a free port; Node.Addr reports the one chosen.
	BindAddr string

	// AdvertiseAddr is the host:port peers dial to reach this node. Empty
	// means the bound address, which must then be a concrete IP (not
	// 0.0.0.0 or ::). With port 0 in BindAddr, leave it empty.
	AdvertiseAddr string

	// ServerTLS authenticates inbound peers. It must present a certificate
	// and require a verified client certificate: ClientAuth is
	// RequireAndVerifyClientCert, or RequireAnyClientCert with a
	// VerifyPeerCertificate or VerifyConnection callback (as go-spiffe's
	// tlsconfig.MTLSServerConfig sets up). GetConfigForClient is refused
	// because it could switch verification off per connection. The config
	// is cloned; TLS 1.3 and the raft ALPN protocol are enforced.
	ServerTLS *tls.Config

	// ClientTLS authenticates this node to peers and verifies them: it must
	// supply a client certificate and, when InsecureSkipVerify is set (as
	// go-spiffe does), a VerifyPeerCertificate or VerifyConnection
	// callback. Cloned like ServerTLS.
	ClientTLS *tls.Config

	// Bootstrap makes this node the single voter of a new cluster on its
	// first start. It is a no-op when DataDir already holds raft state, so
	// it is safe to leave on for a single-node deployment. Never set it on
	// more than one node of a cluster; other nodes join with AddVoter.
	Bootstrap bool

	// HeartbeatTimeout is how long a follower waits without hearing from a
	// leader before starting an election (randomised up to twice this).
	// 5ms..1m.
	HeartbeatTimeout time.Duration
	// ElectionTimeout is how long a candidate waits for votes before
	// retrying. HeartbeatTimeout..1m.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader stays leader without reaching
	// a quorum. 5ms..HeartbeatTimeout.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is the longest the leader waits before telling
	// followers the commit index when no new entries arrive. 1ms..HeartbeatTimeout.
	CommitTimeout time.Duration

	// SnapshotInterval is how often raft checks whether to snapshot.
	// 5ms..24h.
	SnapshotInterval time.Duration
	// SnapshotThreshold is how many new log entries trigger a snapshot at
	// the next check. At least 1.
	SnapshotThreshold uint64
	// TrailingLogs is how many log entries are kept after a snapshot, so
	// that slightly lagging followers catch up from the log rather than a
	// whole snapshot. 0 or more.
	TrailingLogs uint64

	// MaxCommandBytes is the largest command Apply accepts.
	// 1..MaxCommandBytesLimit.
	MaxCommandBytes int

	// Logger receives raft's, the transport's and pebble's messages; nil
	// discards them.
	Logger *slog.Logger

	// DialHook, when not nil, intercepts every outbound raft connection;
	// see DialHook for what it may and may not do. It is for
	// fault-injection tests (package clustertest) and must stay nil in
	// production, where the transport dials directly and the hook costs
	// one nil check per new connection.
	DialHook DialHook

	// OnLeaderChange, when not nil, is called synchronously on raft's main
	// goroutine each time this node's view of the leader changes. Raft
	// waits for it, so it must return quickly, must not block and must not
	// call the Node. A change while New is still starting raft may be
	// missed. Tests use it to check that no two nodes lead in one term.
	OnLeaderChange func(LeaderChange)

	// FSMApplied, when not nil, lets New skip restoring the newest snapshot
	// into an FSM that keeps its own state on disk and already holds
	// everything the snapshot holds. New calls it once, before raft starts,
	// and it must return the log index of the last command reflected in
	// the FSM's state as it is then (0 for an empty state), with every
	// command before it reflected too (a prefix of the log, as a database
	// that commits each batch atomically recovers after a crash).
	//
	// The snapshot is skipped when that index is at or past the snapshot's
	// and not past the end of the log, or when the entries between the
	// two are all in the local log, end in the snapshot's own entry, and
	// are not commands (barriers and configuration changes, which the FSM
	// never sees). Otherwise the snapshot is restored as without this
	// option: an FSM that is behind (a lost or wiped state directory, an
	// unsynced tail lost in a crash) is never used as it is. Either way raft
	// then replays the log after the snapshot, so the FSM must ignore
	// commands at or below its applied index.
	//
	// To make skipping the usual case, the FSM should make its state
	// durable in FSM.Snapshot before returning. Nil restores on every start.
	FSMApplied func() uint64
}

// DefaultConfig returns the defaults: timeouts tuned for loopback and a
// LAN (a single node elects itself within about 2×HeartbeatTimeout, well
// under a second), raft's own snapshot defaults, 1 MiB commands, and
// BindAddr 127.0.0.1:0. Raise the four timeouts together for WAN links.
func DefaultConfig() Config {
	return Config{
		BindAddr:           "127.0.0.1:0",
		HeartbeatTimeout:   200 * time.Millisecond,
		ElectionTimeout:    400 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		CommitTimeout:      20 * time.Millisecond,
		SnapshotInterval:   2 * time.Minute,
		SnapshotThreshold:  8192,
		TrailingLogs:       10240,
		MaxCommandBytes:    DefaultMaxCommandBytes,
	}
}

// Validate reports every problem with c, each explaining the accepted
// range, joined in one error that wraps ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}

	switch {
	case c.NodeID == "":
		bad("NodeID is empty: give each node a stable, unique ID")
	case len(c.NodeID) > MaxNodeIDBytes:
		bad("NodeID has %d bytes, at most %d allowed", len(c.NodeID), MaxNodeIDBytes)
	case !visibleASCII(c.NodeID):
		bad("NodeID %q must be visible ASCII characters (no spaces or control characters)", c.NodeID)
	}
	if c.DataDir == "" {
		bad("DataDir is empty: the node needs a directory for its log and snapshots")
	}
	if host, port, err := splitAddr(c.BindAddr); err != nil {
		bad("BindAddr %q: %v", c.BindAddr, err)
	} else if port < 0 {
		bad("BindAddr %q: port must be 0..65535", c.BindAddr)
	} else if ip := net.ParseIP(host); c.AdvertiseAddr == "" && (host == "" || ip != nil && ip.IsUnspecified()) {
		bad("BindAddr %q listens on all addresses: set AdvertiseAddr to the one peers dial", c.BindAddr)
	}
	if c.AdvertiseAddr != "" {
		host, port, err := splitAddr(c.AdvertiseAddr)
		switch {
		case err != nil:
			bad("AdvertiseAddr %q: %v", c.AdvertiseAddr, err)
		case host == "":
			bad("AdvertiseAddr %q: host is empty", c.AdvertiseAddr)
		case port <= 0:
			bad("AdvertiseAddr %q: port must be 1..65535", c.AdvertiseAddr)
		default:
			if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
				bad("AdvertiseAddr %q: an unspecified address cannot be dialled by peers", c.AdvertiseAddr)
			}
		}
	}
	if err := checkServerTLS(c.ServerTLS); err != nil {
		bad("ServerTLS: %v", err)
	}
	if err := checkClientTLS(c.ClientTLS); err != nil {
		bad("ClientTLS: %v", err)
	}

	checkDur := func(name string, d, lo, hi time.Duration, hiName string) {
		if d < lo || d > hi {
			bad("%s %s must be between %s and %s%s", name, d, lo, hi, hiName)
		}
	}
	const maxTimeout = time.Minute
	checkDur("HeartbeatTimeout", c.HeartbeatTimeout, 5*time.Millisecond, maxTimeout, "")
	checkDur("ElectionTimeout", c.ElectionTimeout, max(5*time.Millisecond, c.HeartbeatTimeout), maxTimeout, " (at least HeartbeatTimeout)")
	checkDur("LeaderLeaseTimeout", c.LeaderLeaseTimeout, 5*time.Millisecond, max(5*time.Millisecond, c.HeartbeatTimeout), " (HeartbeatTimeout)")
	checkDur("CommitTimeout", c.CommitTimeout, time.Millisecond, max(time.Millisecond, c.HeartbeatTimeout), " (HeartbeatTimeout)")
	checkDur("SnapshotInterval", c.SnapshotInterval, 5*time.Millisecond, 24*time.Hour, "")
	if c.SnapshotThreshold < 1 {
		bad("SnapshotThreshold must be at least 1")
	}
	if c.MaxCommandBytes < 1 || c.MaxCommandBytes > MaxCommandBytesLimit {
		bad("MaxCommandBytes %d must be between 1 and %d", c.MaxCommandBytes, MaxCommandBytesLimit)
	}
	return errors.Join(errs...)
}

func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// splitAddr splits host:port and parses the port (0..65535).
func splitAddr(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, errors.New("want host:port")
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", -1, nil
	}
	return host, int(port), nil
}

func checkServerTLS(c *tls.Config) error {
	switch {
	case c == nil:
		return errors.New("missing: the raft transport never runs without mutual TLS")
	case c.GetConfigForClient != nil:
		return errors.New("GetConfigForClient is not allowed: it could turn off client verification")
	case len(c.Certificates) == 0 && c.GetCertificate == nil:
		return errors.New("no server certificate: set Certificates or GetCertificate")
	}
	switch c.ClientAuth {
	case tls.RequireAndVerifyClientCert:
		return nil
	case tls.RequireAnyClientCert:
		if c.VerifyPeerCertificate == nil && c.VerifyConnection == nil {
			return errors.New("ClientAuth RequireAnyClientCert without VerifyPeerCertificate or VerifyConnection would accept any certificate")
		}
		return nil
	default:
		return fmt.Errorf("ClientAuth %v does not require a verified client certificate", c.ClientAuth)
	}
}

func checkClientTLS(c *tls.Config) error {
	switch {
	case c == nil:
		return errors.New("missing: the raft transport never runs without mutual TLS")
	case len(c.Certificates) == 0 && c.GetClientCertificate == nil:
		return errors.New("no client certificate: set Certificates or GetClientCertificate")
	case c.InsecureSkipVerify && c.VerifyPeerCertificate == nil && c.VerifyConnection == nil:
		return errors.New("InsecureSkipVerify without VerifyPeerCertificate or VerifyConnection would accept any server")
	}
	return nil
}
