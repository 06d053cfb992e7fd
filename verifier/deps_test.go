package verifier

import (
	"os/exec"
	"strings"
	"testing"
)

// The verifier is embedded by resource services: it must not pull in the
// issuer, the cluster, raft or pebble, nor biscuit-go's evaluator (only its
// protobuf schema, biscuit-go/v2/pb).
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/writ-dev/writ/verifier").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps: %v: %s", err, ee.Stderr)
		}
		t.Skipf("go list -deps: %v", err)
	}
	forbidden := []string{
		"github.com/writ-dev/writ/issuer",
		"github.com/writ-dev/writ/cluster",
		"github.com/hashicorp/raft",
		"github.com/cockroachdb/pebble",
	}
	biscuitAllowed := "github.com/biscuit-auth/biscuit-go/v2/pb"
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps printed nothing")
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("verifier depends on %s", d)
			}
		}
		if strings.HasPrefix(d, "github.com/biscuit-auth/") && d != biscuitAllowed {
			t.Errorf("verifier depends on %s; only %s is allowed", d, biscuitAllowed)
		}
	}
}
