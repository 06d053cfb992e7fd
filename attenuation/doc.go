// Package attenuation narrows writ tokens on the holder's side, offline:
// an agent that hands work to another agent appends a block of checks to
// its token, and the result can never do more than the original.
//
// Each Restriction (OnlyRights, ExpireBy, ExpireIn, BindPresenters,
// OnlyFields, MaxRecords, Window, AnyWindow, OnlyServices, MaxStaleness)
// is exactly one check of spec/token.md §5; Restrict appends them as one new block,
// signed with the token's next key. Appended blocks carry checks only, and checks can
// only remove permissions, since rights in the authority block are the
// only source of permission (token.md §4).
//
// Trust boundary: the package runs inside agents. It holds no key of the
// issuer and never decides whether a token is valid; it reads the token
// only to extend it, and refuses to build a token the verifier would refuse
// for its limits (limits.go). It must not import writ's issuer or cluster
// packages, raft or pebble (a test holds it to that).
//
// Usage:
//
//	child, err := attenuation.Restrict(token,
//		attenuation.OnlyRights(spec.Right{Resource: "crm/contacts", Operation: "read"}),
//		attenuation.ExpireIn(10*time.Minute),
//		attenuation.BindPresenters("spiffe://acme.example/agents/summarizer"),
//	)
//
// Restrict reads the wall clock to resolve ExpireIn; a Restricter with its
// own Now does the same with an injected clock.
package attenuation
