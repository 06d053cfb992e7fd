// Package client is what an agent imports to get writ tokens: it
// authenticates to the writ issuer with the agent's SPIFFE SVID, asks for
// a token for a fixed set of rights (POST /v1/token), keeps it fresh, and
// attaches it to outgoing HTTP requests.
//
// A Client holds one token at a time. Client.Token returns it from memory
// until its renewal time (when about a third of its lifetime is left,
// with jitter so that many agents do not renew together), then asks the
// issuer once for all concurrent callers. If the issuer cannot be reached
// or refuses, the previous token is served while it stays valid; failed
// requests are retried with exponential backoff, never in a tight loop.
// Client.Run renews in the background so that callers do not wait.
// Transport sends the token as "Authorization: Bearer" on each request.
//
// # Authentication to the issuer
//
// With Config.X509SVID the agent presents its X.509-SVID as TLS client
// certificate (mTLS). With Config.JWTSVID it presents, on each token
// request, a JWT-SVID whose audience is the issuer's SPIFFE ID, as a
// bearer header; JWTFile reads one from a file.
//
// # Trust boundary
//
// The client trusts exactly two things: Config.IssuerID, the SPIFFE ID
// the issuer's server certificate must carry, and the X.509 bundle that
// Config.Bundles holds for that ID's trust domain (never a merged pool).
// The host name in Config.IssuerURL, the system roots, proxies and
// redirects confer no trust: a server that is not IssuerID fails the TLS
// handshake (ErrIssuerUnverified) before a credential is sent, and
// redirects are never followed.
//
// Answers from the authenticated issuer are still bounded and checked
// (limits.go) before use, since they end up in HTTP headers. Tokens are
// not verified here: the client cannot check what a resource service will
// accept, and does not need the root keys to use a token.
//
// Tokens and SVIDs are secrets of the agent. They are never logged: logs
// carry the token id. Token's String and LogValue omit its value.
//
// The package imports nothing of writ but spec, and neither raft nor
// pebble (a test holds this): agents embed it alone.
//
// # Usage
//
//	svids, err := workloadapi.NewX509Source(ctx)
//	if err != nil { … }
//	defer svids.Close()
//	cfg := client.DefaultConfig()
//	cfg.IssuerURL = "https://writ.acme.example:8443"
//	cfg.IssuerID = spiffeid.RequireFromString("spiffe://acme.example/writ")
//	cfg.Bundles, cfg.X509SVID = svids, svids
//	cfg.Rights = []string{"crm/contacts:read"}
//	cfg.Logger = logger
//	c, err := client.New(cfg)
//	if err != nil { … }
//	defer c.Close()
//	go c.Run(ctx)
//	crm := &http.Client{Transport: &client.Transport{Source: c}}
//	resp, err := crm.Get("https://crm.acme.example/contacts/42")
//
// # Failures
//
// A refusal by the issuer is a *ProblemError with the problem code
// (ProblemNotGranted, ProblemUnauthenticated, ProblemUnavailable, ...),
// the status and, for not_granted, the denied rights and what could be
// asked for instead. Network and TLS errors, 5xx, 429 and 408 answers are
// temporary: retried after MinBackoff, doubling up to MaxBackoff, with
// jitter. Every other refusal (400, 401, 403, ...) is permanent for the
// current configuration: it is retried only every MaxBackoff, in case the
// policy changes or the SVID rotates. A refusal does not withdraw a token
// already issued; revocation does that, at the verifiers.
package client
