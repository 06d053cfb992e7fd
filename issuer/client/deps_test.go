package client

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies: agents embed this package, so it must not pull in the
// issuer node (the root issuer package imports raft and pebble), the
// cluster, raft or pebble. Of writ it may import spec only.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/writ-dev/writ/issuer/client").Output()
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
	allowed := map[string]bool{
		"github.com/writ-dev/writ/issuer/client": true,
		"github.com/writ-dev/writ/spec":          true,
	}
	for _, d := range deps {
		switch {
		case d == "github.com/writ-dev/writ/issuer",
			strings.HasPrefix(d, "github.com/writ-dev/writ/cluster"),
			strings.HasPrefix(d, "github.com/hashicorp/raft"),
			strings.HasPrefix(d, "github.com/cockroachdb/pebble"):
			t.Errorf("depends on %s: agents must not embed the issuer node, raft or pebble", d)
		case strings.HasPrefix(d, "github.com/writ-dev/writ/") && !allowed[d]:
			t.Errorf("depends on %s; of writ only spec is allowed", d)
		}
	}
}
