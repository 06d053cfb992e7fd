package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// clientFlags are the connection flags shared by admin subcommands.
type clientFlags struct {
	server, bundle, td, issuerID, cert, key *string
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	return clientFlags{
		server:   fs.String("server", "https://127.0.0.1:8443", "issuer URL"),
		bundle:   fs.String("bundle", "", "PEM trust bundle of the issuer's trust domain (required)"),
		td:       fs.String("trust-domain", "", "trust domain of --bundle (default: from the CA certificate)"),
		issuerID: fs.String("issuer-id", "", "expected SPIFFE ID of the issuer (default: spiffe://<bundle trust domain>/writ)"),
		cert:     fs.String("svid", "", "admin X.509-SVID certificate chain (PEM, required)"),
		key:      fs.String("svid-key", "", "admin private key (PEM, required)"),
	}
}

func (c clientFlags) client() (*http.Client, error) {
	if *c.bundle == "" || *c.cert == "" || *c.key == "" {
		return nil, usagef("--bundle, --svid and --svid-key are required")
	}
	cfg, err := c.mtls()
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

// trust loads --bundle and the authorizer that accepts only the issuer's
// SPIFFE ID.
func (c clientFlags) trust() (*x509bundle.Bundle, tlsconfig.Authorizer, error) {
	b, err := loadBundle(*c.bundle, *c.td)
	if err != nil {
		return nil, nil, err
	}
	auth, err := serverAuthorizer(*c.issuerID, b)
	if err != nil {
		return nil, nil, err
	}
	return b, auth, nil
}

// mtls returns the TLS config that presents --svid/--svid-key and
// verifies the issuer with trust.
func (c clientFlags) mtls() (*tls.Config, error) {
	svid, err := x509svid.Load(*c.cert, *c.key)
	if err != nil {
		return nil, fmt.Errorf("svid: %w", err)
	}
	b, auth, err := c.trust()
	if err != nil {
		return nil, err
	}
	return tlsconfig.MTLSClientConfig(svid, b, auth), nil
}

func (c clientFlags) do(ctx context.Context, e env, method, path string, body []byte) error {
	rb, _, err := adminCall(ctx, e, c, method, path, body, 30*time.Second)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(rb)
	return err
}

func runAdmin(ctx context.Context, e env, args []string) error {
	if len(args) >= 2 && args[0] == "policy" && (args[1] == "get" || args[1] == "set") {
		fs := newFlags(e, "admin policy "+args[1], "writ admin policy get|set [FILE] --bundle FILE --svid CERT --svid-key KEY")
		cf := addClientFlags(fs)
		pos, err := parseFlags(fs, args[2:])
		if err != nil {
			return err
		}
		if args[1] == "get" {
			if len(pos) > 0 {
				return usagef("admin policy get: unexpected argument %q", pos[0])
			}
			return cf.do(ctx, e, http.MethodGet, "/v1/admin/policy", nil)
		}
		if len(pos) != 1 {
			return usagef("admin policy set: want one FILE argument")
		}
		data, err := os.ReadFile(pos[0])
		if err != nil {
			return err
		}
		return cf.do(ctx, e, http.MethodPut, "/v1/admin/policy", data)
	}
	if len(args) >= 1 && args[0] == "audit" {
		fs := newFlags(e, "admin audit", "writ admin audit [--from N] [--limit N] --bundle FILE --svid CERT --svid-key KEY")
		cf := addClientFlags(fs)
		from := fs.Uint64("from", 1, "first sequence number")
		limit := fs.Int("limit", 100, "records (1-1000)")
		pos, err := parseFlags(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) > 0 {
			return usagef("admin audit: unexpected argument %q", pos[0])
		}
		return cf.do(ctx, e, http.MethodGet, fmt.Sprintf("/v1/admin/audit?from=%d&limit=%d", *from, *limit), nil)
	}
	return usagef("admin: want 'policy get', 'policy set FILE' or 'audit'")
}
