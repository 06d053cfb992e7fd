package policy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/spec"
)

// FuzzParse: Parse never panics, fails only with a *ParseError, and what it
// accepts has a well-formed, reproducible version and can be evaluated.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		if len(tc.src) < 64<<10 {
			f.Add([]byte(tc.src))
		}
	}
	f.Add([]byte(evalPolicy))
	f.Add([]byte(versionBase))
	files, _ := filepath.Glob("../../spec/testdata/policy/*.yaml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	reVersion := regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	subject := spiffeid.RequireFromString("spiffe://acme.example/agents/support")
	req := Request{Subject: subject, Rights: []spec.Right{{Resource: "crm/contacts", Operation: "read"}, {Resource: "crm/*", Operation: "read"}}, Now: time.Unix(1_800_000_000, 0)}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 0 || pe.Msg == "" {
				t.Fatalf("got error %#v, want a *ParseError with a message", err)
			}
			return
		}
		if !reVersion.MatchString(p.Version()) || !json.Valid(p.Canonical()) {
			t.Fatalf("got version %q canonical %q", p.Version(), p.Canonical())
		}
		again, err := Parse(data)
		if err != nil || again.Version() != p.Version() {
			t.Fatalf("second parse: got %v, %v; want the same version", err, again)
		}
		res := p.Evaluate(req)
		if len(res.Granted)+len(res.Denied) != len(req.Rights) {
			t.Fatalf("got %d decisions, want %d", len(res.Granted)+len(res.Denied), len(req.Rights))
		}
	})
}
