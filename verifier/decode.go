package verifier

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/biscuit-auth/biscuit-go/v2/pb"
	"google.golang.org/protobuf/encoding/protowire"
)

// This file turns untrusted bytes into the decoded token (datalog.go):
// strict decoding of the Biscuit v3.0 protobuf schema (biscuit-go/v2/pb,
// biscuit.proto), symbol resolution and the structural limits of token.md
// §8. It knows nothing of writ's vocabulary (compile.go) and verifies no
// signature (chain.go).
//
// It reads the wire format with protowire rather than proto.Unmarshal
// into the pb types: that is several times faster (proto decodes oneofs
// through reflect, about 15% of the cost of verifying four signatures)
// and lets the decoder be stricter. What it accepts is what the pb-based
// reference decoder of decode_ref_test.go accepts (unknown fields through
// ProtoReflect().GetUnknown()), except that it also refuses a singular
// field or oneof given twice, which proto would merge or overwrite
// (errRepeatedField). FuzzDecoders holds the two together.
//
// Refusals: any field outside the schema, a known field with another wire
// type, a block version other than 3 or an enum value outside v3.0 is
// unsupported; bad wire data, missing required fields, bad key or
// signature sizes, undefined or repeated symbols, empty, mixed or
// repeating sets and invalid expression stacks are malformed; anything
// over a limit is limits_exceeded. Counts are checked before anything is
// allocated for them.

// Field numbers of biscuit.proto, schema v3.0.
const (
	fBiscuitRootKeyID = 1
	fBiscuitAuthority = 2
	fBiscuitBlocks    = 3
	fBiscuitProof     = 4

	fSignedBlock     = 1
	fSignedNextKey   = 2
	fSignedSignature = 3

	fKeyAlgorithm = 1
	fKeyKey       = 2

	fProofNextSecret     = 1
	fProofFinalSignature = 2

	fBlockSymbols = 1
	fBlockContext = 2
	fBlockVersion = 3
	fBlockFacts   = 4
	fBlockRules   = 5
	fBlockChecks  = 6

	fFactPredicate = 1

	fRuleHead        = 1
	fRuleBody        = 2
	fRuleExpressions = 3

	fCheckQueries = 1

	fPredName  = 1
	fPredTerms = 2

	fTermVariable = 1
	fTermInteger  = 2
	fTermString   = 3
	fTermDate     = 4
	fTermBytes    = 5
	fTermBool     = 6
	fTermSet      = 7

	fSetElements = 1

	fExprOps = 1

	fOpValue  = 1
	fOpUnary  = 2
	fOpBinary = 3

	fOpKind = 1
)

// errRepeatedField is wrapped (with ErrMalformed) when a singular field or
// a oneof appears twice: valid protobuf, but no Biscuit implementation
// writes it, and it would let two byte strings mean one token.
var errRepeatedField = errors.New("singular field repeated")

func repeated(what string) error {
	return fmt.Errorf("%w: %s: %w", ErrMalformed, what, errRepeatedField)
}

// wireField is one field of a message.
type wireField struct {
	num protowire.Number
	typ protowire.Type
	v   uint64 // VarintType
	b   []byte // BytesType; aliases the input
}

func (f *wireField) is(num protowire.Number, typ protowire.Type) bool {
	return f.num == num && f.typ == typ
}

// Wire errors of nextField. They are constant: a refused token costs no
// formatting.
var (
	errWireTruncated = fmt.Errorf("%w: protobuf: truncated or invalid varint", ErrMalformed)
	errWireField     = fmt.Errorf("%w: protobuf: invalid field number or wire type", ErrMalformed)
)

// varint decodes a varint at the front of b, the one-byte case inline.
func varint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return protowire.ConsumeVarint(b)
}

