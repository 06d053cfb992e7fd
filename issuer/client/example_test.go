package client_test

import (
	"context"
	"log"
	"log/slog"
	"net/http"
	"os"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/writ-dev/writ/issuer/client"
)

// An agent's start-up: its X.509-SVID and trust bundle come from the
// SPIFFE Workload API (a SPIRE agent's socket, SPIFFE_ENDPOINT_SOCKET);
// the client keeps a token fresh in the background; the Transport puts it
// on every call to the resource service.
//
// No Workload API runs in tests, so this example is compiled, not run.
func Example() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	svids, err := workloadapi.NewX509Source(ctx)
	if err != nil {
		log.Fatalf("workload API: %v", err)
	}
	defer svids.Close()

	cfg := client.DefaultConfig()
	cfg.IssuerURL = "https://writ.acme.example:8443"
	cfg.IssuerID = spiffeid.RequireFromString("spiffe://acme.example/writ")
	cfg.Bundles, cfg.X509SVID = svids, svids
	cfg.Rights = []string{"crm/contacts:read", "crm/notes/*:read"}
	cfg.Audience = spiffeid.RequireFromString("spiffe://acme.example/services/crm")
	cfg.Logger = logger
	writ, err := client.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer writ.Close()
	go writ.Run(ctx) // renews ahead of expiry until ctx ends

	// Fail fast at start-up if the issuer refuses: the error says why.
	if _, err := writ.Token(ctx); err != nil {
		log.Fatalf("writ token: %v", err)
	}

	// The CRM authenticates this agent by mTLS too; the token says what
	// it may do there.
	crm := &http.Client{Transport: &client.Transport{Source: writ}}
	resp, err := crm.Get("https://crm.acme.example/contacts/42")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
}

// An agent without mTLS to the issuer authenticates with a JWT-SVID that
// a sidecar keeps in a file; the issuer's certificate is still verified
// against the trust bundle.
func ExampleJWTFile() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	bundles, err := workloadapi.NewBundleSource(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer bundles.Close()

	cfg := client.DefaultConfig()
	cfg.IssuerURL = "https://writ.acme.example:8443"
	cfg.IssuerID = spiffeid.RequireFromString("spiffe://acme.example/writ")
	cfg.Bundles = bundles
	cfg.JWTSVID = client.JWTFile("/var/run/secrets/spiffe/jwt-svid")
	cfg.Rights = []string{"crm/contacts:read"}
	writ, err := client.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer writ.Close()
	go writ.Run(ctx)
}
