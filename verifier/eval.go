package verifier

import (
	"slices"
	"strings"
	"time"
)

// This file evaluates a compiled token for one request: the ambient facts
// of token.md §3, every check of every block, and the allow policy of §4.
// Evaluation is deterministic and bounded by the costs compile charged.

// evalCtx is the scratch state of one evaluation. Authorize takes one
// from a pool, so the hot path allocates nothing.
type evalCtx struct {
	slots []*value // bindings of the current query; nil: unbound
	trail []int    // slots bound, in order, to undo on backtracking
	stack []value  // expression stack

	rel      [numAmbient][][]value // ambient facts by relation
	vals     []value               // backing store of ambient facts
	rows     [][]value             // backing store of fact headers
	fieldSet []value
	attrKeys []string
}

func newEvalCtx(lim *Limits) *evalCtx {
	return &evalCtx{
		stack: make([]value, 0, lim.MaxStackDepth),
		trail: make([]int, 0, lim.MaxPredicatesPerQuery*lim.MaxTermsPerPredicate),
		slots: make([]*value, lim.MaxPredicatesPerQuery*lim.MaxTermsPerPredicate),
	}
}

// setAmbient builds the ambient facts c's checks reference. age is the
// revocation_age in milliseconds, or negative when the verifier tracks no
// freshness (no fact).
func (e *evalCtx) setAmbient(c *compiled, now int64, req *Request, service string, age int64) {
	need := 8 + 2*len(req.Attributes) + 3*len(c.zones)
	if cap(e.vals) < need {
		e.vals = make([]value, 0, need)
		e.rows = make([][]value, 0, need)
	}
	e.vals, e.rows = e.vals[:0], e.rows[:0]
	for i := range e.rel {
		e.rel[i] = nil
	}
	uses := func(id int) bool { return c.uses&(1<<id) != 0 }
	single := func(id int, v value) {
		e.vals = append(e.vals, v)
		e.rows = append(e.rows, e.vals[len(e.vals)-1:])
		e.rel[id] = e.rows[len(e.rows)-1:]
	}
	if uses(ambTime) {
		single(ambTime, value{kind: kindDate, num: now})
	}
	if uses(ambResource) {
		single(ambResource, value{kind: kindString, str: req.Resource})
	}
	if uses(ambOperation) {
		single(ambOperation, value{kind: kindString, str: req.Operation})
	}
	if uses(ambPresenter) && req.Presenter != "" {
		single(ambPresenter, value{kind: kindString, str: req.Presenter})
	}
	if uses(ambService) && service != "" {
		single(ambService, value{kind: kindString, str: service})
	}
	if uses(ambRecords) {
		single(ambRecords, value{kind: kindInt, num: int64(req.Records)})
	}
	if uses(ambFields) {
		e.fieldSet = e.fieldSet[:0]
		for _, f := range req.Fields {
			e.fieldSet = append(e.fieldSet, value{kind: kindString, str: f})
		}
		single(ambFields, value{kind: kindSet, set: &e.fieldSet})
	}
	if uses(ambAttr) && len(req.Attributes) > 0 {
		e.attrKeys = e.attrKeys[:0]
		for k := range req.Attributes {
			e.attrKeys = append(e.attrKeys, k)
		}
		slices.Sort(e.attrKeys)
		start := len(e.rows)
		for _, k := range e.attrKeys {
			e.vals = append(e.vals, value{kind: kindString, str: k}, value{kind: kindString, str: req.Attributes[k]})
			e.rows = append(e.rows, e.vals[len(e.vals)-2:])
		}
		e.rel[ambAttr] = e.rows[start:]
	}
	if uses(ambLocalTime) && len(c.zones) > 0 {
		start := len(e.rows)
		t := time.Unix(now, 0)
		for _, z := range c.zones {
			if z.loc == nil {
				continue
			}
			lt := t.In(z.loc)
			e.vals = append(e.vals,
				value{kind: kindString, str: z.name},
				value{kind: kindInt, num: int64(lt.Weekday())},
				value{kind: kindInt, num: int64(lt.Hour()*60 + lt.Minute())})
			e.rows = append(e.rows, e.vals[len(e.vals)-3:])
		}
		e.rel[ambLocalTime] = e.rows[start:]
	}
	if uses(ambRevocationAge) && age >= 0 {
		single(ambRevocationAge, value{kind: kindInt, num: age})
	}
}