// nextField reads the field at the front of *buf. Fields of the other
// wire types (fixed, groups) are consumed and returned with their type;
// no v3.0 field has them, so callers refuse them as unknown.
func nextField(buf *[]byte) (f wireField, err error) {
	b := *buf
	tag, n := varint(b)
	if n < 0 {
		return f, errWireTruncated
	}
	b = b[n:]
	f.num, f.typ = protowire.Number(tag>>3), protowire.Type(tag&7)
	if tag>>3 < uint64(protowire.MinValidNumber) || tag>>3 > math.MaxInt32 { // as proto does
		return f, errWireField
	}
	switch f.typ {
	case protowire.VarintType:
		f.v, n = varint(b)
		if n < 0 {
			return f, errWireTruncated
		}
	case protowire.BytesType:
		var l uint64
		l, n = varint(b)
		if n < 0 || l > uint64(len(b)-n) {
			return f, errWireTruncated
		}
		f.b = b[n : n+int(l) : n+int(l)]
		n += int(l)
	default:
		n = protowire.ConsumeFieldValue(f.num, f.typ, b)
		if n < 0 {
			return f, malformed("protobuf: %v", protowire.ParseError(n))
		}
	}
	*buf = b[n:]
	return f, nil
}

// decodeToken decodes data. The token it returns aliases data (block
// bytes, keys, signatures) but none of its strings do.
func decodeToken(data []byte, lim *Limits) (*token, error) {
	if len(data) == 0 {
		return nil, malformed("empty token")
	}
	if len(data) > lim.MaxTokenBytes {
		return nil, overLimit("token is %d bytes, limit %d", len(data), lim.MaxTokenBytes)
	}
	t := &token{}
	var authority, proof []byte
	haveAuthority, haveProof := false, false
	nblocks := 0
	var unk error
	for buf := data; len(buf) > 0; {
		f, err := nextField(&buf)
		if err != nil {
			return nil, err
		}
		switch {
		case f.is(fBiscuitRootKeyID, protowire.VarintType):
			if t.hasRootKeyID {
				return nil, repeated("rootKeyId")
			}
			t.hasRootKeyID, t.rootKeyID = true, uint32(f.v)
		case f.is(fBiscuitAuthority, protowire.BytesType):
			if haveAuthority {
				return nil, repeated("authority")
			}
			haveAuthority, authority = true, f.b
		case f.is(fBiscuitBlocks, protowire.BytesType):
			nblocks++
		case f.is(fBiscuitProof, protowire.BytesType):
			if haveProof {
				return nil, repeated("proof")
			}
			haveProof, proof = true, f.b
		default:
			if unk == nil {
				unk = unsupported("unknown field %d in container", f.num)
			}
			continue
		}
	}
	if unk != nil {
		return nil, unk
	}
	if !haveAuthority {
		return nil, malformed("no authority block")
	}
	if !haveProof {
		return nil, malformed("no proof")
	}
	if n := 1 + nblocks; n > lim.MaxBlocks {
		return nil, overLimit("%d blocks, limit %d", n, lim.MaxBlocks)
	}
	t.blocks = make([]block, 1+nblocks)
	if err := decodeSigned(authority, &t.blocks[0]); err != nil {
		return nil, fmt.Errorf("block 0: %w", err)
	}
	i := 1
	for buf := data; len(buf) > 0; {
		f, _ := nextField(&buf) // validated above
		if f.is(fBiscuitBlocks, protowire.BytesType) {
			if err := decodeSigned(f.b, &t.blocks[i]); err != nil {
				return nil, fmt.Errorf("block %d: %w", i, err)
			}
			i++
		}
	}
	if err := decodeProof(proof, t); err != nil {
		return nil, err
	}
	d := decoder{lim: lim, tok: t}
	d.allocSlabs()
	for i := range t.blocks {
		if err := d.block(i); err != nil {
			return nil, fmt.Errorf("block %d: %w", i, err)
		}
	}
	t.symbols = d.table
	return t, nil
}

