package verifier

import (
	"fmt"
)

// Limits bound what the verifier accepts from a token and from a request
// (token.md §8). Every limit is checked on the decoded structure before any
// evaluation; a token outside one is refused with reason limits_exceeded.
// With the defaults, evaluating any accepted token costs at most
// MaxEvalSteps join steps, whatever its content.
//
// Start from DefaultLimits and change what you need; Validate reports a
// zero or out-of-range field.
type Limits struct {
	// MaxTokenBytes bounds the raw protobuf token.
	MaxTokenBytes int `json:"max_token_bytes"`
	// MaxBlocks bounds the blocks of a token, authority included.
	MaxBlocks int `json:"max_blocks"`
	// MaxSymbolsPerBlock bounds the symbol table of each block.
	MaxSymbolsPerBlock int `json:"max_symbols_per_block"`
	// MaxAuthorityFacts bounds the facts of the authority block. It also
	// bounds the facts and rules decoded from any other block (which are
	// then refused as unsupported).
	MaxAuthorityFacts int `json:"max_authority_facts"`
	// MaxChecksPerBlock bounds the checks of each block.
	MaxChecksPerBlock int `json:"max_checks_per_block"`
	// MaxQueriesPerCheck bounds the "or" alternatives of a check.
	MaxQueriesPerCheck int `json:"max_queries_per_check"`
	// MaxPredicatesPerQuery bounds the body predicates of a query.
	MaxPredicatesPerQuery int `json:"max_predicates_per_query"`
	// MaxTermsPerPredicate bounds the terms of any predicate (fact, head,
	// body).
	MaxTermsPerPredicate int `json:"max_terms_per_predicate"`
	// MaxOpsPerQuery bounds the expression operations of a query, summed
	// over its expressions.
	MaxOpsPerQuery int `json:"max_ops_per_query"`
	// MaxStackDepth bounds the stack an expression needs.
	MaxStackDepth int `json:"max_stack_depth"`
	// MaxSetElements bounds every set in a token and the request's Fields.
	MaxSetElements int `json:"max_set_elements"`
	// MaxStringBytes bounds every symbol (strings, names) and byte string.
	MaxStringBytes int `json:"max_string_bytes"`
	// MaxJoinProduct bounds, for each query, the product over its body
	// predicates of the number of facts that can match the predicate.
	MaxJoinProduct int `json:"max_join_product"`
	// MaxEvalSteps bounds the whole token: the sum over all queries of
	// join product × (1 + expression ops).
	MaxEvalSteps int `json:"max_eval_steps"`
	// MaxTimeZones bounds the distinct IANA zones named by local_time
	// predicates in a token.
	MaxTimeZones int `json:"max_time_zones"`
	// MaxAttributes bounds Request.Attributes.
	MaxAttributes int `json:"max_attributes"`
	// MaxRootKeys bounds the root keys tried for a token without rootKeyId.
	MaxRootKeys int `json:"max_root_keys"`
	// MaxRequestBytes bounds the total length of the request's strings
	// (resource, operation, presenter, service, fields, attributes).
	MaxRequestBytes int `json:"max_request_bytes"`
}

// DefaultLimits returns the limits of token.md §8.
func DefaultLimits() Limits {
	return Limits{
		MaxTokenBytes:         16 << 10,
		MaxBlocks:             16,
		MaxSymbolsPerBlock:    256,
		MaxAuthorityFacts:     128,
		MaxChecksPerBlock:     32,
		MaxQueriesPerCheck:    8,
		MaxPredicatesPerQuery: 4,
		MaxTermsPerPredicate:  8,
		MaxOpsPerQuery:        64,
		MaxStackDepth:         16,
		MaxSetElements:        64,
		MaxStringBytes:        1024,
		MaxJoinProduct:        4096,
		MaxEvalSteps:          65536,
		MaxTimeZones:          4,
		MaxAttributes:         32,
		MaxRootKeys:           8,
		MaxRequestBytes:       16 << 10,
	}
}

// Hard ceilings Limits.Validate enforces. They keep every product the
// verifier computes far from integer overflow and every decode bounded.
const (
	ceilTokenBytes  = 1 << 20
	ceilCount       = 1 << 16 // blocks, symbols, facts, checks, …
	ceilJoinProduct = 1 << 24
	ceilEvalSteps   = 1 << 28
)

