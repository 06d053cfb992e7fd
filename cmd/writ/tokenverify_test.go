package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/writ-dev/writ/internal/pki"
	"github.com/writ-dev/writ/internal/syncwire"
	"github.com/writ-dev/writ/issuer/mint"
	"github.com/writ-dev/writ/spec"
	"github.com/writ-dev/writ/verifier"
)

// TestTokenVerifyWithIssuer: `token verify --issuer` syncs keys,
// revocations and freshness from an issuer node over mTLS (a minimal
// server of spec/sync.md serving frames of the syncwire encoder), then
// decides with them.
func TestTokenVerifyWithIssuer(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("acme.example")
	now := time.Now()
	ca, err := pki.NewCA(td, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ca.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	serverSVID, err := ca.IssueSVID(spiffeid.RequireFromPath(td, "/writ"), now, time.Hour, pki.WithIP(netip.MustParseAddr("127.0.0.1")))
	if err != nil {
		t.Fatal(err)
	}
	clientSVID, err := ca.IssueSVID(spiffeid.RequireFromPath(td, "/services/crm"), now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := clientSVID.WriteFiles(dir, "crm"); err != nil {
		t.Fatal(err)
	}

	root := mint.Key{ID: 1, Private: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	const agent = "spiffe://acme.example/agents/support"
	tok, tokenID, err := mint.Mint(nil, root, mint.Claims{
		Issuer: "spiffe://acme.example/writ", Agent: agent, IssuedAt: now.Add(-time.Minute), Expiry: now.Add(time.Hour),
		PolicyVersion: "sha256:" + strings.Repeat("ab", 32), Rights: []spec.Right{{Resource: "crm/contacts", Operation: "read"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(verifier.EncodeToken(tok)), 0o600); err != nil {
		t.Fatal(err)
	}
	otherKeys := filepath.Join(dir, "other.jwks")
	ks, err := verifier.NewKeySet(verifier.RootKey{ID: 2, Public: other.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := ks.MarshalJWKS()
	if err := os.WriteFile(otherKeys, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	var tokenEntry syncwire.Entry
	tokenEntry.Kind = syncwire.EntryToken
	hex.Decode(tokenEntry.ID[:], []byte(tokenID))

	// state is what the node serves; each case sets it.
	var state syncwire.Snapshot
	var signer syncwire.Signer
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		since, err := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
		if r.URL.Path != "/v1/sync" || err != nil || r.URL.Query().Get("instance") == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		var body []byte
		if since == 0 {
			state.Time = time.Now()
			if body, err = syncwire.EncodeSnapshot(&state, signer); err != nil {
				t.Error(err)
			}
		}
		hb, err := syncwire.EncodeHeartbeat(&syncwire.Heartbeat{Epoch: state.Epoch, Time: time.Now(), Node: "node-1"}, signer)
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", syncwire.ContentType)
		w.Write(append(body, hb...))
	}))
	srv.Listener = tls.NewListener(srv.Listener,
		tlsconfig.MTLSServerConfig(serverSVID.X509SVID(), ca.Bundle(), tlsconfig.AuthorizeMemberOf(td)))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	defer srv.Close()
	node := "https://" + srv.Listener.Addr().String()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "https://" + l.Addr().String()
	l.Close()

	creds := []string{"--bundle", filepath.Join(dir, "ca.pem"), "--svid", filepath.Join(dir, "crm.pem"), "--svid-key", filepath.Join(dir, "crm-key.pem")}
	request := []string{tokenFile, "--resource", "crm/contacts", "--operation", "read"}
	keys := func(st ...syncwire.KeyState) []syncwire.Key {
		k := []syncwire.Key{{ID: 1, State: syncwire.KeyActive, Public: root.Private.Public().(ed25519.PublicKey)}}
		if len(st) > 0 {
			k = append(k, syncwire.Key{ID: 2, State: st[0], Public: other.Public().(ed25519.PublicKey)})
		}
		return k
	}
	for _, tc := range []struct {
		name   string
		state  syncwire.Snapshot
		args   []string
		code   int
		reason string // of the printed decision, when one is printed
		signer uint32 // of the frames: 1 (root) unless 3 (other)
	}{
		{"ok/synced", syncwire.Snapshot{Epoch: 7, Keys: keys()}, append([]string{"--issuer", node}, creds...), exitOK, spec.ReasonAllowed, 1},
		{"ok/comma-separated-first-refused", syncwire.Snapshot{Epoch: 7, Keys: keys()}, append([]string{"--issuer", refused + "," + node}, creds...), exitOK, spec.ReasonAllowed, 1},
		{"ok/repeated", syncwire.Snapshot{Epoch: 7, Keys: keys()}, append([]string{"--issuer", refused, "--issuer", node}, creds...), exitOK, spec.ReasonAllowed, 1},
		{"fail/token-revoked", syncwire.Snapshot{Epoch: 8, Keys: keys(), Entries: []syncwire.Entry{tokenEntry}},
			append([]string{"--issuer", node}, creds...), exitDenied, spec.ReasonRevoked, 1},
		{"fail/agent-revoked", syncwire.Snapshot{Epoch: 8, Keys: keys(), Entries: []syncwire.Entry{{Kind: syncwire.EntryAgent, Agent: agent, Before: now}}},
			append([]string{"--issuer", node}, creds...), exitDenied, spec.ReasonRevoked, 1},
		{"fail/root-key-revoked", syncwire.Snapshot{Epoch: 8, Keys: []syncwire.Key{{ID: 1, State: syncwire.KeyRevoked, Public: root.Private.Public().(ed25519.PublicKey)},
			{ID: 3, State: syncwire.KeyActive, Public: other.Public().(ed25519.PublicKey)}}},
			append([]string{"--issuer", node}, creds...), exitDenied, spec.ReasonRevoked, 3}, // KeyRevoked, before RootKey
		{"fail/snapshot-by-revoked-key", syncwire.Snapshot{Epoch: 8, Keys: []syncwire.Key{{ID: 1, State: syncwire.KeyRevoked, Public: root.Private.Public().(ed25519.PublicKey)},
			{ID: 3, State: syncwire.KeyActive, Public: other.Public().(ed25519.PublicKey)}}},
			append([]string{"--issuer", node}, creds...), exitError, "", 1}, // bootstrap from a key revoked inside: refused
		{"fail/pinned-keys-other-signer", syncwire.Snapshot{Epoch: 7, Keys: keys(syncwire.KeyPrepared)},
			append([]string{"--issuer", node, "--keys", otherKeys}, creds...), exitError, "", 1},
		{"fail/no-node-answers", syncwire.Snapshot{Epoch: 7, Keys: keys()}, append([]string{"--issuer", refused}, creds...), exitError, "", 1},
		{"fail/revocations-with-issuer", syncwire.Snapshot{Epoch: 7, Keys: keys()},
			append([]string{"--issuer", node, "--revocations", tokenFile}, creds...), exitUsage, "", 1},
		{"fail/issuer-without-svid", syncwire.Snapshot{Epoch: 7, Keys: keys()}, []string{"--issuer", node, "--bundle", filepath.Join(dir, "ca.pem")}, exitUsage, "", 1},
		{"fail/http-issuer", syncwire.Snapshot{Epoch: 7, Keys: keys()}, append([]string{"--issuer", "http://" + strings.TrimPrefix(node, "https://")}, creds...), exitUsage, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state, signer = tc.state, syncwire.Signer{KeyID: 1, Key: root.Private}
			if tc.signer == 3 {
				signer = syncwire.Signer{KeyID: 3, Key: other}
			}
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), append(append([]string{"token", "verify"}, request...), tc.args...), nil, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit code: got %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout.String(), stderr.String())
			}
			if tc.reason == "" {
				return
			}
			var d verifier.Decision
			if err := json.Unmarshal(stdout.Bytes(), &d); err != nil || d.Reason != tc.reason {
				t.Fatalf("decision: got %q (%v), want %s\n%s", d.Reason, err, tc.reason, stdout.String())
			}
		})
	}
}