// decodeSigned decodes a SignedBlock and its PublicKey.
func decodeSigned(data []byte, b *block) error {
	var key []byte
	haveBlock, haveKey, haveSig := false, false, false
	var unk error
	for buf := data; len(buf) > 0; {
		f, err := nextField(&buf)
		if err != nil {
			return err
		}
		switch {
		case f.is(fSignedBlock, protowire.BytesType):
			if haveBlock {
				return repeated("block")
			}
			haveBlock, b.data = true, f.b
		case f.is(fSignedNextKey, protowire.BytesType):
			if haveKey {
				return repeated("nextKey")
			}
			haveKey, key = true, f.b
		case f.is(fSignedSignature, protowire.BytesType):
			if haveSig {
				return repeated("signature")
			}
			haveSig, b.sig = true, f.b
		default:
			// Third-party blocks carry externalSignature (field 4).
			if unk == nil {
				unk = unsupported("unknown field %d in signed block (third-party block?)", f.num)
			}
			continue
		}
	}
	if unk != nil {
		return unk
	}
	if !haveBlock || !haveKey || !haveSig {
		return malformed("signed block misses a required field")
	}
	var alg uint64
	haveAlg, haveKeyBytes := false, false
	for buf := key; len(buf) > 0; {
		f, err := nextField(&buf)
		if err != nil {
			return err
		}
		switch {
		case f.is(fKeyAlgorithm, protowire.VarintType):
			if haveAlg {
				return repeated("algorithm")
			}
			haveAlg, alg = true, f.v
		case f.is(fKeyKey, protowire.BytesType):
			if haveKeyBytes {
				return repeated("key")
			}
			haveKeyBytes, b.nextKey = true, f.b
		default:
			if unk == nil {
				unk = unsupported("unknown field %d in next key", f.num)
			}
			continue
		}
	}
	if unk != nil {
		return unk
	}
	if !haveAlg || !haveKeyBytes {
		return malformed("next key misses a required field")
	}
	if a := pb.PublicKey_Algorithm(int32(alg)); a != pb.PublicKey_Ed25519 {
		return unsupported("key algorithm %d", a)
	}
	if len(b.nextKey) != 32 {
		return malformed("next key is %d bytes, want 32", len(b.nextKey))
	}
	if len(b.sig) != 64 {
		return malformed("signature is %d bytes, want 64", len(b.sig))
	}
	return nil
}

func decodeProof(data []byte, t *token) error {
	var secret, final []byte
	n := 0
	var unk error
	for buf := data; len(buf) > 0; {
		f, err := nextField(&buf)
		if err != nil {
			return err
		}
		switch {
		case f.is(fProofNextSecret, protowire.BytesType):
			secret = f.b
		case f.is(fProofFinalSignature, protowire.BytesType):
			final = f.b
		default:
			if unk == nil {
				unk = unsupported("unknown field %d in proof", f.num)
			}
			continue
		}
		if n++; n > 1 {
			return repeated("proof content")
		}
	}
	if unk != nil {
		return unk
	}
	switch {
	case secret != nil:
		if len(secret) != 32 {
			return malformed("proof secret is %d bytes, want 32", len(secret))
		}
		t.nextSecret = secret
	case final != nil:
		if len(final) != 64 {
			return malformed("final signature is %d bytes, want 64", len(final))
		}
		t.finalSig = final
	default:
		return malformed("empty proof")
	}
	return nil
}

// decoder resolves symbols and checks limits across the blocks of one
// token. Block i sees the default symbols and the symbols of blocks 0…i.
type decoder struct {
	lim   *Limits
	tok   *token
	table []string            // symbols of the blocks decoded so far
	seen  map[string]struct{} // the same, once there are many

	// Slabs the decoded structures are cut from: a few allocations per
	// token instead of one per predicate, term and expression.
	terms  []term
	preds  []predicate
	rules  []rule
	checks []check
	ops    []op
	exprs  [][]op
	vals   []value
	sets   [][]value // set headers, for value.set
}

// slabCounts counts what the blocks of a token need from each slab. It
// walks the wire format without checking it (decoding does), so its
// counts are bounded by the input's length: every counted element takes
// at least two bytes.
type slabCounts struct{ terms, preds, rules, checks, ops, exprs, vals, sets int }

