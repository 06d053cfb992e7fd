package syncer

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/writ-dev/writ/internal/syncwire"
	"github.com/writ-dev/writ/verifier"
)

// Syncer keeps a verifier's root keys and revocations current by polling
// the issuer nodes (spec/sync.md), and serves them to the verifier: it is
// its KeySource, RevocationSource, AgentRevocationSource,
// KeyRevocationSource and FreshnessSource. Create it with New, run Run,
// and hand it to verifier.Config as Keys, Revocations and Freshness.
//
// Lookups are safe for concurrent use, do not allocate (RootKey and
// RootKeys return copies) and never wait on I/O: they take a read lock
// that a change holds for the time of applying it in memory and a new
// snapshot for the time of a pointer swap (its tables are built aside).
type Syncer struct {
	cfg      Config
	log      *slog.Logger
	http     *http.Client
	idle     func() // closes idle connections
	instance string

	// mu guards the copy: st (replaced by a snapshot, changed in place by
	// a change) and the freshness. Lookups hold it for reading.
	mu      sync.RWMutex
	st      *state
	asOf    time.Time
	hasAsOf bool

	ready     chan struct{} // closed once a copy is held
	readyOnce sync.Once

	// pollMu serializes polls (Run and Sync) and guards what only they
	// touch; the poll that holds it is the only writer of st and nodes
	// (which it also writes under mu, for Nodes).
	pollMu       sync.Mutex
	nodes        []string // base URLs: configured, then learned
	cur          int      // index in nodes of the node polled next
	wantSnapshot bool     // next poll asks since=0
	file         *stateFile
}

var (
	_ verifier.KeySource             = (*Syncer)(nil)
	_ verifier.RevocationSource      = (*Syncer)(nil)
	_ verifier.AgentRevocationSource = (*Syncer)(nil)
	_ verifier.KeyRevocationSource   = (*Syncer)(nil)
	_ verifier.FreshnessSource       = (*Syncer)(nil)
)

// New checks cfg and returns a Syncer; it sends nothing. When
// cfg.StateFile exists it is loaded and every signature and epoch in it
// checked (a file failing a check is ignored with a warning: the Syncer
// then starts empty). The error wraps ErrInvalidConfig.
func New(cfg Config) (*Syncer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	instance := cfg.Instance
	if instance == "" {
		var b [8]byte
		rand.Read(b[:])
		instance = "v-" + hex.EncodeToString(b[:])
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     tlsconfig.MTLSClientConfig(cfg.SVID, cfg.Bundle, tlsconfig.AuthorizeID(cfg.IssuerID)),
		TLSHandshakeTimeout: cfg.Timeout,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}
	s := &Syncer{
		cfg: cfg,
		log: log,
		http: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		idle:     tr.CloseIdleConnections,
		instance: instance,
		st:       newState(),
		ready:    make(chan struct{}),
	}
	if cfg.Keys != nil {
		if err := s.pin(cfg.Keys); err != nil {
			return nil, err
		}
	}
	s.setNodes(nil)
	if cfg.StateFile != "" {
		s.file = &stateFile{path: cfg.StateFile}
		if err := s.load(); err != nil {
			log.Warn("writ sync state file ignored", "file", cfg.StateFile, "err", err)
		}
	}
	return s, nil
}

// pin makes the keys of ks the held keys until the first snapshot.
func (s *Syncer) pin(ks verifier.KeySource) error {
	rks := ks.RootKeys()
	if len(rks) == 0 || len(rks) > syncwire.MaxKeys {
		return invalid("Keys: %d keys, want 1 to %d", len(rks), syncwire.MaxKeys)
	}
	keys := make([]syncwire.Key, len(rks))
	for i, k := range rks {
		keys[i] = syncwire.Key{ID: k.ID, State: syncwire.KeyActive, Public: slices.Clone(k.Public)}
	}
	slices.SortFunc(keys, func(a, b syncwire.Key) int { return cmp.Compare(a.ID, b.ID) })
	for i := 1; i < len(keys); i++ {
		if keys[i].ID == keys[i-1].ID {
			return invalid("Keys: duplicate key id %d", keys[i].ID)
		}
	}
	if err := checkKeys(keys); err != nil {
		return invalid("Keys: %v", err)
	}
	s.st.setKeys(keys)
	return nil
}

