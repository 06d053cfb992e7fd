// Package syncer keeps a verifier's root keys and revocations current: it
// is the client of the issuers' GET /v1/sync (spec/sync.md). A Syncer
// long-polls the issuer nodes over mTLS, checks every snapshot, change and
// heartbeat they stream (signature by a held root key, epochs that only
// grow and chain), keeps the copy in memory, and serves it to
// verifier.Verifier as its KeySource, RevocationSource,
// AgentRevocationSource, KeyRevocationSource and FreshnessSource. It can
// keep the copy in a state file, so that a verifier restarted while no
// node answers starts from what it last held.
//
// # Trust boundary
//
// Nodes are authenticated by mTLS: each must present an X.509-SVID of
// exactly Config.IssuerID, chaining to Config.Bundle. What they send is
// still untrusted until verified: a lagging node, a relay or a stale file
// can replay or drop frames, so nothing is applied before its signature
// verifies with a root key held in state prepared, active or retiring;
// an older epoch is refused (rollback), a change that does not chain is
// refused (gap), and an answer cut before its closing heartbeat keeps
// only its complete signed units. The only frames checked with a key they
// carry themselves are bootstrap snapshots (spec/sync.md §4: no key held,
// or a copy older than MaxStaleness, and only from a node over mTLS) and
// the snapshot of the state file, which is the verifier's own and as
// trusted as its configuration; keys pinned in Config.Keys rule out
// bootstrap until the first snapshot. Every key is checked to be a
// canonical Ed25519 point of large order before it is used. The package
// imports nothing of writ's issuer or cluster, nor raft or pebble (a test
// holds this).
//
// Freshness is what makes a copy safe to use: CurrentAsOf is the time the
// last accepted heartbeat vouched for (never later than its arrival). The
// verifier refuses tokens revocation_stale once its clock is more than
// its MaxStaleness past it.
//
// # Usage
//
//	cfg := syncer.DefaultConfig()
//	cfg.Issuers = []string{"https://issuer-1.acme.example:8443"}
//	cfg.IssuerID = spiffeid.RequireFromString("spiffe://acme.example/writ")
//	cfg.SVID, cfg.Bundle = source, source // e.g. a workloadapi.X509Source
//	cfg.StateFile = "/var/lib/crm/writ-sync"
//	s, err := syncer.New(cfg)
//	if err != nil { … }
//	go s.Run(ctx)
//	vcfg := verifier.DefaultConfig()
//	vcfg.Keys, vcfg.Revocations, vcfg.Freshness = s, s, s
//	v, err := verifier.New(vcfg)
package syncer
