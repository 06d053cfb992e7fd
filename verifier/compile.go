package verifier

import (
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // local_time must not depend on the host's zoneinfo

	"github.com/biscuit-auth/biscuit-go/v2/pb"

	"github.com/writ-dev/writ/spec"
)

// This file turns a decoded token into what Authorize evaluates on every
// call: writ's vocabulary checked and extracted (token.md §2, §5), every
// query resolved to its candidate facts and costed (§8), every check
// classified and rendered as Datalog text, constraints extracted (§7).
// Everything here depends on the token only, so it is done once per token
// and cached with the verified signature chain.

// Ambient relations (token.md §3), in the order Authorize lists their
// facts: the order matters only to which of several erroring expressions
// is met first, and is the order a biscuit-go authorizer given the same
// facts would use.
const (
	ambTime = iota
	ambResource
	ambOperation
	ambPresenter
	ambService
	ambRecords
	ambFields
	ambAttr          // sorted by name
	ambLocalTime     // in the order zones first appear in the token
	ambRevocationAge // only with a FreshnessSource
	numAmbient
)

var ambientIDs = map[string]int8{
	spec.AmbientTime:          ambTime,
	spec.AmbientResource:      ambResource,
	spec.AmbientOperation:     ambOperation,
	spec.AmbientPresenter:     ambPresenter,
	spec.AmbientService:       ambService,
	spec.AmbientRecords:       ambRecords,
	spec.AmbientFields:        ambFields,
	spec.AmbientAttr:          ambAttr,
	spec.AmbientLocalTime:     ambLocalTime,
	spec.AmbientRevocationAge: ambRevocationAge,
}

var ambientArity = [numAmbient]int{1, 1, 1, 1, 1, 1, 1, 2, 3, 1}

// compiled is a decoded, vocabulary-checked and (once cached)
// signature-verified token. It is immutable once built, except ref.
type compiled struct {
	rootKeyID uint32 // the key that verified block 0
	rootPub   [32]byte
	blocks    int
	revIDs    []string // lowercase hex of each block's signature

	tokenID, agent, issuer string
	// issuedAt is the issued_at fact in Unix seconds, when hasIssuedAt.
	issuedAt    int64
	hasIssuedAt bool

	checks   []cCheck
	rights   map[rightKey]struct{}
	prefixes []rightKey // right_prefix(prefix, operation)
	zones    []zone
	uses     uint16 // bit i: ambient relation i is referenced by a check

	maxRecords    int64 // smallest record limit, when hasMaxRecords
	hasMaxRecords bool
	fields        []string // intersection of field lists, when hasFields
	hasFields     bool
	// looseRecords (looseFields): a check reads records (fields) but is
	// not of the shape constraints converts, so Constraints cannot carry
	// it and the request must name its records (fields) (token.md §7).
	looseRecords, looseFields bool

	ref atomic.Bool // cache: used since the clock hand last passed
}

type rightKey struct{ a, op string }

type zone struct {
	name string
	loc  *time.Location // set by loadZones; nil when the name is not a zone: no fact, the check fails
}

// loadZones resolves the zones of c. It runs once the signatures have
// verified: looking a name up may read the host's zoneinfo, work an
// unsigned token must not be able to ask for.
func (c *compiled) loadZones() {
	for i := range c.zones {
		c.zones[i].loc = loadZone(c.zones[i].name)
	}
}

type cCheck struct {
	block   int
	reason  string   // spec.Reason… the check stands for when it fails
	src     *check   // for its text, rendered on first failure
	symbols []string // the token's symbols, naming variables in the text
	text    atomic.Pointer[string]
	queries []cQuery
}

// rendered returns the check in Datalog, rendering it once, cut as
// token.md §7 says (maxLiteralTextBytes, maxCheckTextBytes).
func (cc *cCheck) rendered() string {
	if p := cc.text.Load(); p != nil {
		return *p
	}
	s := checkText(cc.src, cc.symbols, maxLiteralTextBytes)
	cc.text.Store(&s)
	return s
}

type cQuery struct {
	preds  []cPred
	exprs  [][]op
	nslots int
}

