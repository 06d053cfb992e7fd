package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/writ-dev/writ/internal/spiretest"
	"github.com/writ-dev/writ/issuer"
	"github.com/writ-dev/writ/verifier"
)

// TestSPIRE runs writ next to a real SPIRE server and agent: the issuer
// takes its SVID and bundles from the Workload API, one agent process gets
// a token over mTLS with the X.509-SVID SPIRE gave it, another by token
// exchange with a JWT-SVID, a workload without a registration entry gets
// nothing, and an SVID rotation in SPIRE reaches the running issuer.
// Workloads are copies of the writ binary at distinct paths, told apart by
// SPIRE's unix attestor.
func TestSPIRE(t *testing.T) {
	if testing.Short() {
		t.Skip("runs SPIRE and the writ binary")
	}
	spiretest.SkipIfNoBinaries(t)
	cfg := spiretest.DefaultConfig()
	cfg.TrustDomain = spiffeid.RequireTrustDomainFromString("writ.test")
	dep := spiretest.Start(t, cfg)
	td := dep.TrustDomain()
	sock := dep.WorkloadSocket()

	dir := t.TempDir()
	built := filepath.Join(dir, "writ-build")
	if out, err := exec.Command("go", "build", "-o", built, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	copyBin := func(name string) string {
		p := filepath.Join(dir, name)
		data, err := os.ReadFile(built)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	issuerBin, agentA, agentB, stranger := copyBin("writ-issuer"), copyBin("writ-agent-a"), copyBin("writ-agent-b"), copyBin("writ-unregistered")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	issuerID := spiffeid.RequireFromPath(td, "/writ")
	aID, bID := spiffeid.RequireFromPath(td, "/agents/a"), spiffeid.RequireFromPath(td, "/agents/b")
	testerID := spiffeid.RequireFromPath(td, "/tester")
	issuerEntry := dep.Register(t, issuerID, issuerBin)
	dep.Register(t, aID, agentA)
	dep.Register(t, bID, agentB)
	dep.Register(t, testerID, self)

	// writ, configured with nothing but the Workload API socket.
	policy := fmt.Sprintf(`version: 1
rules:
  - name: agents-read-contacts
    subjects: ["spiffe://%[1]s/agents/*", "spiffe://%[1]s/tester"]
    rights: ["crm/contacts:read"]
    max_ttl: 10m
`, td.Name())
	listen, raftListen := freeAddr(t), freeAddr(t)
	server := fmt.Sprintf(`node_id: writ-spire-1
listen: %s
raft_listen: %s
data_dir: data
kek_file: kek
workload_api:
  socket: %s
  timeout: 60s
agent_trust_domains: [%s]
policy_file: policy.yaml
log: {format: json, level: info}
`, listen, raftListen, sock, td.Name())
	for name, data := range map[string]string{"server.yaml": server, "policy.yaml": policy, "kek": strings.Repeat("ab", 32) + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var issuerLog bytes.Buffer
	proc := exec.Command(issuerBin, "server", "--config", filepath.Join(dir, "server.yaml"))
	proc.Stdout, proc.Stderr = &issuerLog, &issuerLog
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.Process.Kill()
		proc.Wait()
		if t.Failed() {
			t.Logf("writ server log:\n%s", issuerLog.String())
		}
	})
	url := "https://" + listen

	// The test process is a registered workload too: it checks readiness
	// and watches the issuer's certificate through its own X509Source.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(sock)))
	if err != nil {
		t.Fatalf("tester X509Source: %v", err)
	}
	defer src.Close()
	client := func() *http.Client { // a new connection each time: every request sees the current server certificate
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: tlsconfig.MTLSClientConfig(src, src, tlsconfig.AuthorizeID(issuerID)), DisableKeepAlives: true}}
	}
	waitHTTP(t, client(), url+"/readyz")

	run := func(bin string, args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	agentOf := func(t *testing.T, token string) string {
		raw, err := verifier.DecodeToken(token)
		if err != nil {
			t.Fatal(err)
		}
		in, err := verifier.Inspect(raw)
		if err != nil {
			t.Fatal(err)
		}
		return in.Agent
	}

	t.Run("ok/x509-svid-over-mtls", func(t *testing.T) {
		out, errOut, err := run(agentA, "token", "mint", "--server", url, "--workload-api", sock, "--right", "crm/contacts:read", "--json")
		if err != nil {
			t.Fatalf("agent a: %v\n%s", err, errOut)
		}
		var tr issuer.TokenResponse
		if err := json.Unmarshal([]byte(out), &tr); err != nil {
			t.Fatal(err)
		}
		if got := agentOf(t, tr.Token); got != aID.String() {
			t.Errorf("token agent: got %q, want %q", got, aID)
		}
	})
	t.Run("ok/jwt-svid-token-exchange", func(t *testing.T) {
		out, errOut, err := run(agentB, "token", "mint", "--server", url, "--workload-api", sock, "--jwt", "--exchange", "--right", "crm/contacts:read", "--json")
		if err != nil {
			t.Fatalf("agent b: %v\n%s", err, errOut)
		}
		var er issuer.ExchangeResponse
		if err := json.Unmarshal([]byte(out), &er); err != nil {
			t.Fatal(err)
		}
		if got := agentOf(t, er.AccessToken); got != bID.String() || er.Scope != "crm/contacts:read" {
			t.Errorf("exchanged token: agent %q scope %q, want %q crm/contacts:read", got, er.Scope, bID)
		}
	})
	t.Run("fail/unregistered-workload-gets-nothing", func(t *testing.T) {
		_, errOut, err := run(stranger, "token", "mint", "--server", url, "--workload-api", sock, "--wait", "3s", "--right", "crm/contacts:read")
		if err == nil {
			t.Fatal("an unregistered workload got a token")
		}
		if !strings.Contains(errOut, "no X.509-SVID from the workload API") {
			t.Errorf("stderr: got %q, want the Workload API refusal", errOut)
		}
	})
	t.Run("ok/rotation-picked-up-without-restart", func(t *testing.T) {
		serial := func() (string, bool) {
			resp, err := client().Post(url+"/v1/token", "application/json", strings.NewReader(`{"rights":["crm/contacts:read"]}`))
			if err != nil {
				return "", false
			}
			defer resp.Body.Close()
			io.Copy(io.Discard, resp.Body)
			return resp.TLS.PeerCertificates[0].SerialNumber.Text(16), resp.StatusCode == 200
		}
		before, ok := serial()
		if !ok {
			t.Fatal("mint before rotation failed")
		}
		start := time.Now()
		dep.Rotate(t, issuerEntry)
		deadline := time.Now().Add(60 * time.Second)
		for {
			s, ok := serial()
			if ok && s != before {
				t.Logf("SVID rotation in SPIRE → first token minted under the new SVID: %v", time.Since(start).Round(time.Millisecond))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("issuer still serves serial %s 60s after the rotation", before)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if proc.ProcessState != nil {
			t.Fatal("the issuer process exited")
		}
	})
}
