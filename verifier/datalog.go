package verifier

import "fmt"

// This file holds the decoded form of a token that decode.go produces,
// compile.go prepares, eval.go evaluates and print.go renders: Biscuit
// v3.0 Datalog with symbols resolved to strings.

// defaultSymbols are the symbols every Biscuit v3 token shares, indices 0
// to 27 (Biscuit specification, "Symbol table"); a block's own symbols
// start at symbolOffset.
var defaultSymbols = [...]string{
	"read", "write", "resource", "operation", "right", "time", "role",
	"owner", "tenant", "namespace", "user", "team", "service", "admin",
	"email", "group", "member", "ip_address", "client", "client_ip",
	"domain", "path", "version", "cluster", "node", "hostname", "nonce",
	"query",
}

const symbolOffset = 1024

// schemaVersion is the only block version v1 accepts.
const schemaVersion = 3

var defaultSymbolIndex = func() map[string]struct{} {
	m := make(map[string]struct{}, len(defaultSymbols))
	for _, s := range defaultSymbols {
		m[s] = struct{}{}
	}
	return m
}()

// valueKind is the type of a datalog value.
type valueKind uint8

const (
	kindNone valueKind = iota
	kindInt
	kindString
	kindDate
	kindBytes
	kindBool
	kindSet
)

// value is a datalog constant. Strings are resolved from the symbol table
// and compared by content, as biscuit-go does once it re-interns them.
type value struct {
	kind valueKind
	num  int64    // kindInt; kindDate (the uint64 seconds, same bits); kindBool (0 or 1)
	str  string   // kindString; kindBytes
	set  *[]value // kindSet: non-empty, one element kind, no sets (a pointer keeps values small)
}

// elems returns the elements of a set value.
func (v *value) elems() []value {
	if v.set == nil {
		return nil
	}
	return *v.set
}

// term is a constant or a variable of a predicate or expression.
type term struct {
	val   value
	sym   uint32 // variable: its symbol index, which names it
	isVar bool
	slot  int // variable: index in its query's bindings (compile.go)
}

type predicate struct {
	name  string
	terms []term
}

type opKind uint8

const (
	opValue opKind = iota
	opUnary
	opBinary
)

// op is one operation of an expression in postfix order.
type op struct {
	kind opKind
	code int32 // pb.OpUnary_Kind or pb.OpBinary_Kind
	t    term  // opValue
}

type rule struct {
	head  predicate
	body  []predicate
	exprs [][]op
	ops   int // total operations
}

type check struct {
	queries []rule
}

// block is one decoded block with its signed container fields.
type block struct {
	symbols []string
	context string
	facts   []predicate
	rules   []rule
	checks  []check

	data    []byte // the signed block bytes
	nextKey []byte // 32 bytes
	sig     []byte // 64 bytes
}

// token is a decoded, not yet verified, token.
type token struct {
	symbols      []string // the symbols of all blocks, in order (index - symbolOffset)
	hasRootKeyID bool
	rootKeyID    uint32
	blocks       []block
	nextSecret   []byte // 32 bytes when the token can still be attenuated
	finalSig     []byte // 64 bytes when sealed

	// outOfSubset is the first operator outside token.md §6 (regex, *, /)
	// seen while decoding: valid Biscuit v3.0, refused by compile.
	outOfSubset error
}

// symbolName returns symbol id of a token whose block symbols are table.
func symbolName(table []string, id uint32) string {
	switch {
	case id < uint32(len(defaultSymbols)):
		return defaultSymbols[id]
	case id >= symbolOffset && int(id-symbolOffset) < len(table):
		return table[id-symbolOffset]
	}
	return fmt.Sprintf("<symbol %d>", id)
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func overLimit(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrLimitsExceeded, fmt.Sprintf(format, args...))
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}