// cPred is a body predicate with where its facts come from.
type cPred struct {
	amb    int8      // ambient relation, or -1: authority facts in cands
	arity  int       // ambient: facts of another arity never match
	consts bool      // ambient: some args are constants to compare
	args   []term    // slot >= 0: variable; else constant val
	cands  [][]value // authority facts matching name, arity and constants
}

// compile checks t against writ v1 and prepares its evaluation. Errors
// wrap ErrUnsupported, ErrMalformed or ErrLimitsExceeded.
func compile(t *token, lim *Limits) (*compiled, error) {
	if t.outOfSubset != nil {
		return nil, t.outOfSubset
	}
	for i := range t.blocks {
		b := &t.blocks[i]
		if len(b.rules) > 0 {
			return nil, unsupported("block %d: rules", i)
		}
		if i > 0 && len(b.facts) > 0 {
			return nil, unsupported("block %d: facts in an attenuation block", i)
		}
	}
	c := &compiled{
		blocks: len(t.blocks),
		revIDs: make([]string, len(t.blocks)),
	}
	ids := make([]byte, 0, len(t.blocks)*2*64)
	for i := range t.blocks {
		ids = hex.AppendEncode(ids, t.blocks[i].sig)
	}
	all := string(ids)
	for i := range t.blocks {
		c.revIDs[i] = all[i*128 : (i+1)*128]
	}
	facts, err := c.vocabulary(t.blocks[0].facts)
	if err != nil {
		return nil, err
	}
	if err := c.collectZones(t, lim); err != nil {
		return nil, err
	}
	cp := compiler{symbols: t.symbols, lim: lim, c: c, facts: facts, names: t.blocks[0].facts}
	expiry := false
	n, nq, np := 0, 0, 0
	for i := range t.blocks {
		n += len(t.blocks[i].checks)
		for _, ch := range t.blocks[i].checks {
			nq += len(ch.queries)
			for _, q := range ch.queries {
				np += len(q.body)
			}
		}
	}
	c.checks = make([]cCheck, 0, n)
	cp.queries = make([]cQuery, nq)
	cp.preds = make([]cPred, np)
	for i := range t.blocks {
		for j := range t.blocks[i].checks {
			ch := &t.blocks[i].checks[j]
			c.checks = c.checks[:len(c.checks)+1]
			if err := cp.check(ch, i, &c.checks[len(c.checks)-1]); err != nil {
				return nil, fmt.Errorf("block %d: check %d: %w", i, j, err)
			}
			if i == 0 && expiryOf(ch) != nil {
				expiry = true
			}
		}
	}
	if !expiry {
		return nil, malformed("authority block has no expiry check")
	}
	return c, nil
}

