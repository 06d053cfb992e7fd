// Package spiffefile serves an X.509-SVID and trust bundles (X.509, and JWT
// when a bundle file is in SPIFFE bundle format) that are read from files
// and reloaded when the files change, so that a
// long-running server follows SVID rotation (by a SPIRE agent helper,
// cert-manager, or `writ dev`) without a restart.
//
// A Source implements go-spiffe's x509svid.Source, x509bundle.Source and
// jwtbundle.Source.
// go-spiffe's tlsconfig helpers call them on every handshake, so they only
// load a pointer to an immutable snapshot. Run polls the files every
// Config.Interval; Reload does one check on demand.
//
// Trust boundary: the files are trusted configuration written by the
// operator or a local rotation agent, but not trusted to be complete at any
// instant. A rotation may be observed half done: a certificate without its
// new key, a truncated PEM block, a missing file, a bundle from before a CA
// rotation. A snapshot is replaced only when every file has been read and
// the SVID, its key and all bundles validate together (key matches leaf,
// SVID valid now, SVID chains to the bundle of its own trust domain when
// one is configured); otherwise the previous snapshot is kept and a warning
// is logged. New fails closed: it returns an error unless every file is
// valid at start. Bundles are served only for the trust domain they were
// configured for and are never merged. Key material is never logged.
//
// Usage:
//
//	cfg := spiffefile.DefaultConfig()
//	cfg.CertFile, cfg.KeyFile = "svid.pem", "svid-key.pem"
//	cfg.Bundles = map[spiffeid.TrustDomain]string{td: "bundle.pem"}
//	cfg.Logger = logger
//	src, err := spiffefile.New(cfg)
//	if err != nil {
//		return err
//	}
//	go src.Run(ctx) // returns nil when ctx ends
//	tlsCfg := tlsconfig.MTLSServerConfig(src, src, tlsconfig.AuthorizeMemberOf(td))
package spiffefile
