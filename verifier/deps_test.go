package verifier

import (
	"os/exec"
	"strings"
	"testing"
)

// The verifier and its sync client are embedded by resource services:
// they must not pull in the issuer, the cluster, raft or pebble, nor
// biscuit-go's evaluator (only its protobuf schema, biscuit-go/v2/pb).
func TestDependencies(t *testing.T) {
	for _, pkg := range []string{"github.com/writ-dev/writ/verifier", "github.com/writ-dev/writ/verifier/syncer"} {
		t.Run(pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", pkg).Output()
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
						t.Errorf("%s depends on %s", pkg, d)
					}
				}
				if strings.HasPrefix(d, "github.com/biscuit-auth/") && d != biscuitAllowed {
					t.Errorf("%s depends on %s; only %s is allowed", pkg, d, biscuitAllowed)
				}
			}
		})
	}
}
