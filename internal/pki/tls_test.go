package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// startMTLSServer serves, over mTLS configured by go-spiffe, the SPIFFE ID
// of the client certificate of each request.
func startMTLSServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusUnauthorized)
			return
		}
		id, err := x509svid.IDFromCert(r.TLS.PeerCertificates[0])
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, id)
	}))
	// Wrap the listener rather than use StartTLS, which would add
	// httptest's own certificate next to go-spiffe's GetCertificate.
	srv.Listener = tls.NewListener(srv.Listener, cfg)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // rejected handshakes are expected

	srv.Start()
	t.Cleanup(srv.Close)
	return "https://" + srv.Listener.Addr().String()
}

func get(t *testing.T, url string, cfg *tls.Config) (body string, peer *x509.Certificate, err error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), resp.TLS.PeerCertificates[0], nil
}

func TestMTLS(t *testing.T) {
	// go-spiffe's tlsconfig verifies peers against the wall clock.
	now := time.Now()
	ca := newCA(t, tdAcme, now, time.Hour)
	other := newCA(t, tdOther, now, time.Hour)
	rogue := newCA(t, tdAcme, now, time.Hour)

	serverID := spiffeid.RequireFromPath(tdAcme, "/writ")
	server := issue(t, ca, serverID.Path(), now, time.Hour, WithDNS("localhost"), WithIP(netip.MustParseAddr("127.0.0.1")))
	url := startMTLSServer(t, tlsconfig.MTLSServerConfig(server.X509SVID(), ca.Bundle(), tlsconfig.AuthorizeAny()))

	agent := issue(t, ca, "/agents/support", now, time.Hour)
	tests := []struct {
		name    string
		client  *tls.Config
		wantErr bool
		// clientErr, if set, must appear in the client's error: the
		// client rejects the server. Otherwise the server rejects the
		// client, and the ok cases show it is the client certificate
		// that makes the difference.
		clientErr string
	}{
		{"ok/agent", tlsconfig.MTLSClientConfig(agent.X509SVID(), ca.Bundle(), tlsconfig.AuthorizeID(serverID)), false, ""},
		{"ok/agent-authorizes-member", tlsconfig.MTLSClientConfig(agent.X509SVID(), ca.Bundle(), tlsconfig.AuthorizeMemberOf(tdAcme)), false, ""},
		{"fail/client-without-svid", tlsconfig.TLSClientConfig(ca.Bundle(), tlsconfig.AuthorizeID(serverID)), true, ""},
		{"fail/client-from-other-trust-domain", tlsconfig.MTLSClientConfig(issue(t, other, "/agent", now, time.Hour).X509SVID(), ca.Bundle(), tlsconfig.AuthorizeAny()), true, ""},
		{"fail/client-from-rogue-ca", tlsconfig.MTLSClientConfig(issue(t, rogue, "/agent", now, time.Hour).X509SVID(), ca.Bundle(), tlsconfig.AuthorizeAny()), true, ""},
		{"fail/client-is-ca", tlsconfig.MTLSClientConfig(issue(t, ca, "/agent", now, time.Hour, WithCA(true)).X509SVID(), ca.Bundle(), tlsconfig.AuthorizeAny()), true, ""},
		{"fail/client-expired", tlsconfig.MTLSClientConfig(issue(t, ca, "/agent", now, time.Hour, WithValidity(now.Add(-time.Hour), now.Add(-time.Minute))).X509SVID(), ca.Bundle(), tlsconfig.AuthorizeAny()), true, ""},
		{"fail/server-not-authorized", tlsconfig.MTLSClientConfig(agent.X509SVID(), ca.Bundle(), tlsconfig.AuthorizeID(spiffeid.RequireFromPath(tdAcme, "/other"))), true, "unexpected ID"},
		{"fail/server-not-in-client-bundle", tlsconfig.MTLSClientConfig(agent.X509SVID(), rogue.Bundle(), tlsconfig.AuthorizeAny()), true, "unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, peer, err := get(t, url, tt.client)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("GET succeeded with body %q, want handshake error", body)
				}
				if !strings.Contains(err.Error(), tt.clientErr) {
					t.Errorf("GET error = %q, want it to contain %q", err, tt.clientErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			if body != agent.ID.String() {
				t.Errorf("server saw client ID %q, want %q", body, agent.ID)
			}
			if !peer.Equal(server.Certificates[0]) {
				t.Errorf("client saw server certificate %v, want the server SVID", peer.URIs)
			}
		})
	}
}

// TestPlainTLSClient checks that a TLS client verifying against the CA
// certificate as a root, with host names, as curl --cacert ca.pem does,
// accepts a server SVID issued with WithDNS and WithIP.
func TestPlainTLSClient(t *testing.T) {
	now := time.Now()
	ca := newCA(t, tdAcme, now, time.Hour)
	server := issue(t, ca, "/writ", now, time.Hour, WithDNS("localhost"), WithIP(netip.MustParseAddr("127.0.0.1")))

	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.TLSServerConfig(server.X509SVID()))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })

	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	tests := []struct {
		name       string
		serverName string
		roots      *x509.CertPool
		wantErr    string
	}{
		{"ok/dns-name", "localhost", roots, ""},
		{"ok/ip-address", "127.0.0.1", roots, ""},
		{"fail/name-not-in-certificate", "writ.example", roots, "not writ.example"},
		{"fail/unknown-root", "localhost", x509.NewCertPool(), "unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &net.Dialer{Timeout: 10 * time.Second}
			c, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort("127.0.0.1", port), &tls.Config{ServerName: tt.serverName, RootCAs: tt.roots})
			if err == nil {
				c.Close()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("handshake: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("handshake succeeded, want error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("handshake error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