func (c *slabCounts) block(data []byte) {
	for buf := data; len(buf) > 0; {
		f, err := nextField(&buf)
		if err != nil {
			return
		}
		switch {
		case f.is(fBlockFacts, protowire.BytesType):
			c.preds++
			for fb := f.b; len(fb) > 0; {
				g, err := nextField(&fb)
				if err != nil {
					break
				}
				if g.is(fFactPredicate, protowire.BytesType) {
					c.pred(g.b)
				}
			}
		case f.is(fBlockRules, protowire.BytesType):
			c.rule(f.b)
		case f.is(fBlockChecks, protowire.BytesType):
			c.checks++
			for cb := f.b; len(cb) > 0; {
				g, err := nextField(&cb)
				if err != nil {
					break
				}
				if g.is(fCheckQueries, protowire.BytesType) {
					c.rule(g.b)
				}
			}
		}
	}
}

func (c *slabCounts) rule(data []byte) {
	c.rules++
	for buf := data; len(buf) > 0; {
		f, err := nextField(&buf)
		if err != nil {
			return
		}
		switch {
		case f.is(fRuleHead, protowire.BytesType):
			c.pred(f.b)
		case f.is(fRuleBody, protowire.BytesType):
			c.preds++
			c.pred(f.b)
		case f.is(fRuleExpressions, protowire.BytesType):
			c.exprs++
			for eb := f.b; len(eb) > 0; {
				g, err := nextField(&eb)
				if err != nil {
					break
				}
				if !g.is(fExprOps, protowire.BytesType) {
					continue
				}
				c.ops++
				for ob := g.b; len(ob) > 0; {
					h, err := nextField(&ob)
					if err != nil {
						break
					}
					if h.is(fOpValue, protowire.BytesType) {
						c.term(h.b)
					}
				}
			}
		}
	}
}

func (c *slabCounts) pred(data []byte) {
	for buf := data; len(buf) > 0; {
		f, err := nextField(&buf)
		if err != nil {
			return
		}
		if f.is(fPredTerms, protowire.BytesType) {
			c.terms++
			c.term(f.b)
		}
	}
}

func (c *slabCounts) term(data []byte) {
	for buf := data; len(buf) > 0; {
		f, err := nextField(&buf)
		if err != nil {
			return
		}
		if !f.is(fTermSet, protowire.BytesType) {
			continue
		}
		c.sets++
		for sb := f.b; len(sb) > 0; {
			g, err := nextField(&sb)
			if err != nil {
				break
			}
			if g.is(fSetElements, protowire.BytesType) {
				c.vals++
			}
		}
	}
}

// allocSlabs sizes the slabs for every block of the token at once.
func (d *decoder) allocSlabs() {
	var c slabCounts
	for i := range d.tok.blocks {
		c.block(d.tok.blocks[i].data)
	}
	d.terms = make([]term, c.terms)
	d.preds = make([]predicate, c.preds)
	d.rules = make([]rule, c.rules)
	d.checks = make([]check, c.checks)
	d.ops = make([]op, c.ops)
	d.exprs = make([][]op, c.exprs)
	d.vals = make([]value, c.vals)
	d.sets = make([][]value, c.sets)
}

// push returns the next element of a run of n elements that started at
// *start, taking it from *slab. Runs are contiguous: nothing else takes
// from the slab while one is open. Should the counts of allocSlabs fall
// short, the run moves to a fresh slab.
func push[T any](slab *[]T, start *[]T, n int) *T {
	if len(*slab) == 0 {
		fresh := make([]T, n+64)
		copy(fresh, (*start)[:n])
		*start, *slab = fresh, fresh[n:]
	}
	p := &(*slab)[0]
	*slab = (*slab)[1:]
	return p
}

// take cuts n zeroed elements off the front of *slab. The slabs are sized
// by allocSlabs; should a count fall short, it allocates.
func take[T any](slab *[]T, n int) []T {
	if n == 0 {
		return nil
	}
	if n > len(*slab) {
		return make([]T, n)
	}
	out := (*slab)[:n:n]
	*slab = (*slab)[n:]
	return out
}

// defineSymbol adds a block's symbol, refusing repeats of default or
// earlier symbols. Small tables are scanned; a map takes over past 64.
func (d *decoder) defineSymbol(s string) bool {
	if _, dup := defaultSymbolIndex[s]; dup {
		return false
	}
	if d.seen != nil {
		if _, dup := d.seen[s]; dup {
			return false
		}
		d.seen[s] = struct{}{}
	} else {
		for _, x := range d.table {
			if x == s {
				return false
			}
		}
		if len(d.table) == 64 {
			d.seen = make(map[string]struct{}, 128)
			for _, x := range d.table {
				d.seen[x] = struct{}{}
			}
			d.seen[s] = struct{}{}
		}
	}
	d.table = append(d.table, s)
	return true
}

