package policy

import (
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/spec"
)

// Reasons a requested right is denied. They are stable: clients branch on
// them (spec/policy.md, "Evaluation").
const (
	// DenyNoMatchingRule: no rule names the caller among its subjects.
	DenyNoMatchingRule = "no_matching_rule"
	// DenyRightNotAllowed: rules name the caller, but none has a right
	// that contains the requested one. Alternatives lists the caller's
	// narrower rights inside it, if any.
	DenyRightNotAllowed = "right_not_allowed"
	// DenyOutsideTimeWindow: the only rules that would grant the right
	// have time windows and none of them is open at Request.Now.
	DenyOutsideTimeWindow = "outside_time_window"
	// DenyConstraintConflict: the rules that would grant the right cannot
	// share one token with the rules already chosen for the other rights
	// (disjoint fields or services, too many time zones or windows). The
	// right can be requested in a token of its own.
	DenyConstraintConflict = "constraint_conflict"
	// DenyBadRight: the requested right is not well formed.
	DenyBadRight = "bad_right"
	// DenyTooManyRights: the request lists more than MaxRequestRights
	// rights; every right is denied.
	DenyTooManyRights = "too_many_rights"
)

// Request asks which of Rights the policy grants to Subject.
type Request struct {
	// Subject is the authenticated caller. The zero ID matches no rule.
	Subject spiffeid.ID
	// Rights are the rights asked for, in the caller's order.
	Rights []spec.Right
	// TTL is the lifetime asked for; 0 or less means the longest allowed.
	TTL time.Duration
	// Now is the instant of the request, from the caller's injected clock;
	// time windows are evaluated at Now.
	Now time.Time
}

// Result is the outcome of Evaluate: what the token may contain and the
// constraints it must carry. Constraints combine those of every rule in
// Rules, the most restrictive way (spec/policy.md, "Combining rules").
// When Granted is empty every other field but Denied and PolicyVersion is
// zero.
type Result struct {
	// Granted are the requested rights the token may carry, in request
	// order, without duplicates, exactly as requested.
	Granted []spec.Right
	// Denied lists the other requested rights, in request order.
	Denied []Denial
	// TTL is the token's lifetime: the requested TTL, capped at the
	// smallest max_ttl of Rules.
	TTL time.Duration
	// MaxRecords is the smallest max_records of Rules; 0 means no limit.
	MaxRecords int
	// MaxStaleness is the smallest max_staleness of Rules: the token
	// must carry that bound on the verifier's revocation staleness
	// (mint.Claims.MaxStaleness, token.md §2); 0 means none.
	MaxStaleness time.Duration
	// Fields is the intersection of the field lists of Rules, sorted; nil
	// means no field restriction.
	Fields []string
	// Windows holds one WindowSet per distinct time_windows list of Rules;
	// the token may be used only when every set has a window open.
	Windows []WindowSet
	// Services is the intersection of the service lists of Rules, sorted;
	// nil means any service.
	Services []string
	// BindPresenter is true when any rule of Rules binds the token to its
	// subject.
	BindPresenter bool
	// Rules names the rules that granted, in file order.
	Rules []string
	// PolicyVersion is the Version of the policy that decided.
	PolicyVersion string
}

// WindowSet is the time windows of one rule: satisfied when any of them
// contains the time. A token check with one query per window expresses it.
type WindowSet []spec.TimeWindow

// Denial says why one requested right was not granted.
type Denial struct {
	Right  spec.Right
	Reason string // one of the Deny* constants
	// Alternatives are rights the caller could ask for instead: its rights
	// under rules open at Request.Now that lie inside the requested one,
	// sorted, at most MaxAlternatives. Often empty.
	Alternatives []spec.Right
}

