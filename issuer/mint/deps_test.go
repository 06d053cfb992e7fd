package mint

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports holds mint to a leaf of the issuer: spec, attenuation and
// the token libraries, never the cluster, raft or pebble.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test=false", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const self = "github.com/writ-dev/writ/issuer/mint"
	allowedWrit := map[string]bool{
		self:                                   true,
		"github.com/writ-dev/writ/spec":        true,
		"github.com/writ-dev/writ/attenuation": true,
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(p, "github.com/writ-dev/writ") && !allowedWrit[p]:
			t.Errorf("imports %s, want only spec and attenuation of writ", p)
		case strings.Contains(p, "hashicorp/raft"), strings.Contains(p, "cockroachdb/pebble"):
			t.Errorf("imports %s", p)
		}
	}
}