// Ready is closed once the Syncer holds a copy (from a node or the state
// file). Holding one does not make it fresh: see CurrentAsOf.
func (s *Syncer) Ready() <-chan struct{} { return s.ready }

// Epoch returns the epoch of the copy held, 0 before the first snapshot.
func (s *Syncer) Epoch() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.epoch
}

// RootKey returns a copy of the key of the given id when it is held in
// state prepared, active or retiring (or pinned, before the first
// snapshot). Revoked keys are not returned.
func (s *Syncer) RootKey(id uint32) (verifier.RootKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, k := range s.st.usable {
		if k.ID == id {
			return verifier.RootKey{ID: k.ID, Public: slices.Clone(k.Public)}, true
		}
	}
	return verifier.RootKey{}, false
}

// RootKeys returns copies of the keys RootKey returns: active keys first,
// then retiring, then prepared, by id within each.
func (s *Syncer) RootKeys() []verifier.RootKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]verifier.RootKey, len(s.st.usable))
	for i, k := range s.st.usable {
		out[i] = verifier.RootKey{ID: k.ID, Public: slices.Clone(k.Public)}
	}
	return out
}

// KeyRevoked reports whether the key of the given id is held in state
// revoked: every token it signed is refused.
func (s *Syncer) KeyRevoked(id uint32) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.revoked[id]
}

// Revoked reports whether id is revoked: a token id (32 hex digits) held
// exactly, or a block revocation id (128 hex digits) whose first 16 bytes
// are held (see verifier.RevocationList for why a prefix is enough).
// Either hex case is accepted; anything else is never revoked. It does not
// allocate.
func (s *Syncer) Revoked(hexID string) bool {
	k, block, ok := verifier.RevocationKey(hexID)
	if !ok {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if block {
		return s.st.blocks.has(k)
	}
	return s.st.tokens.has(k)
}

// AgentRevoked reports whether the tokens of agent issued at issuedAt are
// revoked: issued before the latest agent revocation of agent.
func (s *Syncer) AgentRevoked(agent string, issuedAt time.Time) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.agentRevoked(agent, issuedAt)
}

// CurrentAsOf returns the time as of which the copy is known current
// (spec/sync.md §5): min(heartbeat time, local receive time) of the
// latest accepted heartbeat, kept across later snapshots and changes (a
// newer copy is at least as current). It is false before the first
// accepted heartbeat.
func (s *Syncer) CurrentAsOf() (time.Time, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.asOf, s.hasAsOf
}

// Nodes returns the base URLs the Syncer polls: Config.Issuers, then the
// nodes the cluster lists.
func (s *Syncer) Nodes() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.nodes)
}

// Close closes idle connections to the nodes. The Syncer stays usable
// for lookups; Run and Sync open new connections.
func (s *Syncer) Close() error {
	s.idle()
	return nil
}

// Run keeps the copy current until ctx ends: it long-polls one node after
// the other (PollWait), applies what they send, rotates to the next known
// node on any failure (an error, a 503, a rollback, a truncated answer)
// and, once every node has failed in a row, waits the backoff of
// Config.MinBackoff and MaxBackoff. Failures are logged, not returned. On
// return, pending state is written to the state file and idle
// connections are closed; nothing keeps running. Run returns nil when ctx
// ends. Run and Sync may be called concurrently; their polls take turns.
func (s *Syncer) Run(ctx context.Context) error {
	defer s.idle()
	defer func() {
		s.pollMu.Lock()
		s.flush(true)
		s.pollMu.Unlock()
	}()
	s.log.Debug("writ sync started", "instance", s.instance, "nodes", len(s.Nodes()))
	failures, gaps := 0, 0
	for ctx.Err() == nil {
		start := time.Now()
		s.pollMu.Lock()
		node := s.nodes[s.cur]
		err := s.poll(ctx, node)
		if errors.Is(err, ErrGap) {
			if gaps++; gaps > maxAgain {
				err = fmt.Errorf("%w: %d gaps in a row", ErrBadAnswer, gaps)
			}
		}
		failed := err != nil && !errors.Is(err, ErrGap)
		if failed {
			s.cur = (s.cur + 1) % len(s.nodes)
		}
		nodes := len(s.nodes)
		s.flush(false)
		s.pollMu.Unlock()

		var delay time.Duration
		switch {
		case ctx.Err() != nil:
			return nil
		case !failed:
			failures = 0
			if err == nil {
				gaps = 0
			}
			delay = minPollInterval - time.Since(start)
		default:
			gaps = 0
			failures++
			delay = s.backoff(err, failures, nodes)
			s.log.Warn("writ sync poll failed", "node", node, "err", err, "failures", failures, "retry_in", delay)
		}
		if delay > 0 && sleep(ctx, delay) != nil {
			return nil
		}
	}
	return nil
}

