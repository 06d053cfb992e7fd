package credential

import (
	"crypto/x509"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
)

// FuzzVerifyJWTSVID feeds arbitrary tokens, seeded with every table case,
// to VerifyJWTSVID. It must never panic, every refusal must wrap exactly
// one sentinel and never contain the token, and an accepted token's
// signing input must be one the fixture signed with a bundle key.
func FuzzVerifyJWTSVID(f *testing.F) {
	fx := newJWTFixture(f, fuzzNow)
	for _, c := range jwtCases(f, fx) {
		f.Add(c.token)
	}
	cfg := fx.cfg()
	f.Fuzz(func(t *testing.T, token string) {
		svid, err := VerifyJWTSVID(token, fx.bundles, cfg)
		if err != nil {
			if svid != nil {
				t.Fatalf("got SVID and error %v", err)
			}
			checkOneSentinel(t, err)
			checkNoLeak(t, err.Error(), token)
			return
		}
		if !fx.wasSigned(token) {
			t.Fatalf("accepted a token whose signing input no bundle key signed")
		}
		if svid.ID.IsZero() || svid.ID.Path() == "" {
			t.Fatalf("accepted with ID %q", svid.ID)
		}
		if len(svid.Audience) != 1 || svid.Audience[0] != idIssuer.String() {
			t.Fatalf("accepted with audience %q", svid.Audience)
		}
		if got := svid.Claims["sub"]; got != svid.ID.String() {
			t.Fatalf("got ID %q, claims say sub %v", svid.ID, got)
		}
		if !strings.HasPrefix(svid.ID.String(), "spiffe://") {
			t.Fatalf("got ID %q", svid.ID)
		}
	})
}

// FuzzVerifyPeer feeds an arbitrary leaf, intermediate and trust anchor
// to VerifyPeer, seeded with the X.509 table cases (the anchor is the CA
// of the case's trust domain). The anchor travels with the input so that
// seeds made by the fuzzing coordinator still verify in its workers. The
// bundle set holds the anchor for trust domain A only. VerifyPeer must
// never panic, refusals wrap exactly one sentinel, and an accepted chain
// is a leaf of trust domain A, not a CA, with one URI SAN, whose
// signature verifies with the anchor or with the intermediate, which the
// anchor signed.
func FuzzVerifyPeer(f *testing.F) {
	fx := newX509Fixture(f)
	for _, c := range x509Cases(f, fx) {
		var leaf, inter []byte
		if len(c.raw) > 0 {
			leaf = c.raw[0]
		}
		if len(c.raw) > 1 {
			inter = c.raw[1]
		}
		for _, anchor := range [][]byte{fx.caA.Certificate().Raw, fx.caB.Certificate().Raw, fx.root.cert.Raw} {
			f.Add(leaf, inter, anchor)
		}
	}
	cfg := fx.cfg()
	f.Fuzz(func(t *testing.T, leaf, inter, anchor []byte) {
		bundles := x509bundle.NewSet()
		root, err := x509.ParseCertificate(anchor)
		if err == nil {
			bundles.Add(x509bundle.FromX509Authorities(tdA, []*x509.Certificate{root}))
		}
		raw := [][]byte{leaf}
		if len(inter) > 0 {
			raw = append(raw, inter)
		}
		id, err := VerifyPeer(raw, bundles, cfg)
		if err != nil {
			if !id.IsZero() {
				t.Fatalf("got ID %v with error %v", id, err)
			}
			checkOneSentinel(t, err)
			return
		}
		if root == nil {
			t.Fatalf("accepted %v without a trust anchor", id)
		}
		if id.TrustDomain() != tdA || id.Path() == "" {
			t.Fatalf("accepted ID %v, want a workload of %v", id, tdA)
		}
		l, err := x509.ParseCertificate(leaf)
		if err != nil {
			t.Fatalf("accepted an unparsable leaf: %v", err)
		}
		if l.IsCA || len(l.URIs) != 1 {
			t.Fatalf("accepted a leaf with CA=%v and %d URI SANs", l.IsCA, len(l.URIs))
		}
		if l.CheckSignatureFrom(root) == nil {
			return
		}
		if len(inter) == 0 {
			t.Fatalf("accepted a leaf the anchor did not sign")
		}
		ic, err := x509.ParseCertificate(inter)
		if err != nil || l.CheckSignatureFrom(ic) != nil || ic.CheckSignatureFrom(root) != nil {
			t.Fatalf("accepted a chain that does not verify to the anchor")
		}
	})
}
