package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/writ-dev/writ/attenuation"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
	"github.com/writ-dev/writ/verifier/syncer"
)

// maxTokenInput bounds a token read from an argument or stdin.
const maxTokenInput = 1 << 20

func runToken(ctx context.Context, e env, args []string) error {
	sub := map[string]func(context.Context, env, []string) error{
		"mint": runTokenMint, "inspect": runTokenInspect, "attenuate": runTokenAttenuate, "verify": runTokenVerify,
	}
	if len(args) == 0 || sub[args[0]] == nil {
		return usagef("token: want one of: mint, inspect, attenuate, verify")
	}
	return sub[args[0]](ctx, e, args[1:])
}

// readToken takes the token from the positional argument (the token text,
// or the path of a file holding it), "-" or nothing meaning stdin, and
// decodes its base64url text.
func readToken(e env, pos []string) ([]byte, error) {
	var text string
	switch {
	case len(pos) > 1:
		return nil, usagef("expected one TOKEN argument, got %d", len(pos))
	case len(pos) == 1 && pos[0] != "-":
		text = pos[0]
		if st, err := os.Stat(pos[0]); err == nil && st.Mode().IsRegular() {
			if st.Size() > maxTokenInput {
				return nil, usagef("token file %s is larger than %d bytes", pos[0], maxTokenInput)
			}
			b, err := os.ReadFile(pos[0])
			if err != nil {
				return nil, err
			}
			text = string(b)
		}
	default:
		b, err := io.ReadAll(io.LimitReader(e.stdin, maxTokenInput+1))
		if err != nil {
			return nil, err
		}
		if len(b) > maxTokenInput {
			return nil, usagef("token on stdin is larger than %d bytes", maxTokenInput)
		}
		text = string(b)
	}
	tok, err := verifier.DecodeToken(text)
	if err != nil {
		return nil, usagef("token: %v", err)
	}
	return tok, nil
}

// loadBundle reads a PEM bundle; the trust domain comes from td when set,
// otherwise from the SPIFFE URI SAN of the first CA certificate.
func loadBundle(path, td string) (*x509bundle.Bundle, error) {
	if td == "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(data)
		if blk == nil {
			return nil, fmt.Errorf("bundle %s: no PEM certificate", path)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %w", path, err)
		}
		for _, u := range cert.URIs {
			if u.Scheme == "spiffe" {
				td = u.Host
			}
		}
		if td == "" {
			return nil, usagef("bundle %s: no SPIFFE ID in the CA certificate; pass --trust-domain", path)
		}
	}
	t, err := spiffeid.TrustDomainFromString(td)
	if err != nil {
		return nil, usagef("trust domain %q: %v", td, err)
	}
	return x509bundle.Load(t, path)
}

// defaultIssuerPath is the path of the issuer's SPIFFE ID assumed when
// --issuer-id is not given.
const defaultIssuerPath = "/writ"

// serverAuthorizer accepts exactly the issuer's SPIFFE ID: any other
// workload of the trust domain could otherwise pose as the issuer (serve
// its own keys, receive an admin's policy).
func serverAuthorizer(issuerID string, b *x509bundle.Bundle) (tlsconfig.Authorizer, error) {
	if issuerID == "" {
		id, err := spiffeid.FromPath(b.TrustDomain(), defaultIssuerPath)
		if err != nil {
			return nil, err
		}
		return tlsconfig.AuthorizeID(id), nil
	}
	id, err := spiffeid.FromString(issuerID)
	if err != nil {
		return nil, usagef("--issuer-id: %v", err)
	}
	return tlsconfig.AuthorizeID(id), nil
}

