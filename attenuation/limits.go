package attenuation

import "time"

// Limits that keep an attenuated token inside the default verifier input
// limits of token.md §8. A token built past one of them would be refused
// limits_exceeded by every verifier running the defaults, so Restrict and
// the restriction constructors refuse it first.
const (
	// MaxTokenBytes bounds the size of the input and of the output token.
	MaxTokenBytes = 16 << 10

	// MaxBlocks bounds the number of blocks, authority block included,
	// of the attenuated token.
	MaxBlocks = 16

	// MaxChecksPerBlock bounds the number of restrictions in one Restrict
	// call: each restriction is one check of the appended block.
	MaxChecksPerBlock = 32

	// MaxSymbolsPerBlock bounds the number of new symbols (strings and
	// variable names) the appended block may introduce. Restrict counts
	// every distinct string that is not a Biscuit default symbol, an upper
	// bound of what the block really adds.
	MaxSymbolsPerBlock = 256

	// MaxRights bounds the rights of one OnlyRights restriction: each right
	// is one query of the check, and a check holds at most 8 queries.
	MaxRights = 8

	// MaxSetElements bounds the identifiers or fields of one BindPresenters,
	// OnlyServices or OnlyFields restriction: each becomes one element of a
	// Datalog set.
	MaxSetElements = 64

	// MaxStringBytes bounds every string a restriction puts in the token.
	MaxStringBytes = 1024

	// MaxWindows bounds the windows of one AnyWindow restriction (after
	// duplicates are dropped): each window is one query of the check, and
	// a check holds at most 8 queries.
	MaxWindows = 8

	// MaxStalenessBound is the largest bound MaxStaleness takes, the
	// largest revocation staleness a verifier may be configured to
	// tolerate (verifier.Config.MaxStaleness).
	MaxStalenessBound = 24 * time.Hour

	// MaxTimeZones bounds the distinct time zones a token names: those of
	// one AnyWindow restriction, and those of the input token and of all
	// Window and AnyWindow restrictions of one Restrict call together.
	MaxTimeZones = 4
)
