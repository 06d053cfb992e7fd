package attenuation

import (
	"fmt"
	"time"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"

	"github.com/writ-dev/writ/spec"
)

// Variable names of the checks, as written in token.md §2 and §5.
const (
	varResource = "r"
	varTime     = "t"
	varPresent  = "p"
	varField    = "f"
	varRecords  = "n"
	varDay      = "d"
	varMinute   = "m"
	varService  = "s"
	varAge      = "a"
)

// queryHead is the head biscuit-go gives every check query; it is not part
// of the check's meaning but keeps the shape identical to what Biscuit
// tooling produces from Datalog text.
const queryHead = "query"

// Check returns the Biscuit check r stands for, with exactly the shape of
// token.md §5. The issuer's minter puts the same checks in the authority
// block (token.md §2), so a restriction reads the same in every block.
//
// now resolves ExpireIn (now + d, rounded down to the second); every other
// restriction ignores it. Check returns r.Err() for an invalid r. The
// result is newly allocated on each call and owned by the caller.
func (r Restriction) Check(now time.Time) (biscuit.Check, error) {
	if err := r.Err(); err != nil {
		return biscuit.Check{}, err
	}
	switch r.kind {
	case kindRights:
		qs := make([]biscuit.Rule, len(r.rights))
		for i, rt := range r.rights {
			qs[i] = rightQuery(rt)
		}
		return biscuit.Check{Queries: qs}, nil
	case kindExpireBy:
		return expiryCheck(r.at), nil
	case kindExpireIn:
		at := now.Add(r.in)
		if at.Unix() <= 0 {
			return biscuit.Check{}, fmt.Errorf("%w: %s: expiry %s is not after the Unix epoch", ErrBadRestriction, r.kind, at.UTC().Format(time.RFC3339))
		}
		return expiryCheck(time.Unix(at.Unix(), 0).UTC()), nil
	case kindPresenters:
		return setCheck(spec.AmbientPresenter, varPresent, r.strs), nil
	case kindFields:
		return setCheck(spec.AmbientFields, varField, r.strs), nil
	case kindServices:
		return setCheck(spec.AmbientService, varService, r.strs), nil
	case kindRecords:
		// check if records($n), $n <= N
		return check(pred(spec.AmbientRecords, biscuit.Variable(varRecords)),
			biscuit.Expression{
				biscuit.Value{Term: biscuit.Variable(varRecords)},
				biscuit.Value{Term: biscuit.Integer(r.n)},
				biscuit.BinaryLessOrEqual,
			}), nil
	case kindStaleness:
		// check if revocation_age($a), $a <= MS
		return check(pred(spec.AmbientRevocationAge, biscuit.Variable(varAge)),
			biscuit.Expression{
				biscuit.Value{Term: biscuit.Variable(varAge)},
				biscuit.Value{Term: biscuit.Integer(r.n)},
				biscuit.BinaryLessOrEqual,
			}), nil
	case kindWindow, kindAnyWindow:
		// check if local_time(TZ, $d, $m), [DAYS].contains($d), $m >= FROM, $m < TO
		//       or local_time(TZ2, $d, $m), ... (one query per window)
		qs := make([]biscuit.Rule, len(r.windows))
		for i, w := range r.windows {
			qs[i] = windowQuery(w)
		}
		return biscuit.Check{Queries: qs}, nil
	}
	return biscuit.Check{}, fmt.Errorf("%w: unknown kind %d", ErrBadRestriction, r.kind)
}

// rightQuery is one query of an OnlyRights check:
// resource("a"), operation("read") for an exact right,
// resource($r), operation("read"), $r.starts_with("b/") for a prefix right.
func rightQuery(rt spec.Right) biscuit.Rule {
	op := pred(spec.AmbientOperation, biscuit.String(rt.Operation))
	if !rt.IsPrefix() {
		return biscuit.Rule{
			Head: biscuit.Predicate{Name: queryHead, IDs: []biscuit.Term{}},
			Body: []biscuit.Predicate{pred(spec.AmbientResource, biscuit.String(rt.Resource)), op},
		}
	}
	return biscuit.Rule{
		Head: biscuit.Predicate{Name: queryHead, IDs: []biscuit.Term{}},
		Body: []biscuit.Predicate{pred(spec.AmbientResource, biscuit.Variable(varResource)), op},
		Expressions: []biscuit.Expression{{
			biscuit.Value{Term: biscuit.Variable(varResource)},
			biscuit.Value{Term: biscuit.String(rt.Prefix())},
			biscuit.BinaryPrefix,
		}},
	}
}

// windowQuery is one query of a Window or AnyWindow check:
// local_time(TZ, $d, $m), [DAYS].contains($d), $m >= FROM, $m < TO.
func windowQuery(w spec.TimeWindow) biscuit.Rule {
	days := make(biscuit.Set, len(w.Days))
	for i, d := range w.Days {
		days[i] = biscuit.Integer(d)
	}
	return biscuit.Rule{
		Head: biscuit.Predicate{Name: queryHead, IDs: []biscuit.Term{}},
		Body: []biscuit.Predicate{pred(spec.AmbientLocalTime, biscuit.String(w.Zone), biscuit.Variable(varDay), biscuit.Variable(varMinute))},
		Expressions: []biscuit.Expression{
			{
				biscuit.Value{Term: days},
				biscuit.Value{Term: biscuit.Variable(varDay)},
				biscuit.BinaryContains,
			},
			{
				biscuit.Value{Term: biscuit.Variable(varMinute)},
				biscuit.Value{Term: biscuit.Integer(w.From)},
				biscuit.BinaryGreaterOrEqual,
			},
			{
				biscuit.Value{Term: biscuit.Variable(varMinute)},
				biscuit.Value{Term: biscuit.Integer(w.To)},
				biscuit.BinaryLessThan,
			},
		},
	}
}

// expiryCheck is check if time($t), $t <= DATE.
func expiryCheck(at time.Time) biscuit.Check {
	return check(pred(spec.AmbientTime, biscuit.Variable(varTime)),
		biscuit.Expression{
			biscuit.Value{Term: biscuit.Variable(varTime)},
			biscuit.Value{Term: biscuit.Date(at)},
			biscuit.BinaryLessOrEqual,
		})
}

// setCheck is check if name($v), [ELEMS].contains($v).
func setCheck(name, v string, elems []string) biscuit.Check {
	s := make(biscuit.Set, len(elems))
	for i, e := range elems {
		s[i] = biscuit.String(e)
	}
	return check(pred(name, biscuit.Variable(v)),
		biscuit.Expression{
			biscuit.Value{Term: s},
			biscuit.Value{Term: biscuit.Variable(v)},
			biscuit.BinaryContains,
		})
}

func check(p biscuit.Predicate, exprs ...biscuit.Expression) biscuit.Check {
	return biscuit.Check{Queries: []biscuit.Rule{{
		Head:        biscuit.Predicate{Name: queryHead, IDs: []biscuit.Term{}},
		Body:        []biscuit.Predicate{p},
		Expressions: exprs,
	}}}
}

func pred(name string, terms ...biscuit.Term) biscuit.Predicate {
	return biscuit.Predicate{Name: name, IDs: terms}
}
