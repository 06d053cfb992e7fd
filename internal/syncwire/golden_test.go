package syncwire

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.txt")

// TestGolden pins the wire format: the frames of fixed values signed by a
// fixed key (Ed25519 is deterministic). Any change to the encoding shows
// up here; the issuer's encoder can be checked against the same file.
// Regenerate with go test ./internal/syncwire -run Golden -update.
func TestGolden(t *testing.T) {
	cases := []struct {
		name string
		data []byte
	}{
		{"snapshot", must(t)(EncodeSnapshot(testSnapshot(), signer1))},
		{"change", must(t)(EncodeChange(testChange(), signer1))},
		{"heartbeat", must(t)(EncodeHeartbeat(testHeartbeat(), signer1))},
	}
	var b strings.Builder
	b.WriteString("# Frames of spec/sync.md §3, hex, one unit per line. Key 1 has the\n")
	b.WriteString("# Ed25519 seed 32×0x01, key 2 32×0x02, key 3 32×0x03. Values: see\n")
	b.WriteString("# testSnapshot, testChange, testHeartbeat in syncwire_test.go.\n")
	for _, c := range cases {
		fmt.Fprintf(&b, "%s %s\n", c.name, hex.EncodeToString(c.data))
	}
	path := filepath.Join("testdata", "golden.txt")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal([]byte(b.String()), want) {
		t.Fatalf("encoding differs from %s; if the change is intended, run with -update and tell the issuer side", path)
	}
}
