package syncer_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies: the syncer is embedded by resource services with the
// verifier, so it must not pull in the issuer, the cluster, raft or
// pebble, nor biscuit-go beyond its protobuf schema.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/writ-dev/writ/verifier/syncer").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps: %v: %s", err, ee.Stderr)
		}
		t.Skipf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps printed nothing")
	}
	forbidden := []string{
		"github.com/writ-dev/writ/issuer",
		"github.com/writ-dev/writ/cluster",
		"github.com/hashicorp/raft",
		"github.com/cockroachdb/pebble",
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("syncer depends on %s", d)
			}
		}
		if strings.HasPrefix(d, "github.com/biscuit-auth/") && d != "github.com/biscuit-auth/biscuit-go/v2/pb" {
			t.Errorf("syncer depends on %s; only biscuit-go/v2/pb is allowed", d)
		}
	}
}
