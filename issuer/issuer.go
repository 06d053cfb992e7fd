package issuer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/writ-dev/writ/cluster"
	"github.com/writ-dev/writ/issuer/policy"
)

// Issuer is one issuer node: raft node, state machine, audit log and the
// HTTPS API. Create it with New and start it with Run.
type Issuer struct {
	cfg      Config
	id       spiffeid.ID
	log      *slog.Logger
	state    *State
	node     *cluster.Node
	fwd      *forwarder // applies on the leader, from any node
	sync     *syncHub   // serves keys and revocations to verifiers
	audit    *auditLog
	metrics  *metrics
	registry *prometheus.Registry
	ln       net.Listener
	srv      *http.Server
	tds      map[spiffeid.TrustDomain]bool
	admins   map[spiffeid.ID]bool
	// booted is set once start-up writes (root key, initial policy and
	// their audit records) are committed, or left to the leader.
	booted atomic.Bool
	// barrierTerm is the raft term in which this node, as leader, last
	// ran the barrier linearizable reads need once per term.
	barrierTerm atomic.Uint64
	// removed is set once this node finds it was removed from the
	// cluster (watchRemoval): it then refuses to serve.
	removed atomic.Pointer[removal]
}

// restoreSnapshotOnStart makes every start restore the newest raft
// snapshot into the state even when the state already holds it (the
// behaviour before cluster.Config.FSMApplied). Only BenchmarkRestart sets
// it, to compare.
var restoreSnapshotOnStart = false

