package mint

import (
	"fmt"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"
	"github.com/biscuit-auth/biscuit-go/v2/datalog"
	"google.golang.org/protobuf/encoding/protowire"
)

// This file writes the protobuf encoding of a Biscuit v3 block (schema
// biscuit-go/v2/pb) straight from biscuit-go's Go structs, without the
// intermediate datalog and pb values biscuit-go's builder allocates. Symbols
// are numbered in the order biscuit-go's converters insert them and fields
// are written in field-number order, so the bytes equal those biscuit-go's
// builder produces for the same facts and checks (encode_test.go holds
// that).

// Field numbers of biscuit.proto (schema v3.0).
const (
	fBlockSymbols  = 1
	fBlockContext  = 2
	fBlockVersion  = 3
	fBlockFacts    = 4
	fBlockChecks   = 6
	fFactPredicate = 1
	fPredName      = 1
	fPredTerms     = 2
	fRuleHead      = 1
	fRuleBody      = 2
	fRuleExprs     = 3
	fCheckQueries  = 1
	fExprOps       = 1
	fOpValue       = 1
	fOpUnary       = 2
	fOpBinary      = 3
	fOpKind        = 1
	fTermVariable  = 1
	fTermInteger   = 2
	fTermString    = 3
	fTermDate      = 4
	fTermBytes     = 5
	fTermBool      = 6
	fTermSet       = 7
	fSetElems      = 1

	fBiscuitRootKeyID = 1
	fBiscuitAuthority = 2
	fBiscuitProof     = 4
	fSignedBlock      = 1
	fSignedNextKey    = 2
	fSignedSignature  = 3
	fKeyAlgorithm     = 1
	fKeyKey           = 2
	fProofNextSecret  = 1

	schemaVersion = 3
	symbolOffset  = 1024 // first index of a block's own symbols
)

// binaryKinds maps biscuit-go's BinaryOp to the OpBinary.Kind of the wire
// format. Operators outside token.md §6 (regex, *, /) are absent: the
// encoder refuses them.
var binaryKinds = map[biscuit.BinaryOp]uint64{
	biscuit.BinaryLessThan:       0,
	biscuit.BinaryGreaterThan:    1,
	biscuit.BinaryLessOrEqual:    2,
	biscuit.BinaryGreaterOrEqual: 3,
	biscuit.BinaryEqual:          4,
	biscuit.BinaryContains:       5,
	biscuit.BinaryPrefix:         6,
	biscuit.BinarySuffix:         7,
	biscuit.BinaryAdd:            9,
	biscuit.BinarySub:            10,
	biscuit.BinaryAnd:            13,
	biscuit.BinaryOr:             14,
	biscuit.BinaryIntersection:   15,
	biscuit.BinaryUnion:          16,
}

// unaryKinds maps biscuit-go's UnaryOp to OpUnary.Kind.
var unaryKinds = map[biscuit.UnaryOp]uint64{
	biscuit.UnaryNegate: 0,
	biscuit.UnaryParens: 1,
	biscuit.UnaryLength: 2,
}

// defaultSymbols indexes the symbols every Biscuit token shares.
var defaultSymbols = func() map[string]uint64 {
	m := make(map[string]uint64, len(datalog.DEFAULT_SYMBOLS))
	for i, s := range datalog.DEFAULT_SYMBOLS {
		m[s] = uint64(i)
	}
	return m
}()

// blockEncoder accumulates one block. It is reused through a pool: reset
// clears it without freeing its buffers.
type blockEncoder struct {
	syms  []string          // the block's own symbols, in insertion order
	index map[string]uint64 // symbol -> wire index, own symbols only
	body  []byte            // fields 4 and 6: facts and checks
	block []byte            // the finished block, followed while signing by alg ‖ next key
	err   error             // first encoding error
}

func newBlockEncoder() *blockEncoder {
	return &blockEncoder{index: make(map[string]uint64, 64)}
}

func (e *blockEncoder) reset() {
	e.syms = e.syms[:0]
	clear(e.index)
	e.body = e.body[:0]
	e.block = e.block[:0]
	e.err = nil
}

func (e *blockEncoder) fail(format string, args ...any) {
	if e.err == nil {
		e.err = fmt.Errorf(format, args...)
	}
}

// sym returns the wire index of s, adding s to the block's table.
func (e *blockEncoder) sym(s string) uint64 {
	if i, ok := defaultSymbols[s]; ok {
		return i
	}
	if i, ok := e.index[s]; ok {
		return i
	}
	i := uint64(symbolOffset + len(e.syms))
	e.syms = append(e.syms, s)
	e.index[s] = i
	return i
}

// The intern functions add symbols in the order biscuit-go's convert
// methods do (a predicate's terms before its name), so that tables and
// indices match the builder's.

func (e *blockEncoder) internTerm(t biscuit.Term) {
	switch t := t.(type) {
	case biscuit.String:
		e.sym(string(t))
	case biscuit.Variable:
		e.sym(string(t))
	case biscuit.Set:
		for _, x := range t {
			e.internTerm(x)
		}
	}
}

func (e *blockEncoder) internPred(p biscuit.Predicate) {
	for _, t := range p.IDs {
		e.internTerm(t)
	}
	e.sym(p.Name)
}

func (e *blockEncoder) internRule(r biscuit.Rule) {
	e.internPred(r.Head)
	for _, p := range r.Body {
		e.internPred(p)
	}
	for _, x := range r.Expressions {
		for _, op := range x {
			if v, ok := op.(biscuit.Value); ok {
				e.internTerm(v.Term)
			}
		}
	}
}