// vocabulary validates the authority facts of token.md §2 and returns
// the facts as value tuples, index-aligned with fs.
func (c *compiled) vocabulary(fs []predicate) ([][]value, error) {
	// A token of another writ_version may use another vocabulary: refuse
	// it as such before judging its facts.
	for i := range fs {
		f := &fs[i]
		if f.name == spec.FactWritVersion && len(f.terms) == 1 && !f.terms[0].isVar &&
			f.terms[0].val.kind == kindInt && f.terms[0].val.num != spec.TokenVersion {
			return nil, unsupported("writ_version %d", f.terms[0].val.num)
		}
	}
	vals := make([][]value, len(fs))
	n := 0
	for i := range fs {
		n += len(fs[i].terms)
	}
	slab := make([]value, n)
	var version, issuedAt, policy int
	for i := range fs {
		f := &fs[i]
		row := take(&slab, len(f.terms))
		for j := range f.terms {
			if f.terms[j].isVar {
				return nil, malformed("fact %d: variable in a fact", i)
			}
			row[j] = f.terms[j].val
		}
		vals[i] = row
		if _, ok := ambientIDs[f.name]; ok {
			return nil, malformed("fact %d: %s is an ambient fact, never in a token", i, f.name)
		}
		str := func(j int) (string, bool) {
			if len(row) != arityOf(f.name) || row[j].kind != kindString {
				return "", false
			}
			return row[j].str, true
		}
		switch f.name {
		case spec.FactWritVersion:
			if len(row) != 1 || row[0].kind != kindInt {
				return nil, malformed("fact %d: writ_version wants one integer", i)
			}
			version++
		case spec.FactTokenID:
			s, ok := str(0)
			if !ok || !isTokenID(s) || c.tokenID != "" {
				return nil, malformed("fact %d: token_id wants one 32-digit lowercase hex string, once", i)
			}
			c.tokenID = s
		case spec.FactIssuer:
			s, ok := str(0)
			if !ok || s == "" || c.issuer != "" {
				return nil, malformed("fact %d: issuer wants one non-empty string, once", i)
			}
			c.issuer = s
		case spec.FactAgent:
			s, ok := str(0)
			if !ok || s == "" || c.agent != "" {
				return nil, malformed("fact %d: agent wants one non-empty string, once", i)
			}
			c.agent = s
		case spec.FactIssuedAt:
			if len(row) != 1 || row[0].kind != kindDate {
				return nil, malformed("fact %d: issued_at wants one date", i)
			}
			c.issuedAt, c.hasIssuedAt = row[0].num, true
			issuedAt++
		case spec.FactPolicyVersion:
			if _, ok := str(0); !ok {
				return nil, malformed("fact %d: policy_version wants one string", i)
			}
			policy++
		case spec.FactRight, spec.FactRightPrefix:
			res, ok1 := str(0)
			op, ok2 := str(1)
			if !ok1 || !ok2 {
				return nil, malformed("fact %d: %s wants two strings", i, f.name)
			}
			if f.name == spec.FactRight {
				if c.rights == nil {
					c.rights = make(map[rightKey]struct{})
				}
				c.rights[rightKey{res, op}] = struct{}{}
			} else {
				// spec.Right: a prefix right is "x/*", x non-empty, so its
				// prefix ends in "/" and is not "/" alone.
				if len(res) < 2 || !strings.HasSuffix(res, "/") {
					return nil, malformed("fact %d: right_prefix prefix %q does not end in \"/\" after a non-empty prefix", i, cutText(res, maxLiteralTextBytes))
				}
				c.prefixes = append(c.prefixes, rightKey{res, op})
			}
		}
	}
	switch {
	case version != 1:
		return nil, malformed("%d writ_version facts, want 1", version)
	case c.tokenID == "":
		return nil, malformed("no token_id fact")
	case c.issuer == "":
		return nil, malformed("no issuer fact")
	case c.agent == "":
		return nil, malformed("no agent fact")
	case issuedAt > 1 || policy > 1:
		return nil, malformed("issued_at or policy_version repeated")
	}
	return vals, nil
}

func arityOf(name string) int {
	if name == spec.FactRight || name == spec.FactRightPrefix {
		return 2
	}
	return 1
}

func isTokenID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// collectZones lists the zones named by local_time predicates of checks,
// without loading them (loadZones).
func (c *compiled) collectZones(t *token, lim *Limits) error {
	for i := range t.blocks {
		for _, ch := range t.blocks[i].checks {
			for _, q := range ch.queries {
				for _, p := range q.body {
					if p.name != spec.AmbientLocalTime || len(p.terms) != 3 ||
						p.terms[0].isVar || p.terms[0].val.kind != kindString {
						continue
					}
					name := p.terms[0].val.str
					known := false
					for _, z := range c.zones {
						known = known || z.name == name
					}
					if known {
						continue
					}
					if !spec.CanonicalZone(name) {
						return unsupported("local_time zone %q is not a canonical IANA name", cutText(name, maxLiteralTextBytes))
					}
					if len(c.zones) == lim.MaxTimeZones {
						return overLimit("more than %d time zones", lim.MaxTimeZones)
					}
					c.zones = append(c.zones, zone{name: name})
				}
			}
		}
	}
	return nil
}

var (
	zoneCache   sync.Map     // name → *time.Location; canonical names that loaded
	zoneEntries atomic.Int64 // entries stored in zoneCache, at most maxZoneCache
)

