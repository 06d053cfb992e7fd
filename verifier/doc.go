// Package verifier verifies writ tokens offline, inside the resource
// services that receive them: it decides whether a token allows one
// request and explains the decision with the reason codes of
// spec/token.md §7.
//
// # Trust boundary
//
// Tokens are untrusted input until their signature chain verifies against
// a root key from the KeySource; requests are trusted input from the
// embedding service (its own view of the call: resource, operation, the
// mTLS peer). The verifier decodes tokens strictly (unknown protobuf
// fields, other block versions and operators outside token.md §6 are
// refused), checks every limit of token.md §8 on the decoded structure
// before evaluating anything, and evaluates the Biscuit v3.0 Datalog subset
// writ uses with its own evaluator, whose cost is bounded by those limits.
// It never hands a token to biscuit-go's evaluator; biscuit-go is used for
// its protobuf schema only.
//
// Beyond Biscuit v3.0, a writ v1 token must carry, in its authority block,
// exactly one writ_version(1), token_id, issuer and agent fact, at most
// one issued_at and policy_version, right and right_prefix facts of two
// strings, no fact named like an ambient fact, and an expiry check
// (check if time($t), $t <= DATE); attenuation blocks carry checks only;
// no block carries rules. Symbols may not repeat across blocks, and block
// i may only use symbols of blocks 0 to i. Sets may not be empty, mixed or
// repeat an element. A singular protobuf field may not appear twice. Variables of heads and expressions must appear in
// the body. Tokens breaking these rules are refused as malformed or
// unsupported.
//
// Evaluation follows biscuit-go's authorizer semantics for every token
// within these rules (checks of every block see the authority facts and
// the ambient facts; an expression error ends its query with no match;
// integer overflow is such an error), so that a differential test can hold
// the two to the same decisions. Ambient facts are listed in the order
// time, resource, operation, presenter, service, records, fields, attr
// (sorted by name), local_time (zones in order of first appearance),
// revocation_age.
//
// # Revocation and freshness
//
// Revocation is decided outside Datalog, before any check: block and
// token ids (RevocationSource), agents revoked for tokens issued before a
// time (AgentRevocationSource) and root keys (KeyRevocationSource), each
// optional and asked on every call, cached tokens included. With a
// FreshnessSource (the sync client, spec/sync.md §5) the verifier also
// refuses every token revocation_stale while its copy of the revocation
// list is older than Config.MaxStaleness, and supplies the ambient fact
// revocation_age that tokens minted with a max_staleness bound check
// (token.md §2); without one, such tokens fail closed.
//
// The package imports nothing of writ's issuer or cluster, nor raft or
// pebble: services embed it alone (a test holds this).
//
// # Usage
//
//	keys, _ := verifier.LoadKeys(ctx, "/etc/writ/keys.json", nil)
//	cfg := verifier.DefaultConfig()
//	cfg.Keys = keys
//	cfg.Service = "spiffe://acme.example/svc/crm"
//	cfg.Revocations = syncState // also an AgentRevocationSource
//	cfg.Freshness = syncState   // revocation_stale when 30 s behind
//	v, err := verifier.New(cfg)
//	if err != nil { … }
//	d := v.Authorize(ctx, token, verifier.Request{
//		Resource:  "crm/contacts/42",
//		Operation: "read",
//		Presenter: peerID, // from mTLS
//	})
//	if !d.Allowed {
//		// d.Reason is a spec.Reason… code; d.FailedChecks says which.
//	}
//	// Apply d.Constraints.MaxRecords and d.Constraints.Fields.
package verifier
