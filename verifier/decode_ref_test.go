package verifier

import (
	"fmt"
	"unicode/utf8"

	"github.com/biscuit-auth/biscuit-go/v2/pb"
	"google.golang.org/protobuf/proto"
)

// This file is the reference decoder the product decoder (decode.go) is
// held to: the same checks, written over google.golang.org/protobuf and
// biscuit-go's pb types (unknown fields via ProtoReflect().GetUnknown()).
// It is the straightforward way and too slow for first sight (proto's
// oneof decoding goes through reflect), hence decode.go. FuzzDecoders
// and TestDecodersAgree compare the two.

// refUnmarshalOptions: required fields are checked by hand (malformed);
// 12 levels cover the deepest v3.0 path (Block, CheckV2, RuleV2,
// ExpressionV2, Op, TermV2, TermSet, TermV2).
var refUnmarshalOptions = proto.UnmarshalOptions{AllowPartial: true, RecursionLimit: 12}

func refHasUnknown(m proto.Message) bool {
	return len(m.ProtoReflect().GetUnknown()) > 0
}

// refDecodeToken decodes data strictly: any field outside the Biscuit v3.0
// schema or a block version other than 3 is unsupported; missing required
// fields, bad sizes, dangling symbols, empty or mixed sets and invalid
// expression stacks are malformed; anything over lim is limits_exceeded.
// It checks in one pass and returns the first failure.
func refDecodeToken(data []byte, lim *Limits) (*token, error) {
	if len(data) == 0 {
		return nil, malformed("empty token")
	}
	if len(data) > lim.MaxTokenBytes {
		return nil, overLimit("token is %d bytes, limit %d", len(data), lim.MaxTokenBytes)
	}
	var c pb.Biscuit
	if err := refUnmarshalOptions.Unmarshal(data, &c); err != nil {
		return nil, malformed("protobuf: %v", err)
	}
	if refHasUnknown(&c) {
		return nil, unsupported("unknown field in container")
	}
	if c.Authority == nil {
		return nil, malformed("no authority block")
	}
	if c.Proof == nil {
		return nil, malformed("no proof")
	}
	if n := 1 + len(c.Blocks); n > lim.MaxBlocks {
		return nil, overLimit("%d blocks, limit %d", n, lim.MaxBlocks)
	}
	t := &token{
		hasRootKeyID: c.RootKeyId != nil,
		rootKeyID:    c.GetRootKeyId(),
		blocks:       make([]block, 1+len(c.Blocks)),
	}
	for i := range t.blocks {
		sb := c.Authority
		if i > 0 {
			sb = c.Blocks[i-1]
		}
		if err := refDecodeSigned(sb, &t.blocks[i]); err != nil {
			return nil, fmt.Errorf("block %d: %w", i, err)
		}
	}
	if refHasUnknown(c.Proof) {
		return nil, unsupported("unknown field in proof")
	}
	switch p := c.Proof.Content.(type) {
	case *pb.Proof_NextSecret:
		if len(p.NextSecret) != 32 {
			return nil, malformed("proof secret is %d bytes, want 32", len(p.NextSecret))
		}
		t.nextSecret = p.NextSecret
	case *pb.Proof_FinalSignature:
		if len(p.FinalSignature) != 64 {
			return nil, malformed("final signature is %d bytes, want 64", len(p.FinalSignature))
		}
		t.finalSig = p.FinalSignature
	default:
		return nil, malformed("empty proof")
	}
	d := refDecoder{lim: lim, tok: t, seen: map[string]struct{}{}}
	for i := range t.blocks {
		if err := d.block(i); err != nil {
			return nil, fmt.Errorf("block %d: %w", i, err)
		}
	}
	t.symbols = d.table
	return t, nil
}

