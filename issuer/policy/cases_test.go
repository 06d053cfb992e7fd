package policy

import (
	"fmt"
	"strings"
)

// parseCase is one policy file and what Parse must say about it. The same
// table seeds FuzzParse and is checked against spec/policy.schema.json.
type parseCase struct {
	name string
	src  string
	// wantErr is the exact error; "" means the file is valid.
	wantErr string
	// beyondSchema marks invalid files that spec/policy.schema.json
	// accepts: the check is one the schema cannot express (spec/policy.md,
	// "Checks beyond the schema"). notJSON marks files that have no JSON
	// equivalent to give the schema (YAML syntax errors, duplicate keys).
	beyondSchema, notJSON bool
}

const minimal = `version: 1
rules:
  - name: r1
    subjects: ["spiffe://td/a"]
    rights: ["crm/contacts:read"]
`

// withRule returns a policy whose single rule has extra lines (indented
// by the caller to 4 spaces) after the minimal keys.
func withRule(extra string) string { return minimal + extra }

func repeatRules(n int) string {
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - {name: r%d, subjects: [\"spiffe://td/a\"], rights: [\"a:b\"]}\n", i)
	}
	return b.String()
}

func rightsList(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "      - r/%d:read\n", i)
	}
	return b.String()
}

var parseCases = []parseCase{
	// Valid files.
	{name: "ok/minimal", src: minimal},
	{name: "ok/every-field", src: `# a comment
---
version: 1
defaults:
  max_ttl: 10m
  bind_presenter: false
rules:
  - name: support.read_crm-1
    description: "Support reads the CRM — café"
    subjects: ["spiffe://td/agents/support", "spiffe://td/agents/tier2/*", "spiffe://other.td/*"]
    rights: ["crm/contacts:read", "crm/notes/*:read", "urn:x:y:read"]
    max_ttl: 90s
    max_records: 1000000000
    fields: [name, email, address.city, _id]
    time_windows:
      - zone: Europe/Paris
        days: [mon, tue, wed, thu, fri]
        from: "09:00"
        to: "18:00"
      - {zone: America/Argentina/Buenos_Aires, from: "00:00", to: "24:00"}
      - {zone: Etc/GMT+5, days: [sat], from: 10:00, to: 12:30}
    services: ["spiffe://td/services/crm"]
    delegate_to: ["spiffe://td/agents/*"]
    bind_presenter: true
...
`},
	{name: "ok/flow-style", src: `{version: 1, rules: [{name: a, subjects: ["spiffe://td/a"], rights: ["x:y"], time_windows: [{zone: UTC, days: [sun], from: "00:00", to: "01:00"}]}]}`},
	{name: "ok/crlf", src: strings.ReplaceAll(minimal, "\n", "\r\n")},
	{name: "ok/max-rules", src: repeatRules(MaxRules)},
	{name: "ok/max-rights", src: withRule("    max_ttl: 24h\n  - name: r2\n    subjects: [\"spiffe://td/b\"]\n    rights:\n" + rightsList(MaxRightsPerRule))},
	{name: "ok/quoted-keys", src: `"version": 1
'rules':
  - "name": r1
    subjects: ["spiffe://td/a"]
    rights: ["a:b"]
`},

	{name: "ok/unusual-but-valid-ids", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://t-d.x_y/.a/...b/-\"]\n    rights: [\"caf\u00e9/men\u00fc:read\", \"crm/:list\"]\n"},
	{name: "ok/all-days", src: withRule("    time_windows: [{zone: UTC, days: [sun, mon, tue, wed, thu, fri, sat], from: \"00:00\", to: \"00:01\"}]\n")},

	// YAML syntax and features.
	{name: "fail/bad-indentation", src: "version: 1\nrules:\n  - name: r1\n   subjects: [\"spiffe://td/a\"]\n    rights: [\"a:b\"]\n",
		wantErr: "policy: line 4: yaml: value is not allowed in this context", notJSON: true},
	{name: "fail/tab-indentation", src: "version: 1\nrules:\n\t- name: r1\n", wantErr: "policy: line 3: yaml: found character '\t' that cannot start any token", notJSON: true},
	{name: "fail/unclosed-flow", src: "version: 1\nrules: [\n", wantErr: "policy: line 2: yaml: sequence end token ']' not found", notJSON: true},
	{name: "fail/duplicate-key", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://td/a\"]\n    rights: [\"a:b\"]\n    name: r2\n",
		wantErr: "policy: line 6: rules[0]: duplicate key \"name\" (first at line 3)", notJSON: true},
	{name: "fail/duplicate-top-key", src: minimal + "version: 1\n", wantErr: "policy: line 6: duplicate key \"version\" (first at line 1)", notJSON: true},
	{name: "fail/anchor-alias", src: "version: 1\nrules:\n  - name: r1\n    subjects: &s [\"spiffe://td/a\"]\n    rights: [\"a:b\"]\n  - name: r2\n    subjects: *s\n    rights: [\"a:b\"]\n",
		wantErr: "policy: line 4: anchors and aliases (& and *) are not allowed", beyondSchema: true},
	{name: "fail/merge-key", src: "version: 1\nrules:\n  - <<: {name: r1}\n    subjects: [\"spiffe://td/a\"]\n    rights: [\"a:b\"]\n", wantErr: "policy: line 3: merge keys (<<) are not allowed", beyondSchema: true},
	{name: "fail/tag", src: "version: !!int 1\n" + minimal[len("version: 1\n"):], wantErr: "policy: line 1: tag \"!!int\": tags are not allowed", beyondSchema: true},
	{name: "fail/block-scalar", src: withRule("    description: |\n      two\n      lines\n"), wantErr: "policy: line 6: block scalars (| and >) are not allowed; write the value on one line"},
	{name: "fail/two-documents", src: minimal + "---\n" + minimal, wantErr: "policy: line 7: more than one YAML document", beyondSchema: true},
	{name: "fail/empty-file", src: "", wantErr: "policy: line 1: empty policy: want a mapping with keys version and rules"},
	{name: "fail/only-comment", src: "# nothing\n", wantErr: "policy: line 1: empty policy: want a mapping with keys version and rules"},
	{name: "fail/top-level-list", src: "- version: 1\n", wantErr: "policy: line 1: want a mapping, got list"},
	{name: "fail/not-utf8", src: "# caf\xe9\n" + minimal, wantErr: "policy: line 1: text is not valid UTF-8", beyondSchema: true},
	{name: "fail/control-character", src: "# a\x01\n" + minimal, wantErr: "policy: line 1: control character U+0001", beyondSchema: true},
	{name: "fail/bare-carriage-return", src: "# a\rb\n" + minimal, wantErr: "policy: line 1: carriage return without line feed", notJSON: true},
	{name: "fail/flow-too-deep", src: "version: 1\nrules: " + strings.Repeat("[", MaxFlowDepth+1) + strings.Repeat("]", MaxFlowDepth+1) + "\n", wantErr: "policy: line 2: flow collections nested deeper than 8"},
	{name: "fail/too-many-keys", src: "version: 1\nrules:\n  - name: r1\n" + func() string {
		var b strings.Builder
		for i := 0; i < MaxKeysPerMapping; i++ {
			fmt.Fprintf(&b, "    k%d: x\n", i)
		}
		return b.String()
	}(), wantErr: "policy: line 35: more than 32 keys in one mapping"},

	// Structure.
	{name: "fail/unknown-top-key", src: "version: 1\nissuer: spiffe://td/writ\nrules: []\n", wantErr: "policy: line 2: unknown key \"issuer\" (want version, defaults, rules)"},
	{name: "fail/unknown-rule-key", src: withRule("    max_tll: 5m\n"), wantErr: "policy: line 6: rules[0]: unknown key \"max_tll\" (want name, description, subjects, rights, max_ttl, max_records, fields, time_windows, services, delegate_to, bind_presenter, max_staleness)"},
	{name: "fail/unknown-defaults-key", src: "version: 1\ndefaults:\n  max_records: 5\n" + minimal[len("version: 1\n"):], wantErr: "policy: line 3: defaults: unknown key \"max_records\" (want max_ttl, bind_presenter, max_staleness)"},
	{name: "fail/missing-version", src: minimal[len("version: 1\n"):], wantErr: "policy: line 1: missing key \"version\""},
	{name: "fail/version-2", src: "version: 2\n" + minimal[len("version: 1\n"):], wantErr: "policy: line 1: version: unsupported version 2: this writ reads version 1"},
	{name: "fail/version-string", src: "version: \"1\"\n" + minimal[len("version: 1\n"):], wantErr: "policy: line 1: version: want an integer, got string"},
	{name: "fail/missing-rules", src: "version: 1\n", wantErr: "policy: line 1: missing key \"rules\""},
	{name: "fail/empty-rules", src: "version: 1\nrules: []\n", wantErr: "policy: line 2: rules: empty list: want at least one item"},
	{name: "fail/missing-rights", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://td/a\"]\n", wantErr: "policy: line 3: rules[0]: missing key \"rights\""},
	{name: "fail/name-not-string", src: "version: 1\nrules:\n  - name: 123\n    subjects: [\"spiffe://td/a\"]\n    rights: [\"a:b\"]\n", wantErr: "policy: line 3: rules[0].name: want a string, got integer"},
	{name: "fail/bad-name", src: "version: 1\nrules:\n  - name: -r\n    subjects: [\"spiffe://td/a\"]\n    rights: [\"a:b\"]\n", wantErr: "policy: line 3: rules[0].name: \"-r\": want letters, digits, '.', '_' or '-', starting with a letter or digit, at most 128 characters"},
	{name: "fail/duplicate-rule-name", src: minimal + "  - name: r1\n    subjects: [\"spiffe://td/b\"]\n    rights: [\"a:b\"]\n", wantErr: "policy: line 6: rules[1].name: duplicate rule name \"r1\" (first at line 3)", beyondSchema: true},
	{name: "fail/null-list", src: withRule("    fields:\n"), wantErr: "policy: line 6: rules[0].fields: want a list, got null"},
	{name: "fail/empty-fields", src: withRule("    fields: []\n"), wantErr: "policy: line 6: rules[0].fields: empty list: want at least one item"},
	{name: "fail/bad-field", src: withRule("    fields: [\"first name\"]\n"), wantErr: "policy: line 6: rules[0].fields[0]: \"first name\": want letters, digits, '_', '.', ':', '/' or '-', starting with a letter, digit or '_', at most 128 characters"},
	{name: "fail/duplicate-field", src: withRule("    fields: [a, b, a]\n"), wantErr: "policy: line 6: rules[0].fields[2]: duplicate \"a\" (first at line 6)"},
	{name: "fail/description-newline", src: withRule("    description: \"a\\nb\"\n"), wantErr: "policy: line 6: rules[0].description: control characters are not allowed"},

	// Rights.
	{name: "fail/bad-right-star", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://td/a\"]\n    rights: [\"crm*:read\"]\n", wantErr: "policy: line 5: rules[0].rights[0]: spec: bad right: resource \"crm*\": '*' is only allowed as a final \"/*\" after a non-empty prefix"},
	{name: "fail/bad-right-no-operation", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://td/a\"]\n    rights: [\"crm/contacts\"]\n", wantErr: "policy: line 5: rules[0].rights[0]: spec: bad right: \"crm/contacts\": want RESOURCE:OPERATION"},
	{name: "fail/bad-right-wildcard-operation", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://td/a\"]\n    rights: [\"crm/*:*\"]\n", wantErr: "policy: line 5: rules[0].rights[0]: spec: bad right: operation \"*\": '*' and ':' are not allowed"},
	{name: "fail/duplicate-right", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://td/a\"]\n    rights: [\"a:b\", \"c:d\", \"a:b\"]\n", wantErr: "policy: line 5: rules[0].rights[2]: duplicate \"a:b\" (first at line 5)"},
	{name: "fail/too-many-rights", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://td/a\"]\n    rights:\n" + rightsList(MaxRightsPerRule+1), wantErr: "policy: line 6: rules[0].rights: 257 items, more than 256"},

	// SPIFFE IDs.
	{name: "fail/bad-spiffe-id-uppercase", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://TD/a\"]\n    rights: [\"a:b\"]\n", wantErr: "policy: line 4: rules[0].subjects[0]: \"spiffe://TD/a\": bad SPIFFE ID: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"},
	{name: "fail/spiffe-id-wrong-scheme", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"https://td/a\"]\n    rights: [\"a:b\"]\n", wantErr: "policy: line 4: rules[0].subjects[0]: \"https://td/a\": bad SPIFFE ID: scheme is missing or invalid"},
	{name: "fail/spiffe-id-no-path", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://td\"]\n    rights: [\"a:b\"]\n", wantErr: "policy: line 4: rules[0].subjects[0]: \"spiffe://td\": want a workload ID with a path (spiffe://TRUST-DOMAIN/PATH)"},
	{name: "fail/spiffe-id-dot-segment", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://td/a/../b\"]\n    rights: [\"a:b\"]\n", wantErr: "policy: line 4: rules[0].subjects[0]: \"spiffe://td/a/../b\": bad SPIFFE ID: path cannot contain dot segments"},
	{name: "fail/subject-star-inside", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://td/a*\"]\n    rights: [\"a:b\"]\n", wantErr: "policy: line 4: rules[0].subjects[0]: \"spiffe://td/a*\": '*' is only allowed as a final \"/*\""},
	{name: "fail/subject-trailing-slash", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://td/a/\"]\n    rights: [\"a:b\"]\n", wantErr: "policy: line 4: rules[0].subjects[0]: \"spiffe://td/a/\": bad SPIFFE ID: path cannot have a trailing slash"},
	{name: "fail/service-pattern", src: withRule("    services: [\"spiffe://td/services/*\"]\n"), wantErr: "policy: line 6: rules[0].services[0]: \"spiffe://td/services/*\": want an exact SPIFFE ID; patterns are not allowed here"},
	{name: "fail/duplicate-subject", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://td/a\", \"spiffe://td/a\"]\n    rights: [\"a:b\"]\n", wantErr: "policy: line 4: rules[0].subjects[1]: duplicate \"spiffe://td/a\" (first at line 4)"},
	{name: "fail/id-too-long", src: withRule("    services: [\"spiffe://td/" + strings.Repeat("a", MaxIDBytes) + "\"]\n"), wantErr: "policy: line 6: rules[0].services[0]: longer than 512 bytes"},

	{name: "fail/spiffe-id-empty-segment", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://td//a\"]\n    rights: [\"a:b\"]\n", wantErr: "policy: line 4: rules[0].subjects[0]: \"spiffe://td//a\": bad SPIFFE ID: path cannot contain empty segments"},
	{name: "fail/spiffe-id-dot", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://td/./*\"]\n    rights: [\"a:b\"]\n", wantErr: "policy: line 4: rules[0].subjects[0]: \"spiffe://td/./*\": bad SPIFFE ID: path cannot contain dot segments"},
	{name: "fail/bad-right-bare-prefix", src: "version: 1\nrules:\n  - name: r1\n    subjects: [\"spiffe://td/a\"]\n    rights: [\"/*:read\"]\n", wantErr: "policy: line 5: rules[0].rights[0]: spec: bad right: resource \"/*\": '*' is only allowed as a final \"/*\" after a non-empty prefix"},

	// Durations and numbers.
	{name: "fail/bad-duration-compound", src: withRule("    max_ttl: 1h30m\n"), wantErr: "policy: line 6: rules[0].max_ttl: \"1h30m\": want a whole number of seconds, minutes or hours, e.g. \"90s\", \"15m\", \"1h\""},
	{name: "fail/bad-duration-zero", src: withRule("    max_ttl: 0s\n"), wantErr: "policy: line 6: rules[0].max_ttl: \"0s\": want a whole number of seconds, minutes or hours, e.g. \"90s\", \"15m\", \"1h\""},
	{name: "fail/bad-duration-too-long", src: withRule("    max_ttl: 25h\n"), wantErr: "policy: line 6: rules[0].max_ttl: \"25h\": longer than 24h"},
	{name: "fail/bad-duration-seconds-too-long", src: withRule("    max_ttl: 86401s\n"), wantErr: "policy: line 6: rules[0].max_ttl: \"86401s\": longer than 24h"},
	{name: "fail/bad-duration-milliseconds", src: withRule("    max_ttl: 500ms\n"), wantErr: "policy: line 6: rules[0].max_ttl: \"500ms\": want a whole number of seconds, minutes or hours, e.g. \"90s\", \"15m\", \"1h\""},
	{name: "fail/bad-duration-number", src: withRule("    max_ttl: 15\n"), wantErr: "policy: line 6: rules[0].max_ttl: want a string, got integer"},
	{name: "fail/bad-default-duration", src: "version: 1\ndefaults: {max_ttl: 2d}\n" + minimal[len("version: 1\n"):], wantErr: "policy: line 2: defaults.max_ttl: \"2d\": want a whole number of seconds, minutes or hours, e.g. \"90s\", \"15m\", \"1h\""},
	{name: "fail/max-records-zero", src: withRule("    max_records: 0\n"), wantErr: "policy: line 6: rules[0].max_records: 0: want 1 to 1000000000; omit the key for no limit"},
	{name: "fail/max-records-too-big", src: withRule("    max_records: 1000000001\n"), wantErr: "policy: line 6: rules[0].max_records: 1000000001: want 1 to 1000000000; omit the key for no limit"},
	{name: "fail/max-records-hex", src: withRule("    max_records: 0x10\n"), wantErr: "policy: line 6: rules[0].max_records: want a decimal integer", beyondSchema: true},
	{name: "fail/bind-presenter-yes", src: withRule("    bind_presenter: yes\n"), wantErr: "policy: line 6: rules[0].bind_presenter: want true or false, got string"},

	{name: "ok/max-staleness", src: withRule("    max_staleness: 2s\n")},
	{name: "ok/max-staleness-default", src: "version: 1\ndefaults: {max_staleness: 30s}\n" + minimal[len("version: 1\n"):]},
	{name: "ok/max-staleness-longest", src: withRule("    max_staleness: 24h\n")},
	{name: "fail/max-staleness-zero", src: withRule("    max_staleness: 0s\n"), wantErr: "policy: line 6: rules[0].max_staleness: \"0s\": want a whole number of seconds, minutes or hours, e.g. \"90s\", \"15m\", \"1h\""},
	{name: "fail/max-staleness-milliseconds", src: withRule("    max_staleness: 1500ms\n"), wantErr: "policy: line 6: rules[0].max_staleness: \"1500ms\": want a whole number of seconds, minutes or hours, e.g. \"90s\", \"15m\", \"1h\""},
	{name: "fail/max-staleness-too-long", src: withRule("    max_staleness: 86401s\n"), wantErr: "policy: line 6: rules[0].max_staleness: \"86401s\": longer than 24h"},
	{name: "fail/max-staleness-number", src: withRule("    max_staleness: 2\n"), wantErr: "policy: line 6: rules[0].max_staleness: want a string, got integer"},
	{name: "fail/bad-default-max-staleness", src: "version: 1\ndefaults: {max_staleness: 25h}\n" + minimal[len("version: 1\n"):], wantErr: "policy: line 2: defaults.max_staleness: \"25h\": longer than 24h"},

	{name: "fail/bad-duration-leading-zero", src: withRule("    max_ttl: 010m\n"), wantErr: "policy: line 6: rules[0].max_ttl: \"010m\": want a whole number of seconds, minutes or hours, e.g. \"90s\", \"15m\", \"1h\""},

	// Time windows.
	{name: "fail/window-from-after-to", src: withRule("    time_windows: [{zone: UTC, from: \"18:00\", to: \"09:00\"}]\n"), wantErr: "policy: line 6: rules[0].time_windows[0]: from \"18:00\" is not before to \"09:00\"", beyondSchema: true},
	{name: "fail/window-bad-clock", src: withRule("    time_windows: [{zone: UTC, from: \"9:00\", to: \"18:00\"}]\n"), wantErr: "policy: line 6: rules[0].time_windows[0].from: \"9:00\": want HH:MM, \"00:00\" to \"23:59\""},
	{name: "fail/window-from-24", src: withRule("    time_windows: [{zone: UTC, from: \"24:00\", to: \"24:00\"}]\n"), wantErr: "policy: line 6: rules[0].time_windows[0].from: \"24:00\": want HH:MM, \"00:00\" to \"23:59\""},
	{name: "fail/window-unknown-zone", src: withRule("    time_windows: [{zone: Mars/Olympus_Mons, from: \"09:00\", to: \"18:00\"}]\n"), wantErr: "policy: line 6: rules[0].time_windows[0].zone: \"Mars/Olympus_Mons\": unknown time zone", beyondSchema: true},
	{name: "fail/window-local-zone", src: withRule("    time_windows: [{zone: Local, from: \"09:00\", to: \"18:00\"}]\n"), wantErr: "policy: line 6: rules[0].time_windows[0].zone: \"Local\": want an IANA time zone name such as \"Europe/Paris\" or \"UTC\""},
	{name: "fail/window-bad-day", src: withRule("    time_windows: [{zone: UTC, days: [monday], from: \"09:00\", to: \"18:00\"}]\n"), wantErr: "policy: line 6: rules[0].time_windows[0].days[0]: \"monday\": want one of mon, tue, wed, thu, fri, sat, sun"},
	{name: "fail/window-missing-to", src: withRule("    time_windows: [{zone: UTC, from: \"09:00\"}]\n"), wantErr: "policy: line 6: rules[0].time_windows[0]: missing key \"to\""},
	{name: "fail/window-duplicate", src: withRule("    time_windows:\n      - {zone: UTC, days: [mon, tue], from: \"09:00\", to: \"18:00\"}\n      - {zone: UTC, days: [tue, mon], from: \"09:00\", to: \"18:00\"}\n"), wantErr: "policy: line 8: rules[0].time_windows[1]: duplicate time window (first at line 7)", beyondSchema: true},
	{name: "fail/too-many-windows", src: withRule("    time_windows:\n" + strings.Repeat("      - {zone: UTC, from: \"09:00\", to: \"18:00\"}\n", MaxWindowsPerRule+1)), wantErr: "policy: line 7: rules[0].time_windows: 5 items, more than 4"},

	{name: "fail/window-to-past-midnight", src: withRule("    time_windows: [{zone: UTC, from: \"09:00\", to: \"24:01\"}]\n"), wantErr: "policy: line 6: rules[0].time_windows[0].to: \"24:01\": want HH:MM, \"00:01\" to \"24:00\""},
	{name: "fail/window-duplicate-day", src: withRule("    time_windows: [{zone: UTC, days: [mon, mon], from: \"09:00\", to: \"18:00\"}]\n"), wantErr: "policy: line 6: rules[0].time_windows[0].days[1]: duplicate \"mon\" (first at line 6)"},

	// Size.
	{name: "fail/oversize", src: minimal + "#" + strings.Repeat("x", MaxPolicyBytes-len(minimal)) + "\n", wantErr: "policy: file is 1048578 bytes, more than 1048576", beyondSchema: true},
	{name: "fail/too-many-rules", src: repeatRules(MaxRules + 1), wantErr: "policy: line 3: rules: 1001 items, more than 1000"},
}
