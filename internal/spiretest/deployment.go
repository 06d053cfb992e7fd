package spiretest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// cliTimeout bounds one spire-server or spire-agent CLI invocation.
const cliTimeout = 30 * time.Second

// maxSocketPath keeps socket paths below the 108-byte sun_path limit.
const maxSocketPath = 100

// Deployment is a running spire-server and spire-agent. Its methods are
// safe for concurrent use; they end the calling test on failure.
type Deployment struct {
	cfg        Config
	log        *slog.Logger
	dir        string
	serverBin  string
	agentBin   string
	serverSock string
	agentSock  string
	port       int
	agentID    spiffeid.ID
	server     *process
	agent      *process
	startup    time.Duration

	mu      sync.Mutex
	entries map[string]entrySpec // by entry ID, for Rotate
}

// Start runs a spire-server and a spire-agent for cfg and returns when both
// pass their health checks and the agent is attested. Both are stopped in
// t.Cleanup; their logs (server.log, agent.log in the deployment
// directory) are written to the test log if t failed. Start skips t when
// the binaries are missing and WRIT_SPIRE_BIN is unset (see
// SkipIfNoBinaries), and fails t on an invalid cfg or any startup error.
func Start(t testing.TB, cfg Config) *Deployment {
	t.Helper()
	serverBin, agentBin := requireBinaries(t)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg = cfg.withDefaults()
	begin := time.Now()

	dir := cfg.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("spiretest: deployment dir: %v", err)
	}
	for _, sub := range []string{"server", "agent"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatalf("spiretest: %v", err)
		}
	}
	d := &Deployment{
		cfg:       cfg,
		log:       cfg.Logger,
		dir:       dir,
		serverBin: serverBin,
		agentBin:  agentBin,
		entries:   make(map[string]entrySpec),
	}
	if d.log == nil {
		d.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	sockDir := dir
	if len(filepath.Join(dir, "server.sock")) > maxSocketPath {
		sockDir = shortTempDir(t)
	}
	d.serverSock = filepath.Join(sockDir, "server.sock")
	d.agentSock = filepath.Join(sockDir, "agent.sock")

	// Registered before the processes' own cleanups, so it runs after
	// they stopped and the logs are complete.
	t.Cleanup(func() {
		if t.Failed() {
			d.dumpLogs(t)
		}
	})

	d.startServer(t)
	d.startAgent(t)
	d.startup = time.Since(begin)
	d.log.Info("spiretest: deployment ready", "trust_domain", cfg.TrustDomain.Name(), "dir", dir, "startup", d.startup)
	t.Logf("spiretest: SPIRE deployment for %s ready in %v (dir %s)", cfg.TrustDomain.Name(), d.startup.Round(time.Millisecond), dir)
	return d
}

// startServer writes server.conf, runs spire-server and waits for its
// health check.
func (d *Deployment) startServer(t testing.TB) {
	t.Helper()
	const attempts = 3
	for i := 1; ; i++ {
		port := freePort(t)
		p, err := d.tryServer(t, port)
		if err == nil {
			d.port, d.server = port, p
			d.log.Info("spiretest: server healthy", "port", port)
			return
		}
		// The free port may have been taken between freePort and the
		// server's bind: retry with another one.
		if exited, _ := p.exited(); exited && i < attempts && logContains(p.logPath, "address already in use") {
			p.expectExit()
			_ = os.Rename(p.logPath, fmt.Sprintf("%s.attempt%d", p.logPath, i))
			d.log.Info("spiretest: server port taken, retrying", "port", port)
			continue
		}
		t.Fatalf("spiretest: %v", err)
	}
}

