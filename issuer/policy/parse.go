package policy

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/spec"
)

// FormatVersion is the only value of the "version" key this package reads.
const FormatVersion = 1

// Built-in defaults, used when the file's "defaults" mapping does not set
// the value.
const (
	DefaultMaxTTL        = 15 * time.Minute
	DefaultBindPresenter = true
)

// Syntax of the scalar values; spec/policy.schema.json carries the same
// patterns (a test holds the two to one table of files).
var (
	reName     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	reField    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$`)
	reZone     = regexp.MustCompile(`^[A-Z][A-Za-z0-9_+-]*(/[A-Z][A-Za-z0-9_+-]*)*$`)
	reDuration = regexp.MustCompile(`^([1-9][0-9]*)([smh])$`)
	reClock    = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])$`)
)

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// Parse reads a policy file (format: spec/policy.md), checks it and
// compiles it for Evaluate. Decoding is strict: unknown keys, duplicate
// keys, anchors, aliases, tags, block scalars, several documents and
// values of the wrong YAML type are errors, and so is every violation of
// the rules in spec/policy.md and of the limits in limits.go. Every error
// is a *ParseError that points at the offending line.
//
// Parse is deterministic (it reads no clock and no environment besides the
// time zone database) and safe for concurrent use; data is not retained.
func Parse(data []byte) (*Policy, error) {
	if len(data) > MaxPolicyBytes {
		return nil, &ParseError{Msg: fmt.Sprintf("file is %d bytes, more than %d", len(data), MaxPolicyBytes)}
	}
	if err := checkText(data); err != nil {
		return nil, err
	}
	toks := lexer.Tokenize(string(data))
	if err := checkTokens(toks); err != nil {
		return nil, err
	}
	// Duplicate keys are allowed here only to be reported by decode with
	// a better message; they are never accepted.
	f, err := parser.Parse(toks, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		return nil, yamlError(err)
	}
	d := decoder{locs: map[string]*time.Location{}}
	doc, err := d.file(f)
	if err != nil {
		return nil, err
	}
	return compile(doc), nil
}

// checkText refuses what no policy needs and YAML parsers handle
// inconsistently: invalid UTF-8, control characters and bare carriage
// returns.
func checkText(data []byte) error {
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return &ParseError{Line: line, Column: col, Msg: "text is not valid UTF-8"}
		case r == '\n':
			line, col = line+1, 0
		case r == '\r':
			if i+1 >= len(data) || data[i+1] != '\n' {
				return &ParseError{Line: line, Column: col, Msg: "carriage return without line feed"}
			}
		case r == '\t':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return &ParseError{Line: line, Column: col, Msg: fmt.Sprintf("control character U+%04X", r)}
		}
		i += size
		col++
	}
	return nil
}

// checkTokens refuses YAML features a policy does not use and shapes that
// make the YAML parser slow (see MaxKeysPerMapping), before it runs.
func checkTokens(toks token.Tokens) error {
	type frame struct {
		col, keys int
		flow      bool
	}
	var stack []frame
	flow := 0
	popBlock := func(col int) {
		for len(stack) > 0 && !stack[len(stack)-1].flow && stack[len(stack)-1].col > col {
			stack = stack[:len(stack)-1]
		}
	}
	for i, tk := range toks {
		switch tk.Type {
		case token.InvalidType:
			msg := tk.Error
			if msg == "" {
				msg = "invalid token"
			}
			return tokenErr(tk, "yaml: "+msg)
		case token.AnchorType, token.AliasType:
			return tokenErr(tk, "anchors and aliases (& and *) are not allowed")
		case token.TagType:
			return tokenErr(tk, fmt.Sprintf("tag %q: tags are not allowed", tk.Value))
		case token.MergeKeyType:
			return tokenErr(tk, "merge keys (<<) are not allowed")
		case token.DirectiveType:
			return tokenErr(tk, "directives (%) are not allowed")
		case token.LiteralType, token.FoldedType:
			return tokenErr(tk, "block scalars (| and >) are not allowed; write the value on one line")
		case token.MappingKeyType:
			return tokenErr(tk, "explicit keys (?) are not allowed")
		case token.SequenceStartType, token.MappingStartType:
			flow++
			if flow > MaxFlowDepth {
				return tokenErr(tk, fmt.Sprintf("flow collections nested deeper than %d", MaxFlowDepth))
			}
			stack = append(stack, frame{flow: true})
		case token.SequenceEndType, token.MappingEndType:
			if flow == 0 {
				continue // unbalanced: the parser reports it
			}
			flow--
			for len(stack) > 0 {
				top := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if top.flow {
					break
				}
			}
		case token.SequenceEntryType:
			if flow == 0 {
				popBlock(tk.Position.Column)
			}
		case token.MappingValueType:
			key := tk
			if i > 0 {
				key = toks[i-1]
			}
			if flow == 0 {
				c := key.Position.Column
				popBlock(c)
				if n := len(stack); n > 0 && !stack[n-1].flow && stack[n-1].col == c {
					stack[n-1].keys++
				} else {
					stack = append(stack, frame{col: c, keys: 1})
				}
			} else if len(stack) > 0 {
				stack[len(stack)-1].keys++
			}
			if len(stack) > MaxNesting {
				return tokenErr(key, fmt.Sprintf("mappings nested deeper than %d", MaxNesting))
			}
			if len(stack) > 0 && stack[len(stack)-1].keys > MaxKeysPerMapping {
				return tokenErr(key, fmt.Sprintf("more than %d keys in one mapping", MaxKeysPerMapping))
			}
		}
	}
	return nil
}