// Evaluate decides which requested rights a token for req.Subject may
// carry and with which constraints (spec/policy.md, "Evaluation"). A right
// is granted when a rule that names the subject, and whose time windows
// (if any) are open at req.Now, has a right that contains it
// (spec.Right.Within). Evaluate does not decide whether a partial grant is
// acceptable: the caller mints Granted or refuses when Denied is not empty.
//
// Evaluate reads no clock, does no I/O and is safe for concurrent use.
func (p *Policy) Evaluate(req Request) Result {
	res := Result{PolicyVersion: p.version}
	if len(req.Rights) > MaxRequestRights {
		for _, q := range req.Rights {
			res.Denied = append(res.Denied, Denial{Right: q, Reason: DenyTooManyRights})
		}
		return res
	}
	var buf [4 * 4]uint64 // up to 256 rules without allocating
	sets := newBitsets(len(p.rules), 4, buf[:])
	subj, open, cover, chosen := sets[0], sets[1], sets[2], sets[3]
	if !req.Subject.IsZero() {
		p.matchSubject(req.Subject.String(), subj)
	}
	for i := subj.next(0); i >= 0; i = subj.next(i + 1) {
		if p.rules[i].openAt(req.Now) {
			open.add(i)
		}
	}
	var acc accumulator
	for i, q := range req.Rights {
		if slices.Contains(req.Rights[:i], q) {
			continue
		}
		if q.Validate() != nil {
			res.Denied = append(res.Denied, Denial{Right: q, Reason: DenyBadRight})
			continue
		}
		if subj.empty() {
			res.Denied = append(res.Denied, Denial{Right: q, Reason: DenyNoMatchingRule})
			continue
		}
		cover.clear()
		p.matchRight(q, cover)
		cover.and(subj)
		if cover.empty() {
			res.Denied = append(res.Denied, Denial{Right: q, Reason: DenyRightNotAllowed, Alternatives: p.alternatives(q, open)})
			continue
		}
		cover.and(open)
		if cover.empty() {
			res.Denied = append(res.Denied, Denial{Right: q, Reason: DenyOutsideTimeWindow, Alternatives: p.alternatives(q, open)})
			continue
		}
		// A rule already chosen grants it at no extra cost; otherwise the
		// first open rule, in file order, whose constraints can join.
		granted := cover.intersects(chosen)
		for j := cover.next(0); !granted && j >= 0; j = cover.next(j + 1) {
			if acc.add(p.rules[j]) {
				chosen.add(j)
				granted = true
			}
		}
		if !granted {
			res.Denied = append(res.Denied, Denial{Right: q, Reason: DenyConstraintConflict})
			continue
		}
		if res.Granted == nil {
			res.Granted = make([]spec.Right, 0, len(req.Rights)-i)
		}
		res.Granted = append(res.Granted, q)
	}
	if len(res.Granted) == 0 {
		return res
	}
	res.TTL = acc.ttl
	if req.TTL > 0 && req.TTL < res.TTL {
		res.TTL = req.TTL
	}
	res.MaxRecords = acc.maxRecords
	res.MaxStaleness = acc.maxStaleness
	if acc.fieldsSet {
		res.Fields = slices.Clone(acc.fields)
	}
	if acc.servicesSet {
		res.Services = slices.Clone(acc.services)
	}
	res.BindPresenter = acc.bind
	for _, ws := range acc.windows {
		set := make(WindowSet, len(ws))
		for k, w := range ws {
			set[k] = w.TimeWindow
			set[k].Days = slices.Clone(w.Days)
		}
		res.Windows = append(res.Windows, set)
	}
	res.Rules = make([]string, 0, acc.n)
	for j := chosen.next(0); j >= 0; j = chosen.next(j + 1) {
		res.Rules = append(res.Rules, p.rules[j].name)
	}
	return res
}

