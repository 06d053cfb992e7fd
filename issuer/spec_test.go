package issuer

import (
	"fmt"
	"os"
	"slices"
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

// TestOpenAPITokenExchange holds the token-exchange half of POST /v1/token
// and spec/openapi.yaml together: parameters, error codes, reason codes of
// JWT-SVID refusals and the token type URI.
func TestOpenAPITokenExchange(t *testing.T) {
	raw, err := os.ReadFile("../spec/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]map[string]struct{ Description string } `yaml:"paths"`
		Components struct {
			Schemas map[string]struct {
				Required   []string       `yaml:"required"`
				Properties map[string]any `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	req := doc.Components.Schemas["ExchangeRequest"]
	for _, p := range exchangeParams {
		name, required := p.name, p.required
		if _, ok := req.Properties[name]; !ok {
			t.Errorf("exchange parameter %q is not in ExchangeRequest", name)
		}
		if got := slices.Contains(req.Required, name); got != required {
			t.Errorf("exchange parameter %q: documented required=%v, implemented %v", name, got, required)
		}
	}
	if len(req.Properties) != len(exchangeParams) {
		t.Errorf("ExchangeRequest documents %d parameters, the handler knows %d", len(req.Properties), len(exchangeParams))
	}
	errSchema := fmt.Sprint(doc.Components.Schemas["ExchangeError"].Properties["error"])
	for _, code := range []string{oauthInvalidRequest, oauthInvalidClient, oauthInvalidScope, oauthInvalidTarget, oauthUnsupported, oauthUnavailable, oauthServerError} {
		if !strings.Contains(errSchema, code) {
			t.Errorf("OAuth error %q is not in ExchangeError", code)
		}
	}
	desc := doc.Paths["/v1/token"]["post"].Description
	for _, jr := range jwtReasons {
		if !strings.Contains(desc, jr.reason) {
			t.Errorf("JWT-SVID refusal code %q is not documented at POST /v1/token", jr.reason)
		}
	}
	for _, s := range []string{grantTokenExchange, tokenTypeJWT, spec.TokenTypeBiscuit} {
		if !strings.Contains(desc, s) {
			t.Errorf("%q is not documented at POST /v1/token", s)
		}
	}
	md, err := os.ReadFile("../spec/token.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), spec.TokenTypeBiscuit) {
		t.Errorf("spec/token.md does not define %q", spec.TokenTypeBiscuit)
	}
}
