package credential

import (
	"encoding/base64"
	"strings"
	"testing"
)

func BenchmarkVerifyJWTSVID(b *testing.B) {
	fx := newJWTFixture(b, wallNow())
	cfg := fx.cfg()
	for _, c := range []struct {
		name, alg string
		key       any
		kid       string
	}{
		{"ES256", "ES256", fx.keyA1, kidA1},
		{"RS256", "RS256", fx.keyARSA, kidARSA},
		{"PS256", "PS256", fx.keyARSA, kidARSA},
	} {
		tok := fx.sign(b, c.alg, c.key, hdr(c.alg, c.kid), fx.claims())
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := VerifyJWTSVID(tok, fx.bundles, cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyJWTSVIDRefuse measures what a hostile token costs.
func BenchmarkVerifyJWTSVIDRefuse(b *testing.B) {
	fx := newJWTFixture(b, wallNow())
	cfg := fx.cfg()
	good := fx.sign(b, "ES256", fx.keyA1, hdr("ES256", kidA1), fx.claims())
	i := strings.LastIndexByte(good, '.')
	sig, err := base64.RawURLEncoding.DecodeString(good[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	sig[10] ^= 1 // a well-formed signature that does not verify
	flipped := base64.RawURLEncoding.EncodeToString(sig)
	for _, c := range []struct{ name, token string }{
		{"garbage-64KiB", strings.Repeat("A", 64<<10)},
		{"garbage-8KiB-three-segments", strings.Repeat("A", 2000) + "." + strings.Repeat("A", 4000) + "." + strings.Repeat("A", 1000)},
		{"alg-none", fx.sign(b, "none", nil, hdr("none", kidA1), fx.claims())},
		{"kid-path", fx.sign(b, "ES256", fx.keyA1, hdr("ES256", "../../etc/passwd"), fx.claims())},
		{"expired", fx.sign(b, "ES256", fx.keyA1, hdr("ES256", kidA1), fx.claims("iat", fx.now.Add(-3*60e9).Unix(), "exp", fx.now.Add(-60e9).Unix()))},
		{"bad-signature-ES256", good[:i+1] + flipped},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := VerifyJWTSVID(c.token, fx.bundles, cfg); err == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}

func BenchmarkVerifyPeer(b *testing.B) {
	fx := newX509Fixture(b)
	cfg := fx.cfg()
	raw := raws(fx.issue(b, fx.caA, idAgentA))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyPeer(raw, fx.bundles, cfg); err != nil {
			b.Fatal(err)
		}
	}
}
