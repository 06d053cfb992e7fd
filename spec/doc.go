// Package spec is writ's contract in machine-readable form: the token
// vocabulary v1 as Go constants, the problem type URIs of the HTTP API, and
// (under testdata/) the golden tokens with the decisions they must produce.
//
// The prose contract lives next to this file: token.md (token vocabulary
// and verifier limits), policy.md and policy.schema.json (issuance policy),
// openapi.yaml (HTTP API) and cli.md (the writ command). Tests in verifier,
// attenuation and issuer hold the code to these files.
//
// spec imports nothing of writ's; everything else may import it.
//
//	if d.Reason == spec.ReasonExpired { … }
package spec