// symbol resolves a symbol index visible to the block being decoded.
func (d *decoder) symbol(id uint64) (string, bool) {
	if id < uint64(len(defaultSymbols)) {
		return defaultSymbols[id], true
	}
	if id >= symbolOffset && id-symbolOffset < uint64(len(d.table)) {
		return d.table[id-symbolOffset], true
	}
	return "", false
}

func (d *decoder) block(i int) error {
	b := &d.tok.blocks[i]
	var nsym, symBytes, nfacts, nrules, nchecks int
	var version uint64
	haveVersion, haveContext := false, false
	var unk error
	for buf := b.data; len(buf) > 0; {
		f, err := nextField(&buf)
		if err != nil {
			return err
		}
		switch {
		case f.is(fBlockSymbols, protowire.BytesType):
			nsym++
			symBytes += len(f.b)
		case f.is(fBlockContext, protowire.BytesType):
			if haveContext {
				return repeated("context")
			}
			haveContext, b.context = true, string(f.b)
		case f.is(fBlockVersion, protowire.VarintType):
			if haveVersion {
				return repeated("version")
			}
			haveVersion, version = true, f.v
		case f.is(fBlockFacts, protowire.BytesType):
			nfacts++
		case f.is(fBlockRules, protowire.BytesType):
			nrules++
		case f.is(fBlockChecks, protowire.BytesType):
			nchecks++
		default:
			// v3.1+ adds scope (7) and publicKeys (8).
			if unk == nil {
				unk = unsupported("unknown field %d in block (schema newer than v3.0?)", f.num)
			}
			continue
		}
	}
	if unk != nil {
		return unk
	}
	if v := uint32(version); v != schemaVersion {
		return unsupported("block version %d, want %d", v, schemaVersion)
	}
	switch {
	case nsym > d.lim.MaxSymbolsPerBlock:
		return overLimit("%d symbols, limit %d", nsym, d.lim.MaxSymbolsPerBlock)
	case nfacts > d.lim.MaxAuthorityFacts:
		return overLimit("%d facts, limit %d", nfacts, d.lim.MaxAuthorityFacts)
	case nrules > d.lim.MaxAuthorityFacts:
		return overLimit("%d rules, limit %d", nrules, d.lim.MaxAuthorityFacts)
	case nchecks > d.lim.MaxChecksPerBlock:
		return overLimit("%d checks, limit %d", nchecks, d.lim.MaxChecksPerBlock)
	}

	// Symbols first: facts and checks may precede them on the wire. All of
	// a block's symbols share one string.
	var all strings.Builder
	all.Grow(symBytes)
	for buf := b.data; len(buf) > 0; {
		if f, _ := nextField(&buf); f.is(fBlockSymbols, protowire.BytesType) {
			all.Write(f.b)
		}
	}
	s, start := all.String(), len(d.table)
	for buf := b.data; len(buf) > 0; {
		f, _ := nextField(&buf)
		if !f.is(fBlockSymbols, protowire.BytesType) {
			continue
		}
		j := len(d.table) - start
		sym := s[:len(f.b)]
		s = s[len(f.b):]
		if len(sym) > d.lim.MaxStringBytes {
			return overLimit("symbol %d is %d bytes, limit %d", j, len(sym), d.lim.MaxStringBytes)
		}
		if !utf8.ValidString(sym) {
			return malformed("symbol %d is not UTF-8", j)
		}
		if !d.defineSymbol(sym) {
			return malformed("symbol %d is already defined", j)
		}
	}
	if len(d.table) > start {
		b.symbols = d.table[start:len(d.table):len(d.table)]
	}

	b.facts = take(&d.preds, nfacts)
	b.rules = take(&d.rules, nrules)
	b.checks = take(&d.checks, nchecks)
	var fi, ri, ci int
	for buf := b.data; len(buf) > 0; {
		f, _ := nextField(&buf)
		var err error
		switch {
		case f.is(fBlockFacts, protowire.BytesType):
			if err = d.fact(f.b, &b.facts[fi]); err != nil {
				err = fmt.Errorf("fact %d: %w", fi, err)
			}
			fi++
		case f.is(fBlockRules, protowire.BytesType):
			if err = d.rule(f.b, &b.rules[ri]); err != nil {
				err = fmt.Errorf("rule %d: %w", ri, err)
			}
			ri++
		case f.is(fBlockChecks, protowire.BytesType):
			if err = d.check(f.b, &b.checks[ci]); err != nil {
				err = fmt.Errorf("check %d: %w", ci, err)
			}
			ci++
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) fact(data []byte, out *predicate) error {
	var p []byte
	have := false
	var unk error
	for buf := data; len(buf) > 0; {
		f, err := nextField(&buf)
		if err != nil {
			return err
		}
		if !f.is(fFactPredicate, protowire.BytesType) {
			if unk == nil {
				unk = unsupported("unknown field %d in fact", f.num)
			}
			continue
		}
		if have {
			return repeated("fact predicate")
		}
		have, p = true, f.b
	}
	if unk != nil {
		return unk
	}
	if !have {
		return malformed("fact without predicate")
	}
	return d.predicate(p, out)
}

func (d *decoder) check(data []byte, out *check) error {
	var unk error
	start, n := d.rules, 0
	for buf := data; len(buf) > 0; {
		f, err := nextField(&buf)
		if err != nil {
			return err
		}
		if !f.is(fCheckQueries, protowire.BytesType) {
			if unk == nil {
				// v3.1 adds the check kind ("check all", field 2).
				unk = unsupported("unknown field %d in check (check all?)", f.num)
			}
			continue
		}
		if n == d.lim.MaxQueriesPerCheck {
			return overLimit("more than %d queries", d.lim.MaxQueriesPerCheck)
		}
		q := push(&d.rules, &start, n)
		if err := d.rule(f.b, q); err != nil {
			return fmt.Errorf("query %d: %w", n, err)
		}
		n++
	}
	if unk != nil {
		return unk
	}
	if n == 0 {
		return malformed("no query")
	}
	out.queries = start[:n:n]
	return nil
}

func (d *decoder) rule(data []byte, out *rule) error {
	var unk error
	haveHead := false
	body, nb := d.preds, 0
	exprs, ne := d.exprs, 0
	for buf := data; len(buf) > 0; {
		f, err := nextField(&buf)
		if err != nil {
			return err
		}
		switch {
		case f.is(fRuleHead, protowire.BytesType):
			if haveHead {
				return repeated("head")
			}
			haveHead = true
			if err := d.predicate(f.b, &out.head); err != nil {
				return fmt.Errorf("head: %w", err)
			}
		case f.is(fRuleBody, protowire.BytesType):
			if nb == d.lim.MaxPredicatesPerQuery {
				return overLimit("more than %d predicates", d.lim.MaxPredicatesPerQuery)
			}
			p := push(&d.preds, &body, nb)
			if err := d.predicate(f.b, p); err != nil {
				return fmt.Errorf("predicate %d: %w", nb, err)
			}
			nb++
		case f.is(fRuleExpressions, protowire.BytesType):
			e := push(&d.exprs, &exprs, ne)
			if err := d.expression(f.b, e, &out.ops); err != nil {
				return fmt.Errorf("expression %d: %w", ne, err)
			}
			ne++
		default:
			if unk == nil {
				// v3.1 adds rule scopes (field 4).
				unk = unsupported("unknown field %d in rule (scope?)", f.num)
			}
		}
	}
	if unk != nil {
		return unk
	}
	if !haveHead {
		return malformed("no head")
	}
	if nb > 0 {
		out.body = body[:nb:nb]
	}
	if ne > 0 {
		out.exprs = exprs[:ne:ne]
	}
	return nil
}

func (d *decoder) predicate(data []byte, out *predicate) error {
	var unk error
	var name uint64
	haveName := false
	terms, n := d.terms, 0
	for buf := data; len(buf) > 0; {
		f, err := nextField(&buf)
		if err != nil {
			return err
		}
		switch {
		case f.is(fPredName, protowire.VarintType):
			if haveName {
				return repeated("predicate name")
			}
			haveName, name = true, f.v
		case f.is(fPredTerms, protowire.BytesType):
			if n == d.lim.MaxTermsPerPredicate {
				return overLimit("more than %d terms", d.lim.MaxTermsPerPredicate)
			}
			t := push(&d.terms, &terms, n)
			if err := d.term(f.b, t, false); err != nil {
				return fmt.Errorf("term %d: %w", n, err)
			}
			n++
		default:
			if unk == nil {
				unk = unsupported("unknown field %d in predicate", f.num)
			}
		}
	}
	if unk != nil {
		return unk
	}
	if !haveName {
		return malformed("predicate without name")
	}
	s, ok := d.symbol(name)
	if !ok {
		return malformed("predicate name symbol %d undefined", name)
	}
	out.name = s
	if n > 0 {
		out.terms = terms[:n:n]
	}
	return nil
}

// term decodes a TermV2: exactly one of its oneof fields.
func (d *decoder) term(data []byte, out *term, inSet bool) error {
	var f wireField
	n := 0
	var unk error
	for buf := data; len(buf) > 0; {
		g, err := nextField(&buf)
		if err != nil {
			return err
		}
		switch {
		case g.is(fTermVariable, protowire.VarintType), g.is(fTermInteger, protowire.VarintType),
			g.is(fTermString, protowire.VarintType), g.is(fTermDate, protowire.VarintType),
			g.is(fTermBytes, protowire.BytesType), g.is(fTermBool, protowire.VarintType),
			g.is(fTermSet, protowire.BytesType):
		default:
			if unk == nil {
				unk = unsupported("unknown field %d in term (term type newer than v3.0?)", g.num)
			}
			continue
		}
		if n++; n > 1 {
			return repeated("term value")
		}
		f = g
	}
	if unk != nil {
		return unk
	}
	if n == 0 {
		return malformed("empty term")
	}
	out.slot = -1
	switch f.num {
	case fTermVariable:
		if inSet {
			return malformed("variable in a set")
		}
		if _, ok := d.symbol(uint64(uint32(f.v))); !ok {
			return malformed("variable symbol %d undefined", uint32(f.v))
		}
		out.isVar, out.sym = true, uint32(f.v)
	case fTermInteger:
		out.val = value{kind: kindInt, num: int64(f.v)}
	case fTermString:
		s, ok := d.symbol(f.v)
		if !ok {
			return malformed("string symbol %d undefined", f.v)
		}
		out.val = value{kind: kindString, str: s}
	case fTermDate:
		out.val = value{kind: kindDate, num: int64(f.v)}
	case fTermBytes:
		if len(f.b) > d.lim.MaxStringBytes {
			return overLimit("%d bytes, limit %d", len(f.b), d.lim.MaxStringBytes)
		}
		out.val = value{kind: kindBytes, str: string(f.b)}
	case fTermBool:
		out.val = value{kind: kindBool}
		if f.v != 0 {
			out.val.num = 1
		}
	case fTermSet:
		if inSet {
			return malformed("set in a set")
		}
		return d.set(f.b, out)
	}
	return nil
}

func (d *decoder) set(data []byte, out *term) error {
	var unk error
	elems, n := d.vals, 0
	for buf := data; len(buf) > 0; {
		f, err := nextField(&buf)
		if err != nil {
			return err
		}
		if !f.is(fSetElements, protowire.BytesType) {
			if unk == nil {
				unk = unsupported("unknown field %d in set", f.num)
			}
			continue
		}
		if n == d.lim.MaxSetElements {
			return overLimit("set of more than %d elements", d.lim.MaxSetElements)
		}
		var el term
		if err := d.term(f.b, &el, true); err != nil {
			return fmt.Errorf("set element %d: %w", n, err)
		}
		v := push(&d.vals, &elems, n)
		*v = el.val
		if v.kind != elems[0].kind {
			return malformed("set mixes element types")
		}
		for j := range n {
			if sameValue(&elems[j], v) {
				return malformed("set repeats an element")
			}
		}
		n++
	}
	if unk != nil {
		return unk
	}
	if n == 0 {
		return malformed("empty set")
	}
	hdr := &take(&d.sets, 1)[0]
	*hdr = elems[:n:n]
	*out = term{val: value{kind: kindSet, set: hdr}, slot: -1}
	return nil
}

// sameValue is equality of scalar values (kind and content).
func sameValue(a, b *value) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case kindString, kindBytes:
		return a.str == b.str
	case kindSet:
		return false // sets never nest
	default:
		return a.num == b.num
	}
}

