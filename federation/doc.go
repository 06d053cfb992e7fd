// Package federation will publish writ's trust bundle and fetch, pin and
// refresh partner organisations' bundles, and hold the federation
// agreements that cap what a partner's tokens may do here.
//
// A bundle is a SPIFFE federation bundle (JWKS) extended with the
// organisation's Biscuit root keys as extra JWK entries. Trust boundary:
// everything fetched from a partner is untrusted until its bundle
// signature chain and pin verify; the agreement ceiling is applied by the
// verifier on top of the token's own checks.
//
// Not implemented yet: this package only states its job (see the
// federation issue). It must stay embeddable: no raft, no pebble, no
// issuer imports.
package federation