// addFact appends field 4 (FactV2) to the body.
func (e *blockEncoder) addFact(f biscuit.Fact) {
	e.internPred(f.Predicate)
	at := e.open(fBlockFacts)
	e.predicate(fFactPredicate, f.Predicate)
	e.close(at)
}

// addCheck appends field 6 (CheckV2) to the body.
func (e *blockEncoder) addCheck(c biscuit.Check) {
	for _, q := range c.Queries {
		e.internRule(q)
	}
	at := e.open(fBlockChecks)
	for _, q := range c.Queries {
		q1 := e.open(fCheckQueries)
		e.predicate(fRuleHead, q.Head)
		for _, p := range q.Body {
			e.predicate(fRuleBody, p)
		}
		for _, x := range q.Expressions {
			xa := e.open(fRuleExprs)
			for _, op := range x {
				e.op(op)
			}
			e.close(xa)
		}
		e.close(q1)
	}
	e.close(at)
}

func (e *blockEncoder) predicate(field protowire.Number, p biscuit.Predicate) {
	at := e.open(field)
	e.body = protowire.AppendTag(e.body, fPredName, protowire.VarintType)
	e.body = protowire.AppendVarint(e.body, e.sym(p.Name))
	for _, t := range p.IDs {
		e.term(fPredTerms, t)
	}
	e.close(at)
}

func (e *blockEncoder) op(op biscuit.Op) {
	at := e.open(fExprOps)
	switch op := op.(type) {
	case biscuit.Value:
		e.term(fOpValue, op.Term)
	case biscuit.UnaryOp:
		k, ok := unaryKinds[op]
		if !ok {
			e.fail("unsupported unary operator %d", op)
		}
		u := e.open(fOpUnary)
		e.body = protowire.AppendTag(e.body, fOpKind, protowire.VarintType)
		e.body = protowire.AppendVarint(e.body, k)
		e.close(u)
	case biscuit.BinaryOp:
		k, ok := binaryKinds[op]
		if !ok {
			e.fail("unsupported binary operator %d", op)
		}
		b := e.open(fOpBinary)
		e.body = protowire.AppendTag(e.body, fOpKind, protowire.VarintType)
		e.body = protowire.AppendVarint(e.body, k)
		e.close(b)
	default:
		e.fail("unsupported operation %T", op)
	}
	e.close(at)
}

func (e *blockEncoder) term(field protowire.Number, t biscuit.Term) {
	at := e.open(field)
	switch t := t.(type) {
	case biscuit.Variable:
		e.body = protowire.AppendTag(e.body, fTermVariable, protowire.VarintType)
		e.body = protowire.AppendVarint(e.body, uint64(uint32(e.sym(string(t)))))
	case biscuit.Integer:
		e.body = protowire.AppendTag(e.body, fTermInteger, protowire.VarintType)
		e.body = protowire.AppendVarint(e.body, uint64(int64(t)))
	case biscuit.String:
		e.body = protowire.AppendTag(e.body, fTermString, protowire.VarintType)
		e.body = protowire.AppendVarint(e.body, e.sym(string(t)))
	case biscuit.Date:
		e.body = protowire.AppendTag(e.body, fTermDate, protowire.VarintType)
		e.body = protowire.AppendVarint(e.body, uint64(timeOf(t).Unix()))
	case biscuit.Bytes:
		e.body = protowire.AppendTag(e.body, fTermBytes, protowire.BytesType)
		e.body = protowire.AppendBytes(e.body, t)
	case biscuit.Bool:
		e.body = protowire.AppendTag(e.body, fTermBool, protowire.VarintType)
		e.body = protowire.AppendVarint(e.body, protowire.EncodeBool(bool(t)))
	case biscuit.Set:
		if len(t) == 0 {
			e.fail("empty set")
		}
		s := e.open(fTermSet)
		for _, x := range t {
			if x.Type() != t[0].Type() || x.Type() == biscuit.TermTypeSet || x.Type() == biscuit.TermTypeVariable {
				e.fail("set elements must be non-variable, non-set terms of one type")
			}
			e.term(fSetElems, x)
		}
		e.close(s)
	default:
		e.fail("unsupported term %T", t)
	}
	e.close(at)
}

// open appends the tag of a length-delimited field and one byte reserved
// for its length; close writes the length, widening the reservation when
// the message is 128 bytes or longer.
func (e *blockEncoder) open(field protowire.Number) int {
	e.body = protowire.AppendTag(e.body, field, protowire.BytesType)
	e.body = append(e.body, 0)
	return len(e.body)
}

func (e *blockEncoder) close(start int) {
	n := len(e.body) - start
	if n < 0x80 {
		e.body[start-1] = byte(n)
		return
	}
	w := protowire.SizeVarint(uint64(n))
	e.body = append(e.body, make([]byte, w-1)...)
	copy(e.body[start+w-1:], e.body[start:start+n])
	protowire.AppendVarint(e.body[:start-1], uint64(n))
}

// finish writes the block: symbols, context, version, then the body.
func (e *blockEncoder) finish() []byte {
	b := e.block[:0]
	for _, s := range e.syms {
		b = protowire.AppendTag(b, fBlockSymbols, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	// biscuit-go always writes an empty context; keep its bytes.
	b = protowire.AppendTag(b, fBlockContext, protowire.BytesType)
	b = protowire.AppendVarint(b, 0)
	b = protowire.AppendTag(b, fBlockVersion, protowire.VarintType)
	b = protowire.AppendVarint(b, schemaVersion)
	b = append(b, e.body...)
	e.block = b
	return b
}
