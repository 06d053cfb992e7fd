// Package policy is writ's issuance policy: which SPIFFE IDs may obtain
// which rights, under which constraints. It parses and checks the policy
// file (format: spec/policy.md, schema: spec/policy.schema.json),
// identifies it by a content hash, and evaluates token requests against it
// on the mint hot path.
//
// Trust boundary: the policy text comes from an administrator through the
// admin API and the replicated log; Parse treats it as untrusted input
// (strict decoding, limits.go, errors with line numbers, never a panic).
// Request.Subject must already be authenticated (an SVID verified by the
// caller); this package trusts it as given. The package is pure: no I/O,
// no clock (the caller passes Request.Now), no logging, and it imports
// neither raft, pebble nor the cluster package.
//
// Usage:
//
//	p, err := policy.Parse(src) // *policy.ParseError: "policy: line 7: …"
//	if err != nil { … }
//	res := p.Evaluate(policy.Request{
//		Subject: callerID,
//		Rights:  []spec.Right{{Resource: "crm/contacts", Operation: "read"}},
//		TTL:     5 * time.Minute,
//		Now:     now(),
//	})
//	if len(res.Denied) > 0 { … res.Denied[0].Reason, res.Denied[0].Alternatives … }
//	// mint a token with res.Granted, res.TTL, res.MaxRecords, res.Fields,
//	// res.Windows, res.Services, res.BindPresenter, res.MaxStaleness and
//	// policy_version res.PolicyVersion (= p.Version()).
package policy
