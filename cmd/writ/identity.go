package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/writ-dev/writ/internal/spiffefile"
	"github.com/writ-dev/writ/issuer"
)

// identity is where the issuer's own SVID and the trust bundles come
// from: files (followed by polling) or the SPIFFE Workload API (pushed by
// the agent). Either way rotation is picked up live.
type identity struct {
	svid       x509svid.Source
	bundles    x509bundle.Source
	jwtBundles jwtbundle.Source
	// run follows rotation until ctx ends.
	run func(ctx context.Context) error
	// closers release the Workload API connection.
	closers []func() error
}

func (id *identity) close() error {
	var errs []error
	for _, c := range id.closers {
		errs = append(errs, c())
	}
	id.closers = nil
	return errors.Join(errs...)
}

// defaultWorkloadAPITimeout bounds the wait for the first SVID.
const defaultWorkloadAPITimeout = 30 * time.Second

// identity builds the identity source the file names: svid+trust_bundles
// or workload_api, exactly one.
func (f *serverFile) identity(ctx context.Context, rel func(string) string, logger *slog.Logger) (*identity, error) {
	files := f.SVID.Cert != "" || f.SVID.Key != "" || len(f.TrustBundles) > 0
	switch {
	case f.WorkloadAPI != nil && files:
		return nil, errors.New("config: set either workload_api or svid+trust_bundles, not both")
	case f.WorkloadAPI != nil:
		return f.workloadIdentity(ctx, logger)
	}
	if f.SVID.Cert == "" || f.SVID.Key == "" {
		return nil, errors.New("config: svid.cert and svid.key (or workload_api) are required")
	}
	if len(f.TrustBundles) == 0 {
		return nil, errors.New("config: trust_bundles: at least one is required")
	}
	scfg := spiffefile.DefaultConfig()
	scfg.CertFile, scfg.KeyFile = rel(f.SVID.Cert), rel(f.SVID.Key)
	scfg.Bundles = map[spiffeid.TrustDomain]string{}
	scfg.Logger = logger
	for i, tb := range f.TrustBundles {
		td, err := spiffeid.TrustDomainFromString(tb.TrustDomain)
		if err != nil {
			return nil, fmt.Errorf("config: trust_bundles[%d].trust_domain: %w", i, err)
		}
		if _, dup := scfg.Bundles[td]; dup {
			return nil, fmt.Errorf("config: trust_bundles[%d]: trust domain %s listed twice", i, td)
		}
		scfg.Bundles[td] = rel(tb.File)
	}
	// SVID and bundles are re-read when their files change (rotation).
	src, err := spiffefile.New(scfg)
	if err != nil {
		return nil, fmt.Errorf("config: svid or trust_bundles: %w", err)
	}
	return &identity{svid: src, bundles: src, jwtBundles: src, run: src.Run}, nil
}

func (f *serverFile) workloadIdentity(ctx context.Context, logger *slog.Logger) (*identity, error) {
	w := f.WorkloadAPI
	if w.Socket == "" {
		return nil, errors.New("config: workload_api.socket is required (unix:///path/to/agent.sock)")
	}
	if err := checkWorkloadAPIAddr(w.Socket); err != nil {
		return nil, fmt.Errorf("config: workload_api.socket: %w", err)
	}
	timeout := defaultWorkloadAPITimeout
	if w.Timeout != "" {
		d, err := time.ParseDuration(w.Timeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("config: workload_api.timeout %q: want a positive duration", w.Timeout)
		}
		timeout = d
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client, err := workloadapi.New(wctx, workloadapi.WithAddr(w.Socket))
	if err != nil {
		return nil, fmt.Errorf("config: workload_api: %w", err)
	}
	x509src, err := workloadapi.NewX509Source(wctx, workloadapi.WithClient(client))
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("config: workload_api: no X.509-SVID from %s within %v: %w", w.Socket, timeout, err)
	}
	bundles, err := workloadapi.NewBundleSource(wctx, workloadapi.WithClient(client))
	if err != nil {
		x509src.Close()
		client.Close()
		return nil, fmt.Errorf("config: workload_api: no bundles from %s within %v: %w", w.Socket, timeout, err)
	}
	id := &identity{svid: x509src, bundles: bundles, jwtBundles: bundles,
		closers: []func() error{bundles.Close, x509src.Close, client.Close}}
	id.run = func(ctx context.Context) error {
		// The sources follow the Workload API stream on their own; this
		// only logs each rotation (serial and expiry, never key material).
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-x509src.Updated():
				if s, err := x509src.GetX509SVID(); err == nil {
					logger.Info("workload API: X.509-SVID updated", "spiffe_id", s.ID.String(),
						"serial", s.Certificates[0].SerialNumber.Text(16), "not_after", s.Certificates[0].NotAfter)
				}
			}
		}
	}
	return id, nil
}

// jwtConfig applies the jwt_svid section.
func (f *serverFile) jwtConfig(cfg *issuer.Config) error {
	j := f.JWTSVID
	if j == nil {
		return nil
	}
	if j.Audience != nil {
		if *j.Audience == "" {
			return errors.New("config: jwt_svid.audience is empty: JWT-SVIDs would be accepted for any audience; remove the key to use the issuer's SPIFFE ID")
		}
		id, err := spiffeid.FromString(*j.Audience)
		if err != nil {
			return fmt.Errorf("config: jwt_svid.audience: %w", err)
		}
		cfg.JWT.Audience = id
	}
	for _, d := range []struct {
		name string
		in   string
		out  *time.Duration
	}{{"max_lifetime", j.MaxLifetime, &cfg.JWT.MaxLifetime}, {"leeway", j.Leeway, &cfg.JWT.Leeway}} {
		if d.in == "" {
			continue
		}
		v, err := time.ParseDuration(d.in)
		if err != nil {
			return fmt.Errorf("config: jwt_svid.%s: %w", d.name, err)
		}
		*d.out = v
	}
	if j.Algorithms != nil {
		cfg.JWT.Algorithms = nil
		for _, a := range j.Algorithms {
			cfg.JWT.Algorithms = append(cfg.JWT.Algorithms, jose.SignatureAlgorithm(a))
		}
	}
	// Audience may still be zero (filled with the issuer's ID by
	// issuer.New); check the rest now so a bad value fails at start-up.
	probe := cfg.JWT
	if probe.Audience.IsZero() {
		probe.Audience = spiffeid.RequireFromString("spiffe://probe.invalid/writ")
	}
	if err := probe.Validate(); err != nil {
		return fmt.Errorf("config: jwt_svid: %w", err)
	}
	return nil
}

// checkWorkloadAPIAddr accepts only unix:// addresses: go-spiffe speaks to
// a tcp:// Workload API in plaintext without authentication, and whoever
// answers there would choose the issuer's trust bundles.
func checkWorkloadAPIAddr(addr string) error {
	if !strings.HasPrefix(addr, "unix://") || len(addr) == len("unix://") {
		return fmt.Errorf("%q: want unix:///path/to/agent.sock (tcp:// Workload APIs are unauthenticated plaintext)", addr)
	}
	return nil
}
