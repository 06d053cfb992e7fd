package spiffefile

import (
	"bytes"
	"os"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the strict PEM decoders of the SVID
// and bundle files, seeded with the files of the table tests. They must
// never panic, and whatever they accept must hold what the caller needs.
func FuzzParse(f *testing.F) {
	fx := newFixture(f, t0)
	for _, p := range []string{fx.cfg.CertFile, fx.cfg.KeyFile, fx.bundlePath(tdAcme)} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	cert, _ := os.ReadFile(fx.cfg.CertFile)
	key, _ := os.ReadFile(fx.cfg.KeyFile)
	f.Add(append(bytes.Clone(cert), key...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := decodePEM(data, pemCertificate, pemPrivateKey); err == nil && len(bytes.TrimSpace(data)) == 0 {
			t.Fatal("decodePEM accepted empty input")
		}
		if b, _, err := parseBundle(tdAcme, data); err == nil {
			for _, c := range b.X509Authorities() {
				if !c.IsCA {
					t.Fatal("parseBundle accepted a non-CA certificate")
				}
			}
			if len(b.X509Authorities()) == 0 {
				t.Fatal("parseBundle accepted a bundle without authorities")
			}
		}
		if s, err := parseSVID(data, data); err == nil {
			if len(s.Certificates) == 0 || s.PrivateKey == nil || s.ID.IsZero() {
				t.Fatal("parseSVID accepted an incomplete SVID")
			}
		}
	})
}
