package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func wantMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("mode of %s = %v, want %v", filepath.Base(path), got, want)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCAFilesRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev", "ca")
	ca := newCA(t, tdAcme, t0, time.Hour)
	if err := ca.WriteFiles(dir); err != nil {
		t.Fatalf("WriteFiles: %v", err)
	}
	wantMode(t, dir, 0o700)
	wantMode(t, filepath.Join(dir, CACertFile), 0o644)
	wantMode(t, filepath.Join(dir, CAKeyFile), 0o600)

	got, err := LoadCA(dir)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if got.TrustDomain() != tdAcme {
		t.Errorf("TrustDomain() = %q, want %q", got.TrustDomain(), tdAcme)
	}
	if !got.Certificate().Equal(ca.Certificate()) {
		t.Error("loaded CA certificate differs from the written one")
	}
	// The loaded key signs leaves that the original CA's bundle accepts.
	s := issue(t, got, "/w", t0, time.Minute)
	if _, _, err := x509svid.Verify(s.Certificates, ca.Bundle(), x509svid.WithTime(t0)); err != nil {
		t.Errorf("leaf from loaded CA: %v", err)
	}

	b, err := LoadBundle(tdAcme, filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatalf("LoadBundle: %v", err)
	}
	if auths := b.X509Authorities(); len(auths) != 1 || !auths[0].Equal(ca.Certificate()) || b.TrustDomain() != tdAcme {
		t.Error("LoadBundle did not return the CA certificate for acme.example")
	}
}

func TestCAWriteFilesExisting(t *testing.T) {
	dir := t.TempDir()
	first := newCA(t, tdAcme, t0, time.Hour)
	if err := first.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	cert, key := readFile(t, certPath), readFile(t, keyPath)

	second := newCA(t, tdAcme, t0, time.Hour)
	err := second.WriteFiles(dir)
	if !errors.Is(err, ErrFileExists) || !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second WriteFiles error = %v, want ErrFileExists and fs.ErrExist", err)
	}
	if !bytes.Equal(readFile(t, certPath), cert) || !bytes.Equal(readFile(t, keyPath), key) {
		t.Fatal("refused WriteFiles changed the files")
	}

	// A lone certificate also blocks writing, and no key is left behind.
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if err := second.WriteFiles(dir); !errors.Is(err, ErrFileExists) {
		t.Fatalf("WriteFiles over lone certificate: error = %v, want ErrFileExists", err)
	}
	if _, err := os.Stat(keyPath); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("refused WriteFiles left a key file behind (stat: %v)", err)
	}

	// WithOverwrite replaces both, and restores 0600 on the key.
	if err := os.WriteFile(keyPath, key, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := second.WriteFiles(dir, WithOverwrite()); err != nil {
		t.Fatalf("WriteFiles(WithOverwrite): %v", err)
	}
	wantMode(t, keyPath, 0o600)
	wantMode(t, certPath, 0o644)
	got, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Certificate().Equal(second.Certificate()) {
		t.Error("WithOverwrite did not replace the CA")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("dir holds %d entries after overwrite, want 2 (no temporary files)", len(entries))
	}
}

func TestSVIDFilesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, tdAcme, t0, time.Hour)
	s := issue(t, ca, "/agents/support", t0, time.Minute)
	if err := s.WriteFiles(dir, "agent"); err != nil {
		t.Fatalf("WriteFiles: %v", err)
	}
	certPath, keyPath := filepath.Join(dir, "agent.pem"), filepath.Join(dir, "agent-key.pem")
	wantMode(t, certPath, 0o644)
	wantMode(t, keyPath, 0o600)

	got, err := LoadSVID(certPath, keyPath)
	if err != nil {
		t.Fatalf("LoadSVID: %v", err)
	}
	if got.ID != s.ID {
		t.Errorf("ID = %q, want %q", got.ID, s.ID)
	}
	if len(got.Certificates) != 1 || !got.Certificates[0].Equal(s.Certificates[0]) {
		t.Error("loaded chain differs from the written one")
	}
	if pub, ok := got.PrivateKey.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(s.PrivateKey.Public()) {
		t.Error("loaded key differs from the written one")
	}

	if err := s.WriteFiles(dir, "agent"); !errors.Is(err, ErrFileExists) {
		t.Errorf("second WriteFiles error = %v, want ErrFileExists", err)
	}
	s2 := issue(t, ca, "/agents/support", t0, time.Minute)
	if err := s2.WriteFiles(dir, "agent", WithOverwrite()); err != nil {
		t.Fatalf("WriteFiles(WithOverwrite): %v", err)
	}
	if got, err := LoadSVID(certPath, keyPath); err != nil || !got.Certificates[0].Equal(s2.Certificates[0]) {
		t.Errorf("after overwrite LoadSVID = %v; want the new SVID", err)
	}
}

