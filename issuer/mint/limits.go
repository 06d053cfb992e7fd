package mint

// Limits that keep a minted token inside the default verifier input limits
// of token.md §8. Claims past one of them are refused, since verifiers
// running the defaults would refuse the token limits_exceeded.
const (
	// MaxTokenBytes bounds the size of the serialized token.
	MaxTokenBytes = 16 << 10

	// MaxAuthorityFacts bounds the facts of the authority block.
	MaxAuthorityFacts = 128

	// fixedFacts are the facts every token carries besides its rights.
	fixedFacts = 6

	// MaxRights bounds Claims.Rights (after duplicates are dropped): every
	// right is one authority fact.
	MaxRights = MaxAuthorityFacts - fixedFacts

	// MaxChecks bounds the checks of the authority block: the expiry, one
	// per optional claim, and one per window set of Claims.Windows.
	MaxChecks = 32

	// MaxSymbols bounds the symbol table of the authority block.
	MaxSymbols = 256

	// MaxStringBytes bounds every string Claims put in the token.
	MaxStringBytes = 1024

	// MaxTimeZones bounds the distinct zones of all window sets of
	// Claims.Windows together. The windows of one set are bounded by
	// attenuation.MaxWindows (the queries of one check).
	MaxTimeZones = 4
)
