package spiffefile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// errNotLoaded is returned by the getters of a Source not made by New.
var errNotLoaded = errors.New("spiffefile: source not created with New")

// Source serves an X.509-SVID and trust bundles read from files, and
// follows changes to those files. It implements x509svid.Source,
// x509bundle.Source and jwtbundle.Source, so it can be passed to
// go-spiffe's tlsconfig helpers and JWT-SVID validation.
//
// The getters read an immutable snapshot through an atomic pointer: they do
// no file I/O, take no lock and are safe for concurrent use with each other
// and with Reload and Run. A new snapshot replaces the old one only when
// every file has been read and the SVID, its key and all bundles have been
// validated together; otherwise the previous snapshot keeps being served.
type Source struct {
	cfg      Config
	tds      []spiffeid.TrustDomain // sorted keys of cfg.Bundles
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration

	cur atomic.Pointer[snapshot]

	mu       sync.Mutex // serialises reloads; guards lastFail
	lastFail string     // error of the last failed reload, "" after a success
}

// New validates cfg, reads and checks every file once and returns a Source
// serving them. It copies cfg.Bundles; later changes to the map have no
// effect.
//
// It fails closed: it returns an error wrapping ErrInvalidConfig for an
// invalid cfg, and otherwise an error if any file cannot be read (matching
// fs.ErrNotExist for a missing file) or does not hold a valid SVID
// (ErrInvalidSVID) or bundle (ErrInvalidBundle). New starts no goroutine:
// call Run to follow changes.
func New(cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Bundles = maps.Clone(cfg.Bundles)
	s := &Source{
		cfg:      cfg,
		tds:      slices.SortedFunc(maps.Keys(cfg.Bundles), compareTD),
		log:      cfg.Logger,
		now:      cfg.Now,
		interval: cfg.Interval,
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.interval == 0 {
		s.interval = DefaultInterval
	}
	c, err := readAll(&s.cfg, s.tds)
	if err != nil {
		return nil, fmt.Errorf("spiffefile: load: %w", err)
	}
	snap, err := build(&s.cfg, c, s.now())
	if err != nil {
		return nil, fmt.Errorf("spiffefile: load: %w", err)
	}
	s.cur.Store(snap)
	s.log.Info("spiffefile: loaded", snapAttrs(snap)...)
	return s, nil
}

func compareTD(a, b spiffeid.TrustDomain) int { return cmp.Compare(a.Name(), b.Name()) }

// GetX509SVID returns the X.509-SVID of the current snapshot. It never
// fails on a Source made by New. The SVID is shared with every other caller
// and must not be modified.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) {
	snap := s.cur.Load()
	if snap == nil {
		return nil, errNotLoaded
	}
	return snap.svid, nil
}

// GetX509BundleForTrustDomain returns the bundle of td from the current
// snapshot, or an error wrapping ErrUnknownTrustDomain if td has no bundle
// file in the Config. The bundle is shared with every other caller and
// must not be modified.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	snap := s.cur.Load()
	if snap == nil {
		return nil, errNotLoaded
	}
	b, ok := snap.bundles[td]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownTrustDomain, td)
	}
	return b, nil
}

// GetJWTBundleForTrustDomain returns the JWT bundle of td from the current
// snapshot. Only a bundle file in SPIFFE bundle format that holds JWT
// authorities has one; for any other trust domain it returns an error
// wrapping ErrUnknownTrustDomain, so JWT-SVIDs of a trust domain configured
// with a PEM bundle are refused. The bundle is shared and must not be
// modified.
func (s *Source) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	snap := s.cur.Load()
	if snap == nil {
		return nil, errNotLoaded
	}
	b, ok := snap.jwtBundles[td]
	if !ok {
		return nil, fmt.Errorf("%w %q: no JWT authorities", ErrUnknownTrustDomain, td)
	}
	return b, nil
}

// SVIDExpiry returns when the currently served SVID stops being usable: the
// earliest NotAfter of its certificate chain. Callers can export it as a
// metric or fail readiness when it comes near. It returns the zero time on
// a Source not made by New.
func (s *Source) SVIDExpiry() time.Time {
	snap := s.cur.Load()
	if snap == nil {
		return time.Time{}
	}
	return snap.expiry
}

// Reload reads every file now. If their contents are unchanged since the
// served snapshot it does nothing and returns nil. Otherwise it validates
// them together and, on success, atomically replaces the snapshot.
//
// On failure it returns the error (wrapping ErrInvalidSVID,
// ErrInvalidBundle or a file system error), logs a warning and keeps
// serving the previous snapshot. Reload is safe to call concurrently with
// Run and the getters; concurrent reloads are serialised.
func (s *Source) Reload() error {
	if s.cur.Load() == nil {
		return errNotLoaded
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	err := s.reloadLocked()
	if err == nil {
		if s.lastFail != "" {
			s.log.Info("spiffefile: files valid again")
			s.lastFail = ""
		}
		return nil
	}
	// Warn once per distinct failure: a file that stays broken would
	// otherwise log on every poll.
	if msg := err.Error(); msg != s.lastFail {
		s.lastFail = msg
		s.log.Warn("spiffefile: reload failed, serving previous SVID and bundles",
			slog.String("error", msg), slog.Time("svid_expiry", s.SVIDExpiry()))
	} else {
		s.log.Debug("spiffefile: reload still failing", slog.String("error", msg))
	}
	return err
}

func (s *Source) reloadLocked() error {
	c, err := readAll(&s.cfg, s.tds)
	if err != nil {
		return fmt.Errorf("spiffefile: reload: %w", err)
	}
	if c.sum == s.cur.Load().sum {
		return nil
	}
	snap, err := build(&s.cfg, c, s.now())
	if err != nil {
		return fmt.Errorf("spiffefile: reload: %w", err)
	}
	s.cur.Store(snap)
	s.log.Info("spiffefile: reloaded", snapAttrs(snap)...)
	return nil
}

// Run calls Reload every Config.Interval until ctx ends, then returns nil.
// Reload failures are logged, not returned: the previous snapshot keeps
// being served and the next poll tries again. Run may be called at most
// once at a time per Source for sensible logging, but concurrent calls are
// safe.
func (s *Source) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = s.Reload() // logged by Reload
		}
	}
}

// snapAttrs describes a snapshot for logs: identity, serial and expiry,
// never key material.
func snapAttrs(snap *snapshot) []any {
	leaf := snap.svid.Certificates[0]
	tds := make([]string, 0, len(snap.bundles))
	for td := range snap.bundles {
		tds = append(tds, td.Name())
	}
	slices.Sort(tds)
	return []any{
		slog.String("spiffe_id", snap.svid.ID.String()),
		slog.String("serial", leaf.SerialNumber.Text(16)),
		slog.Time("not_after", snap.expiry),
		slog.Any("trust_domains", tds),
	}
}
