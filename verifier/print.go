package verifier

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/biscuit-auth/biscuit-go/v2/pb"
)

// This file renders decoded blocks as Biscuit Datalog text, for failed
// checks in decisions and for Inspect. Strings are quoted with Biscuit's
// escapes; sets keep the token's element order; expressions are printed
// infix with the parentheses the token's Parens operators carry.

var binaryNames = map[pb.OpBinary_Kind]string{
	pb.OpBinary_LessThan:       "<",
	pb.OpBinary_GreaterThan:    ">",
	pb.OpBinary_LessOrEqual:    "<=",
	pb.OpBinary_GreaterOrEqual: ">=",
	pb.OpBinary_Equal:          "==",
	pb.OpBinary_Contains:       "contains",
	pb.OpBinary_Prefix:         "starts_with",
	pb.OpBinary_Suffix:         "ends_with",
	pb.OpBinary_Regex:          "matches",
	pb.OpBinary_Add:            "+",
	pb.OpBinary_Sub:            "-",
	pb.OpBinary_Mul:            "*",
	pb.OpBinary_Div:            "/",
	pb.OpBinary_And:            "&&",
	pb.OpBinary_Or:             "||",
	pb.OpBinary_Intersection:   "intersection",
	pb.OpBinary_Union:          "union",
}

// binaryIsMethod lists the operators written as methods: a.op(b).
var binaryIsMethod = map[pb.OpBinary_Kind]bool{
	pb.OpBinary_Contains:     true,
	pb.OpBinary_Prefix:       true,
	pb.OpBinary_Suffix:       true,
	pb.OpBinary_Regex:        true,
	pb.OpBinary_Intersection: true,
	pb.OpBinary_Union:        true,
}

func writeString(b *strings.Builder, s string, lim int) {
	b.WriteByte('"')
	cut := false
	if lim > 0 && len(s) > lim {
		n := lim
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s, cut = s[:n], true
	}
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 || r == 0x7f || r == utf8.RuneError {
				fmt.Fprintf(b, `\u{%x}`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	if cut {
		b.WriteString("…")
	}
	b.WriteByte('"')
}

func writeValue(b *strings.Builder, v *value, lim int) {
	switch v.kind {
	case kindInt:
		b.WriteString(strconv.FormatInt(v.num, 10))
	case kindString:
		writeString(b, v.str, lim)
	case kindDate:
		b.WriteString(formatDate(v.num))
	case kindBytes:
		b.WriteString("hex:")
		if lim > 0 && len(v.str) > lim/2 {
			b.WriteString(hex.EncodeToString([]byte(v.str[:lim/2])))
			b.WriteString("…")
		} else {
			b.WriteString(hex.EncodeToString([]byte(v.str)))
		}
	case kindBool:
		b.WriteString(strconv.FormatBool(v.num != 0))
	case kindSet:
		b.WriteByte('[')
		es := v.elems()
		for i := range es {
			if i > 0 {
				b.WriteString(", ")
			}
			writeValue(b, &es[i], lim)
		}
		b.WriteByte(']')
	}
}

// formatDate writes a Biscuit date (seconds since the epoch, unsigned) in
// RFC 3339, UTC; dates beyond year 9999 as their number of seconds.
func formatDate(secs int64) string {
	if secs < 0 || secs > 253402300799 {
		return strconv.FormatUint(uint64(secs), 10)
	}
	return time.Unix(secs, 0).UTC().Format(time.RFC3339)
}

func writeTerm(b *strings.Builder, t *term, syms []string, lim int) {
	if t.isVar {
		b.WriteByte('$')
		b.WriteString(symbolName(syms, t.sym))
		return
	}
	writeValue(b, &t.val, lim)
}

func writePredicate(b *strings.Builder, p *predicate, syms []string, lim int) {
	b.WriteString(p.name)
	b.WriteByte('(')
	for i := range p.terms {
		if i > 0 {
			b.WriteString(", ")
		}
		writeTerm(b, &p.terms[i], syms, lim)
	}
	b.WriteByte(')')
}

// exprText renders a postfix expression infix. Stack discipline was
// checked by decode; a broken one renders as "<invalid expression>".
func exprText(ops []op, syms []string, lim int) string {
	var st []string
	var b strings.Builder
	for i := range ops {
		o := &ops[i]
		switch o.kind {
		case opValue:
			b.Reset()
			writeTerm(&b, &o.t, syms, lim)
			st = append(st, b.String())
		case opUnary:
			if len(st) < 1 {
				return "<invalid expression>"
			}
			x := st[len(st)-1]
			switch pb.OpUnary_Kind(o.code) {
			case pb.OpUnary_Negate:
				x = "!" + x
			case pb.OpUnary_Parens:
				x = "(" + x + ")"
			case pb.OpUnary_Length:
				x += ".length()"
			}
			st[len(st)-1] = x
		case opBinary:
			if len(st) < 2 {
				return "<invalid expression>"
			}
			l, r := st[len(st)-2], st[len(st)-1]
			k := pb.OpBinary_Kind(o.code)
			name, ok := binaryNames[k]
			if !ok {
				name = "unknown"
			}
			if binaryIsMethod[k] {
				l = l + "." + name + "(" + r + ")"
			} else {
				l = l + " " + name + " " + r
			}
			if lim > 0 && len(l) > maxCheckTextBytes {
				// The check text is cut there anyway; stop copying.
				return cutText(l, maxCheckTextBytes)
			}
			st = st[:len(st)-1]
			st[len(st)-1] = l
		}
	}
	if len(st) != 1 {
		return "<invalid expression>"
	}
	return st[0]
}

// writeBody renders a query or rule body: predicates then expressions.
func writeBody(b *strings.Builder, r *rule, syms []string, lim int) {
	n := 0
	for i := range r.body {
		if n > 0 {
			b.WriteString(", ")
		}
		writePredicate(b, &r.body[i], syms, lim)
		n++
	}
	for _, e := range r.exprs {
		if n > 0 {
			b.WriteString(", ")
		}
		b.WriteString(exprText(e, syms, lim))
		n++
	}
	if n == 0 {
		b.WriteString("true")
	}
}

// checkText renders "check if q1 or q2 …". With lim > 0 (failed checks
// in a Decision, token.md §7), every string or byte-string literal is cut
// to lim bytes plus "…".
func checkText(c *check, syms []string, lim int) string {
	var b strings.Builder
	b.WriteString("check if ")
	for i := range c.queries {
		if i > 0 {
			b.WriteString(" or ")
		}
		writeBody(&b, &c.queries[i], syms, lim)
		if lim > 0 && b.Len() > maxCheckTextBytes {
			break
		}
	}
	if lim > 0 {
		return cutText(b.String(), maxCheckTextBytes)
	}
	return b.String()
}

// cutText returns s, or its first n bytes or fewer (whole UTF-8
// sequences) followed by "…" when s is longer.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// ruleText renders "head <- body".
func ruleText(r *rule, syms []string) string {
	var b strings.Builder
	writePredicate(&b, &r.head, syms, 0)
	b.WriteString(" <- ")
	writeBody(&b, r, syms, 0)
	return b.String()
}

// factText renders "name(terms)".
func factText(p *predicate, syms []string) string {
	var b strings.Builder
	writePredicate(&b, p, syms, 0)
	return b.String()
}
