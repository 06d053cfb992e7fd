package attenuation

import (
	"crypto/rand"
	"fmt"
	"io"
	"slices"
	"time"

	biscuit "github.com/biscuit-auth/biscuit-go/v2"
	"github.com/biscuit-auth/biscuit-go/v2/datalog"
	"github.com/biscuit-auth/biscuit-go/v2/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/writ-dev/writ/spec"
)

// Restricter appends restriction blocks to tokens. The zero value is ready
// to use and reads the wall clock and crypto/rand; tests and callers with
// their own clock set the fields. A Restricter is safe for concurrent use
// when its Now and Rand are.
//
// Restricting happens on the holder's side, before a token is handed on:
// the clock only turns ExpireIn into an absolute expiry and never decides
// whether a token is valid.
type Restricter struct {
	// Now resolves ExpireIn. nil means time.Now.
	Now func() time.Time
	// Rand supplies the 32-byte seed of the new block's key pair. It must
	// be a cryptographically secure source; nil means crypto/rand.Reader.
	Rand io.Reader
}

// Restrict is Restricter{}.Restrict: it appends one block holding rs to
// token, resolving ExpireIn against time.Now.
func Restrict(token []byte, rs ...Restriction) ([]byte, error) {
	return Restricter{}.Restrict(token, rs...)
}

// Restrict returns a new serialized token: token followed by one block
// whose checks are rs, in order (one check per restriction, token.md §5).
// The result can never be allowed where token is denied, and its holder
// can restrict it further. token is never modified; the result does not
// share memory with it. The rootKeyId of token, when set, is kept.
//
// Errors wrap ErrNoRestrictions (no rs), ErrBadRestriction (an invalid
// restriction), ErrSealed (token has a final signature), ErrMalformed (not
// a decodable Biscuit v3 token) or ErrLimitExceeded (the input or the
// result outside the limits of limits.go).
func (rr Restricter) Restrict(token []byte, rs ...Restriction) ([]byte, error) {
	if len(rs) == 0 {
		return nil, ErrNoRestrictions
	}
	if len(rs) > MaxChecksPerBlock {
		return nil, fmt.Errorf("%w: %d restrictions in one block, at most %d", ErrLimitExceeded, len(rs), MaxChecksPerBlock)
	}
	for i, r := range rs {
		if err := r.Err(); err != nil {
			return nil, fmt.Errorf("restriction %d: %w", i, err)
		}
	}
	if len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: input token is %d bytes, at most %d", ErrLimitExceeded, len(token), MaxTokenBytes)
	}

	now := time.Now
	if rr.Now != nil {
		now = rr.Now
	}

	// The container is decoded here as well as by biscuit.Unmarshal below:
	// biscuit-go exposes neither the proof kind nor rootKeyId.
	var container pb.Biscuit
	if err := proto.Unmarshal(token, &container); err != nil {
		return nil, fmt.Errorf("%w: decode container: %w", ErrMalformed, err)
	}
	if container.GetProof().GetFinalSignature() != nil {
		return nil, ErrSealed
	}
	if len(container.GetProof().GetNextSecret()) != 32 {
		return nil, fmt.Errorf("%w: proof holds no 32-byte next secret", ErrMalformed)
	}
	if n := 2 + len(container.GetBlocks()); n > MaxBlocks {
		return nil, fmt.Errorf("%w: the attenuated token would have %d blocks, at most %d", ErrLimitExceeded, n, MaxBlocks)
	}
	zones, err := tokenZones(&container)
	if err != nil {
		return nil, err
	}
	checks, err := buildChecks(now(), zones, rs)
	if err != nil {
		return nil, err
	}

	tok, err := unmarshal(token)
	if err != nil {
		return nil, err
	}
	bb := tok.CreateBlock()
	for i, c := range checks {
		if err := bb.AddCheck(c); err != nil {
			return nil, fmt.Errorf("attenuation: add check %d: %w", i, err)
		}
	}
	rnd := rr.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	next, err := tok.Append(rnd, bb.Build())
	if err != nil {
		return nil, fmt.Errorf("attenuation: append block: %w", err)
	}
	body, err := next.Serialize()
	if err != nil {
		return nil, fmt.Errorf("attenuation: serialize: %w", err)
	}

	// biscuit-go rebuilds the container without rootKeyId. Field 1 first
	// is where a protobuf encoder writes it, and parsers accept any order.
	out := body
	if container.RootKeyId != nil {
		out = make([]byte, 0, len(body)+6)
		out = protowire.AppendTag(out, 1, protowire.VarintType)
		out = protowire.AppendVarint(out, uint64(*container.RootKeyId))
		out = append(out, body...)
	}
	if len(out) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: attenuated token is %d bytes, at most %d", ErrLimitExceeded, len(out), MaxTokenBytes)
	}
	return out, nil
}