// loadZone returns the IANA zone name, or nil when it is not one. Names
// that are not spec.CanonicalZone are never looked up (compile refuses them).
// At most maxZoneCache zones are kept; beyond that a zone is loaded on
// every first sight of a token naming it.
func loadZone(name string) *time.Location {
	if !spec.CanonicalZone(name) {
		return nil
	}
	if l, ok := zoneCache.Load(name); ok {
		return l.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil
	}
	if zoneEntries.Add(1) <= maxZoneCache {
		if _, dup := zoneCache.LoadOrStore(name, loc); dup {
			zoneEntries.Add(-1)
		}
	} else {
		zoneEntries.Add(-1)
	}
	return loc
}

type compiler struct {
	symbols []string
	lim     *Limits
	queries []cQuery // slabs
	preds   []cPred
	c       *compiled
	facts   [][]value   // authority facts
	names   []predicate // the same, for their names
	steps   int         // Σ join product × (1 + ops) so far
}

func (cp *compiler) check(ch *check, blk int, cc *cCheck) error {
	cc.block, cc.reason, cc.src, cc.symbols = blk, classify(ch), ch, cp.symbols
	cc.queries = take(&cp.queries, len(ch.queries))
	for i := range ch.queries {
		if err := cp.query(&ch.queries[i], &cc.queries[i]); err != nil {
			return fmt.Errorf("query %d: %w", i, err)
		}
	}
	okRecords, okFields := cp.constraints(ch)
	for i := range ch.queries {
		for _, p := range ch.queries[i].body {
			switch p.name {
			case spec.AmbientRecords:
				cp.c.looseRecords = cp.c.looseRecords || !okRecords
			case spec.AmbientFields:
				cp.c.looseFields = cp.c.looseFields || !okFields
			}
		}
	}
	return nil
}

// query assigns variable slots in order of first appearance in the body,
// checks every head and expression variable is bound by the body, resolves
// each predicate's candidate facts and charges the query's cost.
func (cp *compiler) query(r *rule, out *cQuery) error {
	var syms []uint32
	slotOf := func(sym uint32) int {
		for i, s := range syms {
			if s == sym {
				return i
			}
		}
		return -1
	}
	for i := range r.body {
		for j := range r.body[i].terms {
			t := &r.body[i].terms[j]
			if !t.isVar {
				continue
			}
			if t.slot = slotOf(t.sym); t.slot < 0 {
				t.slot = len(syms)
				syms = append(syms, t.sym)
			}
		}
	}
	for j := range r.head.terms {
		t := &r.head.terms[j]
		if t.isVar {
			if t.slot = slotOf(t.sym); t.slot < 0 {
				return malformed("head variable $%s is not bound by the body", symbolName(cp.symbols, t.sym))
			}
		}
	}
	for _, e := range r.exprs {
		for j := range e {
			t := &e[j].t
			if e[j].kind == opValue && t.isVar {
				if t.slot = slotOf(t.sym); t.slot < 0 {
					return malformed("expression variable $%s is not bound by the body", symbolName(cp.symbols, t.sym))
				}
			}
		}
	}
	for i, e := range r.exprs {
		if err := growthFree(e); err != nil {
			return fmt.Errorf("expression %d: %w", i, err)
		}
	}
	out.nslots = len(syms)
	out.exprs = r.exprs
	out.preds = take(&cp.preds, len(r.body))
	product := 1
	for i := range r.body {
		p := &r.body[i]
		cpd := &out.preds[i]
		cpd.args = p.terms
		cpd.arity = len(p.terms)
		n := 0
		if id, ok := ambientIDs[p.name]; ok {
			cpd.amb = id
			cp.c.uses |= 1 << id
			for j := range p.terms {
				cpd.consts = cpd.consts || !p.terms[j].isVar
			}
			if len(p.terms) == ambientArity[id] {
				switch id {
				case ambAttr:
					n = cp.lim.MaxAttributes
				case ambLocalTime:
					n = len(cp.c.zones)
				default:
					n = 1
				}
			}
		} else {
			cpd.amb = -1
			for k, f := range cp.facts {
				if cp.names[k].name == p.name && matchesConsts(f, p.terms) {
					cpd.cands = append(cpd.cands, f)
				}
			}
			n = len(cpd.cands)
		}
		product *= n
		if product > cp.lim.MaxJoinProduct {
			return overLimit("join of %d predicates exceeds %d candidate combinations", len(r.body), cp.lim.MaxJoinProduct)
		}
	}
	cp.steps += product * (1 + r.ops)
	if cp.steps > cp.lim.MaxEvalSteps {
		return overLimit("token evaluation exceeds %d steps", cp.lim.MaxEvalSteps)
	}
	return nil
}

