package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under spec/testdata/policy")

const versionBase = `# base
version: 1
defaults:
  max_ttl: 10m
rules:
  - name: read
    subjects: ["spiffe://td/a", "spiffe://td/b/*"]
    rights: ["crm/contacts:read", "crm/notes/*:read"]
    fields: [name, email]
    time_windows:
      - {zone: Europe/Paris, days: [mon, fri], from: "09:00", to: "18:00"}
      - {zone: UTC, from: "20:00", to: "21:00"}
  - name: write
    subjects: ["spiffe://td/a"]
    rights: ["crm/notes/*:write"]
    max_ttl: 5m
    bind_presenter: false
`

// TestVersionIgnoresForm: files that mean the same thing have the same
// version.
func TestVersionIgnoresForm(t *testing.T) {
	want := mustParse(t, versionBase).Version()
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(want) {
		t.Fatalf("got version %q, want sha256:<64 hex>", want)
	}
	same := map[string]string{
		"comments-and-blank-lines": "# header\n\n" + strings.ReplaceAll(versionBase, "rules:\n", "rules: # the rules\n\n"),
		"flow-style": `{version: 1, defaults: {max_ttl: 10m}, rules: [
  {name: read, subjects: ["spiffe://td/a", "spiffe://td/b/*"], rights: ["crm/contacts:read", "crm/notes/*:read"], fields: [name, email],
   time_windows: [{zone: Europe/Paris, days: [mon, fri], from: "09:00", to: "18:00"}, {zone: UTC, from: "20:00", to: "21:00"}]},
  {name: write, subjects: ["spiffe://td/a"], rights: ["crm/notes/*:write"], max_ttl: 5m, bind_presenter: false}]}`,
		"keys-and-sets-reordered": `rules:
  - rights: ["crm/notes/*:read", "crm/contacts:read"]
    time_windows:
      - {to: "21:00", from: "20:00", zone: UTC}
      - {days: [fri, mon], zone: Europe/Paris, from: "09:00", to: "18:00"}
    fields: [email, name]
    subjects: ["spiffe://td/b/*", "spiffe://td/a"]
    name: read
  - bind_presenter: false
    max_ttl: 5m
    rights: ["crm/notes/*:write"]
    subjects: ["spiffe://td/a"]
    name: write
defaults: {max_ttl: 10m}
version: 1
`,
		"defaults-written-out": strings.Replace(strings.Replace(versionBase, "defaults:\n  max_ttl: 10m\n", "", 1),
			"    fields: [name, email]\n", "    fields: [name, email]\n    max_ttl: 600s\n    bind_presenter: true\n", 1),
		"same-duration-other-unit": strings.Replace(versionBase, "max_ttl: 5m", "max_ttl: 300s", 1),
		"quoting":                  strings.Replace(versionBase, "name: read", `name: "read"`, 1),
		"crlf":                     strings.ReplaceAll(versionBase, "\n", "\r\n"),
	}
	for name, src := range same {
		t.Run(name, func(t *testing.T) {
			if got := mustParse(t, src).Version(); got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
	// Every day listed is the same as no day list.
	a := mustParse(t, withRule("    time_windows: [{zone: UTC, from: \"09:00\", to: \"10:00\"}]\n")).Version()
	b := mustParse(t, withRule("    time_windows: [{zone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], from: \"09:00\", to: \"10:00\"}]\n")).Version()
	if a != b {
		t.Errorf("all seven days: got %s, want %s", b, a)
	}
	// max_staleness inherited from defaults or written in the rule, in
	// another unit, is the same bound.
	c := mustParse(t, "version: 1\ndefaults: {max_staleness: 1m}\n"+minimal[len("version: 1\n"):]).Version()
	d := mustParse(t, withRule("    max_staleness: 60s\n")).Version()
	if c != d {
		t.Errorf("max_staleness from defaults: got %s, want %s", c, d)
	}
	if e := mustParse(t, minimal).Version(); e == c {
		t.Errorf("max_staleness 60s: got the version of the policy without it, %s", e)
	}
	if got, want := string(mustParse(t, withRule("    max_staleness: 2m\n")).Canonical()), `"max_records"`; strings.Contains(got, want) ||
		!strings.Contains(got, `,"max_staleness":120,"max_ttl":900,`) {
		t.Errorf("canonical form: got %s, want max_staleness in seconds before max_ttl and no max_records", got)
	}
}

// TestVersionFollowsMeaning: any change to what the policy grants changes
// the version.
func TestVersionFollowsMeaning(t *testing.T) {
	base := mustParse(t, versionBase).Version()
	edits := map[string][2]string{
		"rule-name":         {"name: write", "name: write2"},
		"subject":           {`"spiffe://td/b/*"`, `"spiffe://td/b/c"`},
		"right":             {`"crm/contacts:read"`, `"crm/contacts:list"`},
		"default-ttl":       {"  max_ttl: 10m", "  max_ttl: 11m"},
		"rule-ttl":          {"max_ttl: 5m", "max_ttl: 4m"},
		"field":             {"fields: [name, email]", "fields: [name]"},
		"window-zone":       {"zone: UTC", "zone: Etc/UTC"},
		"window-day":        {"days: [mon, fri]", "days: [mon, thu]"},
		"window-minute":     {`to: "21:00"`, `to: "21:01"`},
		"bind-presenter":    {"bind_presenter: false", "bind_presenter: true"},
		"add-records":       {"    max_ttl: 5m\n", "    max_ttl: 5m\n    max_records: 5\n"},
		"add-description":   {"  - name: write\n", "  - name: write\n    description: writes notes\n"},
		"add-service":       {"    max_ttl: 5m\n", "    max_ttl: 5m\n    services: [\"spiffe://td/s\"]\n"},
		"add-delegate-to":   {"    max_ttl: 5m\n", "    max_ttl: 5m\n    delegate_to: [\"spiffe://td/x/*\"]\n"},
		"add-staleness":     {"    max_ttl: 5m\n", "    max_ttl: 5m\n    max_staleness: 2s\n"},
		"default-staleness": {"  max_ttl: 10m\n", "  max_ttl: 10m\n  max_staleness: 30s\n"},
		"rule-order-swaps":  {"", ""}, // filled below
	}
	seen := map[string]string{base: "base"}
	for name, e := range edits {
		t.Run(name, func(t *testing.T) {
			var src string
			if name == "rule-order-swaps" {
				i := strings.Index(versionBase, "  - name: write")
				j := strings.Index(versionBase, "  - name: read")
				src = versionBase[:j] + versionBase[i:] + versionBase[j:i]
			} else {
				if !strings.Contains(versionBase, e[0]) {
					t.Fatalf("edit %q does not apply", e[0])
				}
				src = strings.Replace(versionBase, e[0], e[1], 1)
			}
			got := mustParse(t, src).Version()
			if other, dup := seen[got]; dup {
				t.Errorf("got version %s, the same as %s", got, other)
			}
			seen[got] = name
		})
	}
}

// TestStarterGolden pins the canonical form of the starter policy (the
// input of Version) to spec/testdata/policy/starter.canonical.json.
// Regenerate with: go test ./issuer/policy -run StarterGolden -update
func TestStarterGolden(t *testing.T) {
	const golden = "../../spec/testdata/policy/starter.canonical.json"
	p := mustParse(t, string(Starter))
	got := append(p.Canonical(), '\n')
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("canonical form changed:\ngot  %s\nwant %s", got, want)
	}
	sum := sha256.Sum256(bytes.TrimSuffix(want, []byte("\n")))
	if v := "sha256:" + hex.EncodeToString(sum[:]); p.Version() != v {
		t.Errorf("got version %s, want sha256 of the golden canonical form %s", p.Version(), v)
	}
	// The canonical form is JSON, keys sorted (RFC 8785 orders them).
	var doc map[string]any
	if err := json.Unmarshal(want, &doc); err != nil {
		t.Fatalf("canonical form is not JSON: %v", err)
	}
	if !json.Valid(p.Canonical()) {
		t.Fatal("canonical form is not valid JSON")
	}
}

func TestAppendStringEscapes(t *testing.T) {
	got := string(appendString(nil, "a\"b\\c\x01\n\t\x7fé\u2028"))
	want := `"a\"b\\c\u0001\n\t` + "\x7fé\u2028" + `"`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestStarterMatchesSpec(t *testing.T) {
	want, err := os.ReadFile("../../spec/testdata/policy/starter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Starter, want) {
		t.Fatal("issuer/policy/starter.yaml differs from spec/testdata/policy/starter.yaml; keep them identical")
	}
}

// TestCanonicalIsSortedCompactJSON re-encodes the canonical form of every
// valid table case with encoding/json, which sorts object keys and adds no
// whitespace; for these documents (integers, strings without U+2028/2029)
// that is the RFC 8785 form, so both encodings must agree byte for byte.
func TestCanonicalIsSortedCompactJSON(t *testing.T) {
	srcs := []string{versionBase, string(Starter)}
	for _, tc := range parseCases {
		if tc.wantErr == "" {
			srcs = append(srcs, tc.src)
		}
	}
	for _, src := range srcs {
		c := mustParse(t, src).Canonical()
		dec := json.NewDecoder(bytes.NewReader(c))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("canonical form is not JSON: %v\n%s", err, c)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		if got := bytes.TrimSuffix(buf.Bytes(), []byte("\n")); !bytes.Equal(got, c) {
			t.Errorf("canonical form is not sorted compact JSON:\ngot  %s\nwant %s", c, got)
		}
	}
}
