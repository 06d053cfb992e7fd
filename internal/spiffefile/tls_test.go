package spiffefile

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// TestMTLSFollowsRotation serves mTLS from a Source and checks that a new
// connection sees the rotated server SVID without restarting the server.
func TestMTLSFollowsRotation(t *testing.T) {
	// go-spiffe's tlsconfig verifies peers against the wall clock.
	f := newFixture(t, time.Now())
	f.cfg.Now = nil
	src := f.newSource(t)

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	}))
	// Wrap the listener rather than use StartTLS, which would add
	// httptest's own certificate next to go-spiffe's GetCertificate.
	srv.Listener = tls.NewListener(srv.Listener, tlsconfig.MTLSServerConfig(src, src, tlsconfig.AuthorizeAny()))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	url := "https://" + srv.Listener.Addr().String()

	client, err := f.ca.IssueSVID(spiffeid.RequireFromPath(tdAcme, "/agents/a"), f.now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clientCfg := tlsconfig.MTLSClientConfig(client.X509SVID(), f.ca.Bundle(), tlsconfig.AuthorizeID(idWrit))

	// peerSerial makes a request on a fresh connection and returns the
	// serial of the server's leaf.
	peerSerial := func() string {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: clientCfg, DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status: got %d, want 200", resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}

	if got, want := peerSerial(), serial(f.svid); got != want {
		t.Fatalf("server serial before rotation: got %s, want %s", got, want)
	}

	next := f.issue(t)
	f.writeSVID(t, next)
	if err := src.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got, want := peerSerial(), serial(next); got != want {
		t.Fatalf("server serial after rotation: got %s, want %s", got, want)
	}

	// A broken rotation keeps the server serving the last good SVID.
	writeFile(t, f.cfg.CertFile, certPEM(f.issue(t).Certificates...))
	if err := src.Reload(); err == nil {
		t.Fatal("Reload of mismatched pair: got nil error")
	}
	if got, want := peerSerial(), serial(next); got != want {
		t.Fatalf("server serial after broken rotation: got %s, want %s", got, want)
	}
}