// alternatives lists the rights of the rules in open that lie strictly
// inside q.
func (p *Policy) alternatives(q spec.Right, open bitset) []spec.Right {
	if !q.IsPrefix() || q.Validate() != nil {
		return nil // nothing but q itself lies inside an exact right
	}
	var out []spec.Right
	for i := open.next(0); i >= 0; i = open.next(i + 1) {
		for _, r := range p.rules[i].rights {
			if r != q && r.Within(q) && !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, compareRights)
	if len(out) > MaxAlternatives {
		out = out[:MaxAlternatives:MaxAlternatives]
	}
	return out
}

// MayDelegate reports whether from may hand rights to to in a token minted
// for to (online delegation). It is true when rights is not empty, has at
// most MaxRequestRights well-formed rights, and each lies within a right
// of some rule that names from among its subjects and to in its
// delegate_to list. Time windows and other constraints are not consulted:
// a delegated token inherits those of the token it derives from.
//
// MayDelegate is safe for concurrent use.
func (p *Policy) MayDelegate(from, to spiffeid.ID, rights []spec.Right) bool {
	if from.IsZero() || to.IsZero() || len(rights) == 0 || len(rights) > MaxRequestRights {
		return false
	}
	var buf [2 * 4]uint64
	sets := newBitsets(len(p.rules), 2, buf[:])
	subj, cover := sets[0], sets[1]
	p.matchSubject(from.String(), subj)
	target := to.String()
	for _, q := range rights {
		if q.Validate() != nil {
			return false
		}
		cover.clear()
		p.matchRight(q, cover)
		cover.and(subj)
		ok := false
		for j := cover.next(0); !ok && j >= 0; j = cover.next(j + 1) {
			ok = slices.ContainsFunc(p.rules[j].delegateTo, func(d idPattern) bool { return d.matches(target) })
		}
		if !ok {
			return false
		}
	}
	return true
}

// openAt reports whether the rule may grant at t: it has no time windows
// or one of them contains t.
func (r *rule) openAt(t time.Time) bool {
	if len(r.windows) == 0 {
		return true
	}
	for _, w := range r.windows {
		if w.contains(t) {
			return true
		}
	}
	return false
}

// contains is spec.TimeWindow.Contains with the location loaded once.
func (w window) contains(t time.Time) bool {
	lt := t.In(w.loc)
	if len(w.Days) > 0 && !slices.Contains(w.Days, lt.Weekday()) {
		return false
	}
	m := lt.Hour()*60 + lt.Minute()
	return m >= w.From && m < w.To
}

// accumulator holds the combined constraints of the rules chosen so far.
type accumulator struct {
	n            int
	ttl          time.Duration
	maxRecords   int
	maxStaleness time.Duration
	fields       []string
	fieldsSet    bool
	services     []string
	servicesSet  bool
	windows      [][]window
	zones        []string
	bind         bool
}

// add joins r's constraints to the token's if the result is satisfiable
// and within the verifier's limits, and reports whether it did.
func (a *accumulator) add(r *rule) bool {
	fields, fieldsSet := a.fields, a.fieldsSet
	if r.fields != nil {
		if fieldsSet {
			if fields = intersect(fields, r.fields); len(fields) == 0 {
				return false
			}
		} else {
			fields, fieldsSet = r.fields, true
		}
	}
	services, servicesSet := a.services, a.servicesSet
	if r.services != nil {
		if servicesSet {
			if services = intersect(services, r.services); len(services) == 0 {
				return false
			}
		} else {
			services, servicesSet = r.services, true
		}
	}
	windows, zones := a.windows, a.zones
	if len(r.windows) > 0 && !slices.ContainsFunc(windows, func(ws []window) bool { return sameWindows(ws, r.windows) }) {
		if len(windows) >= MaxTokenWindowSets {
			return false
		}
		windows = append(slices.Clip(windows), r.windows)
		for _, w := range r.windows {
			if !slices.Contains(zones, w.Zone) {
				zones = append(slices.Clip(zones), w.Zone)
			}
		}
		if len(zones) > MaxTokenZones {
			return false
		}
	}
	if a.n == 0 || r.maxTTL < a.ttl {
		a.ttl = r.maxTTL
	}
	if r.maxRecords > 0 && (a.maxRecords == 0 || r.maxRecords < a.maxRecords) {
		a.maxRecords = r.maxRecords
	}
	if r.maxStaleness > 0 && (a.maxStaleness == 0 || r.maxStaleness < a.maxStaleness) {
		a.maxStaleness = r.maxStaleness
	}
	a.n++
	a.fields, a.fieldsSet = fields, fieldsSet
	a.services, a.servicesSet = services, servicesSet
	a.windows, a.zones = windows, zones
	a.bind = a.bind || r.bindPresenter
	return true
}

// intersect returns the common elements of two sorted lists, in a new slice.
func intersect(a, b []string) []string {
	out := make([]string, 0, min(len(a), len(b)))
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch c := strings.Compare(a[i], b[j]); {
		case c < 0:
			i++
		case c > 0:
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	return out
}

func sameWindows(a, b []window) bool {
	return slices.EqualFunc(a, b, func(x, y window) bool {
		return x.Zone == y.Zone && x.From == y.From && x.To == y.To && slices.Equal(x.Days, y.Days)
	})
}