// New opens the node's storage and binds its API listener; it starts
// nothing. The caller must call Run, which releases everything when done.
func New(cfg Config) (*Issuer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	svid, err := cfg.SVID.GetX509SVID()
	if err != nil {
		return nil, fmt.Errorf("issuer: own SVID: %w", err)
	}
	if isNil(cfg.JWTBundles) {
		cfg.JWTBundles = nil // a typed nil means none, not a panic per request
	}
	cfg.JWT.Now, cfg.X509.Now = cfg.Now, cfg.Now // one clock for the whole issuer
	if err := cfg.X509.Validate(); err != nil {
		return nil, fmt.Errorf("issuer: config: X.509-SVID checks: %w", err)
	}
	if cfg.JWT.Audience.IsZero() {
		cfg.JWT.Audience = svid.ID
	}
	if err := cfg.JWT.Validate(); err != nil {
		return nil, fmt.Errorf("issuer: config: JWT-SVID validation: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.InitialPolicy != nil {
		if _, err := policy.Parse(cfg.InitialPolicy); err != nil {
			return nil, fmt.Errorf("issuer: initial policy: %w", err)
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("issuer: data dir: %w", err)
	}
	state, err := OpenState(filepath.Join(cfg.DataDir, "state"), cfg.KEK, log.With("component", "state"))
	if err != nil {
		return nil, err
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	is := &Issuer{cfg: cfg, id: svid.ID, log: log, state: state, registry: reg, metrics: newMetrics(reg),
		tds: map[spiffeid.TrustDomain]bool{}, admins: map[spiffeid.ID]bool{}}
	tds := cfg.TrustDomains
	if len(tds) == 0 {
		tds = []spiffeid.TrustDomain{svid.ID.TrustDomain()}
	}
	for _, td := range tds {
		is.tds[td] = true
	}
	for _, a := range cfg.Admins {
		is.admins[a] = true
	}

	peers := tlsconfig.AuthorizeOneOf(svid.ID)
	ccfg := cluster.DefaultConfig()
	ccfg.NodeID = cfg.NodeID
	ccfg.DataDir = filepath.Join(cfg.DataDir, "raft")
	ccfg.BindAddr = cfg.RaftAddr
	ccfg.ServerTLS = tlsconfig.MTLSServerConfig(cfg.SVID, cfg.Bundles, peers)
	ccfg.ClientTLS = tlsconfig.MTLSClientConfig(cfg.SVID, cfg.Bundles, peers)
	ccfg.Bootstrap = cfg.Bootstrap
	ccfg.Logger = log.With("component", "raft")
	ccfg.DialHook, ccfg.OnLeaderChange = cfg.RaftDialHook, cfg.RaftOnLeaderChange // fault-injection tests only
	if !restoreSnapshotOnStart {
		// The state is on disk and synced at every snapshot (State.Snapshot):
		// raft restores the snapshot only when the state is behind it.
		ccfg.FSMApplied = state.Applied
	}
	node, err := cluster.New(ccfg, state)
	if err != nil {
		state.Close()
		return nil, fmt.Errorf("issuer: raft: %w", err)
	}
	if st := node.Stats(); state.Applied() > max(st.LastLogIndex, st.LastSnapshotIndex) {
		// The state saw log entries the raft log no longer has (its data
		// was lost or restored from an older copy). Reusing those indexes
		// would skip new commands as already applied.
		node.Close()
		state.Close()
		return nil, fmt.Errorf("issuer: state has applied index %d but the raft log ends at %d: refusing to start (restore both from the same backup, or reset the node)", state.Applied(), max(st.LastLogIndex, st.LastSnapshotIndex))
	}
	is.node = node
	is.fwd = newForwarder(is, node)
	is.sync = newSyncHub(is)
	state.setSyncFeed(is.sync)
	is.audit = newAuditLog(is.fwd, cfg.AuditBatch, cfg.AuditWorkers, is.metrics)

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		node.Close()
		state.Close()
		return nil, fmt.Errorf("issuer: listen %s: %w", cfg.ListenAddr, err)
	}
	is.ln = ln
	is.srv = &http.Server{
		Handler:           is.handler(),
		TLSConfig:         is.serverTLS(),
		ConnContext:       withConnAuth,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return is, nil
}

// serverTLS requests (but does not require) a client certificate, and
// verifies any certificate presented against the bundle of its own trust
// domain with credential.VerifyPeer, at every handshake including resumed
// sessions (and again per request, see peerID), so unauthenticated endpoints
// (/healthz, /v1/keys) and JWT-SVID callers work without one while every
// certificate the handlers see is a verified X.509-SVID.
func (is *Issuer) serverTLS() *tls.Config {
	c := tlsconfig.TLSServerConfig(is.cfg.SVID)
	c.ClientAuth = tls.RequestClientCert
	// VerifyConnection, unlike VerifyPeerCertificate, also runs when a
	// TLS session is resumed. Requests re-verify as well (peerID).
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil
		}
		_, err := is.verifyPeer(cs.PeerCertificates)
		return err
	}
	c.MinVersion = tls.VersionTLS12
	return c
}

// Addr is the bound API address.
func (is *Issuer) Addr() string { return is.ln.Addr().String() }

// RaftAddr is the bound raft transport address.
func (is *Issuer) RaftAddr() string { return is.node.Addr() }

// ID is the issuer's SPIFFE ID.
func (is *Issuer) ID() spiffeid.ID { return is.id }

// State exposes the node's state machine for reads.
func (is *Issuer) State() *State { return is.state }

// Run serves until ctx ends, then shuts down the API, the audit workers
// and the raft node, in that order, and closes storage. The first fatal
// error of any component stops the rest.
func (is *Issuer) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The raft node and the audit workers outlive the HTTP server so that
	// requests in flight at shutdown can still commit their audit records.
	nodeCtx, nodeCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer nodeCancel()
	nodeErr := make(chan error, 1)
	go func() { nodeErr <- is.node.Run(nodeCtx) }()
	auditCtx, auditCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer auditCancel()
	auditErr := make(chan error, 1)
	go func() { auditErr <- is.audit.Run(auditCtx) }()
	// Heartbeats and housekeeping stop with the API (ctx).
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); is.sync.runHeartbeats(ctx, is.cfg.SyncHeartbeat) }()
	go func() { defer bg.Done(); is.maintain(ctx) }()
	bg.Add(1)
	go func() { defer bg.Done(); is.watchRemoval(ctx) }() // refuse to serve once removed (membership.go)
	srvErr := make(chan error, 1)
	go func() {
		err := is.srv.ServeTLS(is.ln, "", "")
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		srvErr <- err
	}()
	bootDone := make(chan struct{})
	go func() {
		defer close(bootDone)
		if err := is.bootstrap(ctx); err != nil {
			if ctx.Err() == nil {
				cancel(err)
			}
			return
		}
		is.booted.Store(true)
		is.sync.kick()
	}()
	is.log.Info("issuer started", "node", is.cfg.NodeID, "addr", is.Addr(), "id", is.id.String())

	var first error
	select {
	case <-ctx.Done():
	case err := <-srvErr:
		first = err
		srvErr <- nil
	case err := <-nodeErr:
		first = fmt.Errorf("raft node stopped: %w", err)
		nodeErr <- nil
	}
	cancel(nil)
	<-bootDone
	bg.Wait()
	// Drain requests; past the grace period, cut the rest off.
	shutCtx, shutCancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer shutCancel()
	if err := is.srv.Shutdown(shutCtx); err != nil {
		is.srv.Close()
	}
	<-srvErr
	auditCancel()
	<-auditErr
	nodeCancel()
	if err := <-nodeErr; err != nil && first == nil && !errors.Is(err, context.Canceled) {
		first = err
	}
	if err := is.state.Close(); err != nil && first == nil {
		first = err
	}
	if c := context.Cause(ctx); first == nil && c != nil && !errors.Is(c, context.Canceled) {
		first = c
	}
	return first
}

