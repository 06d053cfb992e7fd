// Package credential authenticates the callers of writ's issuer: it
// verifies the JWT-SVID a caller presents as a bearer token
// (VerifyJWTSVID) and the X.509-SVID chain a caller presents in the TLS
// handshake (VerifyPeer), and returns the caller's SPIFFE ID. It decides
// who the caller is, never what the caller may do: issuance policy is the
// issuer's job.
//
// # Trust boundary
//
// Everything a caller sends is hostile until proven otherwise: the token
// string, every header parameter and claim in it, every certificate of
// the chain. What is trusted is the configuration (the issuer's own SPIFFE
// ID as audience, the allowed algorithms, the clock) and the bundle
// sources, which hold the authorities of each trust domain the issuer
// federates with. A credential is accepted only if it is signed by an
// authority of the bundle of the trust domain it claims (the sub claim's,
// the leaf URI SAN's); a key or root of trust domain A never vouches for
// an identity in trust domain B. Keys are never taken from the credential
// itself: JWS headers that carry or point at keys (jwk, jku, x5c, x5u)
// are refused, and nothing is ever fetched.
//
// Hostile input is refused cheaply: size, alphabet and shape are checked
// before any base64 or JSON decoding, header and claims are decoded by a
// strict decoder (one JSON object, valid UTF-8, no duplicate members,
// case-sensitive names) before go-jose sees the token, and the signature,
// the only expensive step, comes last. The bounds are in limits.go.
//
// Time comes only from the injected Now of JWTConfig and X509Config.
// go-spiffe's jwtsvid.ParseAndValidate reads time.Now() itself, so it is
// not called; VerifyJWTSVID uses go-spiffe's jwtbundle for key selection
// and go-jose for the signature (see VerifyJWTSVID).
//
// Errors wrap exactly one sentinel of errors.go, so the HTTP edge can
// branch with errors.Is and answer with a stable problem type; messages
// never contain the token and are meant for logs, not for callers.
//
// # Usage
//
//	jcfg := credential.DefaultJWTConfig()
//	jcfg.Audience = spiffeid.RequireFromString("spiffe://acme.example/writ")
//	if err := jcfg.Validate(); err != nil { … }
//
//	// Bearer: Authorization: Bearer <JWT-SVID>
//	svid, err := credential.VerifyJWTSVID(token, jwtBundles, jcfg)
//	if err != nil { … 401, log errors.Is(err, credential.ErrExpired) … }
//	caller := svid.ID
//
//	// mTLS: verify the client chain in the handshake.
//	xcfg := credential.DefaultX509Config()
//	tlsConf := &tls.Config{
//		Certificates: []tls.Certificate{serverCert},
//		ClientAuth:   tls.RequireAnyClientCert, // chain checked below
//		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
//			_, err := credential.VerifyPeer(raw, x509Bundles, xcfg)
//			return err
//		},
//	}
//	// In the handler, the ID of r.TLS.PeerCertificates[0] has been
//	// verified; VerifyPeer may be called again on the raw certificates to
//	// obtain it.
package credential
