package cluster_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/writ-dev/writ/cluster/clustertest"
)

const raftALPN = "writ-raft/1"

// probeTimeout is how long a probe waits for the server to react. A
// rejected peer is disconnected at once; an accepted one is left waiting
// for its first RPC, so its read runs into this deadline.
const probeTimeout = 2 * time.Second

// probe connects to addr (with TLS if cfg is not nil), sends nothing, and
// reports whether the server kept the connection open (true) or refused
// it during or right after the handshake (false, with the reason).
func probe(t *testing.T, addr string, cfg *tls.Config) (bool, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), probeTimeout)
	defer cancel()
	var (
		conn net.Conn
		err  error
	)
	if cfg == nil {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
		if err == nil {
			// Something a plaintext raft client would send: an RPC type byte
			// followed by msgpack.
			_, err = conn.Write([]byte{0, 0x80, 0x80, 0x80, 0x80})
		}
	} else {
		d := tls.Dialer{Config: cfg}
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return false, err
	}
	defer conn.Close()
	// With TLS 1.3 the client finishes its handshake before the server has
	// checked the client certificate; a refusal shows on the first read.
	if err := conn.SetReadDeadline(time.Now().Add(probeTimeout)); err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true, nil
	}
	if err == nil {
		err = io.EOF
	}
	return false, err
}

func withALPN(c *tls.Config) *tls.Config {
	c = c.Clone()
	c.NextProtos = []string{raftALPN}
	return c
}

func TestTransportRequiresAuthorizedMTLS(t *testing.T) {
	ca := clustertest.NewCA(t, "writ.test")
	other := clustertest.NewCA(t, "writ.test") // same trust domain name, different key
	partner := clustertest.NewCA(t, "partner.test")
	// The node accepts only its own node ID and n2's.
	cfg := clustertest.Config(t, ca, "n1", "n2")
	node := clustertest.Run(t, cfg, &testFSM{})

	n1 := ca.NodeID(t, "n1")
	n2 := ca.NodeID(t, "n2")
	verifyServer := tlsconfig.AuthorizeID(n1)
	agentID := spiffeid.RequireFromPath(ca.TrustDomain(), "/agents/support")

	cases := []struct {
		name string
		cfg  *tls.Config // nil: plaintext TCP
		ok   bool
	}{
		{"ok/authorized-peer", withALPN(tlsconfig.MTLSClientConfig(ca.SVID(t, n2), ca.Bundle(), verifyServer)), true},
		{"fail/plaintext", nil, false},
		{"fail/no-client-certificate", withALPN(tlsconfig.TLSClientConfig(ca.Bundle(), verifyServer)), false},
		{"fail/certificate-from-other-ca", withALPN(tlsconfig.MTLSClientConfig(other.SVID(t, n2), ca.Bundle(), verifyServer)), false},
		{"fail/agent-id-not-a-node", withALPN(tlsconfig.MTLSClientConfig(ca.SVID(t, agentID), ca.Bundle(), verifyServer)), false},
		{"fail/node-not-in-allow-list", withALPN(tlsconfig.MTLSClientConfig(ca.SVID(t, ca.NodeID(t, "n9")), ca.Bundle(), verifyServer)), false},
		{"fail/service-id-not-a-node", withALPN(tlsconfig.MTLSClientConfig(ca.SVID(t, spiffeid.RequireFromPath(ca.TrustDomain(), "/services/crm")), ca.Bundle(), verifyServer)), false},
		{"fail/partner-trust-domain", withALPN(tlsconfig.MTLSClientConfig(partner.SVID(t, partner.NodeID(t, "n2")), ca.Bundle(), verifyServer)), false},
		{"fail/expired-node-svid", withALPN(tlsconfig.MTLSClientConfig(ca.SVIDValid(t, n2, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)), ca.Bundle(), verifyServer)), false},
		{"fail/no-raft-alpn", tlsconfig.MTLSClientConfig(ca.SVID(t, n2), ca.Bundle(), verifyServer), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			open, err := probe(t, node.Addr(), tc.cfg)
			if open != tc.ok {
				t.Fatalf("connection kept open: got %v (%v), want %v", open, err, tc.ok)
			}
		})
	}
}

func TestTransportRefusesUntrustedServer(t *testing.T) {
	// A client that trusts only another CA must not complete a handshake
	// with the node: the node's certificate is checked too.
	ca := clustertest.NewCA(t, "writ.test")
	other := clustertest.NewCA(t, "writ.test")
	node := clustertest.StartNode(t, ca, "n1", &testFSM{}, nil)
	n1 := other.NodeID(t, "n1")
	cfg := withALPN(tlsconfig.MTLSClientConfig(other.SVID(t, n1), other.Bundle(), tlsconfig.AuthorizeID(n1)))
	if open, err := probe(t, node.Addr(), cfg); open || err == nil {
		t.Fatalf("probe with untrusting client: got open=%v err=%v, want a handshake error", open, err)
	}
}