// Validate reports the first limit that is not within 1 and its ceiling.
// The error wraps ErrInvalidConfig.
func (l Limits) Validate() error {
	fields := []struct {
		name string
		v    int
		ceil int
	}{
		{"MaxTokenBytes", l.MaxTokenBytes, ceilTokenBytes},
		{"MaxBlocks", l.MaxBlocks, ceilCount},
		{"MaxSymbolsPerBlock", l.MaxSymbolsPerBlock, ceilCount},
		{"MaxAuthorityFacts", l.MaxAuthorityFacts, ceilCount},
		{"MaxChecksPerBlock", l.MaxChecksPerBlock, ceilCount},
		{"MaxQueriesPerCheck", l.MaxQueriesPerCheck, ceilCount},
		{"MaxPredicatesPerQuery", l.MaxPredicatesPerQuery, 64},
		{"MaxTermsPerPredicate", l.MaxTermsPerPredicate, 64},
		{"MaxOpsPerQuery", l.MaxOpsPerQuery, ceilCount},
		{"MaxStackDepth", l.MaxStackDepth, 1024},
		{"MaxSetElements", l.MaxSetElements, ceilCount},
		{"MaxStringBytes", l.MaxStringBytes, ceilTokenBytes},
		{"MaxJoinProduct", l.MaxJoinProduct, ceilJoinProduct},
		{"MaxEvalSteps", l.MaxEvalSteps, ceilEvalSteps},
		{"MaxTimeZones", l.MaxTimeZones, 64},
		{"MaxAttributes", l.MaxAttributes, ceilCount},
		{"MaxRootKeys", l.MaxRootKeys, 1024},
		{"MaxRequestBytes", l.MaxRequestBytes, 1 << 20},
	}
	for _, f := range fields {
		if f.v < 1 || f.v > f.ceil {
			return fmt.Errorf("%w: Limits.%s is %d, want 1 to %d", ErrInvalidConfig, f.name, f.v, f.ceil)
		}
	}
	return nil
}

// Bounds on what a denial Decision repeats of a token (token.md §7). A
// failed check is rendered once per token and cached with it; these keep
// that text, and every Decision, small whatever the token holds.
const (
	// maxLiteralTextBytes bounds each string literal of a rendered check
	// (byte strings: half as many bytes, in hex); longer ones are cut
	// and end in "…".
	maxLiteralTextBytes = 64
	// maxCheckTextBytes bounds the text of one failed check.
	maxCheckTextBytes = 2 << 10
	// maxFailedChecks bounds Decision.FailedChecks; the Message still
	// counts every failed check.
	maxFailedChecks = 8
	// maxMessageCheckBytes bounds the first failed check quoted in
	// Decision.Message.
	maxMessageCheckBytes = 256
)

// Bounds on the IANA zones of local_time predicates (token.md §3).
const (
	// maxZoneCache bounds the loaded zones kept for the process; the
	// IANA database has about 600 names.
	maxZoneCache = 1024
)

// maxAuthorizationBytes bounds the Authorization header value the
// middleware looks at: the scheme, a space, the longest token DecodeToken
// accepts, and some whitespace.
const maxAuthorizationBytes = len("Bearer ") + maxEncodedTokenBytes + 64

// Limits on key sets read from untrusted bytes (a JWKS file or URL).
const (
	// maxJWKSBytes bounds a JWKS document (file or HTTP body).
	maxJWKSBytes = 1 << 20
	// maxKeySetKeys bounds the number of root keys in one KeySet. Active
	// plus retired-but-still-valid keys of one issuer fit comfortably.
	maxKeySetKeys = 64
	// maxJWKSDepth bounds JSON nesting in a JWKS document.
	maxJWKSDepth = 16
)

// Limits on revocation lists read from files.
const (
	// maxRevocations bounds the entries of one RevocationList (twice the
	// 1,000,000-entry design target).
	maxRevocations = 2_000_000
	// maxRevocationFileBytes bounds a revocation file: maxRevocations
	// revocation ids of 128 hex digits with quotes, comma and generous
	// indentation.
	maxRevocationFileBytes = maxRevocations*(revocationIDHexLen+32) + 4096
)