func runTokenInspect(_ context.Context, e env, args []string) error {
	fs := newFlags(e, "token inspect", "writ token inspect TOKEN|-")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	tok, err := readToken(e, pos)
	if err != nil {
		return err
	}
	in, err := verifier.Inspect(tok)
	if err != nil {
		return fmt.Errorf("token inspect: %w", err)
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(in)
}

func runTokenAttenuate(_ context.Context, e env, args []string) error {
	fs := newFlags(e, "token attenuate", "writ token attenuate TOKEN|- [--right RES:OP ...] [--ttl D] [--presenter ID ...] [--fields F,...] [--max-records N] [--service S ...]")
	var rights, presenters, services listFlag
	fs.Var(&rights, "right", "keep only these rights (repeatable)")
	fs.Var(&presenters, "presenter", "bind to these presenter SPIFFE IDs (repeatable)")
	fs.Var(&services, "service", "usable only at these services (repeatable)")
	ttl := fs.Duration("ttl", 0, "expire this long from now")
	fields := fs.String("fields", "", "comma-separated fields the holder may read")
	maxRecords := fs.Int("max-records", 0, "record limit")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	tok, err := readToken(e, pos)
	if err != nil {
		return err
	}
	var rs []attenuation.Restriction
	if len(rights) > 0 {
		parsed := make([]spec.Right, len(rights))
		for i, s := range rights {
			if parsed[i], err = spec.ParseRight(s); err != nil {
				return usagef("token attenuate: --right: %v", err)
			}
		}
		rs = append(rs, attenuation.OnlyRights(parsed...))
	}
	if *ttl < 0 {
		return usagef("token attenuate: --ttl must be positive")
	}
	if *ttl > 0 {
		rs = append(rs, attenuation.ExpireIn(*ttl))
	}
	if len(presenters) > 0 {
		rs = append(rs, attenuation.BindPresenters(presenters...))
	}
	if *fields != "" {
		rs = append(rs, attenuation.OnlyFields(strings.Split(*fields, ",")...))
	}
	if *maxRecords < 0 {
		return usagef("token attenuate: --max-records must be positive")
	}
	if *maxRecords > 0 {
		rs = append(rs, attenuation.MaxRecords(*maxRecords))
	}
	if len(services) > 0 {
		rs = append(rs, attenuation.OnlyServices(services...))
	}
	if len(rs) == 0 {
		return usagef("token attenuate: give at least one restriction")
	}
	out, err := attenuation.Restrict(tok, rs...)
	if err != nil {
		if errors.Is(err, attenuation.ErrBadRestriction) || errors.Is(err, attenuation.ErrNoRestrictions) {
			return usagef("token attenuate: %v", err)
		}
		return fmt.Errorf("token attenuate: %w", err)
	}
	fmt.Fprintln(e.stdout, verifier.EncodeToken(out))
	return nil
}

func runTokenVerify(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "token verify", "writ token verify TOKEN|- (--keys JWKS_FILE_OR_URL | --issuer URL ... --bundle FILE --svid CERT --svid-key KEY) --resource R --operation OP [--presenter ID] [--service S] [--records N] [--fields F,...] [--revocations FILE]")
	keys := fs.String("keys", "", "issuer public keys: a JWKS file, or the issuer's https URL .../v1/keys (required without --issuer; with it, keys the first snapshot must be signed by)")
	var issuers listFlag
	fs.Var(&issuers, "issuer", "sync keys, revocations and freshness from this issuer node, https://host:port (repeatable or comma-separated; other nodes are learned)")
	svidCert := fs.String("svid", "", "with --issuer: this verifier's X.509-SVID certificate chain (PEM)")
	svidKey := fs.String("svid-key", "", "with --issuer: its private key (PEM)")
	bundleFile := fs.String("bundle", "", "PEM trust bundle to verify the issuer's TLS certificate (https --keys URL, --issuer)")
	td := fs.String("trust-domain", "", "trust domain of --bundle (default: from the CA certificate)")
	issuerID := fs.String("issuer-id", "", "expected SPIFFE ID of the issuer serving --keys or --issuer (default: spiffe://<bundle trust domain>/writ)")
	resource := fs.String("resource", "", "resource of the request (required)")
	operation := fs.String("operation", "", "operation of the request (required)")
	presenter := fs.String("presenter", "", "SPIFFE ID of the presenter (the mTLS peer)")
	service := fs.String("service", "", "SPIFFE ID of the verifying service")
	records := fs.Int("records", 0, "records the request touches (0: the service applies the limit)")
	fields := fs.String("fields", "", "comma-separated fields the request reads")
	revocations := fs.String("revocations", "", `JSON file {"revoked": ["<hex id>", ...]} (not with --issuer)`)
	var attrs listFlag
	fs.Var(&attrs, "attr", "request attribute NAME=VALUE (repeatable)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	var issuerURLs []string
	for _, is := range issuers {
		for _, u := range strings.Split(is, ",") {
			if u = strings.TrimSpace(u); u != "" {
				issuerURLs = append(issuerURLs, u)
			}
		}
	}
	switch {
	case *keys == "" && len(issuerURLs) == 0 || *resource == "" || *operation == "":
		return usagef("token verify: --keys or --issuer, --resource and --operation are required")
	case len(issuerURLs) > 0 && *revocations != "":
		return usagef("token verify: --revocations and --issuer exclude each other: revocations come from the issuer")
	case len(issuerURLs) > 0 && (*bundleFile == "" || *svidCert == "" || *svidKey == ""):
		return usagef("token verify: --issuer needs --bundle, --svid and --svid-key (the sync is mTLS)")
	case *records < 0:
		return usagef("token verify: --records must not be negative")
	}
	tok, err := readToken(e, pos)
	if err != nil {
		return err
	}
	var ks *verifier.KeySet
	if *keys != "" {
		client := http.DefaultClient
		if strings.HasPrefix(*keys, "https://") {
			if *bundleFile == "" {
				return usagef("token verify: --bundle is required with an https --keys URL")
			}
			b, err := loadBundle(*bundleFile, *td)
			if err != nil {
				return err
			}
			auth, err := serverAuthorizer(*issuerID, b)
			if err != nil {
				return err
			}
			client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
				TLSClientConfig: tlsconfig.TLSClientConfig(b, auth),
			}}
		}
		if ks, err = verifier.LoadKeys(ctx, *keys, client); err != nil {
			return fmt.Errorf("token verify: keys: %w", err)
		}
	}
	cfg := verifier.DefaultConfig()
	cfg.Keys = ks
	if len(issuerURLs) > 0 {
		b, err := loadBundle(*bundleFile, *td)
		if err != nil {
			return err
		}
		svid, err := x509svid.Load(*svidCert, *svidKey)
		if err != nil {
			return fmt.Errorf("svid: %w", err)
		}
		id, err := spiffeid.FromPath(b.TrustDomain(), defaultIssuerPath)
		if *issuerID != "" {
			id, err = spiffeid.FromString(*issuerID)
		}
		if err != nil {
			return usagef("--issuer-id: %v", err)
		}
		scfg := syncer.DefaultConfig()
		scfg.Issuers, scfg.IssuerID, scfg.SVID, scfg.Bundle = issuerURLs, id, svid, b
		if ks != nil {
			scfg.Keys = ks
		}
		s, err := syncer.New(scfg)
		if err != nil {
			return usagef("token verify: %v", err)
		}
		defer s.Close()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := s.Sync(sctx); err != nil { // a snapshot and a heartbeat
			return fmt.Errorf("token verify: sync: %w", err)
		}
		cfg.Keys, cfg.Revocations, cfg.Freshness = s, s, s
	}
	if *revocations != "" {
		rl, err := verifier.LoadRevocations(*revocations)
		if err != nil {
			return fmt.Errorf("token verify: revocations: %w", err)
		}
		cfg.Revocations = rl
	}
	v, err := verifier.New(cfg)
	if err != nil {
		return err
	}
	req := verifier.Request{Resource: *resource, Operation: *operation, Presenter: *presenter, Service: *service, Records: *records}
	if *fields != "" {
		req.Fields = strings.Split(*fields, ",")
	}
	if len(attrs) > 0 {
		req.Attributes = map[string]string{}
		for _, a := range attrs {
			k, val, ok := strings.Cut(a, "=")
			if !ok || k == "" {
				return usagef("token verify: --attr %q: want NAME=VALUE", a)
			}
			req.Attributes[k] = val
		}
	}
	d := v.Authorize(ctx, tok, req)
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return err
	}
	if !d.Allowed {
		return deniedError{}
	}
	return nil
}
