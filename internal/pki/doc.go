// Package pki is a small X.509 certificate authority that issues SPIFFE
// X.509-SVIDs. `writ dev` uses it to create a throw-away trust domain, and
// tests of every package that needs real TLS with real SPIFFE certificates
// use it instead of fixtures.
//
// A CA is a self-signed root whose only URI SAN is the trust domain's
// SPIFFE ID (spiffe://<trust domain>). It issues leaf SVIDs that follow the
// SPIFFE X.509-SVID specification: exactly one URI SAN, CA=false, key usage
// digitalSignature, extended key usage serverAuth and clientAuth, a random
// 128-bit serial number. Keys are ECDSA P-256, which go-spiffe, crypto/tls,
// OpenSSL (curl) and browsers all accept.
//
// Trust boundary: the CA's private key is held in memory by whoever holds
// the *CA and, after WriteFiles, in a 0600 file. There is no revocation,
// no hardware key protection and no issuance policy: anyone who can call
// IssueSVID can mint any identity in the trust domain. It is a dev and test
// tool, not a production PKI; production trust domains come from SPIRE or
// another SPIFFE implementation.
//
// Consumers verify peers with go-spiffe bundles (Bundle, LoadBundle with
// x509svid.Verify or spiffetls/tlsconfig), never with a merged
// *x509.CertPool, so that a certificate of one trust domain can never
// vouch for an identity of another.
//
// Options named after bad certificates (WithCA, WithExtraURI, WithNoURI,
// WithValidity) exist so that tests can prove verifiers reject them.
//
// Usage:
//
//	td := spiffeid.RequireTrustDomainFromString("acme.example")
//	ca, err := pki.NewCA(td, now, 24*time.Hour)
//	if err != nil { … }
//	id := spiffeid.RequireFromPath(td, "/writ")
//	svid, err := ca.IssueSVID(id, now, time.Hour, pki.WithDNS("localhost"))
//	if err != nil { … }
//	srv := tlsconfig.MTLSServerConfig(svid.X509SVID(), ca.Bundle(), tlsconfig.AuthorizeMemberOf(td))
package pki
