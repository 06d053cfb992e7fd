package cluster_test

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/cluster"
	"github.com/writ-dev/writ/cluster/clustertest"
)

func TestConfigValidate(t *testing.T) {
	ca := clustertest.NewCA(t, "writ.test")
	base := clustertest.Config(t, ca, "n1")

	cases := []struct {
		name   string
		mutate func(c *cluster.Config)
		want   string // substring of the error; empty means valid
	}{
		{"ok/test-config", func(*cluster.Config) {}, ""},
		{"ok/advertise-with-wildcard-bind", func(c *cluster.Config) {
			c.BindAddr, c.AdvertiseAddr = "0.0.0.0:7000", "node1.writ.internal:7000"
		}, ""},
		{"ok/minimum-timeouts", func(c *cluster.Config) {
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.CommitTimeout =
				5*time.Millisecond, 5*time.Millisecond, 5*time.Millisecond, time.Millisecond
		}, ""},
		{"fail/empty-node-id", func(c *cluster.Config) { c.NodeID = "" }, "NodeID is empty"},
		{"fail/node-id-with-space", func(c *cluster.Config) { c.NodeID = "node 1" }, "visible ASCII"},
		{"fail/node-id-too-long", func(c *cluster.Config) { c.NodeID = strings.Repeat("n", 129) }, "at most 128"},
		{"fail/empty-data-dir", func(c *cluster.Config) { c.DataDir = "" }, "DataDir is empty"},
		{"fail/bind-without-port", func(c *cluster.Config) { c.BindAddr = "127.0.0.1" }, "want host:port"},
		{"fail/bind-port-out-of-range", func(c *cluster.Config) { c.BindAddr = "127.0.0.1:70000" }, "port must be 0..65535"},
		{"fail/wildcard-bind-without-advertise", func(c *cluster.Config) { c.BindAddr = "0.0.0.0:7000" }, "set AdvertiseAddr"},
		{"fail/empty-host-bind-without-advertise", func(c *cluster.Config) { c.BindAddr = ":7000" }, "set AdvertiseAddr"},
		{"fail/advertise-unspecified", func(c *cluster.Config) { c.AdvertiseAddr = "0.0.0.0:7000" }, "cannot be dialled"},
		{"fail/advertise-port-zero", func(c *cluster.Config) { c.AdvertiseAddr = "127.0.0.1:0" }, "port must be 1..65535"},
		{"fail/advertise-no-host", func(c *cluster.Config) { c.AdvertiseAddr = ":7000" }, "host is empty"},
		{"fail/no-server-tls", func(c *cluster.Config) { c.ServerTLS = nil }, "ServerTLS: missing"},
		{"fail/server-tls-no-client-auth", func(c *cluster.Config) {
			c.ServerTLS = c.ServerTLS.Clone()
			c.ServerTLS.ClientAuth = tls.VerifyClientCertIfGiven
		}, "does not require a verified client certificate"},
		{"fail/server-tls-any-cert-unverified", func(c *cluster.Config) {
			c.ServerTLS = c.ServerTLS.Clone()
			c.ServerTLS.VerifyPeerCertificate = nil
		}, "would accept any certificate"},
		{"fail/server-tls-config-for-client", func(c *cluster.Config) {
			c.ServerTLS = c.ServerTLS.Clone()
			c.ServerTLS.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return nil, nil }
		}, "GetConfigForClient"},
		{"fail/server-tls-no-certificate", func(c *cluster.Config) {
			c.ServerTLS = c.ServerTLS.Clone()
			c.ServerTLS.GetCertificate = nil
		}, "no server certificate"},
		{"fail/no-client-tls", func(c *cluster.Config) { c.ClientTLS = nil }, "ClientTLS: missing"},
		{"fail/client-tls-skip-verify-unchecked", func(c *cluster.Config) {
			c.ClientTLS = c.ClientTLS.Clone()
			c.ClientTLS.VerifyPeerCertificate = nil
		}, "would accept any server"},
		{"fail/client-tls-no-certificate", func(c *cluster.Config) {
			c.ClientTLS = c.ClientTLS.Clone()
			c.ClientTLS.GetClientCertificate = nil
		}, "no client certificate"},
		{"fail/heartbeat-too-short", func(c *cluster.Config) { c.HeartbeatTimeout = time.Millisecond }, "HeartbeatTimeout"},
		{"fail/election-below-heartbeat", func(c *cluster.Config) { c.ElectionTimeout = c.HeartbeatTimeout / 2 }, "ElectionTimeout"},
		{"fail/lease-above-heartbeat", func(c *cluster.Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout }, "LeaderLeaseTimeout"},
		{"fail/commit-timeout-zero", func(c *cluster.Config) { c.CommitTimeout = 0 }, "CommitTimeout"},
		{"fail/snapshot-interval-zero", func(c *cluster.Config) { c.SnapshotInterval = 0 }, "SnapshotInterval"},
		{"fail/snapshot-threshold-zero", func(c *cluster.Config) { c.SnapshotThreshold = 0 }, "SnapshotThreshold"},
		{"fail/max-command-zero", func(c *cluster.Config) { c.MaxCommandBytes = 0 }, "MaxCommandBytes"},
		{"fail/max-command-too-large", func(c *cluster.Config) { c.MaxCommandBytes = cluster.MaxCommandBytesLimit + 1 }, "MaxCommandBytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mutate(&cfg)
			err := cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, cluster.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: got %v, want ErrInvalidConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func TestConfigValidateReportsAllProblems(t *testing.T) {
	err := cluster.Config{}.Validate()
	for _, want := range []string{"NodeID", "DataDir", "BindAddr", "ServerTLS", "ClientTLS", "HeartbeatTimeout", "MaxCommandBytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate of zero Config: got %v, want a problem with %s", err, want)
		}
	}
}

