package verifier

import (
	"strings"

	"github.com/biscuit-auth/biscuit-go/v2/pb"
)

// This file is the expression machine of token.md §6: Biscuit v3.0
// operators on a stack, with biscuit-go's semantics (the reference a
// differential test holds us to). An operator applied to values of the
// wrong type is an error, which ends the query (biscuit-go stops a rule at
// its first erroring combination); integer overflow is such an error.
// Every function here is total on any input: no panics.

// valueEqual is biscuit-go's Term.Equal: same type and content; for sets,
// same length and every element of a in b.
func valueEqual(a, b *value) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case kindString, kindBytes:
		return a.str == b.str
	case kindSet:
		as, bs := a.elems(), b.elems()
		if len(as) != len(bs) {
			return false
		}
		for i := range as {
			if !setHas(bs, &as[i]) {
				return false
			}
		}
		return true
	default:
		return a.num == b.num
	}
}

// setHas reports whether set holds an element equal to x.
func setHas(set []value, x *value) bool {
	for i := range set {
		if valueEqual(&set[i], x) {
			return true
		}
	}
	return false
}

var (
	valTrue  = value{kind: kindBool, num: 1}
	valFalse = value{kind: kindBool}
)

func boolValue(b bool) value {
	if b {
		return valTrue
	}
	return valFalse
}

// unaryOp applies a unary operator; ok is false on a type error.
func unaryOp(code int32, x *value) (value, bool) {
	switch pb.OpUnary_Kind(code) {
	case pb.OpUnary_Negate:
		if x.kind != kindBool {
			return value{}, false
		}
		return boolValue(x.num == 0), true
	case pb.OpUnary_Parens:
		return *x, true
	case pb.OpUnary_Length:
		switch x.kind {
		case kindString, kindBytes:
			return value{kind: kindInt, num: int64(len(x.str))}, true
		case kindSet:
			return value{kind: kindInt, num: int64(len(x.elems()))}, true
		}
	}
	return value{}, false
}

// binaryOp applies a binary operator to l and r; ok is false on a type
// error, an overflow or an operator outside token.md §6. No result is
// larger than its operands.
func binaryOp(code int32, l, r *value) (value, bool) {
	switch k := pb.OpBinary_Kind(code); k {
	case pb.OpBinary_LessThan, pb.OpBinary_GreaterThan, pb.OpBinary_LessOrEqual, pb.OpBinary_GreaterOrEqual:
		if l.kind != r.kind {
			return value{}, false
		}
		var c int // -1, 0, 1
		switch l.kind {
		case kindInt:
			c = cmp3(l.num < r.num, l.num > r.num)
		case kindDate:
			c = cmp3(uint64(l.num) < uint64(r.num), uint64(l.num) > uint64(r.num))
		default:
			return value{}, false
		}
		switch k {
		case pb.OpBinary_LessThan:
			return boolValue(c < 0), true
		case pb.OpBinary_GreaterThan:
			return boolValue(c > 0), true
		case pb.OpBinary_LessOrEqual:
			return boolValue(c <= 0), true
		default:
			return boolValue(c >= 0), true
		}
	case pb.OpBinary_Equal:
		if l.kind != r.kind || l.kind == kindNone {
			return value{}, false
		}
		return boolValue(valueEqual(l, r)), true
	case pb.OpBinary_Contains:
		if l.kind == kindString {
			if r.kind != kindString {
				return value{}, false
			}
			return boolValue(strings.Contains(l.str, r.str)), true
		}
		if l.kind != kindSet {
			return value{}, false
		}
		ls := l.elems()
		if r.kind == kindSet {
			rs := r.elems()
			for i := range rs {
				if !setHas(ls, &rs[i]) {
					return valFalse, true
				}
			}
			return valTrue, true
		}
		return boolValue(setHas(ls, r)), true
	case pb.OpBinary_Prefix, pb.OpBinary_Suffix:
		if l.kind != kindString || r.kind != kindString {
			return value{}, false
		}
		if k == pb.OpBinary_Prefix {
			return boolValue(strings.HasPrefix(l.str, r.str)), true
		}
		return boolValue(strings.HasSuffix(l.str, r.str)), true
	case pb.OpBinary_Add:
		// String concatenation is refused by compile (growthFree, token.md
		// §6); were it ever reached, it would be an error, never a value
		// longer than the token's own strings.
		if l.kind != kindInt || r.kind != kindInt {
			return value{}, false
		}
		s := l.num + r.num
		if (l.num^s)&(r.num^s) < 0 {
			return value{}, false // overflow
		}
		return value{kind: kindInt, num: s}, true
	case pb.OpBinary_Sub:
		if l.kind != kindInt || r.kind != kindInt {
			return value{}, false
		}
		s := l.num - r.num
		if (l.num^r.num)&(l.num^s) < 0 {
			return value{}, false // overflow
		}
		return value{kind: kindInt, num: s}, true
	case pb.OpBinary_And, pb.OpBinary_Or:
		if l.kind != kindBool || r.kind != kindBool {
			return value{}, false
		}
		if k == pb.OpBinary_And {
			return boolValue(l.num != 0 && r.num != 0), true
		}
		return boolValue(l.num != 0 || r.num != 0), true
	}
	// Regex, Mul and Div are refused by decode, .intersection(), .union()
	// and string + by compile (growthFree), unknown kinds by decode: all
	// are errors here.
	return value{}, false
}

func cmp3(lt, gt bool) int {
	switch {
	case lt:
		return -1
	case gt:
		return 1
	}
	return 0
}