func tokenErr(tk *token.Token, msg string) *ParseError {
	return &ParseError{Line: tk.Position.Line, Column: tk.Position.Column, Msg: msg}
}

// yamlError turns a goccy/go-yaml error into a *ParseError.
func yamlError(err error) *ParseError {
	var ye interface {
		GetToken() *token.Token
		GetMessage() string
	}
	if errors.As(err, &ye) {
		pe := &ParseError{Msg: "yaml: " + ye.GetMessage()}
		if tk := ye.GetToken(); tk != nil {
			pe.Line, pe.Column = tk.Position.Line, tk.Position.Column
		}
		return pe
	}
	return &ParseError{Msg: "yaml: " + err.Error()}
}

// document is a decoded, checked policy before compilation. Every list of
// a rule is sorted and free of duplicates.
type document struct {
	rules []*rule
}

type decoder struct {
	locs map[string]*time.Location
}

// field is one key of a YAML mapping the decoder accepts.
type field struct {
	name     string
	required bool
	decode   func(v ast.Node, path string) error
}

func (d *decoder) file(f *ast.File) (*document, error) {
	if len(f.Docs) == 0 || f.Docs[0] == nil || f.Docs[0].Body == nil {
		return nil, &ParseError{Line: 1, Column: 1, Msg: "empty policy: want a mapping with keys version and rules"}
	}
	if len(f.Docs) > 1 {
		return nil, nodeErr(f.Docs[1], "", "more than one YAML document")
	}
	root := f.Docs[0].Body
	var (
		doc      document
		defTTL   = DefaultMaxTTL
		defBind  = DefaultBindPresenter
		defStale time.Duration // none
		names    = map[string]int{}
	)
	err := d.mapping(root, "", []field{
		{name: "version", required: true, decode: func(v ast.Node, path string) error {
			n, err := integer(v, path)
			if err != nil {
				return err
			}
			if n != FormatVersion {
				return nodeErr(v, path, "unsupported version %d: this writ reads version %d", n, FormatVersion)
			}
			return nil
		}},
		{name: "defaults", decode: func(v ast.Node, path string) error {
			return d.mapping(v, path, []field{
				{name: "max_ttl", decode: func(v ast.Node, path string) (err error) {
					defTTL, err = duration(v, path)
					return err
				}},
				{name: "bind_presenter", decode: func(v ast.Node, path string) (err error) {
					defBind, err = boolean(v, path)
					return err
				}},
				{name: "max_staleness", decode: func(v ast.Node, path string) (err error) {
					defStale, err = duration(v, path)
					return err
				}},
			})
		}},
		{name: "rules", required: true, decode: func(v ast.Node, path string) error {
			return list(v, path, MaxRules, func(i int, item ast.Node, path string) error {
				r, err := d.rule(item, path)
				if err != nil {
					return err
				}
				if first, dup := names[r.name]; dup {
					return &ParseError{Line: r.nameLine, Column: r.nameCol, Msg: fmt.Sprintf("%s.name: duplicate rule name %q (first at line %d)", path, r.name, first)}
				}
				names[r.name] = r.nameLine
				doc.rules = append(doc.rules, r)
				return nil
			})
		}},
	})
	if err != nil {
		return nil, err
	}
	for _, r := range doc.rules {
		if !r.hasTTL {
			r.maxTTL = defTTL
		}
		if !r.hasBind {
			r.bindPresenter = defBind
		}
		if !r.hasStale {
			r.maxStaleness = defStale
		}
	}
	return &doc, nil
}