// growthFree refuses the operators of token.md §6 whose result can be
// larger than their operands: .union(), .intersection() and + unless one
// operand is known to be an integer (then the result is an integer or an
// error, never a longer string). Evaluation is charged per operation
// (§8), which only holds when every value stays within the token's own
// limits. It tracks, for each stack slot, the kind the value is known to
// have; variables and the results of + on unknowns are unknown.
func growthFree(e []op) error {
	const unknown = valueKind(255)
	var buf [16]valueKind
	stack := buf[:0]
	for i := range e {
		o := &e[i]
		switch o.kind {
		case opValue:
			k := unknown
			if !o.t.isVar {
				k = o.t.val.kind
			}
			stack = append(stack, k)
		case opUnary:
			if len(stack) < 1 {
				return malformed("unary operator on an empty stack")
			}
			switch pb.OpUnary_Kind(o.code) {
			case pb.OpUnary_Negate:
				stack[len(stack)-1] = kindBool
			case pb.OpUnary_Length:
				stack[len(stack)-1] = kindInt
			}
		case opBinary:
			if len(stack) < 2 {
				return malformed("binary operator without two operands")
			}
			l, r := stack[len(stack)-2], stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			res := kindBool
			switch k := pb.OpBinary_Kind(o.code); k {
			case pb.OpBinary_Union, pb.OpBinary_Intersection:
				return unsupported("operator %s", binaryNames[k])
			case pb.OpBinary_Add:
				if l != kindInt && r != kindInt {
					return unsupported("operator + on operands not known to be integers (string concatenation)")
				}
				res = kindInt
			case pb.OpBinary_Sub:
				res = kindInt
			}
			stack[len(stack)-1] = res
		}
	}
	return nil
}

// matchesConsts reports whether fact f can match a predicate with args:
// same arity and every constant equal (biscuit-go's Predicate.Match).
func matchesConsts(f []value, args []term) bool {
	if len(f) != len(args) {
		return false
	}
	for i := range args {
		if !args[i].isVar && !valueEqual(&f[i], &args[i].val) {
			return false
		}
	}
	return true
}

// classify returns the reason a failure of ch stands for, by the shapes
// of token.md §2 and §5: a check whose queries each test one ambient
// fact of a restriction is that restriction; expiry is recognised only as
// upper bounds on time. A check on revocation_age alone (max_staleness,
// token.md §2) is revocation_stale whatever its expressions: the fact is
// absent at a verifier that tracks no freshness, and any condition on it
// is a condition on the verifier's copy of the revocation list, not on
// the request. Anything else is check_failed.
func classify(ch *check) string {
	name := ""
	for i := range ch.queries {
		q := &ch.queries[i]
		if len(q.body) != 1 || (name != "" && q.body[0].name != name) {
			return spec.ReasonCheckFailed
		}
		name = q.body[0].name
	}
	switch name {
	case spec.AmbientTime:
		for i := range ch.queries {
			if _, ok := upperBound(&ch.queries[i], spec.AmbientTime, kindDate); !ok {
				return spec.ReasonCheckFailed
			}
		}
		return spec.ReasonExpired
	case spec.AmbientPresenter:
		return spec.ReasonPresenterMismatch
	case spec.AmbientService:
		return spec.ReasonServiceMismatch
	case spec.AmbientLocalTime:
		return spec.ReasonOutsideTimeWindow
	case spec.AmbientRecords, spec.AmbientFields:
		return spec.ReasonConstraintViolated
	case spec.AmbientRevocationAge:
		return spec.ReasonRevocationStale
	}
	return spec.ReasonCheckFailed
}

