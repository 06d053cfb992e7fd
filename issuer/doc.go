// Package issuer is the writ issuer node: it authenticates callers by
// their X.509-SVID, evaluates the issuance policy, mints Biscuit tokens,
// and keeps its replicated state — root keys sealed under a
// key-encryption key, policy versions, and a hash-chained audit trail —
// in a raft state machine on pebble (package cluster).
//
// Trust boundary: every request is untrusted until its TLS client
// certificate verifies against the bundle of the caller's own trust domain
// (go-spiffe; never a merged pool). Token requests are bounded in size and
// decoded strictly. No token leaves the issuer before its audit record is
// committed through raft; a node that cannot commit refuses to mint.
// Private keys exist in clear only in the memory of issuer nodes; logs
// carry token ids, never tokens or keys.
//
// Usage:
//
//	cfg := issuer.DefaultConfig()
//	cfg.DataDir, cfg.KEK, cfg.SVID, cfg.Bundles = dir, kek, svidSource, bundleSource
//	cfg.InitialPolicy = policyYAML
//	is, err := issuer.New(cfg)
//	if err != nil { … }
//	err = is.Run(ctx) // serves https://cfg.ListenAddr until ctx ends
//
// HTTP API (spec/openapi.yaml): POST /v1/token, GET /v1/keys, /healthz,
// /readyz, /metrics, and admin endpoints under /v1/admin/ for the SPIFFE
// IDs listed in Config.Admins.
package issuer