func TestDefaultConfigNeedsOnlyIdentity(t *testing.T) {
	// DefaultConfig lacks exactly what only the caller can know.
	err := cluster.DefaultConfig().Validate()
	for _, want := range []string{"NodeID", "DataDir", "ServerTLS", "ClientTLS"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate of DefaultConfig: got %v, want a problem with %s", err, want)
		}
	}
	for _, unwanted := range []string{"Timeout", "Snapshot", "MaxCommandBytes", "BindAddr"} {
		if err != nil && strings.Contains(err.Error(), unwanted) {
			t.Errorf("Validate of DefaultConfig: got %v, want defaults for %s to be valid", err, unwanted)
		}
	}
}

func TestNewRefusesBadInput(t *testing.T) {
	ca := clustertest.NewCA(t, "writ.test")
	cfg := clustertest.Config(t, ca, "n1")
	cfg.DataDir = filepath.Join(t.TempDir(), "never-created")

	if _, err := cluster.New(cfg, nil); !errors.Is(err, cluster.ErrInvalidConfig) {
		t.Fatalf("New with nil FSM: got %v, want ErrInvalidConfig", err)
	}
	bad := cfg
	bad.ServerTLS = nil
	if _, err := cluster.New(bad, &testFSM{}); !errors.Is(err, cluster.ErrInvalidConfig) {
		t.Fatalf("New without ServerTLS: got %v, want ErrInvalidConfig", err)
	}
	if _, err := os.Stat(cfg.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("DataDir after refused New: got %v, want it not created", err)
	}

	// A port already taken fails New and releases what was opened (the
	// store lock, so a second New on the same DataDir succeeds).
	first := clustertest.Run(t, clustertest.Config(t, ca, "n0"), &testFSM{})
	taken := cfg
	taken.DataDir = t.TempDir()
	taken.BindAddr = first.Addr()
	if _, err := cluster.New(taken, &testFSM{}); err == nil {
		t.Fatal("New on a taken port: got nil error")
	}
	taken.BindAddr = "127.0.0.1:0"
	node, err := cluster.New(taken, &testFSM{})
	if err != nil {
		t.Fatalf("New after a failed New on the same DataDir: %v", err)
	}
	if err := node.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
