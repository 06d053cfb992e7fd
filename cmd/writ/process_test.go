package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/writ-dev/writ/issuer"
)

// TestKillNineLosesNoAcknowledgedToken runs the built binary as a separate
// process, mints tokens from many clients, kills the process with SIGKILL
// in the middle, restarts it on the same data directory and checks that
// every token the issuer acknowledged has its record in an audit chain that
// verifies from genesis, and that the root key survived.
func TestKillNineLosesNoAcknowledgedToken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the writ binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "writ")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dev := filepath.Join(dir, "dev")
	listen, raftListen := freeAddr(t), freeAddr(t)
	url := "https://" + listen
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "dev", "--dir", dev, "--listen", listen, "--raft-listen", raftListen, "--log-level", "error")
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	proc := start()
	t.Cleanup(func() { proc.Process.Kill(); proc.Wait() })
	agent := processClient(t, dev, "support")
	admin := processClient(t, dev, "admin")
	waitHTTP(t, admin, url+"/readyz")

	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := agent.Post(url+"/v1/token", "application/json", strings.NewReader(`{"rights":["crm/contacts:read"]}`))
				if err != nil {
					continue // the process is gone: not acknowledged
				}
				var tr issuer.TokenResponse
				err = json.NewDecoder(resp.Body).Decode(&tr)
				resp.Body.Close()
				if resp.StatusCode == 200 && err == nil && tr.TokenID != "" {
					mu.Lock()
					acked = append(acked, tr.TokenID)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	proc.Wait()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(acked) < 50 {
		t.Fatalf("only %d tokens acknowledged before the kill; the test measures nothing", len(acked))
	}

	proc = start()
	waitHTTP(t, admin, url+"/readyz")
	var recs []issuer.AuditRecord
	for from := uint64(1); ; {
		resp, err := admin.Get(fmt.Sprintf("%s/v1/admin/audit?from=%d&limit=1000", url, from))
		if err != nil {
			t.Fatal(err)
		}
		var page issuer.AuditPage
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("audit page: %d %v", resp.StatusCode, err)
		}
		recs = append(recs, page.Records...)
		if len(page.Records) == 0 || page.Records[len(page.Records)-1].Seq >= page.HeadSeq {
			break
		}
		from = page.Records[len(page.Records)-1].Seq + 1
	}
	if err := issuer.VerifyAuditChain("", 1, recs); err != nil {
		t.Fatalf("audit chain after SIGKILL: %v", err)
	}
	recorded := map[string]bool{}
	keyIDs := map[uint32]bool{}
	for _, r := range recs {
		recorded[r.TokenID] = true
		if r.Kind == issuer.AuditKeyAdd {
			keyIDs[r.KeyID] = true
		}
	}
	var missing []string
	for _, id := range acked {
		if !recorded[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		mints := 0
		for _, r := range recs {
			if r.Kind == issuer.AuditMint {
				mints++
			}
		}
		t.Fatalf("%d of %d tokens acknowledged before SIGKILL have no audit record after restart (%d records, %d mints; first missing %s)", len(missing), len(acked), len(recs), mints, missing[0])
	}
	if len(keyIDs) != 1 {
		t.Fatalf("root keys created: %v, want exactly one across the restart", keyIDs)
	}
	// The restarted node still mints with the same key.
	resp, err := agent.Post(url+"/v1/token", "application/json", strings.NewReader(`{"rights":["crm/contacts:read"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var tr issuer.TokenResponse
	json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if resp.StatusCode != 200 || !keyIDs[tr.KeyID] {
		t.Fatalf("mint after restart: status %d key %d, want 200 with key %v", resp.StatusCode, tr.KeyID, keyIDs)
	}
	t.Logf("%d tokens acknowledged before SIGKILL, %d audit records after restart, all present", len(acked), len(recs))
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// processClient returns an mTLS client presenting the dev SVID name.
func processClient(t *testing.T, dev, name string) *http.Client {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		svid, err1 := x509svid.Load(filepath.Join(dev, "svids", name+".pem"), filepath.Join(dev, "svids", name+"-key.pem"))
		b, err2 := x509bundle.Load(spiffeid.RequireTrustDomainFromString(devTrustDomain), filepath.Join(dev, "ca", "ca.pem"))
		if err1 == nil && err2 == nil {
			auth := tlsconfig.AuthorizeID(spiffeid.RequireFromPath(b.TrustDomain(), defaultIssuerPath))
			return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				TLSClientConfig: tlsconfig.MTLSClientConfig(svid, b, auth), MaxIdleConnsPerHost: 32}}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev SVIDs not written: %v %v", err1, err2)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitHTTP(t *testing.T, c *http.Client, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		cancel()
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 30s", url)
}