func TestSVIDWriteFilesBadName(t *testing.T) {
	ca := newCA(t, tdAcme, t0, time.Hour)
	s := issue(t, ca, "/w", t0, time.Minute)
	for _, name := range []string{"", ".", "..", "a/b", "../escape", "/abs"} {
		t.Run("fail/"+name, func(t *testing.T) {
			dir := t.TempDir()
			if err := s.WriteFiles(dir, name); err == nil {
				t.Fatalf("WriteFiles(%q) = nil, want error", name)
			}
		})
	}
}

func TestLoadSVIDRejects(t *testing.T) {
	ca := newCA(t, tdAcme, t0, time.Hour)
	other := issue(t, ca, "/other", t0, time.Minute)
	tests := []struct {
		name string
		svid *SVID
	}{
		{"fail/leaf-is-ca", issue(t, ca, "/w", t0, time.Minute, WithCA(true))},
		{"fail/two-uri-sans", issue(t, ca, "/w", t0, time.Minute, WithExtraURI(other.ID.URL()))},
		{"fail/no-uri-san", issue(t, ca, "/w", t0, time.Minute, WithNoURI())},
		{"fail/key-mismatch", &SVID{ID: other.ID, Certificates: issue(t, ca, "/w", t0, time.Minute).Certificates, PrivateKey: other.PrivateKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := tt.svid.WriteFiles(dir, "bad"); err != nil {
				t.Fatal(err)
			}
			s, err := LoadSVID(filepath.Join(dir, "bad.pem"), filepath.Join(dir, "bad-key.pem"))
			if err == nil {
				t.Fatalf("LoadSVID = %q, nil; want error", s.ID)
			}
		})
	}
	t.Run("fail/missing", func(t *testing.T) {
		dir := t.TempDir()
		_, err := LoadSVID(filepath.Join(dir, "x.pem"), filepath.Join(dir, "x-key.pem"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("LoadSVID error = %v, want fs.ErrNotExist", err)
		}
	})
}

// caFileCases are CA file contents for TestLoadCARejects and FuzzParseCA.
func caFileCases(t testing.TB) (good [2][]byte, bad map[string][2][]byte) {
	ca := newCA(t, tdAcme, t0, time.Hour)
	certPEM := encodeCerts([]*x509.Certificate{ca.cert})
	keyPEM, err := encodeKey(ca.key)
	if err != nil {
		t.Fatal(err)
	}
	other := newCA(t, tdAcme, t0, time.Hour)
	otherKey, err := encodeKey(other.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf := issue(t, ca, "/w", t0, time.Minute)
	leafKey, err := encodeKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	leafCA := issue(t, ca, "/w", t0, time.Minute, WithCA(true))
	leafCAKey, err := encodeKey(leafCA.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return [2][]byte{certPEM, keyPEM}, map[string][2][]byte{
		"fail/key-of-other-ca":     {certPEM, otherKey},
		"fail/leaf-certificate":    {encodeCerts(leaf.Certificates), leafKey},
		"fail/leaf-claiming-ca":    {encodeCerts(leafCA.Certificates), leafCAKey}, // CA=true, no keyCertSign
		"fail/two-certificates":    {append(append([]byte{}, certPEM...), certPEM...), keyPEM},
		"fail/key-in-cert-file":    {keyPEM, keyPEM},
		"fail/cert-in-key-file":    {certPEM, certPEM},
		"fail/trailing-garbage":    {append(append([]byte{}, certPEM...), "junk"...), keyPEM},
		"fail/empty-cert":          {nil, keyPEM},
		"fail/empty-key":           {certPEM, nil},
		"fail/not-pem":             {[]byte("hello"), []byte("world")},
		"fail/truncated-cert-body": {bytes.Replace(certPEM, []byte("\n-----END"), []byte("AAAA\n-----END"), 1), keyPEM},
	}
}

func TestLoadCARejects(t *testing.T) {
	_, bad := caFileCases(t)
	for name, files := range bad {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, CACertFile), files[0], 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, CAKeyFile), files[1], 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadCA(dir)
			if !errors.Is(err, ErrInvalidCA) {
				t.Fatalf("LoadCA error = %v, want ErrInvalidCA", err)
			}
		})
	}
	t.Run("fail/missing", func(t *testing.T) {
		if _, err := LoadCA(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("LoadCA error = %v, want fs.ErrNotExist", err)
		}
	})
}

func TestLoadOrCreateCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "writ-dev")
	ca, created, err := LoadOrCreateCA(dir, tdAcme, t0, 24*time.Hour)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateCA = created %v, %v; want true, nil", created, err)
	}
	wantMode(t, filepath.Join(dir, CAKeyFile), 0o600)

	again, created, err := LoadOrCreateCA(dir, tdAcme, t0.Add(time.Hour), 24*time.Hour)
	if err != nil || created {
		t.Fatalf("second LoadOrCreateCA = created %v, %v; want false, nil", created, err)
	}
	if !again.Certificate().Equal(ca.Certificate()) {
		t.Error("second LoadOrCreateCA returned a different CA")
	}

	tests := []struct {
		name string
		dir  func(t *testing.T) string
		want error
	}{
		{"fail/other-trust-domain", func(t *testing.T) string {
			d := t.TempDir()
			if err := newCA(t, tdOther, t0, time.Hour).WriteFiles(d); err != nil {
				t.Fatal(err)
			}
			return d
		}, ErrTrustDomainMismatch},
		{"fail/expired", func(t *testing.T) string {
			d := t.TempDir()
			if err := newCA(t, tdAcme, t0.Add(-2*time.Hour), time.Hour).WriteFiles(d); err != nil {
				t.Fatal(err)
			}
			return d
		}, ErrCANotValid},
		{"fail/only-key-file", func(t *testing.T) string {
			d := t.TempDir()
			if err := newCA(t, tdAcme, t0, time.Hour).WriteFiles(d); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(d, CACertFile)); err != nil {
				t.Fatal(err)
			}
			return d
		}, ErrFileExists},
		{"fail/invalid-files", func(t *testing.T) string {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, CACertFile), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, CAKeyFile), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			return d
		}, ErrInvalidCA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, created, err := LoadOrCreateCA(tt.dir(t), tdAcme, t0, time.Hour)
			if !errors.Is(err, tt.want) {
				t.Errorf("LoadOrCreateCA error = %v, want %v", err, tt.want)
			}
			if created {
				t.Error("created = true, want false")
			}
		})
	}
}

func TestLoadBundleRejects(t *testing.T) {
	ca := newCA(t, tdAcme, t0, time.Hour)
	leaf := issue(t, ca, "/w", t0, time.Minute)
	tests := []struct {
		name string
		data []byte
	}{
		{"fail/empty", nil},
		{"fail/leaf-certificate", encodeCerts(leaf.Certificates)},
		{"fail/ca-and-leaf", encodeCerts([]*x509.Certificate{ca.cert, leaf.Certificates[0]})},
		{"fail/not-pem", []byte("not a bundle")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "bundle.pem")
			if err := os.WriteFile(f, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			if b, err := LoadBundle(tdAcme, f); err == nil {
				t.Fatalf("LoadBundle = %d authorities, nil; want error", len(b.X509Authorities()))
			}
		})
	}
	t.Run("fail/missing", func(t *testing.T) {
		if _, err := LoadBundle(tdAcme, filepath.Join(t.TempDir(), "none.pem")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("LoadBundle error = %v, want fs.ErrNotExist", err)
		}
	})
}

// FuzzParseCA feeds arbitrary CA file contents to the loader: it must not
// panic, and whatever it accepts must be a usable CA.
func FuzzParseCA(f *testing.F) {
	good, bad := caFileCases(f)
	f.Add(good[0], good[1])
	for _, files := range bad {
		f.Add(files[0], files[1])
	}
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		ca, err := parseCA(certPEM, keyPEM)
		if err != nil {
			if !errors.Is(err, ErrInvalidCA) {
				t.Fatalf("parseCA error %v does not wrap ErrInvalidCA", err)
			}
			return
		}
		c := ca.Certificate()
		if !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0 || ca.TrustDomain().IsZero() {
			t.Fatalf("parseCA accepted a certificate that is not a SPIFFE CA: %v", c.URIs)
		}
		if !c.NotBefore.Before(c.NotAfter) {
			return // cannot issue in an empty window; the key check below needs one
		}
		id, err := spiffeid.FromPath(ca.TrustDomain(), "/fuzz")
		if err != nil {
			t.Fatal(err)
		}
		s, err := ca.IssueSVID(id, c.NotBefore, time.Second)
		if err != nil {
			return // e.g. a key type x509 cannot sign with; not a parse property
		}
		if err := s.Certificates[0].CheckSignatureFrom(c); err != nil {
			t.Fatalf("accepted CA key does not match its certificate: %v", err)
		}
	})
}