// bootstrap makes sure a root key and a policy exist, once this node leads.
func (is *Issuer) bootstrap(ctx context.Context) error {
	for {
		if err := is.node.WaitLeader(ctx); err != nil {
			return err
		}
		if err := is.ensureNodeRecord(ctx); err != nil {
			if ctx.Err() != nil {
				return err
			}
			if strings.Contains(err.Error(), "was removed") {
				// The node stays up, refusing to serve, so that /readyz
				// and the log say why (membership.go).
				is.checkRemoval(ctx)
				<-ctx.Done()
				return ctx.Err()
			}
			is.log.Warn("node registration retry", "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		if !is.node.IsLeader() {
			return nil // the leader creates the root key and the policy
		}
		err := is.ensureKey(ctx)
		if err == nil {
			err = is.ensurePolicy(ctx)
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrBadKEK), errors.Is(err, ErrBadCommand):
			return err // cannot succeed by retrying
		case ctx.Err() != nil:
			return ctx.Err()
		}
		// Leadership changes, timeouts: try again shortly.
		is.log.Warn("bootstrap retry", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (is *Issuer) ensureKey(ctx context.Context) error {
	if err := is.node.Barrier(ctx); err != nil {
		return err
	}
	if _, _, err := is.state.ActiveKey(); err == nil {
		return nil
	}
	_, err := is.addKey(ctx, is.id, keyActive, "")
	return err
}

func (is *Issuer) ensurePolicy(ctx context.Context) error {
	if _, err := is.state.Policy(); err == nil || is.cfg.InitialPolicy == nil {
		return nil
	}
	_, err := is.SetPolicy(ctx, is.id, is.cfg.InitialPolicy)
	return err
}

// SetPolicy validates and replicates a new issuance policy on behalf of
// admin, and audits the change. It returns the new version.
func (is *Issuer) SetPolicy(ctx context.Context, admin spiffeid.ID, source []byte) (string, error) {
	p, err := policy.Parse(source)
	if err != nil {
		return "", err
	}
	now := is.cfg.Now().UTC()
	rec := &policyRecord{Version: p.Version(), Source: source, SetBy: admin.String(), SetAt: now}
	audit := &AuditRecord{Time: now, Node: is.cfg.NodeID, Kind: AuditPolicySet, Caller: admin.String(), PolicyVersion: rec.Version}
	if err := is.apply(ctx, &command{Type: cmdPolicySet, Policy: rec, Audit: []*AuditRecord{audit}}); err != nil {
		return "", fmt.Errorf("issuer: set policy: %w", err)
	}
	is.log.Info("policy set", "policy_version", rec.Version, "by", admin.String())
	return rec.Version, nil
}

// apply commits c and checks that the state machine applied it, audit
// records included.
func (is *Issuer) apply(ctx context.Context, c *command) error {
	_, err := is.applyEpoch(ctx, c)
	return err
}

// applyEpoch is apply that also returns the sync epoch right after c.
func (is *Issuer) applyEpoch(ctx context.Context, c *command) (uint64, error) {
	b, err := encodeCommand(c)
	if err != nil {
		return 0, err
	}
	res, err := is.fwd.Apply(ctx, b)
	if err != nil {
		return 0, err
	}
	if err := checkApplied(res, len(c.Audit)); err != nil {
		return 0, err
	}
	return res.(applyResult).syncEpoch, nil
}

// checkApplied fails closed unless the state machine returned a result
// that chains exactly records audit records.
func checkApplied(res any, records int) error {
	r, ok := res.(applyResult)
	switch {
	case !ok:
		return fmt.Errorf("%w: unexpected apply result %T", ErrAuditChain, res)
	case r.err != nil:
		return r.err
	case len(r.seqs) != records:
		return fmt.Errorf("%w: %d of %d audit records chained", ErrAuditChain, len(r.seqs), records)
	}
	return nil
}

// IsLeader reports whether this node currently leads the raft cluster.
func (is *Issuer) IsLeader() bool { return is.node.IsLeader() }
