package policy

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoForbiddenImports keeps the package pure: it must not depend on the
// replicated-state machinery.
func TestNoForbiddenImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"github.com/hashicorp/raft", "github.com/cockroachdb/pebble", "github.com/writ-dev/writ/cluster", "github.com/writ-dev/writ/issuer"} {
			if dep == bad || strings.HasPrefix(dep, bad+"/") && !strings.HasPrefix(dep, "github.com/writ-dev/writ/issuer/policy") {
				t.Errorf("imports %s", dep)
			}
		}
	}
}