// refDecodeSigned checks the container fields of one signed block.
func refDecodeSigned(sb *pb.SignedBlock, b *block) error {
	if sb == nil {
		return malformed("missing")
	}
	if refHasUnknown(sb) {
		// Third-party blocks carry externalSignature (field 4).
		return unsupported("unknown field in signed block (third-party block?)")
	}
	if sb.Block == nil || sb.NextKey == nil || sb.Signature == nil {
		return malformed("signed block misses a required field")
	}
	if refHasUnknown(sb.NextKey) {
		// A proto2 enum value outside the schema lands here too.
		return unsupported("unknown field or algorithm in next key")
	}
	if sb.NextKey.Algorithm == nil || sb.NextKey.Key == nil {
		return malformed("next key misses a required field")
	}
	if *sb.NextKey.Algorithm != pb.PublicKey_Ed25519 {
		return unsupported("key algorithm %d", *sb.NextKey.Algorithm)
	}
	if len(sb.NextKey.Key) != 32 {
		return malformed("next key is %d bytes, want 32", len(sb.NextKey.Key))
	}
	if len(sb.Signature) != 64 {
		return malformed("signature is %d bytes, want 64", len(sb.Signature))
	}
	b.data = sb.Block
	b.nextKey = sb.NextKey.Key
	b.sig = sb.Signature
	return nil
}

// decoder resolves symbols and checks limits across the blocks of one
// token. Block i sees the default symbols and the symbols of blocks 0…i.
type refDecoder struct {
	lim   *Limits
	tok   *token
	table []string
	seen  map[string]struct{}
}

func (d *refDecoder) block(i int) error {
	b := &d.tok.blocks[i]
	pbb := new(pb.Block)
	if err := refUnmarshalOptions.Unmarshal(b.data, pbb); err != nil {
		return malformed("protobuf: %v", err)
	}
	if refHasUnknown(pbb) {
		// v3.1+ adds scope (7) and publicKeys (8).
		return unsupported("unknown field in block (schema newer than v3.0?)")
	}
	if v := pbb.GetVersion(); v != schemaVersion {
		return unsupported("block version %d, want %d", v, schemaVersion)
	}
	if n := len(pbb.Symbols); n > d.lim.MaxSymbolsPerBlock {
		return overLimit("%d symbols, limit %d", n, d.lim.MaxSymbolsPerBlock)
	}
	for j, s := range pbb.Symbols {
		if len(s) > d.lim.MaxStringBytes {
			return overLimit("symbol %d is %d bytes, limit %d", j, len(s), d.lim.MaxStringBytes)
		}
		if !utf8.ValidString(s) {
			return malformed("symbol %d is not UTF-8", j)
		}
		if _, dup := defaultSymbolIndex[s]; dup {
			return malformed("symbol %d repeats a default symbol", j)
		}
		if _, dup := d.seen[s]; dup {
			return malformed("symbol %d is already defined", j)
		}
		d.seen[s] = struct{}{}
		d.table = append(d.table, s)
	}
	b.symbols = pbb.Symbols
	b.context = pbb.GetContext()

	if n := len(pbb.FactsV2); n > d.lim.MaxAuthorityFacts {
		return overLimit("%d facts, limit %d", n, d.lim.MaxAuthorityFacts)
	}
	if n := len(pbb.RulesV2); n > d.lim.MaxAuthorityFacts {
		return overLimit("%d rules, limit %d", n, d.lim.MaxAuthorityFacts)
	}
	if n := len(pbb.ChecksV2); n > d.lim.MaxChecksPerBlock {
		return overLimit("%d checks, limit %d", n, d.lim.MaxChecksPerBlock)
	}
	b.facts = make([]predicate, len(pbb.FactsV2))
	for j, f := range pbb.FactsV2 {
		if f == nil || refHasUnknown(f) {
			return unsupported("unknown field in fact %d", j)
		}
		if f.Predicate == nil {
			return malformed("fact %d has no predicate", j)
		}
		if err := d.predicate(f.Predicate, &b.facts[j]); err != nil {
			return fmt.Errorf("fact %d: %w", j, err)
		}
	}
	if len(pbb.RulesV2) > 0 {
		b.rules = make([]rule, len(pbb.RulesV2))
		for j, r := range pbb.RulesV2 {
			if err := d.rule(r, &b.rules[j]); err != nil {
				return fmt.Errorf("rule %d: %w", j, err)
			}
		}
	}
	b.checks = make([]check, len(pbb.ChecksV2))
	for j, c := range pbb.ChecksV2 {
		if err := d.check(c, &b.checks[j]); err != nil {
			return fmt.Errorf("check %d: %w", j, err)
		}
	}
	return nil
}

// symbol resolves a symbol index visible to the block being decoded.
func (d *refDecoder) symbol(id uint64) (string, bool) {
	if id < uint64(len(defaultSymbols)) {
		return defaultSymbols[id], true
	}
	if id >= symbolOffset && id-symbolOffset < uint64(len(d.table)) {
		return d.table[id-symbolOffset], true
	}
	return "", false
}