// rule is one checked rule. Lists are sorted and without duplicates;
// fields, services and windows are nil when the rule does not restrict
// them; maxRecords and maxStaleness are 0 when unlimited.
type rule struct {
	name          string
	description   string
	subjects      []idPattern
	rights        []spec.Right
	maxTTL        time.Duration
	maxRecords    int
	fields        []string
	windows       []window
	services      []string
	delegateTo    []idPattern
	bindPresenter bool
	maxStaleness  time.Duration

	hasTTL, hasBind, hasStale bool
	nameLine, nameCol         int
}

// window is a checked time window with its location loaded once.
type window struct {
	spec.TimeWindow
	loc *time.Location
}

func (d *decoder) rule(n ast.Node, path string) (*rule, error) {
	r := &rule{}
	err := d.mapping(n, path, []field{
		{name: "name", required: true, decode: func(v ast.Node, path string) error {
			s, err := str(v, path)
			if err != nil {
				return err
			}
			if utf8.RuneCountInString(s) > MaxNameChars || !reName.MatchString(s) {
				return nodeErr(v, path, "%q: want letters, digits, '.', '_' or '-', starting with a letter or digit, at most %d characters", s, MaxNameChars)
			}
			r.name = s
			r.nameLine, r.nameCol = pos(v)
			return nil
		}},
		{name: "description", decode: func(v ast.Node, path string) error {
			s, err := str(v, path)
			if err != nil {
				return err
			}
			if s == "" || utf8.RuneCountInString(s) > MaxDescriptionChars {
				return nodeErr(v, path, "want 1 to %d characters", MaxDescriptionChars)
			}
			if strings.ContainsFunc(s, isControl) {
				return nodeErr(v, path, "control characters are not allowed")
			}
			r.description = s
			return nil
		}},
		{name: "subjects", required: true, decode: func(v ast.Node, path string) (err error) {
			r.subjects, err = patternList(v, path, MaxSubjectsPerRule, true)
			return err
		}},
		{name: "rights", required: true, decode: func(v ast.Node, path string) (err error) {
			r.rights, err = rightList(v, path)
			return err
		}},
		{name: "max_ttl", decode: func(v ast.Node, path string) (err error) {
			r.maxTTL, err = duration(v, path)
			r.hasTTL = true
			return err
		}},
		{name: "max_records", decode: func(v ast.Node, path string) error {
			n, err := integer(v, path)
			if err != nil {
				return err
			}
			if n < 1 || n > MaxRecordsLimit {
				return nodeErr(v, path, "%d: want 1 to %d; omit the key for no limit", n, MaxRecordsLimit)
			}
			r.maxRecords = int(n)
			return nil
		}},
		{name: "fields", decode: func(v ast.Node, path string) (err error) {
			r.fields, err = stringList(v, path, MaxFieldsPerRule, func(s string, v ast.Node, path string) (string, error) {
				if utf8.RuneCountInString(s) > MaxFieldChars || !reField.MatchString(s) {
					return "", nodeErr(v, path, "%q: want letters, digits, '_', '.', ':', '/' or '-', starting with a letter, digit or '_', at most %d characters", s, MaxFieldChars)
				}
				return s, nil
			})
			return err
		}},
		{name: "time_windows", decode: func(v ast.Node, path string) error {
			var ws []window
			seen := map[string]int{}
			err := list(v, path, MaxWindowsPerRule, func(i int, item ast.Node, path string) error {
				w, err := d.window(item, path)
				if err != nil {
					return err
				}
				k := string(appendWindow(nil, w.TimeWindow))
				if first, dup := seen[k]; dup {
					return nodeErr(item, path, "duplicate time window (first at line %d)", first)
				}
				seen[k], _ = pos(item)
				ws = append(ws, w)
				return nil
			})
			slices.SortFunc(ws, func(a, b window) int {
				return strings.Compare(string(appendWindow(nil, a.TimeWindow)), string(appendWindow(nil, b.TimeWindow)))
			})
			r.windows = ws
			return err
		}},
		{name: "services", decode: func(v ast.Node, path string) error {
			ps, err := patternList(v, path, MaxServicesPerRule, false)
			for _, p := range ps {
				r.services = append(r.services, p.text)
			}
			return err
		}},
		{name: "delegate_to", decode: func(v ast.Node, path string) (err error) {
			r.delegateTo, err = patternList(v, path, MaxDelegatesPerRule, true)
			return err
		}},
		{name: "bind_presenter", decode: func(v ast.Node, path string) (err error) {
			r.bindPresenter, err = boolean(v, path)
			r.hasBind = true
			return err
		}},
		{name: "max_staleness", decode: func(v ast.Node, path string) (err error) {
			r.maxStaleness, err = duration(v, path)
			r.hasStale = true
			return err
		}},
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (d *decoder) window(n ast.Node, path string) (window, error) {
	var (
		w                window
		fromNode         ast.Node
		fromText, toText string
	)
	err := d.mapping(n, path, []field{
		{name: "zone", required: true, decode: func(v ast.Node, path string) error {
			s, err := str(v, path)
			if err != nil {
				return err
			}
			// reZone is the schema's pattern; spec.CanonicalZone is the rule
			// every verifier applies (length, "Local").
			if !spec.CanonicalZone(s) || !reZone.MatchString(s) {
				return nodeErr(v, path, "%q: want an IANA time zone name such as \"Europe/Paris\" or \"UTC\"", s)
			}
			loc, ok := d.locs[s]
			if !ok {
				var err error
				if loc, err = time.LoadLocation(s); err != nil {
					return nodeErr(v, path, "%q: unknown time zone", s)
				}
				d.locs[s] = loc
			}
			w.Zone, w.loc = s, loc
			return nil
		}},
		{name: "days", decode: func(v ast.Node, path string) error {
			names, err := stringList(v, path, 7, func(s string, v ast.Node, path string) (string, error) {
				if _, ok := dayNames[s]; !ok {
					return "", nodeErr(v, path, "%q: want one of mon, tue, wed, thu, fri, sat, sun", s)
				}
				return s, nil
			})
			if err != nil {
				return err
			}
			if len(names) < 7 { // all seven days is the same as no day list
				for _, s := range names {
					w.Days = append(w.Days, dayNames[s])
				}
				slices.Sort(w.Days)
			}
			return nil
		}},
		{name: "from", required: true, decode: func(v ast.Node, path string) (err error) {
			fromNode = v
			fromText, w.From, err = clock(v, path, false)
			return err
		}},
		{name: "to", required: true, decode: func(v ast.Node, path string) (err error) {
			toText, w.To, err = clock(v, path, true)
			return err
		}},
	})
	if err != nil {
		return window{}, err
	}
	if w.From >= w.To {
		return window{}, nodeErr(fromNode, path, "from %q is not before to %q", fromText, toText)
	}
	if err := w.TimeWindow.Validate(); err != nil {
		return window{}, nodeErr(n, path, "%v", err)
	}
	return w, nil
}

// mapping decodes a YAML mapping key by key, in file order.
func (d *decoder) mapping(n ast.Node, path string, fields []field) error {
	var pairs []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		pairs = m.Values
	case *ast.MappingValueNode:
		pairs = []*ast.MappingValueNode{m}
	default:
		return nodeErr(n, path, "want a mapping, got %s", kind(n))
	}
	seen := make(map[string]int, len(pairs))
	for _, mv := range pairs {
		kn, ok := mv.Key.(*ast.StringNode)
		if !ok {
			return nodeErr(mv.Key, path, "keys must be strings, got %s", kind(mv.Key))
		}
		k := kn.Value
		if first, dup := seen[k]; dup {
			return nodeErr(kn, path, "duplicate key %q (first at line %d)", k, first)
		}
		seen[k], _ = pos(kn)
		i := slices.IndexFunc(fields, func(f field) bool { return f.name == k })
		if i < 0 {
			known := make([]string, len(fields))
			for j, f := range fields {
				known[j] = f.name
			}
			return nodeErr(kn, path, "unknown key %q (want %s)", k, strings.Join(known, ", "))
		}
		if err := fields[i].decode(mv.Value, join(path, k)); err != nil {
			return err
		}
	}
	for _, f := range fields {
		if _, ok := seen[f.name]; f.required && !ok {
			return nodeErr(n, path, "missing key %q", f.name)
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// list decodes a non-empty YAML sequence of at most max items.
func list(n ast.Node, path string, max int, each func(i int, item ast.Node, path string) error) error {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		return nodeErr(n, path, "want a list, got %s", kind(n))
	}
	if len(seq.Values) == 0 {
		// An empty list would read as "nothing allowed" for some keys and
		// "no restriction" for others: neither is accepted.
		return nodeErr(n, path, "empty list: want at least one item")
	}
	if len(seq.Values) > max {
		return nodeErr(n, path, "%d items, more than %d", len(seq.Values), max)
	}
	for i, v := range seq.Values {
		if err := each(i, v, fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return err
		}
	}
	return nil
}

// stringList decodes a list of distinct strings, each checked by check
// (which returns the item's normal form), and returns them sorted.
func stringList(n ast.Node, path string, max int, check func(s string, v ast.Node, path string) (string, error)) ([]string, error) {
	var out []string
	seen := map[string]int{}
	err := list(n, path, max, func(i int, item ast.Node, path string) error {
		s, err := str(item, path)
		if err != nil {
			return err
		}
		if s, err = check(s, item, path); err != nil {
			return err
		}
		if first, dup := seen[s]; dup {
			return nodeErr(item, path, "duplicate %q (first at line %d)", s, first)
		}
		seen[s], _ = pos(item)
		out = append(out, s)
		return nil
	})
	slices.Sort(out)
	return out, err
}

func rightList(n ast.Node, path string) ([]spec.Right, error) {
	var out []spec.Right
	_, err := stringList(n, path, MaxRightsPerRule, func(s string, v ast.Node, path string) (string, error) {
		r, err := spec.ParseRight(s)
		if err != nil {
			return "", nodeErr(v, path, "%v", err)
		}
		out = append(out, r)
		return r.String(), nil
	})
	slices.SortFunc(out, compareRights)
	return out, err
}

func compareRights(a, b spec.Right) int {
	return strings.Compare(a.String(), b.String())
}

// idPattern is a SPIFFE ID ("spiffe://td/path") or, where allowed, every
// ID under a path ("spiffe://td/path/*", "spiffe://td/*").
type idPattern struct {
	text   string // as written
	exact  string // the ID, or "" for a prefix pattern
	prefix string // "spiffe://td/path/" for "spiffe://td/path/*", else ""
}

// matches reports whether id (a valid SPIFFE ID string) matches p. A
// prefix pattern matches IDs strictly below its path, segment by segment:
// "spiffe://td/a/*" matches "spiffe://td/a/b" but not "spiffe://td/a" nor
// "spiffe://td/ab".
func (p idPattern) matches(id string) bool {
	if p.prefix == "" {
		return id == p.exact
	}
	return len(id) > len(p.prefix) && strings.HasPrefix(id, p.prefix)
}

func parsePattern(s string, allowPrefix bool) (idPattern, error) {
	base := s
	prefix := false
	if strings.HasSuffix(s, "/*") {
		if !allowPrefix {
			return idPattern{}, errors.New("want an exact SPIFFE ID; patterns are not allowed here")
		}
		base, prefix = s[:len(s)-2], true
	}
	if strings.Contains(base, "*") {
		return idPattern{}, errors.New(`'*' is only allowed as a final "/*"`)
	}
	id, err := spiffeid.FromString(base)
	if err != nil {
		return idPattern{}, fmt.Errorf("bad SPIFFE ID: %v", err)
	}
	if prefix {
		return idPattern{text: s, prefix: id.String() + "/"}, nil
	}
	if id.Path() == "" {
		return idPattern{}, errors.New("want a workload ID with a path (spiffe://TRUST-DOMAIN/PATH)")
	}
	return idPattern{text: s, exact: id.String()}, nil
}

func patternList(n ast.Node, path string, max int, allowPrefix bool) ([]idPattern, error) {
	var out []idPattern
	_, err := stringList(n, path, max, func(s string, v ast.Node, path string) (string, error) {
		if len(s) > MaxIDBytes {
			return "", nodeErr(v, path, "longer than %d bytes", MaxIDBytes)
		}
		p, err := parsePattern(s, allowPrefix)
		if err != nil {
			return "", nodeErr(v, path, "%q: %v", s, err)
		}
		out = append(out, p)
		return s, nil
	})
	slices.SortFunc(out, func(a, b idPattern) int { return strings.Compare(a.text, b.text) })
	return out, err
}

func str(n ast.Node, path string) (string, error) {
	s, ok := n.(*ast.StringNode)
	if !ok {
		return "", nodeErr(n, path, "want a string, got %s", kind(n))
	}
	return s.Value, nil
}

func boolean(n ast.Node, path string) (bool, error) {
	b, ok := n.(*ast.BoolNode)
	if !ok {
		return false, nodeErr(n, path, "want true or false, got %s", kind(n))
	}
	return b.Value, nil
}

// integer accepts decimal integers only: 0x10, 0o17 and 017 are errors.
func integer(n ast.Node, path string) (int64, error) {
	in, ok := n.(*ast.IntegerNode)
	if !ok {
		return 0, nodeErr(n, path, "want an integer, got %s", kind(n))
	}
	if in.Token == nil || in.Token.Type != token.IntegerType {
		return 0, nodeErr(n, path, "want a decimal integer")
	}
	switch v := in.Value.(type) {
	case int64:
		return v, nil
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v), nil
		}
	}
	return 0, nodeErr(n, path, "integer out of range")
}

// duration accepts a whole number of seconds, minutes or hours ("90s",
// "15m", "1h"), more than zero and at most MaxTTL (also the bound of
// max_staleness, MaxStaleness).
func duration(n ast.Node, path string) (time.Duration, error) {
	s, err := str(n, path)
	if err != nil {
		return 0, err
	}
	m := reDuration.FindStringSubmatch(s)
	if m == nil {
		return 0, nodeErr(n, path, "%q: want a whole number of seconds, minutes or hours, e.g. \"90s\", \"15m\", \"1h\"", s)
	}
	unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[m[2]]
	tooLong := fmt.Sprintf("%q: longer than %dh", s, MaxTTL/time.Hour)
	if len(m[1]) > 6 {
		return 0, nodeErr(n, path, "%s", tooLong)
	}
	var v int64
	for _, c := range m[1] {
		v = v*10 + int64(c-'0')
	}
	d := time.Duration(v) * unit
	if d > MaxTTL {
		return 0, nodeErr(n, path, "%s", tooLong)
	}
	return d, nil
}

// clock parses "HH:MM" into minutes after midnight; "24:00" only as an end.
func clock(n ast.Node, path string, end bool) (string, int, error) {
	s, err := str(n, path)
	if err != nil {
		return "", 0, err
	}
	if end && s == "24:00" {
		return s, 1440, nil
	}
	m := reClock.FindStringSubmatch(s)
	if m == nil {
		hint := `"00:00" to "23:59"`
		if end {
			hint = `"00:01" to "24:00"`
		}
		return "", 0, nodeErr(n, path, "%q: want HH:MM, %s", s, hint)
	}
	h := int(m[1][0]-'0')*10 + int(m[1][1]-'0')
	mi := int(m[2][0]-'0')*10 + int(m[2][1]-'0')
	return s, h*60 + mi, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

func kind(n ast.Node) string {
	switch n.(type) {
	case *ast.StringNode:
		return "string"
	case *ast.IntegerNode:
		return "integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "number"
	case *ast.BoolNode:
		return "boolean"
	case *ast.NullNode, nil:
		return "null"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "mapping"
	case *ast.SequenceNode:
		return "list"
	default:
		return "unsupported YAML node"
	}
}

// pos returns the line and column where n starts.
func pos(n ast.Node) (int, int) {
	if n == nil {
		return 0, 0
	}
	switch m := n.(type) {
	case *ast.MappingNode:
		if !m.IsFlowStyle && len(m.Values) > 0 {
			return pos(m.Values[0].Key)
		}
	case *ast.MappingValueNode:
		return pos(m.Key)
	}
	tk := n.GetToken()
	if tk == nil {
		return 0, 0
	}
	return tk.Position.Line, tk.Position.Column
}

func nodeErr(n ast.Node, path, format string, args ...any) *ParseError {
	line, col := pos(n)
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	return &ParseError{Line: line, Column: col, Msg: msg}
}
