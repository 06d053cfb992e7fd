package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/internal/pki"
	"github.com/writ-dev/writ/issuer"
	"github.com/writ-dev/writ/issuer/policy"
)

// The dev trust domain and its demo identities (spec/cli.md, README).
const devTrustDomain = "writ.dev.local"

type devIdentity struct {
	name string // file name under svids/
	path string // SPIFFE ID path
}

var devIdentities = []devIdentity{
	{"issuer", "/writ"},
	{"admin", "/admins/alice"},
	{"support", "/agents/support"},
	{"billing", "/agents/billing"},
	{"crm", "/services/crm"},
}

const (
	devCATTL   = 365 * 24 * time.Hour
	devSVIDTTL = 7 * 24 * time.Hour
)

func runDev(ctx context.Context, e env, args []string) error {
	if len(args) > 0 && args[0] == "svid" {
		return runDevSVID(ctx, e, args[1:])
	}
	if len(args) > 0 && args[0] == "jwt-svid" {
		return runDevJWTSVID(ctx, e, args[1:])
	}
	fs := newFlags(e, "dev", "writ dev [--dir DIR] [--listen ADDR] [--raft-listen ADDR]")
	dir := fs.String("dir", ".writ-dev", "directory holding the dev trust domain and data (created if missing, reused if present)")
	listen := fs.String("listen", "127.0.0.1:8443", "API address")
	raftListen := fs.String("raft-listen", "127.0.0.1:8444", "raft address")
	level := fs.String("log-level", "info", "log level")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("dev: unexpected argument %q (did you mean 'writ dev svid'?)", pos[0])
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if err := prepareDevDir(abs, *listen, *raftListen, time.Now()); err != nil {
		return err
	}
	logger, err := newLogger(e, "text", *level)
	if err != nil {
		return usagef("dev: %v", err)
	}
	f, err := loadServerFile(filepath.Join(abs, "server.yaml"))
	if err != nil {
		return err
	}
	f.Listen, f.RaftListen = *listen, *raftListen
	cfg, ident, err := f.issuerConfig(ctx, abs, logger)
	if err != nil {
		return err
	}
	is, err := issuer.New(cfg)
	if err != nil {
		return errors.Join(err, ident.close())
	}
	fmt.Fprint(e.stdout, devBanner(*dir, "https://"+is.Addr()))
	return serve(ctx, is, ident)
}

// prepareDevDir creates, or completes and refreshes, the dev directory:
// CA, SVIDs (reissued when missing or close to expiry), KEK, starter
// policy and server.yaml. Existing data is never touched.
func prepareDevDir(dir, listen, raftListen string, now time.Time) error {
	td, err := spiffeid.TrustDomainFromString(devTrustDomain)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caDir := filepath.Join(dir, "ca")
	ca, _, err := pki.LoadOrCreateCA(caDir, td, now, devCATTL)
	if err != nil {
		return err
	}
	// JWT-SVIDs of the dev trust domain are signed by a key next to the
	// CA; bundle.json (X.509 and JWT authorities) is what the issuer
	// trusts, rewritten on every start so it always matches both keys.
	jwtAuth, _, err := pki.LoadOrCreateJWTAuthority(caDir, td)
	if err != nil {
		return err
	}
	if err := pki.WriteSPIFFEBundle(caDir, ca, jwtAuth); err != nil {
		return err
	}
	svidDir := filepath.Join(dir, "svids")
	for _, ident := range devIdentities {
		id, err := spiffeid.FromPath(td, ident.path)
		if err != nil {
			return err
		}
		if err := ensureSVID(ca, id, svidDir, ident.name, now); err != nil {
			return err
		}
	}
	kekPath := filepath.Join(dir, "kek")
	if _, err := os.Stat(kekPath); errors.Is(err, fs.ErrNotExist) {
		text, err := issuer.GenerateKEKText(rand.Reader)
		if err != nil {
			return err
		}
		if err := os.WriteFile(kekPath, []byte(text+"\n"), 0o600); err != nil {
			return err
		}
	}
	if err := writeIfMissing(filepath.Join(dir, "policy.yaml"), policy.Starter, 0o644); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`# writ server configuration written by 'writ dev'; run it with:
#   writ server --config %s
node_id: writ-dev-1
listen: %s
raft_listen: %s
data_dir: data
kek_file: kek
svid:
  cert: svids/issuer.pem
  key: svids/issuer-key.pem
trust_bundles:
  - trust_domain: %s
    file: ca/%s
admins:
  - spiffe://%s/admins/alice
policy_file: policy.yaml
default_ttl: 5m
max_ttl: 1h
log:
  format: text
  level: info
`, filepath.Join(dir, "server.yaml"), listen, raftListen, devTrustDomain, pki.BundleFile, devTrustDomain)
	return writeIfMissing(filepath.Join(dir, "server.yaml"), []byte(cfg), 0o644)
}

