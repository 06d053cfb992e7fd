package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/issuer"
)

// serverFile is the YAML configuration of `writ server` (spec/cli.md).
// Relative paths are relative to the file's directory.
type serverFile struct {
	NodeID     string `yaml:"node_id"`
	Listen     string `yaml:"listen"`
	RaftListen string `yaml:"raft_listen"`
	// AdvertiseAPI is the API host:port other nodes forward writes to
	// (default: listen, which must then be a concrete address).
	AdvertiseAPI string `yaml:"advertise_api"`
	DataDir      string `yaml:"data_dir"`
	// Bootstrap: start a new single-voter cluster on first start (default
	// true). Set false on nodes that will join an existing cluster.
	Bootstrap *bool `yaml:"bootstrap"`
	// KEKFile names a file holding the key-encryption key; KEKEnv names an
	// environment variable holding it. Exactly one is required.
	KEKFile string `yaml:"kek_file"`
	KEKEnv  string `yaml:"kek_env"`
	// SVID and TrustBundles read the issuer's identity and the trust
	// bundles from files (reloaded on change); WorkloadAPI gets them from
	// the SPIFFE Workload API instead. Exactly one of the two.
	SVID struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	} `yaml:"svid"`
	TrustBundles []struct {
		TrustDomain string `yaml:"trust_domain"`
		File        string `yaml:"file"`
	} `yaml:"trust_bundles"`
	WorkloadAPI *struct {
		// Socket is the Workload API address, "unix:///path" or
		// "tcp://127.0.0.1:port".
		Socket string `yaml:"socket"`
		// Timeout bounds the wait for the first SVID at start-up (30s).
		Timeout string `yaml:"timeout"`
	} `yaml:"workload_api"`
	// JWTSVID tunes the validation of JWT-SVID callers.
	JWTSVID *struct {
		// Audience callers must put in aud; default the issuer's SPIFFE
		// ID. Present but empty is refused.
		Audience    *string  `yaml:"audience"`
		MaxLifetime string   `yaml:"max_lifetime"`
		Leeway      string   `yaml:"leeway"`
		Algorithms  []string `yaml:"algorithms"`
	} `yaml:"jwt_svid"`
	// AgentTrustDomains accepted for token requests; default: the issuer's.
	AgentTrustDomains []string `yaml:"agent_trust_domains"`
	Admins            []string `yaml:"admins"`
	PolicyFile        string   `yaml:"policy_file"`
	DefaultTTL        string   `yaml:"default_ttl"`
	MaxTTL            string   `yaml:"max_ttl"`
	// KeyLifetime: automatic root key rotation ("0" turns it off);
	// KeyPublishDelay: how long a prepared key is published before the
	// schedule activates it.
	KeyLifetime     string `yaml:"key_lifetime"`
	KeyPublishDelay string `yaml:"key_publish_delay"`
	Log             struct {
		Format string `yaml:"format"`
		Level  string `yaml:"level"`
	} `yaml:"log"`
}

// maxConfigBytes bounds the config file.
const maxConfigBytes = 1 << 20

func loadServerFile(path string) (*serverFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("config %s: larger than %d bytes", path, maxConfigBytes)
	}
	var f serverFile
	if err := yaml.NewDecoder(bytes.NewReader(data), yaml.Strict(), yaml.DisallowUnknownField()).Decode(&f); err != nil {
		return nil, fmt.Errorf("config %s: %s", path, yaml.FormatError(err, false, true))
	}
	return &f, nil
}

