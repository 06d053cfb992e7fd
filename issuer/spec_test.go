package issuer

import (
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/writ-dev/writ/spec"
)

// TestOpenAPIMatchesRoutes holds spec/openapi.yaml and the handler
// together: every route is documented with its method, every documented
// operation exists, and every problem code is listed.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	raw, err := os.ReadFile("../spec/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Info struct {
			Description string `yaml:"description"`
		} `yaml:"info"`
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	is := &Issuer{}
	implemented := map[string]bool{}
	for _, rt := range is.routes() {
		implemented[rt.method+" "+rt.path] = true
	}
	var missing []string
	for k := range implemented {
		if !documented[k] {
			missing = append(missing, "undocumented: "+k)
		}
	}
	for k := range documented {
		if !implemented[k] {
			missing = append(missing, "not implemented: "+k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("openapi.yaml and routes differ:\n%s", strings.Join(missing, "\n"))
	}
	for code := range problemTitles {
		if !strings.Contains(doc.Info.Description, code) {
			t.Errorf("problem code %q is not listed in openapi.yaml", code)
		}
		if !strings.HasPrefix(spec.ProblemType(code), "https://") {
			t.Errorf("problem type of %q is not a URI", code)
		}
	}
}