// tryServer writes server.conf for port, runs spire-server and waits for
// its health check.
func (d *Deployment) tryServer(t testing.TB, port int) (*process, error) {
	t.Helper()
	data := filepath.Join(d.dir, "server")
	conf := fmt.Sprintf(`server {
    bind_address = "127.0.0.1"
    bind_port = "%d"
    socket_path = %s
    trust_domain = %s
    data_dir = %s
    log_level = %s
    log_format = "json"
    ca_ttl = %s
    default_x509_svid_ttl = %s
    default_jwt_svid_ttl = %s
    experimental {
        cache_reload_interval = %s
    }
}

plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = %s
        }
    }
    KeyManager "disk" {
        plugin_data {
            keys_path = %s
        }
    }
    NodeAttestor "join_token" {
        plugin_data {}
    }
}
`, port, hclString(d.serverSock), hclString(d.cfg.TrustDomain.Name()), hclString(data),
		hclString(strings.ToUpper(d.cfg.LogLevel)), hclDuration(d.cfg.CATTL), hclDuration(d.cfg.X509SVIDTTL),
		hclDuration(d.cfg.JWTSVIDTTL), hclDuration(d.cfg.SyncInterval),
		hclString(filepath.Join(data, "datastore.sqlite3")), hclString(filepath.Join(data, "keys.json")))
	confPath := filepath.Join(d.dir, "server.conf")
	writeFile(t, confPath, conf)
	p := startProcess(t, "spire-server", d.serverBin, filepath.Join(d.dir, "server.log"), "run", "-config", confPath)
	return p, d.waitHealthy(t, p, d.serverBin, "-socketPath", d.serverSock)
}

// startAgent bootstraps the agent from the server's bundle with a fresh
// join token, runs spire-agent and waits until it is healthy and known to
// the server.
func (d *Deployment) startAgent(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cliTimeout)
	defer cancel()

	bundlePEM, err := d.serverCLI(ctx, "bundle", "show", "-format", "pem")
	if err != nil {
		t.Fatalf("spiretest: bootstrap bundle: %v", err)
	}
	bundlePath := filepath.Join(d.dir, "bootstrap.pem")
	writeFile(t, bundlePath, string(bundlePEM))

	out, err := d.serverCLI(ctx, "token", "generate", "-ttl", "600", "-output", "json")
	if err != nil {
		t.Fatalf("spiretest: join token: %v", err)
	}
	var tok struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(out, &tok); err != nil || tok.Value == "" {
		t.Fatalf("spiretest: join token: cannot read %q: %v", out, err)
	}
	d.agentID, err = spiffeid.FromSegments(d.cfg.TrustDomain, "spire", "agent", "join_token", tok.Value)
	if err != nil {
		t.Fatalf("spiretest: agent ID from join token %q: %v", tok.Value, err)
	}

	data := filepath.Join(d.dir, "agent")
	conf := fmt.Sprintf(`agent {
    data_dir = %s
    log_level = %s
    log_format = "json"
    server_address = "127.0.0.1"
    server_port = "%d"
    socket_path = %s
    trust_bundle_path = %s
    trust_domain = %s
    experimental {
        sync_interval = %s
    }
}

plugins {
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "disk" {
        plugin_data {
            directory = %s
        }
    }
    WorkloadAttestor "unix" {
        plugin_data {
            discover_workload_path = true
            workload_size_limit = -1
        }
    }
}
`, hclString(data), hclString(strings.ToUpper(d.cfg.LogLevel)), d.port, hclString(d.agentSock),
		hclString(bundlePath), hclString(d.cfg.TrustDomain.Name()), hclDuration(d.cfg.SyncInterval), hclString(data))
	confPath := filepath.Join(d.dir, "agent.conf")
	writeFile(t, confPath, conf)
	d.agent = startProcess(t, "spire-agent", d.agentBin, filepath.Join(d.dir, "agent.log"),
		"run", "-config", confPath, "-joinToken", tok.Value)
	if err := d.waitHealthy(t, d.agent, d.agentBin, "-socketPath", d.agentSock); err != nil {
		t.Fatalf("spiretest: %v", err)
	}

	ctx, cancel = context.WithTimeout(t.Context(), cliTimeout)
	defer cancel()
	if _, err := d.serverCLI(ctx, "agent", "show", "-spiffeID", d.agentID.String()); err != nil {
		t.Fatalf("spiretest: agent %s is healthy but unknown to the server: %v", d.agentID, err)
	}
	d.log.Info("spiretest: agent healthy", "agent_id", d.agentID.String())
}

