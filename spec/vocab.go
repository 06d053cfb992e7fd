package spec

// TokenVersion is the value of the writ_version fact in every token minted
// under vocabulary v1. Verifiers refuse any other value (fail closed).
const TokenVersion = 1

// Authority facts. Only the authority block (block 0, signed by a root key)
// may carry facts; see token.md §2.
const (
	FactWritVersion   = "writ_version"   // writ_version(1)
	FactTokenID       = "token_id"       // token_id("32 lowercase hex digits")
	FactIssuer        = "issuer"         // issuer("spiffe://td/writ")
	FactAgent         = "agent"          // agent("spiffe://td/agents/x")
	FactIssuedAt      = "issued_at"      // issued_at(2026-11-27T10:00:00Z)
	FactPolicyVersion = "policy_version" // policy_version("sha256:<64 hex>")
	FactRight         = "right"          // right("crm/contacts", "read"): exact resource
	FactRightPrefix   = "right_prefix"   // right_prefix("crm/", "read"): written "crm/*" by people
)

// Ambient facts, supplied by the verifier for each request; never present
// in a token. See token.md §3.
const (
	AmbientTime          = "time"           // time(date): the verifier's clock
	AmbientResource      = "resource"       // resource("crm/contacts/42")
	AmbientOperation     = "operation"      // operation("read")
	AmbientPresenter     = "presenter"      // presenter("spiffe://…"): mTLS peer; absent when unknown
	AmbientService       = "service"        // service("spiffe://…/crm"): the verifying service; absent when unset
	AmbientRecords       = "records"        // records(n): records the request touches; 0 when the service applies the limit itself
	AmbientFields        = "fields"         // fields(["a","b"]): fields requested; [] when the service applies the list itself
	AmbientAttr          = "attr"           // attr("name", "value"): request attributes passed by the service
	AmbientLocalTime     = "local_time"     // local_time("Europe/Paris", weekday 0-6 (0=Sunday), minute of day 0-1439)
	AmbientRevocationAge = "revocation_age" // revocation_age(ms): staleness of the verifier's revocation list (sync.md §5), ms rounded up; absent when the verifier tracks no freshness
)

// Reason codes carried by every verifier decision. They are stable: clients
// branch on them. See token.md §7.
const (
	ReasonAllowed            = "allowed"
	ReasonMalformed          = "malformed"
	ReasonLimitsExceeded     = "limits_exceeded"
	ReasonUnsupported        = "unsupported"
	ReasonUnknownKey         = "unknown_key"
	ReasonBadSignature       = "bad_signature"
	ReasonRevoked            = "revoked"
	ReasonRevocationStale    = "revocation_stale" // the verifier's revocation list is older than its bound or the token's max_staleness
	ReasonExpired            = "expired"
	ReasonPresenterMismatch  = "presenter_mismatch"
	ReasonServiceMismatch    = "service_mismatch"
	ReasonOutsideTimeWindow  = "outside_time_window"
	ReasonConstraintViolated = "constraint_violated"
	ReasonCheckFailed        = "check_failed"
	ReasonNotGranted         = "not_granted"
)

// ProblemTypeBase prefixes every RFC 9457 problem type URI that writ returns.
const ProblemTypeBase = "https://writ.dev/problems/"

// ProblemType returns the stable problem type URI for a short code, e.g.
// ProblemType("not_granted") = "https://writ.dev/problems/not_granted".
func ProblemType(code string) string { return ProblemTypeBase + code }

// TokenTypeBiscuit is the RFC 8693 token type URI of writ tokens: the
// issued_token_type of a token exchange (spec/token.md §12).
const TokenTypeBiscuit = "urn:writ:params:oauth:token-type:biscuit"