// runCheck reports whether some query of ch holds.
func (e *evalCtx) runCheck(ch *cCheck) bool {
	for i := range ch.queries {
		if e.runQuery(&ch.queries[i]) {
			return true
		}
	}
	return false
}

// Results of join and exprs.
const (
	resNo    = 0  // no (more) match
	resYes   = 1  // a match
	resAbort = -1 // an expression failed: the query stops, with no match
)

func (e *evalCtx) runQuery(q *cQuery) bool {
	if len(q.preds) == 0 {
		return e.exprs(q) == resYes
	}
	clear(e.slots[:q.nslots])
	e.trail = e.trail[:0]
	return e.join(q, 0) == resYes
}

// join enumerates, depth first, the combinations of one fact per body
// predicate in the order biscuit-go does (lexicographic over fact
// positions), keeping those whose variables agree, and evaluates the
// expressions on each until one holds or one fails.
func (e *evalCtx) join(q *cQuery, level int) int {
	p := &q.preds[level]
	cands := p.cands
	if p.amb >= 0 {
		cands = e.rel[p.amb]
	}
	last := level == len(q.preds)-1
	for _, f := range cands {
		if len(f) != p.arity {
			continue
		}
		mark := len(e.trail)
		ok := true
		for i := range p.args {
			a := &p.args[i]
			if !a.isVar {
				if p.consts && !valueEqual(&f[i], &a.val) {
					ok = false
					break
				}
				continue
			}
			if b := e.slots[a.slot]; b == nil {
				e.slots[a.slot] = &f[i]
				e.trail = append(e.trail, a.slot)
			} else if !valueEqual(&f[i], b) {
				ok = false
				break
			}
		}
		r := resNo
		if ok {
			if last {
				r = e.exprs(q)
			} else {
				r = e.join(q, level+1)
			}
		}
		for _, s := range e.trail[mark:] {
			e.slots[s] = nil
		}
		e.trail = e.trail[:mark]
		if r != resNo {
			return r
		}
	}
	return resNo
}

// exprs evaluates the query's expressions in order on the current
// bindings: resYes when all are true, resNo at the first that is not,
// resAbort at the first that fails.
func (e *evalCtx) exprs(q *cQuery) int {
	for _, ops := range q.exprs {
		v, ok := e.expr(ops)
		if !ok {
			return resAbort
		}
		if v.kind != kindBool || v.num == 0 {
			return resNo
		}
	}
	return resYes
}

func (e *evalCtx) expr(ops []op) (value, bool) {
	st := e.stack[:0]
	for i := range ops {
		o := &ops[i]
		switch o.kind {
		case opValue:
			if len(st) == cap(st) {
				return value{}, false
			}
			if o.t.isVar {
				b := e.slots[o.t.slot]
				if b == nil {
					return value{}, false
				}
				st = append(st, *b)
			} else {
				st = append(st, o.t.val)
			}
		case opUnary:
			if len(st) < 1 {
				return value{}, false
			}
			v, ok := unaryOp(o.code, &st[len(st)-1])
			if !ok {
				return value{}, false
			}
			st[len(st)-1] = v
		case opBinary:
			n := len(st)
			if n < 2 {
				return value{}, false
			}
			v, ok := binaryOp(o.code, &st[n-2], &st[n-1])
			if !ok {
				return value{}, false
			}
			st[n-2] = v
			st = st[:n-1]
		}
	}
	if len(st) != 1 {
		return value{}, false
	}
	return st[0], true
}

// granted is the allow policy of token.md §4.
func (c *compiled) granted(resource, operation string) bool {
	if _, ok := c.rights[rightKey{resource, operation}]; ok {
		return true
	}
	for _, p := range c.prefixes {
		if p.op == operation && strings.HasPrefix(resource, p.a) {
			return true
		}
	}
	return false
}
