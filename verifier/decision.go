package verifier

import (
	"crypto/ed25519"
	"time"

	"github.com/writ-dev/writ/spec"
)

// Request is what a resource service asks about one incoming call. The
// verifier turns it into the ambient facts of token.md §3.
type Request struct {
	// Resource and Operation are required; an empty one is a usage error
	// reported as a denial with reason "malformed".
	Resource  string
	Operation string
	// Presenter is the SPIFFE ID of the caller as proven by mTLS; empty
	// when unknown (presenter-bound tokens are then denied).
	Presenter string
	// Service is the SPIFFE ID of the verifying service. Empty means the
	// verifier's Config.Service; when that is set, any other value is
	// denied service_mismatch.
	Service string
	// Records is the number of records the request touches; 0 means the
	// service will apply Decision.Constraints.MaxRecords itself.
	Records int
	// Fields are the fields the request reads; empty means the service
	// will apply Decision.Constraints.Fields itself.
	Fields []string
	// Attributes become attr(name, value) facts.
	Attributes map[string]string
}

// Decision is the outcome of Verifier.Authorize. It is a value: safe to
// keep, copy and log (it never contains the token or any key).
type Decision struct {
	// Allowed is true only when Reason is spec.ReasonAllowed.
	Allowed bool `json:"allowed"`
	// Reason is a stable code from spec (spec.ReasonExpired, …).
	Reason string `json:"reason"`
	// Message explains the reason for people; not stable.
	Message string `json:"message,omitempty"`
	// FailedChecks lists the checks that failed, in block order: at most
	// the first 8, each at most 2 KiB of text with string literals cut
	// to 64 bytes ("…" marks a cut). Reason and Message account for
	// every failed check.
	FailedChecks []FailedCheck `json:"failed_checks,omitempty"`
	// MissingRight is set when Reason is not_granted: the right that would
	// have allowed the request.
	MissingRight *spec.Right `json:"missing_right,omitempty"`
	// TokenID, Agent and Issuer come from the authority block; set once
	// the signature chain has been verified, empty before.
	TokenID string `json:"token_id,omitempty"`
	Agent   string `json:"agent,omitempty"`
	Issuer  string `json:"issuer,omitempty"`
	// RootKeyID is the id of the root key that verified the token.
	RootKeyID uint32 `json:"root_key_id,omitempty"`
	// Blocks is the number of blocks in the token (authority included).
	Blocks int `json:"blocks,omitempty"`
	// Constraints are the data-level limits the service must apply.
	Constraints Constraints `json:"constraints"`
}

// FailedCheck is one check that did not pass.
type FailedCheck struct {
	// Block is the index of the block holding the check (0 = authority).
	Block int `json:"block"`
	// Check is the check in Biscuit Datalog text.
	Check string `json:"check"`
	// Reason classifies the check (spec.ReasonExpired, …, spec.ReasonCheckFailed).
	Reason string `json:"reason"`
}

// Constraints are data-level limits found in the token's checks that the
// service must apply to what it returns.
type Constraints struct {
	// MaxRecords is the smallest record limit in the token; 0 means none.
	MaxRecords int `json:"max_records,omitempty"`
	// Fields is the intersection of every field list in the token; nil
	// means no field restriction. A non-nil empty slice means no field
	// may be returned.
	Fields []string `json:"fields"`
}

// RootKey is a public root key and the id tokens name in rootKeyId.
type RootKey struct {
	ID     uint32
	Public ed25519.PublicKey
}

// KeySource supplies root public keys. Implementations must be safe for
// concurrent use; the verifier calls them on every first-sight token.
type KeySource interface {
	// RootKey returns the key with the given id, or false.
	RootKey(id uint32) (RootKey, bool)
	// RootKeys returns every key usable for tokens without rootKeyId.
	RootKeys() []RootKey
}

// RevocationSource answers whether a revocation id (lowercase hex of a
// block signature) or a token id is revoked. Implementations must be safe
// for concurrent use and fast: the verifier asks once per block per call.
type RevocationSource interface {
	Revoked(id string) bool
}

// AgentRevocationSource is an optional extension of RevocationSource: when
// Config.Revocations also implements it, the verifier denies revoked every
// token whose agent fact is agent and whose issued_at fact is before the
// time the agent was revoked (spec/sync.md §3, entry kind 3). AgentRevoked
// reports whether a token of agent issued at issuedAt is revoked.
// issuedAt is the token's issued_at (whole seconds, UTC), or the zero
// time when the token has none, so that every revocation of its agent
// applies. Implementations must be safe for concurrent use and fast: the
// verifier asks once per Authorize call, after the token's signatures
// verified.
type AgentRevocationSource interface {
	AgentRevoked(agent string, issuedAt time.Time) bool
}

// KeyRevocationSource is an optional extension of KeySource: when
// Config.Keys also implements it, the verifier denies revoked every token
// verified by a root key for which KeyRevoked(id) is true, including
// tokens already in the cache (spec/sync.md §3, key state revoked).
// Implementations must be safe for concurrent use and fast: the verifier
// asks once per Authorize call.
type KeyRevocationSource interface {
	KeyRevoked(id uint32) bool
}

// FreshnessSource tells how current the verifier's copy of the revocation
// list and root keys is (spec/sync.md §5). CurrentAsOf returns the time
// the copy was last known to be the issuer's current state, or false when
// it never was (no heartbeat accepted yet). The verifier computes the
// staleness as Config.Now() minus that time (0 when that time is in the
// future), denies revocation_stale when it exceeds Config.MaxStaleness,
// and otherwise supplies it to the token's checks as revocation_age, in
// milliseconds rounded up (token.md §3), where max_staleness checks bound
// it. Implementations must be safe for concurrent use and fast: the
// verifier asks once per Authorize call that gets past revocation.
type FreshnessSource interface {
	CurrentAsOf() (time.Time, bool)
}