// Sync brings the copy up to date once: it polls the known nodes in turn,
// each at most once (plus the polls needed to fetch what a heartbeat says
// is missing), until one answer ends with an accepted heartbeat. A Syncer
// with no copy gets a snapshot and a heartbeat; one with a copy waits up
// to PollWait for changes. Errors: the last node's failure, wrapped with
// ErrNoIssuer (errors.Is finds ErrRollback, ErrUnavailable,
// syncwire.ErrBadSignature, … as well), or ctx's error.
func (s *Syncer) Sync(ctx context.Context) error {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	defer s.flush(false)
	var last error
	for tries, again := 0, 0; tries < len(s.nodes); {
		node := s.nodes[s.cur]
		err := s.poll(ctx, node)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case errors.Is(err, ErrGap) && again < maxAgain:
			again++
			continue
		}
		s.log.Debug("writ sync poll failed", "node", node, "err", err)
		last = err
		s.cur = (s.cur + 1) % len(s.nodes)
		tries++
	}
	return fmt.Errorf("%w: %w", ErrNoIssuer, last)
}

// backoff returns the delay after the failures-th consecutive failed
// poll err, with nodes known: none until every node was tried once.
func (s *Syncer) backoff(err error, failures, nodes int) time.Duration {
	if failures < nodes {
		return 0
	}
	lo, hi := s.cfg.MinBackoff, s.cfg.MaxBackoff
	ceil := lo
	for i := nodes; i < failures && ceil < hi; i++ {
		ceil *= 2
	}
	ceil = min(ceil, hi)
	r := s.cfg.Rand()
	if !(r >= 0) { // also NaN
		r = 0
	}
	d := lo + time.Duration(min(r, 1)*float64(ceil-lo))
	var pe *ProblemError
	if errors.As(err, &pe) && pe.RetryAfter > 0 {
		d = max(d, min(pe.RetryAfter, hi))
	}
	return d
}

// setNodes rebuilds the node list from Config.Issuers and learned, the
// "host:port" addresses the cluster signed. pollMu held (or New).
func (s *Syncer) setNodes(learned []string) {
	cur := ""
	if len(s.nodes) > 0 {
		cur = s.nodes[s.cur]
	}
	nodes := make([]string, 0, len(s.cfg.Issuers)+len(learned))
	add := func(u string) {
		if !slices.Contains(nodes, u) {
			nodes = append(nodes, u)
		}
	}
	for _, is := range s.cfg.Issuers {
		u, _ := baseURL(is) // Validate checked it
		add(u)
	}
	for _, addr := range learned {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" || port == "" {
			s.log.Warn("writ sync node address ignored", "addr", addr)
			continue
		}
		u, err := baseURL((&url.URL{Scheme: "https", Host: addr}).String())
		if err != nil {
			s.log.Warn("writ sync node address ignored", "addr", addr)
			continue
		}
		add(u)
	}
	s.mu.Lock()
	s.nodes = nodes
	s.mu.Unlock()
	s.cur = max(0, slices.Index(nodes, cur))
}

// bootstrapAllowed reports whether a snapshot may vouch for itself
// (spec/sync.md §4): no key held, or a copy older than MaxStaleness.
// pollMu held.
func (s *Syncer) bootstrapAllowed() bool {
	if len(s.st.usable) == 0 {
		return true
	}
	if !s.st.snapshot {
		return false // pinned keys: the first snapshot must be signed by one
	}
	s.mu.RLock()
	asOf, ok := s.asOf, s.hasAsOf
	s.mu.RUnlock()
	return !ok || s.cfg.Now().Sub(asOf) > s.cfg.MaxStaleness
}

// signer is the lookup of the keys held; pollMu held.
func (s *Syncer) signer(id uint32) (ed25519.PublicKey, bool) { return s.st.signer(id) }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