// unmarshal wraps biscuit.Unmarshal, turning its errors and any panic on
// hostile input into ErrMalformed.
func unmarshal(token []byte) (tok *biscuit.Biscuit, err error) {
	defer func() {
		if p := recover(); p != nil {
			tok, err = nil, fmt.Errorf("%w: decode blocks: %v", ErrMalformed, p)
		}
	}()
	tok, err = biscuit.Unmarshal(token)
	if err != nil {
		return nil, fmt.Errorf("%w: decode blocks: %w", ErrMalformed, err)
	}
	return tok, nil
}

// buildChecks turns rs into checks and enforces the block-level limits.
// zones are the time zones the token already names.
func buildChecks(now time.Time, zones []string, rs []Restriction) ([]biscuit.Check, error) {
	checks := make([]biscuit.Check, len(rs))
	syms := make(map[string]struct{})
	for i, r := range rs {
		c, err := r.Check(now)
		if err != nil {
			return nil, fmt.Errorf("restriction %d: %w", i, err)
		}
		checks[i] = c
		for _, w := range r.windows {
			if !slices.Contains(zones, w.Zone) {
				zones = append(zones, w.Zone)
			}
		}
		addSymbols(syms, c)
	}
	if len(zones) > MaxTimeZones {
		return nil, fmt.Errorf("%w: the attenuated token would name %d distinct time zones, at most %d", ErrLimitExceeded, len(zones), MaxTimeZones)
	}
	if len(syms) > MaxSymbolsPerBlock {
		return nil, fmt.Errorf("%w: %d new symbols in one block, at most %d", ErrLimitExceeded, len(syms), MaxSymbolsPerBlock)
	}
	return checks, nil
}

// defaultSymbols are the symbols every Biscuit v3 token shares; a block
// never adds them to its own table.
var defaultSymbols = func() map[string]struct{} {
	m := make(map[string]struct{}, len(datalog.DEFAULT_SYMBOLS))
	for _, s := range datalog.DEFAULT_SYMBOLS {
		m[s] = struct{}{}
	}
	return m
}()

// addSymbols adds to syms every string of c that would enter a block's
// symbol table: predicate names, variable names and string terms.
func addSymbols(syms map[string]struct{}, c biscuit.Check) {
	add := func(s string) {
		if _, ok := defaultSymbols[s]; !ok {
			syms[s] = struct{}{}
		}
	}
	var term func(t biscuit.Term)
	term = func(t biscuit.Term) {
		switch t := t.(type) {
		case biscuit.String:
			add(string(t))
		case biscuit.Variable:
			add(string(t))
		case biscuit.Set:
			for _, e := range t {
				term(e)
			}
		}
	}
	predicate := func(p biscuit.Predicate) {
		add(p.Name)
		for _, t := range p.IDs {
			term(t)
		}
	}
	for _, q := range c.Queries {
		predicate(q.Head)
		for _, p := range q.Body {
			predicate(p)
		}
		for _, e := range q.Expressions {
			for _, op := range e {
				if v, ok := op.(biscuit.Value); ok {
					term(v.Term)
				}
			}
		}
	}
}

// tokenZones returns the distinct zones named by local_time predicates in
// the token's blocks: the verifier bounds them per token (MaxTimeZones).
func tokenZones(c *pb.Biscuit) ([]string, error) {
	var zones, syms []string
	sym := func(i uint64) (string, bool) {
		switch {
		case i < uint64(len(datalog.DEFAULT_SYMBOLS)):
			return datalog.DEFAULT_SYMBOLS[i], true
		case i >= uint64(datalog.OFFSET) && i-uint64(datalog.OFFSET) < uint64(len(syms)):
			return syms[i-uint64(datalog.OFFSET)], true
		}
		return "", false
	}
	pred := func(p *pb.PredicateV2) {
		if name, _ := sym(p.GetName()); name != spec.AmbientLocalTime || len(p.GetTerms()) == 0 {
			return
		}
		t, ok := p.GetTerms()[0].GetContent().(*pb.TermV2_String_)
		if !ok {
			return
		}
		if z, ok := sym(t.String_); ok && !slices.Contains(zones, z) {
			zones = append(zones, z)
		}
	}
	rule := func(r *pb.RuleV2) {
		for _, p := range r.GetBody() {
			pred(p)
		}
	}
	for i, sb := range append([]*pb.SignedBlock{c.GetAuthority()}, c.GetBlocks()...) {
		var b pb.Block
		if err := proto.Unmarshal(sb.GetBlock(), &b); err != nil {
			return nil, fmt.Errorf("%w: decode block %d: %w", ErrMalformed, i, err)
		}
		syms = append(syms, b.GetSymbols()...)
		for _, r := range b.GetRulesV2() {
			rule(r)
		}
		for _, ch := range b.GetChecksV2() {
			for _, q := range ch.GetQueries() {
				rule(q)
			}
		}
	}
	return zones, nil
}