// upperBound recognises name($v), $v <= K (also $v < K, K >= $v, K > $v)
// with K of kind k, and returns the largest value of $v it allows.
func upperBound(q *rule, name string, k valueKind) (int64, bool) {
	if len(q.body) != 1 || q.body[0].name != name || len(q.body[0].terms) != 1 ||
		!q.body[0].terms[0].isVar || len(q.exprs) != 1 || len(q.exprs[0]) != 3 {
		return 0, false
	}
	v := q.body[0].terms[0].sym
	e := q.exprs[0]
	if e[0].kind != opValue || e[1].kind != opValue || e[2].kind != opBinary {
		return 0, false
	}
	isV := func(o *op) bool { return o.t.isVar && o.t.sym == v }
	isK := func(o *op) bool { return !o.t.isVar && o.t.val.kind == k }
	var bound int64
	strict := false
	switch pb.OpBinary_Kind(e[2].code) {
	case pb.OpBinary_LessOrEqual, pb.OpBinary_LessThan:
		if !isV(&e[0]) || !isK(&e[1]) {
			return 0, false
		}
		bound, strict = e[1].t.val.num, e[2].code == int32(pb.OpBinary_LessThan)
	case pb.OpBinary_GreaterOrEqual, pb.OpBinary_GreaterThan:
		if !isK(&e[0]) || !isV(&e[1]) {
			return 0, false
		}
		bound, strict = e[0].t.val.num, e[2].code == int32(pb.OpBinary_GreaterThan)
	default:
		return 0, false
	}
	if strict {
		if k == kindInt && bound == -1<<63 || k == kindDate && bound == 0 {
			return 0, false
		}
		bound--
	}
	return bound, true
}

// fieldList recognises fields($f), [S].contains($f) with S strings.
func fieldList(q *rule) ([]value, bool) {
	if len(q.body) != 1 || q.body[0].name != spec.AmbientFields || len(q.body[0].terms) != 1 ||
		!q.body[0].terms[0].isVar || len(q.exprs) != 1 || len(q.exprs[0]) != 3 {
		return nil, false
	}
	e := q.exprs[0]
	if e[0].kind != opValue || e[0].t.isVar || e[0].t.val.kind != kindSet || e[0].t.val.elems()[0].kind != kindString ||
		e[1].kind != opValue || !e[1].t.isVar || e[1].t.sym != q.body[0].terms[0].sym ||
		e[2].kind != opBinary || e[2].code != int32(pb.OpBinary_Contains) {
		return nil, false
	}
	return e[0].t.val.elems(), true
}

// expiryOf returns the date of an expiry check of the exact shape of
// token.md §2 (check if time($t), $t <= DATE), or nil.
func expiryOf(ch *check) *int64 {
	if len(ch.queries) != 1 {
		return nil
	}
	q := &ch.queries[0]
	if len(q.exprs) != 1 || len(q.exprs[0]) != 3 || q.exprs[0][2].code != int32(pb.OpBinary_LessOrEqual) {
		return nil
	}
	d, ok := upperBound(q, spec.AmbientTime, kindDate)
	if !ok {
		return nil
	}
	return &d
}

// constraints folds the record limit and field list of ch, if it has
// one of those shapes in every query, into the token's: the check allows
// the largest limit (the union of lists) of its queries, the token the
// smallest limit (the intersection of lists) of its checks. It reports
// which of the two ch was converted to.
func (cp *compiler) constraints(ch *check) (records, fields bool) {
	c := cp.c
	var limit int64
	okLimit := true
	for i := range ch.queries {
		n, ok := upperBound(&ch.queries[i], spec.AmbientRecords, kindInt)
		if !ok {
			okLimit = false
			break
		}
		if i == 0 || n > limit {
			limit = n
		}
	}
	if okLimit {
		if !c.hasMaxRecords || limit < c.maxRecords {
			c.maxRecords = limit
		}
		c.hasMaxRecords = true
	}
	var union []string
	for i := range ch.queries {
		set, ok := fieldList(&ch.queries[i])
		if !ok {
			return okLimit, false
		}
		for _, v := range set {
			if !containsString(union, v.str) {
				union = append(union, v.str)
			}
		}
	}
	if !c.hasFields {
		c.fields, c.hasFields = union, true
		return okLimit, true
	}
	kept := c.fields[:0]
	for _, f := range c.fields {
		if containsString(union, f) {
			kept = append(kept, f)
		}
	}
	c.fields = kept
	return okLimit, true
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