func (d *refDecoder) check(c *pb.CheckV2, out *check) error {
	if c == nil || refHasUnknown(c) {
		// v3.1 adds the check kind ("check all", field 2).
		return unsupported("unknown field in check (check all?)")
	}
	if len(c.Queries) == 0 {
		return malformed("no query")
	}
	if n := len(c.Queries); n > d.lim.MaxQueriesPerCheck {
		return overLimit("%d queries, limit %d", n, d.lim.MaxQueriesPerCheck)
	}
	out.queries = make([]rule, len(c.Queries))
	for i, q := range c.Queries {
		if err := d.rule(q, &out.queries[i]); err != nil {
			return fmt.Errorf("query %d: %w", i, err)
		}
	}
	return nil
}

func (d *refDecoder) rule(r *pb.RuleV2, out *rule) error {
	if r == nil || refHasUnknown(r) {
		// v3.1 adds rule scopes (field 4).
		return unsupported("unknown field in rule (scope?)")
	}
	if r.Head == nil {
		return malformed("no head")
	}
	if err := d.predicate(r.Head, &out.head); err != nil {
		return fmt.Errorf("head: %w", err)
	}
	if n := len(r.Body); n > d.lim.MaxPredicatesPerQuery {
		return overLimit("%d predicates, limit %d", n, d.lim.MaxPredicatesPerQuery)
	}
	out.body = make([]predicate, len(r.Body))
	for i, p := range r.Body {
		if p == nil {
			return malformed("predicate %d missing", i)
		}
		if err := d.predicate(p, &out.body[i]); err != nil {
			return fmt.Errorf("predicate %d: %w", i, err)
		}
	}
	ops := 0
	for _, e := range r.Expressions {
		if e != nil {
			ops += len(e.Ops)
		}
	}
	if ops > d.lim.MaxOpsPerQuery {
		return overLimit("%d expression ops, limit %d", ops, d.lim.MaxOpsPerQuery)
	}
	out.ops = ops
	if len(r.Expressions) > 0 {
		out.exprs = make([][]op, len(r.Expressions))
	}
	for i, e := range r.Expressions {
		if err := d.expression(e, &out.exprs[i]); err != nil {
			return fmt.Errorf("expression %d: %w", i, err)
		}
	}
	return nil
}

func (d *refDecoder) predicate(p *pb.PredicateV2, out *predicate) error {
	if refHasUnknown(p) {
		return unsupported("unknown field in predicate")
	}
	if p.Name == nil {
		return malformed("predicate without name")
	}
	name, ok := d.symbol(*p.Name)
	if !ok {
		return malformed("predicate name symbol %d undefined", *p.Name)
	}
	if n := len(p.Terms); n > d.lim.MaxTermsPerPredicate {
		return overLimit("%s: %d terms, limit %d", name, n, d.lim.MaxTermsPerPredicate)
	}
	out.name = name
	out.terms = make([]term, len(p.Terms))
	for i, t := range p.Terms {
		if err := d.term(t, &out.terms[i], false); err != nil {
			return fmt.Errorf("%s: term %d: %w", name, i, err)
		}
	}
	return nil
}

func (d *refDecoder) term(t *pb.TermV2, out *term, inSet bool) error {
	if t == nil {
		return malformed("missing term")
	}
	if refHasUnknown(t) {
		return unsupported("unknown field or term type")
	}
	switch c := t.Content.(type) {
	case *pb.TermV2_Variable:
		if inSet {
			return malformed("variable in a set")
		}
		_, ok := d.symbol(uint64(c.Variable))
		if !ok {
			return malformed("variable symbol %d undefined", c.Variable)
		}
		*out = term{isVar: true, sym: c.Variable, slot: -1}
	case *pb.TermV2_Integer:
		out.val = value{kind: kindInt, num: c.Integer}
	case *pb.TermV2_String_:
		s, ok := d.symbol(c.String_)
		if !ok {
			return malformed("string symbol %d undefined", c.String_)
		}
		out.val = value{kind: kindString, str: s}
	case *pb.TermV2_Date:
		out.val = value{kind: kindDate, num: int64(c.Date)}
	case *pb.TermV2_Bytes:
		if len(c.Bytes) > d.lim.MaxStringBytes {
			return overLimit("%d bytes, limit %d", len(c.Bytes), d.lim.MaxStringBytes)
		}
		out.val = value{kind: kindBytes, str: string(c.Bytes)}
	case *pb.TermV2_Bool:
		out.val = value{kind: kindBool}
		if c.Bool {
			out.val.num = 1
		}
	case *pb.TermV2_Set:
		if inSet {
			return malformed("set in a set")
		}
		return d.set(c.Set, out)
	default:
		return malformed("empty term")
	}
	if !out.isVar {
		out.slot = -1
	}
	return nil
}