// waitHealthy runs `<bin> healthcheck args...` until it succeeds, p
// exits, or StartTimeout passes.
func (d *Deployment) waitHealthy(t testing.TB, p *process, bin string, args ...string) error {
	t.Helper()
	deadline := time.Now().Add(d.cfg.StartTimeout)
	for {
		if done, err := p.exited(); done {
			return fmt.Errorf("%s exited during startup: %v", p.name, err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		out, err := exec.CommandContext(ctx, bin, append([]string{"healthcheck"}, args...)...).CombinedOutput()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy after %v: %v: %s", p.name, d.cfg.StartTimeout, err, bytes.TrimSpace(out))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// logContains reports whether the log file at path contains s.
func logContains(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(s))
}

// serverCLI runs `spire-server <args> -socketPath <sock>` and returns its
// standard output; the error carries standard error.
func (d *Deployment) serverCLI(ctx context.Context, args ...string) ([]byte, error) {
	if len(args) < 2 {
		return nil, fmt.Errorf("spire-server %v: need a command and a subcommand", args)
	}
	full := append(append([]string{}, args[:2]...), "-socketPath", d.serverSock)
	full = append(full, args[2:]...)
	cmd := exec.CommandContext(ctx, d.serverBin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("spire-server %s: %w: %s%s", strings.Join(args, " "), err,
			bytes.TrimSpace(stderr.Bytes()), bytes.TrimSpace(stdout.Bytes()))
	}
	return stdout.Bytes(), nil
}

// ServerCLI runs a spire-server command against this deployment's server
// API socket: args start with the command and subcommand ("entry",
// "delete", "-entryID", id); -socketPath is added. It returns standard
// output and fails t if the command fails.
func (d *Deployment) ServerCLI(t testing.TB, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cliTimeout)
	defer cancel()
	out, err := d.serverCLI(ctx, args...)
	if err != nil {
		t.Fatalf("spiretest: %v", err)
	}
	return out
}

// TrustDomain returns the deployment's trust domain.
func (d *Deployment) TrustDomain() spiffeid.TrustDomain { return d.cfg.TrustDomain }

// WorkloadSocket returns the agent's Workload API address in the
// "unix:///abs/path" form that workloadapi.WithAddr accepts.
func (d *Deployment) WorkloadSocket() string { return "unix://" + d.agentSock }

// ServerSocket returns the path of the server's API socket.
func (d *Deployment) ServerSocket() string { return d.serverSock }

// AgentID returns the agent's SPIFFE ID,
// spiffe://<td>/spire/agent/join_token/<token>: the parent of entries
// created by Register.
func (d *Deployment) AgentID() spiffeid.ID { return d.agentID }

// Dir returns the deployment directory (configuration, data and logs).
func (d *Deployment) Dir() string { return d.dir }

// StartupTime returns how long Start took from launching the server to
// the attested, healthy agent.
func (d *Deployment) StartupTime() time.Duration { return d.startup }

// Bundle returns the server's current trust bundle for the trust domain
// (`spire-server bundle show -format spiffe`): the X.509 authorities and
// the JWT keys that verify SVIDs of this deployment.
func (d *Deployment) Bundle(t testing.TB) *spiffebundle.Bundle {
	t.Helper()
	out := d.ServerCLI(t, "bundle", "show", "-format", "spiffe")
	b, err := spiffebundle.Parse(d.cfg.TrustDomain, out)
	if err != nil {
		t.Fatalf("spiretest: parse bundle: %v", err)
	}
	return b
}

// dumpLogs writes both processes' logs to the test log.
func (d *Deployment) dumpLogs(t testing.TB) {
	for _, name := range []string{"server.log", "agent.log"} {
		b, err := os.ReadFile(filepath.Join(d.dir, name))
		if err != nil {
			t.Logf("spiretest: %s: %v", name, err)
			continue
		}
		t.Logf("spiretest: ---- %s ----\n%s", name, b)
	}
}

// freePort returns a 127.0.0.1 TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("spiretest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// shortTempDir returns a directory under the system temp dir short enough
// for unix sockets, removed in t.Cleanup.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "spt")
	if err != nil {
		t.Fatalf("spiretest: socket dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("spiretest: %v", err)
	}
}

// hclString quotes s as an HCL string; Config.Validate has ruled out the
// characters HCL would treat specially.
func hclString(s string) string { return strconv.Quote(s) }

// hclDuration renders d as a quoted Go duration, which SPIRE parses with
// time.ParseDuration.
func hclDuration(d time.Duration) string { return strconv.Quote(d.String()) }