func writeIfMissing(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ensureSVID keeps dir/name.pem valid for at least a day.
func ensureSVID(ca *pki.CA, id spiffeid.ID, dir, name string, now time.Time) error {
	s, err := pki.LoadSVID(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
	if err == nil && s.ID == id && s.Certificates[0].NotAfter.After(now.Add(24*time.Hour)) {
		return nil
	}
	opts := []pki.Option{}
	if name == "issuer" {
		opts = append(opts, pki.WithDNS("localhost"), pki.WithIP(netip.MustParseAddr("127.0.0.1")))
	}
	s, err = ca.IssueSVID(id, now, devSVIDTTL, opts...)
	if err != nil {
		return err
	}
	return s.WriteFiles(dir, name, pki.WithOverwrite())
}

func devBanner(dir, url string) string {
	b := &strings.Builder{}
	fmt.Fprintf(b, `
writ dev issuer on %[2]s  (trust domain %[3]s, files in %[1]s)

Try, in another terminal:

  # an agent gets a token (mTLS with its SVID)
  ./bin/writ token mint --server %[2]s --bundle %[1]s/ca/ca.pem \
      --svid %[1]s/svids/support.pem --svid-key %[1]s/svids/support-key.pem \
      --right crm/contacts:read --right crm/notes/*:read --ttl 10m > token.txt

  # or, without mTLS: OAuth 2.0 token exchange with a JWT-SVID
  curl -s --cacert %[1]s/ca/ca.pem %[2]s/v1/token \
      -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \
      -d subject_token_type=urn:ietf:params:oauth:token-type:jwt \
      -d subject_token="$(./bin/writ dev jwt-svid --dir %[1]s --id spiffe://%[3]s/agents/support)" \
      --data-urlencode scope="crm/contacts:read crm/notes/*:read"

  # it narrows the token before handing work on (offline)
  ./bin/writ token attenuate --right crm/contacts:read --ttl 2m --max-records 10 < token.txt > narrowed.txt

  # a resource service verifies it (offline, against the issuer's public keys)
  ./bin/writ token verify --keys %[2]s/v1/keys --bundle %[1]s/ca/ca.pem \
      --resource crm/contacts --operation read \
      --presenter spiffe://%[3]s/agents/support --service spiffe://%[3]s/services/crm < narrowed.txt

  # and denies what the token does not allow (exit code 3)
  ./bin/writ token verify --keys %[2]s/v1/keys --bundle %[1]s/ca/ca.pem \
      --resource crm/notes/7 --operation read \
      --presenter spiffe://%[3]s/agents/support --service spiffe://%[3]s/services/crm < narrowed.txt

Ctrl-C stops the issuer; 'make run' again reuses %[1]s.
`, dir, url, devTrustDomain)
	return b.String()
}

func runDevSVID(_ context.Context, e env, args []string) error {
	fs := newFlags(e, "dev svid", "writ dev svid --id spiffe://writ.dev.local/... --out DIR [--name NAME] [--ttl D] [--dir DEVDIR]")
	dir := fs.String("dir", ".writ-dev", "dev directory holding the dev CA")
	idFlag := fs.String("id", "", "SPIFFE ID to issue (required; must be in the dev trust domain)")
	out := fs.String("out", "", "output directory (required)")
	name := fs.String("name", "svid", "file name: writes NAME.pem and NAME-key.pem")
	ttl := fs.Duration("ttl", 24*time.Hour, "validity")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("dev svid: unexpected argument %q", pos[0])
	}
	if *idFlag == "" || *out == "" {
		return usagef("dev svid: --id and --out are required")
	}
	id, err := spiffeid.FromString(*idFlag)
	if err != nil {
		return usagef("dev svid: --id: %v", err)
	}
	if *ttl <= 0 || *ttl > devCATTL {
		return usagef("dev svid: --ttl must be positive and at most %v", devCATTL)
	}
	ca, err := pki.LoadCA(filepath.Join(*dir, "ca"))
	if err != nil {
		return fmt.Errorf("dev svid: %w (run 'writ dev' once first)", err)
	}
	if ca.TrustDomain() != id.TrustDomain() {
		return usagef("dev svid: --id must be in trust domain %s", ca.TrustDomain())
	}
	s, err := ca.IssueSVID(id, time.Now(), *ttl)
	if err != nil {
		return err
	}
	if err := s.WriteFiles(*out, *name); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s\n%s\n", filepath.Join(*out, *name+".pem"), filepath.Join(*out, *name+"-key.pem"))
	return nil
}

// devJWTSVIDMaxTTL is the longest JWT-SVID `writ dev jwt-svid` issues: the
// issuer refuses longer-lived ones by default.
const devJWTSVIDMaxTTL = 5 * time.Minute

func runDevJWTSVID(_ context.Context, e env, args []string) error {
	fs := newFlags(e, "dev jwt-svid", "writ dev jwt-svid --id spiffe://writ.dev.local/... [--audience ID] [--ttl D] [--dir DEVDIR]")
	dir := fs.String("dir", ".writ-dev", "dev directory holding the dev CA")
	idFlag := fs.String("id", "", "SPIFFE ID of the subject (required; must be in the dev trust domain)")
	aud := fs.String("audience", "spiffe://"+devTrustDomain+"/writ", "audience: the SPIFFE ID of the issuer that will accept it")
	ttl := fs.Duration("ttl", 2*time.Minute, "validity (at most 5m)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("dev jwt-svid: unexpected argument %q", pos[0])
	}
	if *idFlag == "" {
		return usagef("dev jwt-svid: --id is required")
	}
	id, err := spiffeid.FromString(*idFlag)
	if err != nil {
		return usagef("dev jwt-svid: --id: %v", err)
	}
	if *aud == "" {
		return usagef("dev jwt-svid: --audience must not be empty")
	}
	if *ttl <= 0 || *ttl > devJWTSVIDMaxTTL {
		return usagef("dev jwt-svid: --ttl must be positive and at most %v", devJWTSVIDMaxTTL)
	}
	caDir := filepath.Join(*dir, "ca")
	ca, err := pki.LoadCA(caDir)
	if err != nil {
		return fmt.Errorf("dev jwt-svid: %w (run 'writ dev' once first)", err)
	}
	if ca.TrustDomain() != id.TrustDomain() {
		return usagef("dev jwt-svid: --id must be in trust domain %s", ca.TrustDomain())
	}
	if _, err := os.Stat(filepath.Join(caDir, pki.JWTKeyFile)); err != nil {
		return fmt.Errorf("dev jwt-svid: %w (run 'writ dev' once first)", err)
	}
	a, _, err := pki.LoadOrCreateJWTAuthority(caDir, ca.TrustDomain())
	if err != nil {
		return err
	}
	tok, err := a.Sign(id, []string{*aud}, time.Now(), *ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(e.stdout, tok)
	return err
}
