package attenuation

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports holds attenuation to what agents can embed: of writ only
// spec, and never raft or pebble.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test=false", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(p, "github.com/writ-dev/writ/") &&
			p != "github.com/writ-dev/writ/attenuation" && p != "github.com/writ-dev/writ/spec":
			t.Errorf("imports %s, want only spec of writ", p)
		case strings.Contains(p, "hashicorp/raft"), strings.Contains(p, "cockroachdb/pebble"):
			t.Errorf("imports %s", p)
		}
	}
}
