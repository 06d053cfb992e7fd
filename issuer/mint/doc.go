// Package mint signs writ tokens: it turns the claims the issuer has
// granted into the authority block of spec/token.md §2 and signs it with a
// root key, setting the token's rootKeyId.
//
// Trust boundary: mint holds a private root key and trusts its Claims
// completely; authentication and policy evaluation happen before it, in
// the issuer. It validates Claims only so that it never signs a token the
// verifier would misread or refuse (bad SPIFFE IDs, expiry not after
// issued-at, limits of token.md §8).
//
// Mint is on the issuer's hot path. It writes the block's protobuf bytes
// directly from biscuit-go's structs (never through biscuit-go's Datalog
// parser) with pooled buffers; the bytes equal those of biscuit-go's
// builder for the same facts and checks. Checks are built by the
// attenuation package, so a check reads the same in the authority block as
// in an attenuation block. Of writ, the package imports only spec and
// attenuation; besides the standard library, only biscuit-go, protobuf's
// wire encoder and go-spiffe's spiffeid; never raft or pebble (a test
// holds it to that).
//
// Usage:
//
//	tok, id, err := mint.Mint(rand.Reader, mint.Key{ID: 1, Private: priv}, mint.Claims{
//		Issuer:        "spiffe://acme.example/writ",
//		Agent:         "spiffe://acme.example/agents/support",
//		IssuedAt:      now,
//		Expiry:        now.Add(5 * time.Minute),
//		PolicyVersion: policyHash, // "sha256:…"
//		Rights:        []spec.Right{{Resource: "crm/contacts", Operation: "read"}},
//		Presenters:    []string{"spiffe://acme.example/agents/support"},
//	})
package mint