// issuerConfig turns the file into a typed issuer.Config; base resolves
// relative paths.
//
// The identity it returns must be closed by the caller, also when
// issuer.New fails; on error nothing is left open.
func (f *serverFile) issuerConfig(ctx context.Context, base string, logger *slog.Logger) (issuer.Config, *identity, error) {
	cfg := issuer.DefaultConfig()
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	if f.NodeID != "" {
		cfg.NodeID = f.NodeID
	}
	if f.Listen != "" {
		cfg.ListenAddr = f.Listen
	}
	if f.RaftListen != "" {
		cfg.RaftAddr = f.RaftListen
	}
	cfg.AdvertiseAPIAddr = f.AdvertiseAPI
	if f.Bootstrap != nil {
		cfg.Bootstrap = *f.Bootstrap
	}
	cfg.DataDir = rel(f.DataDir)
	if cfg.DataDir == "" {
		return cfg, nil, fmt.Errorf("config: data_dir is required")
	}
	switch {
	case f.KEKFile != "" && f.KEKEnv != "":
		return cfg, nil, fmt.Errorf("config: set one of kek_file and kek_env, not both")
	case f.KEKFile != "":
		kek, err := issuer.LoadKEK(rel(f.KEKFile))
		if err != nil {
			return cfg, nil, fmt.Errorf("config: kek_file: %w", err)
		}
		cfg.KEK = kek
	case f.KEKEnv != "":
		v, ok := os.LookupEnv(f.KEKEnv)
		if !ok {
			return cfg, nil, fmt.Errorf("config: kek_env: $%s is not set", f.KEKEnv)
		}
		kek, err := issuer.ParseKEK(v)
		if err != nil {
			return cfg, nil, fmt.Errorf("config: kek_env: %w", err)
		}
		cfg.KEK = kek
	default:
		return cfg, nil, fmt.Errorf("config: kek_file or kek_env is required")
	}
	for i, s := range f.AgentTrustDomains {
		td, err := spiffeid.TrustDomainFromString(s)
		if err != nil {
			return cfg, nil, fmt.Errorf("config: agent_trust_domains[%d]: %w", i, err)
		}
		cfg.TrustDomains = append(cfg.TrustDomains, td)
	}
	for i, s := range f.Admins {
		id, err := spiffeid.FromString(s)
		if err != nil {
			return cfg, nil, fmt.Errorf("config: admins[%d]: %w", i, err)
		}
		cfg.Admins = append(cfg.Admins, id)
	}
	if f.PolicyFile != "" {
		p, err := os.ReadFile(rel(f.PolicyFile))
		if err != nil {
			return cfg, nil, fmt.Errorf("config: policy_file: %w", err)
		}
		cfg.InitialPolicy = p
	}
	for _, d := range []struct {
		name string
		in   string
		out  *time.Duration
	}{{"default_ttl", f.DefaultTTL, &cfg.DefaultTTL}, {"max_ttl", f.MaxTTL, &cfg.MaxTTL},
		{"key_lifetime", f.KeyLifetime, &cfg.KeyLifetime}, {"key_publish_delay", f.KeyPublishDelay, &cfg.KeyPublishDelay}} {
		if d.in == "" {
			continue
		}
		v, err := time.ParseDuration(d.in)
		if err != nil {
			return cfg, nil, fmt.Errorf("config: %s: %w", d.name, err)
		}
		*d.out = v
	}
	cfg.Logger = logger
	if err := f.jwtConfig(&cfg); err != nil {
		return cfg, nil, err
	}
	// The identity comes last: a Workload API source holds a connection
	// that every later error would have to close.
	ident, err := f.identity(ctx, rel, logger)
	if err != nil {
		return cfg, nil, err
	}
	cfg.SVID, cfg.Bundles, cfg.JWTBundles = ident.svid, ident.bundles, ident.jwtBundles
	if err := cfg.Validate(); err != nil {
		ident.close()
		return cfg, nil, err
	}
	return cfg, ident, nil
}

func newLogger(e env, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if level == "" {
		level = "info"
	}
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "json":
		return slog.New(slog.NewJSONHandler(e.stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(e.stderr, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want json or text", format)
}

func runServer(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "server", "writ server --config FILE [--node-id ID] [--listen ADDR] [--raft-listen ADDR] [--data-dir DIR] [--no-bootstrap]")
	cfgPath := fs.String("config", "", "YAML config file (required; unknown keys are rejected)")
	listen := fs.String("listen", "", "override listen")
	raftListen := fs.String("raft-listen", "", "override raft_listen")
	dataDir := fs.String("data-dir", "", "override data_dir")
	nodeID := fs.String("node-id", "", "override node_id")
	noBootstrap := fs.Bool("no-bootstrap", false, "override bootstrap: false (a node that will be joined to an existing cluster)")
	advertise := fs.String("advertise-api", "", "override advertise_api")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("server: unexpected argument %q", pos[0])
	}
	if *cfgPath == "" {
		return usagef("server: --config is required")
	}
	f, err := loadServerFile(*cfgPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		f.Listen = *listen
	}
	if *raftListen != "" {
		f.RaftListen = *raftListen
	}
	if *nodeID != "" {
		f.NodeID = *nodeID
	}
	if *noBootstrap {
		no := false
		f.Bootstrap = &no
	}
	if *advertise != "" {
		f.AdvertiseAPI = *advertise
	}
	if *dataDir != "" {
		abs, err := filepath.Abs(*dataDir)
		if err != nil {
			return err
		}
		f.DataDir = abs
	}
	logger, err := newLogger(e, f.Log.Format, f.Log.Level)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	cfg, ident, err := f.issuerConfig(ctx, filepath.Dir(*cfgPath), logger)
	if err != nil {
		return err
	}
	is, err := issuer.New(cfg)
	if err != nil {
		return errors.Join(err, ident.close())
	}
	return serve(ctx, is, ident)
}

// serve runs the issuer and its identity source together; the first to
// fail stops the other. It closes the identity.
func serve(ctx context.Context, is *issuer.Issuer, id *identity) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srcErr := make(chan error, 1)
	go func() {
		err := id.run(ctx)
		cancel() // the identity source stopped: stop the issuer too
		srcErr <- err
	}()
	err := is.Run(ctx)
	cancel()
	if e := <-srcErr; err == nil {
		err = e
	}
	if e := id.close(); err == nil {
		err = e
	}
	return err
}
