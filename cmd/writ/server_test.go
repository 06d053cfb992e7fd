package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/pki"
)

func TestServerConfig(t *testing.T) {
	dir := t.TempDir()
	if err := prepareDevDir(dir, "127.0.0.1:0", "127.0.0.1:0", time.Now()); err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join(dir, "server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kek := strings.TrimSpace(string(mustRead(t, filepath.Join(dir, "kek"))))
	t.Setenv("TEST_WRIT_KEK", kek)
	for _, tc := range []struct {
		name string
		edit func(string) string
		want string // substring of the error; "" means ok
	}{
		{"ok/dev-config", func(s string) string { return s }, ""},
		{"ok/kek-from-env", func(s string) string { return strings.Replace(s, "kek_file: kek", "kek_env: TEST_WRIT_KEK", 1) }, ""},
		{"fail/unknown-key", func(s string) string { return s + "listen_addr: x\n" }, `unknown field "listen_addr"`},
		{"fail/duplicate-key", func(s string) string { return s + "node_id: again\n" }, `mapping key "node_id" already defined`},
		{"fail/no-kek", func(s string) string { return strings.Replace(s, "kek_file: kek\n", "", 1) }, "kek_file or kek_env is required"},
		{"fail/both-keks", func(s string) string {
			return strings.Replace(s, "kek_file: kek", "kek_file: kek\nkek_env: TEST_WRIT_KEK", 1)
		}, "not both"},
		{"fail/unset-kek-env", func(s string) string { return strings.Replace(s, "kek_file: kek", "kek_env: TEST_WRIT_NOPE", 1) }, "$TEST_WRIT_NOPE is not set"},
		{"fail/bad-admin", func(s string) string { return strings.Replace(s, "spiffe://writ.dev.local/admins/alice", "alice", 1) }, "admins[0]"},
		{"fail/bad-ttl", func(s string) string { return strings.Replace(s, "max_ttl: 1h", "max_ttl: forever", 1) }, "max_ttl"},
		{"fail/ttl-over-day", func(s string) string { return strings.Replace(s, "max_ttl: 1h", "max_ttl: 48h", 1) }, "over 24h"},
		{"fail/missing-svid", func(s string) string { return strings.Replace(s, "svids/issuer.pem", "svids/nope.pem", 1) }, "svid"},
		{"ok/jwt-svid-section", func(s string) string {
			return s + "jwt_svid:\n  audience: spiffe://writ.dev.local/writ\n  max_lifetime: 2m\n  leeway: 10s\n  algorithms: [ES256, RS256]\n"
		}, ""},
		{"fail/jwt-svid-empty-audience", func(s string) string { return s + "jwt_svid:\n  audience: \"\"\n" }, "jwt_svid.audience is empty"},
		{"fail/jwt-svid-bad-audience", func(s string) string { return s + "jwt_svid:\n  audience: writ\n" }, "jwt_svid.audience"},
		{"fail/jwt-svid-hs256", func(s string) string { return s + "jwt_svid:\n  algorithms: [HS256]\n" }, "HS256"},
		{"fail/jwt-svid-none", func(s string) string { return s + "jwt_svid:\n  algorithms: [none]\n" }, "none"},
		{"fail/jwt-svid-no-algorithms", func(s string) string { return s + "jwt_svid:\n  algorithms: []\n" }, "Algorithms"},
		{"fail/jwt-svid-lifetime-over-max", func(s string) string { return s + "jwt_svid:\n  max_lifetime: 48h\n" }, "MaxLifetime"},
		{"fail/workload-api-and-files", func(s string) string { return s + "workload_api:\n  socket: unix:///tmp/nope.sock\n" }, "not both"},
		{"fail/workload-api-no-socket", func(s string) string { return withoutFiles(s) + "workload_api:\n  timeout: 1s\n" }, "workload_api.socket is required"},
		{"fail/workload-api-bad-scheme", func(s string) string { return withoutFiles(s) + "workload_api:\n  socket: /tmp/agent.sock\n" }, "want unix:///path"},
		{"fail/workload-api-tcp", func(s string) string { return withoutFiles(s) + "workload_api:\n  socket: tcp://127.0.0.1:8081\n" }, "unauthenticated plaintext"},
		{"fail/workload-api-unreachable", func(s string) string {
			return withoutFiles(s) + "workload_api:\n  socket: unix:///nonexistent/agent.sock\n  timeout: 300ms\n"
		}, "no X.509-SVID from unix:///nonexistent/agent.sock"},
		{"fail/bad-trust-domain", func(s string) string {
			return strings.Replace(s, "trust_domain: writ.dev.local", "trust_domain: WRIT!", 1)
		}, "trust_bundles[0].trust_domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "test.yaml")
			if err := os.WriteFile(path, []byte(tc.edit(string(base))), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := loadServerFile(path)
			if err == nil {
				_, _, err = f.issuerConfig(t.Context(), dir, nil)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want ok", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"fail/no-command", nil, exitUsage},
		{"fail/unknown-command", []string{"frobnicate"}, exitUsage},
		{"fail/token-no-sub", []string{"token"}, exitUsage},
		{"fail/verify-no-keys", []string{"token", "verify", "abc", "--resource", "r", "--operation", "o"}, exitUsage},
		{"fail/verify-bad-token", []string{"token", "verify", "!!!", "--keys", "k.json", "--resource", "r", "--operation", "o"}, exitUsage},
		{"fail/mint-no-rights", []string{"token", "mint", "--bundle", "b", "--svid", "c", "--svid-key", "k"}, exitUsage},
		{"fail/mint-bad-right", []string{"token", "mint", "--right", "nope"}, exitUsage},
		{"fail/mint-plain-http", []string{"token", "mint", "--server", "http://127.0.0.1:1", "--jwt-svid", "-", "--bundle", "b", "--right", "a:b"}, exitUsage},
		{"fail/mint-workload-api-tcp", []string{"token", "mint", "--workload-api", "tcp://127.0.0.1:1", "--right", "a:b"}, exitUsage},
		{"fail/mint-exchange-without-jwt", []string{"token", "mint", "--exchange", "--ttl", "1m", "--right", "a:b"}, exitUsage},
		{"fail/mint-jwt-without-workload-api", []string{"token", "mint", "--jwt", "--right", "a:b"}, exitUsage},
		{"fail/dev-jwt-svid-no-id", []string{"dev", "jwt-svid"}, exitUsage},
		{"fail/dev-jwt-svid-long-ttl", []string{"dev", "jwt-svid", "--id", "spiffe://writ.dev.local/a", "--ttl", "1h"}, exitUsage},
		{"fail/attenuate-nothing", []string{"token", "attenuate", "AAAA"}, exitUsage},
		{"fail/server-no-config", []string{"server"}, exitUsage},
		{"fail/bad-flag", []string{"dev", "--nope"}, exitUsage},
		{"ok/help", []string{"--help"}, exitOK},
		{"ok/version", []string{"version"}, exitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb strings.Builder
			if got := run(t.Context(), tc.args, strings.NewReader(""), &out, &errb); got != tc.want {
				t.Fatalf("exit %d, want %d; stderr: %s", got, tc.want, errb.String())
			}
		})
	}
}

func TestDevSVID(t *testing.T) {
	dir := t.TempDir()
	if err := prepareDevDir(dir, "127.0.0.1:0", "127.0.0.1:0", time.Now()); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"ok/new-agent", []string{"dev", "svid", "--dir", dir, "--id", "spiffe://writ.dev.local/agents/new", "--out", out, "--name", "new"}, exitOK},
		{"fail/exists", []string{"dev", "svid", "--dir", dir, "--id", "spiffe://writ.dev.local/agents/new", "--out", out, "--name", "new"}, exitError},
		{"fail/other-trust-domain", []string{"dev", "svid", "--dir", dir, "--id", "spiffe://elsewhere.test/a", "--out", out}, exitUsage},
		{"fail/bad-id", []string{"dev", "svid", "--dir", dir, "--id", "not-an-id", "--out", out}, exitUsage},
		{"fail/no-ca", []string{"dev", "svid", "--dir", t.TempDir(), "--id", "spiffe://writ.dev.local/a", "--out", out}, exitError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			if got := run(t.Context(), tc.args, strings.NewReader(""), &stdout, &stderr); got != tc.want {
				t.Fatalf("exit %d, want %d: %s", got, tc.want, stderr.String())
			}
		})
	}
	s, err := pki.LoadSVID(filepath.Join(out, "new.pem"), filepath.Join(out, "new-key.pem"))
	if err != nil || s.ID.String() != "spiffe://writ.dev.local/agents/new" {
		t.Fatalf("issued SVID: %v %v", s, err)
	}
}

// withoutFiles drops the svid and trust_bundles sections of the dev
// server.yaml.
func withoutFiles(s string) string {
	var out []string
	skip := false
	for _, line := range strings.Split(s, "\n") {
		if line == "svid:" || line == "trust_bundles:" {
			skip = true
			continue
		}
		if skip && strings.HasPrefix(line, " ") {
			continue
		}
		skip = false
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}