func (d *decoder) expression(data []byte, out *[]op, ops *int) error {
	var unk error
	res, n, depth := d.ops, 0, 0
	for buf := data; len(buf) > 0; {
		f, err := nextField(&buf)
		if err != nil {
			return err
		}
		if !f.is(fExprOps, protowire.BytesType) {
			if unk == nil {
				unk = unsupported("unknown field %d in expression", f.num)
			}
			continue
		}
		if *ops++; *ops > d.lim.MaxOpsPerQuery {
			return overLimit("more than %d expression ops", d.lim.MaxOpsPerQuery)
		}
		o := push(&d.ops, &res, n)
		if err := d.op(f.b, o, &depth); err != nil {
			return fmt.Errorf("op %d: %w", n, err)
		}
		n++
	}
	if unk != nil {
		return unk
	}
	if depth != 1 {
		return malformed("expression leaves %d values, want 1", depth)
	}
	*out = res[:n:n]
	return nil
}

func (d *decoder) op(data []byte, out *op, depth *int) error {
	var f wireField
	n := 0
	var unk error
	for buf := data; len(buf) > 0; {
		g, err := nextField(&buf)
		if err != nil {
			return err
		}
		if !g.is(fOpValue, protowire.BytesType) && !g.is(fOpUnary, protowire.BytesType) && !g.is(fOpBinary, protowire.BytesType) {
			if unk == nil {
				unk = unsupported("unknown field %d in op", g.num)
			}
			continue
		}
		if n++; n > 1 {
			return repeated("op content")
		}
		f = g
	}
	if unk != nil {
		return unk
	}
	if n == 0 {
		return malformed("empty op")
	}
	if f.num == fOpValue {
		if err := d.term(f.b, &out.t, false); err != nil {
			return err
		}
		out.kind = opValue
		if *depth++; *depth > d.lim.MaxStackDepth {
			return overLimit("expression stack deeper than %d", d.lim.MaxStackDepth)
		}
		return nil
	}
	var kind uint64
	haveKind := false
	for buf := f.b; len(buf) > 0; {
		g, err := nextField(&buf)
		if err != nil {
			return err
		}
		if !g.is(fOpKind, protowire.VarintType) {
			if unk == nil {
				unk = unsupported("unknown field %d in operator", g.num)
			}
			continue
		}
		if haveKind {
			return repeated("operator kind")
		}
		haveKind, kind = true, g.v
	}
	if unk != nil {
		return unk
	}
	if !haveKind {
		return malformed("operator without kind")
	}
	// proto decodes enums as int32, keeping values outside the schema.
	code := int32(kind)
	if f.num == fOpUnary {
		if k := pb.OpUnary_Kind(code); k < pb.OpUnary_Negate || k > pb.OpUnary_Length {
			return unsupported("unary operator %d", code)
		}
		if *depth < 1 {
			return malformed("unary operator on an empty stack")
		}
		*out = op{kind: opUnary, code: code}
		return nil
	}
	k := pb.OpBinary_Kind(code)
	if k < pb.OpBinary_LessThan || k > pb.OpBinary_Union {
		// v3.1+ operators (bitwise, !=, …).
		return unsupported("binary operator %d", code)
	}
	if *depth < 2 {
		return malformed("binary operator without two operands")
	}
	*depth--
	switch k {
	case pb.OpBinary_Regex, pb.OpBinary_Mul, pb.OpBinary_Div:
		if d.tok.outOfSubset == nil {
			d.tok.outOfSubset = unsupported("operator %s", binaryNames[k])
		}
	}
	*out = op{kind: opBinary, code: code}
	return nil
}
