package attenuationtest

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/biscuit-auth/biscuit-go/v2/datalog"
	"github.com/biscuit-auth/biscuit-go/v2/pb"
	"google.golang.org/protobuf/proto"
)

// Block is one block of a token in Datalog text, one statement per
// element, without the trailing ";".
type Block struct {
	Facts  []string
	Rules  []string
	Checks []string
}

// Datalog decodes token and returns its blocks, authority first, and its
// rootKeyId (nil when absent). It does not verify signatures.
func Datalog(token []byte) ([]Block, *uint32, error) {
	var c pb.Biscuit
	if err := proto.Unmarshal(token, &c); err != nil {
		return nil, nil, fmt.Errorf("attenuationtest: decode container: %w", err)
	}
	p := &printer{}
	signed := append([]*pb.SignedBlock{c.GetAuthority()}, c.GetBlocks()...)
	out := make([]Block, 0, len(signed))
	for i, sb := range signed {
		var b pb.Block
		if err := proto.Unmarshal(sb.GetBlock(), &b); err != nil {
			return nil, nil, fmt.Errorf("attenuationtest: decode block %d: %w", i, err)
		}
		p.syms = append(p.syms, b.GetSymbols()...)
		var blk Block
		for _, f := range b.GetFactsV2() {
			blk.Facts = append(blk.Facts, p.pred(f.GetPredicate()))
		}
		for _, r := range b.GetRulesV2() {
			blk.Rules = append(blk.Rules, p.pred(r.GetHead())+" <- "+p.query(r))
		}
		for _, ch := range b.GetChecksV2() {
			qs := make([]string, len(ch.GetQueries()))
			for j, q := range ch.GetQueries() {
				qs[j] = p.query(q)
			}
			blk.Checks = append(blk.Checks, "check if "+strings.Join(qs, " or "))
		}
		if p.err != nil {
			return nil, nil, fmt.Errorf("attenuationtest: block %d: %w", i, p.err)
		}
		out = append(out, blk)
	}
	return out, c.RootKeyId, nil
}

type printer struct {
	syms []string // the token's own symbols, all blocks so far
	err  error
}

func (p *printer) sym(i uint64) string {
	if i < uint64(len(datalog.DEFAULT_SYMBOLS)) {
		return datalog.DEFAULT_SYMBOLS[i]
	}
	if i >= 1024 && i-1024 < uint64(len(p.syms)) {
		return p.syms[i-1024]
	}
	if p.err == nil {
		p.err = fmt.Errorf("unknown symbol %d", i)
	}
	return "?"
}

func (p *printer) pred(x *pb.PredicateV2) string {
	ts := make([]string, len(x.GetTerms()))
	for i, t := range x.GetTerms() {
		ts[i] = p.term(t)
	}
	return p.sym(x.GetName()) + "(" + strings.Join(ts, ", ") + ")"
}

func (p *printer) query(r *pb.RuleV2) string {
	parts := make([]string, 0, len(r.GetBody())+len(r.GetExpressions()))
	for _, b := range r.GetBody() {
		parts = append(parts, p.pred(b))
	}
	for _, e := range r.GetExpressions() {
		parts = append(parts, p.expr(e))
	}
	return strings.Join(parts, ", ")
}

func (p *printer) term(t *pb.TermV2) string {
	switch c := t.GetContent().(type) {
	case *pb.TermV2_Variable:
		return "$" + p.sym(uint64(c.Variable))
	case *pb.TermV2_Integer:
		return strconv.FormatInt(c.Integer, 10)
	case *pb.TermV2_String_:
		return strconv.Quote(p.sym(c.String_))
	case *pb.TermV2_Date:
		return time.Unix(int64(c.Date), 0).UTC().Format(time.RFC3339)
	case *pb.TermV2_Bytes:
		return "hex:" + hex.EncodeToString(c.Bytes)
	case *pb.TermV2_Bool:
		return strconv.FormatBool(c.Bool)
	case *pb.TermV2_Set:
		es := make([]string, len(c.Set.GetSet()))
		for i, e := range c.Set.GetSet() {
			es[i] = p.term(e)
		}
		return "[" + strings.Join(es, ", ") + "]"
	}
	if p.err == nil {
		p.err = fmt.Errorf("unknown term %T", t.GetContent())
	}
	return "?"
}

var binary = map[pb.OpBinary_Kind]string{
	pb.OpBinary_LessThan:       "%s < %s",
	pb.OpBinary_GreaterThan:    "%s > %s",
	pb.OpBinary_LessOrEqual:    "%s <= %s",
	pb.OpBinary_GreaterOrEqual: "%s >= %s",
	pb.OpBinary_Equal:          "%s == %s",
	pb.OpBinary_Contains:       "%s.contains(%s)",
	pb.OpBinary_Prefix:         "%s.starts_with(%s)",
	pb.OpBinary_Suffix:         "%s.ends_with(%s)",
	pb.OpBinary_Regex:          "%s.matches(%s)",
	pb.OpBinary_Add:            "%s + %s",
	pb.OpBinary_Sub:            "%s - %s",
	pb.OpBinary_Mul:            "%s * %s",
	pb.OpBinary_Div:            "%s / %s",
	pb.OpBinary_And:            "%s && %s",
	pb.OpBinary_Or:             "%s || %s",
	pb.OpBinary_Intersection:   "%s.intersection(%s)",
	pb.OpBinary_Union:          "%s.union(%s)",
}

func (p *printer) expr(e *pb.ExpressionV2) string {
	var stack []string
	pop := func() string {
		if len(stack) == 0 {
			if p.err == nil {
				p.err = fmt.Errorf("expression stack underflow")
			}
			return "?"
		}
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		return s
	}
	for _, op := range e.GetOps() {
		switch c := op.GetContent().(type) {
		case *pb.Op_Value:
			stack = append(stack, p.term(c.Value))
		case *pb.Op_Unary:
			v := pop()
			switch c.Unary.GetKind() {
			case pb.OpUnary_Negate:
				stack = append(stack, "!"+v)
			case pb.OpUnary_Parens:
				stack = append(stack, "("+v+")")
			case pb.OpUnary_Length:
				stack = append(stack, v+".length()")
			}
		case *pb.Op_Binary:
			r, l := pop(), pop()
			stack = append(stack, fmt.Sprintf(binary[c.Binary.GetKind()], l, r))
		}
	}
	if len(stack) != 1 {
		if p.err == nil {
			p.err = fmt.Errorf("expression leaves %d values", len(stack))
		}
		return "?"
	}
	return stack[0]
}
