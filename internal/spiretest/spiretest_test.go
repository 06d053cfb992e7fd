package spiretest_test

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/writ-dev/writ/internal/spiretest"
)

// TestDeployment runs a real SPIRE server and agent and checks what a
// workload sees through the Workload API.
func TestDeployment(t *testing.T) {
	spiretest.SkipIfNoBinaries(t)
	d := spiretest.Start(t, spiretest.DefaultConfig())
	td := d.TrustDomain()

	if got, want := d.AgentID().Path(), "/spire/agent/join_token/"; !d.AgentID().MemberOf(td) || !strings.HasPrefix(got, want) {
		t.Fatalf("got agent ID %s, want spiffe://%s%s<token>", d.AgentID(), td.Name(), want)
	}
	if got := d.WorkloadSocket(); !strings.HasPrefix(got, "unix:///") {
		t.Fatalf("got workload socket %q, want unix:///<abs path>", got)
	}

	// Copies of the test binary act as workloads told apart by path.
	bin := t.TempDir()
	agentA := spiretest.CopyExecutable(t, filepath.Join(bin, "agent-a"))
	unregistered := spiretest.CopyExecutable(t, filepath.Join(bin, "unregistered"))

	idA := spiffeid.RequireFromPath(td, "/agent-a")
	audience := spiffeid.RequireFromPath(td, "/writ").String()
	const x509TTL, jwtTTL = 10 * time.Minute, 2 * time.Minute
	begin := time.Now()
	entryA := d.Register(t, idA, agentA, spiretest.WithX509SVIDTTL(x509TTL), spiretest.WithJWTSVIDTTL(jwtTTL))
	t.Logf("Register: agent had the entry's X.509-SVID after %v", time.Since(begin).Round(time.Millisecond))
	bundle := d.Bundle(t)
	if got := len(bundle.X509Authorities()); got == 0 {
		t.Fatalf("got %d X.509 authorities in the bundle, want at least 1", got)
	}

	t.Run("ok/registered-fetches-x509-and-jwt", func(t *testing.T) {
		r := fetch(t, d, agentA, audience)
		if r.X509Err != "" || r.JWTErr != "" {
			t.Fatalf("got errors x509=%q jwt=%q, want SVIDs", r.X509Err, r.JWTErr)
		}
		if r.X509ID != idA.String() || r.JWTID != idA.String() {
			t.Fatalf("got IDs x509=%s jwt=%s, want %s", r.X509ID, r.JWTID, idA)
		}
		var chain []*x509.Certificate
		for _, der := range r.Chain {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatalf("parse SVID certificate: %v", err)
			}
			chain = append(chain, c)
		}
		id, _, err := x509svid.Verify(chain, bundle)
		if err != nil {
			t.Fatalf("verify X.509-SVID against the server bundle: %v", err)
		}
		if id != idA {
			t.Fatalf("got verified X.509 ID %s, want %s", id, idA)
		}
		if got := chain[0].NotAfter.Sub(chain[0].NotBefore); got < x509TTL || got > x509TTL+time.Minute {
			t.Errorf("got X.509-SVID validity %v, want the entry TTL %v (plus SPIRE's backdating)", got, x509TTL)
		}
		jwt, err := jwtsvid.ParseAndValidate(r.Token, bundle, []string{audience})
		if err != nil {
			t.Fatalf("validate JWT-SVID against the server bundle: %v", err)
		}
		if jwt.ID != idA {
			t.Fatalf("got JWT-SVID subject %s, want %s", jwt.ID, idA)
		}
		iat, ok := jwt.Claims["iat"].(float64)
		if !ok {
			t.Fatalf("got JWT-SVID iat %v, want a number", jwt.Claims["iat"])
		}
		if got := jwt.Expiry.Sub(time.Unix(int64(iat), 0)); got != jwtTTL {
			t.Errorf("got JWT-SVID lifetime %v, want the entry TTL %v", got, jwtTTL)
		}
		t.Logf("workload %s got %s", filepath.Base(agentA), r.X509ID)
	})

	t.Run("fail/unregistered-no-identity", func(t *testing.T) {
		r := fetch(t, d, unregistered, audience)
		if r.X509ID != "" || r.JWTID != "" {
			t.Fatalf("got identities x509=%q jwt=%q, want none", r.X509ID, r.JWTID)
		}
		for name, got := range map[string][2]string{"X.509": {r.X509Code, r.X509Err}, "JWT": {r.JWTCode, r.JWTErr}} {
			if got[0] != "PermissionDenied" || !strings.Contains(got[1], "no identity issued") {
				t.Errorf("got %s fetch %s %q, want PermissionDenied \"no identity issued\"", name, got[0], got[1])
			}
		}
	})

	t.Run("ok/rotate-new-serial", func(t *testing.T) {
		w := startWatch(t, d, agentA)
		first := w.next(t)
		if first.ID != idA.String() {
			t.Fatalf("got watched ID %s, want %s", first.ID, idA)
		}
		begin := time.Now()
		d.Rotate(t, entryA)
		rotated := time.Since(begin)
		second := w.next(t)
		seen := second.at.Sub(begin)
		if second.Serial == first.Serial {
			t.Fatalf("got serial %s again after Rotate, want a new one", second.Serial)
		}
		if second.ID != idA.String() {
			t.Fatalf("got rotated ID %s, want %s", second.ID, idA)
		}
		t.Logf("rotation: agent renewed after %v, workload saw serial %s -> %s after %v",
			rotated.Round(time.Millisecond), first.Serial, second.Serial, seen.Round(time.Millisecond))
	})
}

