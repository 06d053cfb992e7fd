package policy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

const schemaPath = "../../spec/policy.schema.json"

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	sch, err := c.Compile(schemaPath)
	if err != nil {
		t.Fatalf("compile %s: %v", schemaPath, err)
	}
	return sch
}

// yamlToJSON turns a YAML file into the JSON value the schema judges.
func yamlToJSON(src []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

// TestSchemaAgreesWithParse holds spec/policy.schema.json and Parse to the
// same table: valid files pass both; invalid files fail both, except the
// ones marked beyondSchema (a check the schema cannot express, listed in
// spec/policy.md) and notJSON (no JSON equivalent exists).
func TestSchemaAgreesWithParse(t *testing.T) {
	sch := compileSchema(t)
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			inst, err := yamlToJSON([]byte(tc.src))
			if err != nil {
				if !tc.notJSON {
					t.Fatalf("YAML to JSON: %v; mark the case notJSON if that is expected", err)
				}
				if tc.wantErr == "" {
					t.Fatal("a valid case must have a JSON equivalent")
				}
				return
			}
			if tc.notJSON {
				t.Fatal("case is marked notJSON but converts to JSON")
			}
			err = sch.Validate(inst)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("schema rejects a valid policy: %v", err)
			case tc.wantErr != "" && tc.beyondSchema && err != nil:
				t.Fatalf("schema rejects a case marked beyondSchema (update the table and spec/policy.md): %v", err)
			case tc.wantErr != "" && !tc.beyondSchema && err == nil:
				t.Fatalf("schema accepts a policy Parse rejects with %q", tc.wantErr)
			}
		})
	}
}

// TestGoldenPoliciesValid checks every spec/testdata/policy/*.yaml with
// both the schema and Parse.
func TestGoldenPoliciesValid(t *testing.T) {
	sch := compileSchema(t)
	files, err := filepath.Glob("../../spec/testdata/policy/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("got %d golden policies (err %v), want some", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse(src); err != nil {
				t.Errorf("Parse: %v", err)
			}
			inst, err := yamlToJSON(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(inst); err != nil {
				t.Errorf("schema: %v", err)
			}
		})
	}
}

// TestSpecDocInStep keeps spec/policy.md honest: its first example is
// spec/testdata/policy/acme.yaml (which TestGoldenPoliciesValid parses),
// and every error message it quotes is one the parse table produces.
func TestSpecDocInStep(t *testing.T) {
	doc, err := os.ReadFile("../../spec/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../spec/testdata/policy/acme.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, append(append([]byte("```yaml\n"), example...), "```"...)) {
		t.Error("the first example of spec/policy.md differs from spec/testdata/policy/acme.yaml")
	}
	want := map[string]bool{}
	for _, tc := range parseCases {
		want[tc.wantErr] = true
	}
	n := 0
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if s := string(line); bytes.HasPrefix(line, []byte("policy: ")) {
			n++
			if !want[s] {
				t.Errorf("spec/policy.md quotes an error no table case produces: %s", s)
			}
		}
	}
	if n == 0 {
		t.Error("found no quoted errors in spec/policy.md")
	}
}