func (d *refDecoder) set(s *pb.TermSet, out *term) error {
	if s == nil || refHasUnknown(s) {
		return unsupported("unknown field in set")
	}
	n := len(s.Set)
	if n == 0 {
		return malformed("empty set")
	}
	if n > d.lim.MaxSetElements {
		return overLimit("set of %d elements, limit %d", n, d.lim.MaxSetElements)
	}
	elems := make([]value, n)
	var el term
	for i, e := range s.Set {
		el = term{}
		if err := d.term(e, &el, true); err != nil {
			return fmt.Errorf("set element %d: %w", i, err)
		}
		elems[i] = el.val
		if elems[i].kind != elems[0].kind {
			return malformed("set mixes element types")
		}
		for j := 0; j < i; j++ {
			if sameValue(&elems[j], &elems[i]) {
				return malformed("set repeats an element")
			}
		}
	}
	*out = term{val: value{kind: kindSet, set: &elems}, slot: -1}
	return nil
}

// expression decodes one expression and checks its stack discipline:
// every operator has its operands, the stack never exceeds the limit and
// one value is left.
func (d *refDecoder) expression(e *pb.ExpressionV2, out *[]op) error {
	if e == nil || refHasUnknown(e) {
		return unsupported("unknown field in expression")
	}
	ops := make([]op, len(e.Ops))
	depth := 0
	for i, o := range e.Ops {
		if o == nil || refHasUnknown(o) {
			return unsupported("op %d: unknown field", i)
		}
		switch c := o.Content.(type) {
		case *pb.Op_Value:
			if err := d.term(c.Value, &ops[i].t, false); err != nil {
				return fmt.Errorf("op %d: %w", i, err)
			}
			ops[i].kind = opValue
			depth++
			if depth > d.lim.MaxStackDepth {
				return overLimit("expression stack deeper than %d", d.lim.MaxStackDepth)
			}
		case *pb.Op_Unary:
			if c.Unary == nil || refHasUnknown(c.Unary) {
				return unsupported("op %d: unknown unary operator", i)
			}
			if c.Unary.Kind == nil {
				return malformed("op %d: unary operator without kind", i)
			}
			if k := *c.Unary.Kind; k < pb.OpUnary_Negate || k > pb.OpUnary_Length {
				// Go's protobuf keeps unknown values of closed enums.
				return unsupported("op %d: unary operator %d", i, *c.Unary.Kind)
			}
			if depth < 1 {
				return malformed("op %d: unary operator on an empty stack", i)
			}
			ops[i] = op{kind: opUnary, code: int32(*c.Unary.Kind)}
		case *pb.Op_Binary:
			if c.Binary == nil || refHasUnknown(c.Binary) {
				return unsupported("op %d: unknown binary operator", i)
			}
			if c.Binary.Kind == nil {
				return malformed("op %d: binary operator without kind", i)
			}
			if k := *c.Binary.Kind; k < pb.OpBinary_LessThan || k > pb.OpBinary_Union {
				// v3.1+ operators (bitwise, !=, …).
				return unsupported("op %d: binary operator %d", i, *c.Binary.Kind)
			}
			if depth < 2 {
				return malformed("op %d: binary operator without two operands", i)
			}
			depth--
			k := *c.Binary.Kind
			switch k {
			case pb.OpBinary_Regex, pb.OpBinary_Mul, pb.OpBinary_Div:
				if d.tok.outOfSubset == nil {
					d.tok.outOfSubset = unsupported("operator %s", binaryNames[k])
				}
			}
			ops[i] = op{kind: opBinary, code: int32(k)}
		default:
			return malformed("op %d: empty", i)
		}
	}
	if depth != 1 {
		return malformed("expression leaves %d values, want 1", depth)
	}
	*out = ops
	return nil
}