func TestBinaries(t *testing.T) {
	t.Run("fail/empty-dir", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv(spiretest.BinEnv, dir)
		_, _, err := spiretest.Binaries()
		if !errors.Is(err, spiretest.ErrBinariesNotFound) {
			t.Fatalf("got error %v, want ErrBinariesNotFound", err)
		}
		if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "make spire") {
			t.Fatalf("got error %q, want it to name %s and `make spire`", err, dir)
		}
	})
	t.Run("fail/not-executable", func(t *testing.T) {
		dir := t.TempDir()
		for _, name := range []string{"spire-server", "spire-agent"} {
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Setenv(spiretest.BinEnv, dir)
		if _, _, err := spiretest.Binaries(); !errors.Is(err, spiretest.ErrBinariesNotFound) {
			t.Fatalf("got error %v, want ErrBinariesNotFound", err)
		}
	})
	t.Run("ok/env-dir", func(t *testing.T) {
		dir := t.TempDir()
		for _, name := range []string{"spire-server", "spire-agent"} {
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		t.Setenv(spiretest.BinEnv, dir)
		server, agent, err := spiretest.Binaries()
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(dir, "spire-server"); server != want {
			t.Errorf("got server %s, want %s", server, want)
		}
		if want := filepath.Join(dir, "spire-agent"); agent != want {
			t.Errorf("got agent %s, want %s", agent, want)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*spiretest.Config)
		wantErr string
	}{
		{"ok/default", func(*spiretest.Config) {}, ""},
		{"ok/zero-means-default", func(c *spiretest.Config) { *c = spiretest.Config{} }, ""},
		{"fail/subsecond-ttl", func(c *spiretest.Config) { c.X509SVIDTTL = 1500 * time.Millisecond }, "whole seconds"},
		{"fail/negative-jwt-ttl", func(c *spiretest.Config) { c.JWTSVIDTTL = -time.Second }, "at least 1s"},
		{"fail/ca-not-longer-than-svid", func(c *spiretest.Config) { c.CATTL = c.X509SVIDTTL }, "must exceed"},
		{"fail/sync-too-fast", func(c *spiretest.Config) { c.SyncInterval = time.Millisecond }, "SyncInterval"},
		{"fail/warn-log-level", func(c *spiretest.Config) { c.LogLevel = "WARN" }, "LogLevel"},
		{"fail/quote-in-dir", func(c *spiretest.Config) { c.Dir = `/tmp/a"b` }, "quotes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := spiretest.DefaultConfig()
			tc.mutate(&cfg)
			err := cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("got error %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// workloadCmd prepares exe to run as a workload in mode.
func workloadCmd(d *spiretest.Deployment, exe, mode, audience string) *exec.Cmd {
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envWorkload+"="+mode, envAddr+"="+d.WorkloadSocket(), envAudience+"="+audience)
	return cmd
}

// fetch runs exe once as a "fetch" workload and returns what it fetched.
func fetch(t *testing.T, d *spiretest.Deployment, exe, audience string) fetchResult {
	t.Helper()
	cmd := workloadCmd(d, exe, "fetch", audience)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	timer := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() })
	out, err := cmd.Output()
	timer.Stop()
	if err != nil {
		t.Fatalf("workload %s: %v: %s", exe, err, stderr.Bytes())
	}
	var r fetchResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("workload %s output %q: %v", exe, out, err)
	}
	return r
}

// watch is a running "watch" workload.
type watch struct {
	events <-chan watchEvent
}

// startWatch runs exe as a "watch" workload until the test ends.
func startWatch(t *testing.T, d *spiretest.Deployment, exe string) *watch {
	t.Helper()
	cmd := workloadCmd(d, exe, "watch", "")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	events := make(chan watchEvent, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev watchEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev.Err = "bad line " + sc.Text()
			}
			ev.at = time.Now()
			events <- ev
		}
	}()
	t.Cleanup(func() {
		stdin.Close() // the workload exits when its stdin closes
		timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
		defer timer.Stop()
		for range events {
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("watch workload: %v: %s", err, stderr.Bytes())
		}
	})
	return &watch{events: events}
}

// next returns the next X.509-SVID the workload received, failing t on a
// workload error or after a minute.
func (w *watch) next(t *testing.T) watchEvent {
	t.Helper()
	select {
	case ev, ok := <-w.events:
		if !ok {
			t.Fatal("watch workload exited")
		}
		if ev.Err != "" {
			t.Fatalf("watch workload: %s", ev.Err)
		}
		return ev
	case <-time.After(time.Minute):
		t.Fatal("watch workload: no X.509-SVID update within 1m")
	}
	return watchEvent{}
}
