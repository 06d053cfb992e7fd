package syncer_test

import (
	"context"
	"log"
	"net/http"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/writ-dev/writ/verifier"
	"github.com/writ-dev/writ/verifier/syncer"
)

// A resource service keeps its keys and revocations current from the
// issuer cluster and refuses tokens once its copy is older than 30 s.
func Example() {
	ctx := context.Background()
	svid, err := x509svid.Load("svids/crm.pem", "svids/crm-key.pem") // or a Workload API X509Source
	if err != nil {
		log.Fatal(err)
	}
	bundle, err := x509bundle.Load(spiffeid.RequireTrustDomainFromString("acme.example"), "ca/ca.pem")
	if err != nil {
		log.Fatal(err)
	}
	cfg := syncer.DefaultConfig()
	cfg.Issuers = []string{"https://writ-1.acme.example:8443"} // the others are learned
	cfg.IssuerID = spiffeid.RequireFromString("spiffe://acme.example/writ")
	cfg.SVID, cfg.Bundle = svid, bundle
	cfg.StateFile = "/var/lib/crm/writ-sync" // start from it when no issuer answers
	s, err := syncer.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	go s.Run(ctx)
	<-s.Ready()

	vcfg := verifier.DefaultConfig()
	vcfg.Keys, vcfg.Revocations, vcfg.Freshness = s, s, s
	vcfg.Service = "spiffe://acme.example/services/crm"
	v, err := verifier.New(vcfg)
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/api/", verifier.Middleware(v, verifier.PathRoute("/api/"))(http.NotFoundHandler()))
}
