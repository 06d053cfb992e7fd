package spiffefile

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/internal/pki"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.CertFile, c.KeyFile = "c.pem", "k.pem"
		c.Bundles = map[spiffeid.TrustDomain]string{tdAcme: "b.pem"}
		return c
	}
	tests := []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"ok/default-interval", func(*Config) {}, true},
		{"ok/zero-interval-means-default", func(c *Config) { c.Interval = 0 }, true},
		{"ok/same-cert-and-key-file", func(c *Config) { c.KeyFile = c.CertFile }, true},
		{"fail/no-cert-file", func(c *Config) { c.CertFile = "" }, false},
		{"fail/no-key-file", func(c *Config) { c.KeyFile = "" }, false},
		{"fail/no-bundles", func(c *Config) { c.Bundles = nil }, false},
		{"fail/zero-trust-domain", func(c *Config) { c.Bundles[spiffeid.TrustDomain{}] = "x.pem" }, false},
		{"fail/empty-bundle-path", func(c *Config) { c.Bundles[tdOther] = "" }, false},
		{"fail/negative-interval", func(c *Config) { c.Interval = -time.Second }, false},
		{"fail/interval-too-short", func(c *Config) { c.Interval = MinInterval - 1 }, false},
		{"fail/interval-too-long", func(c *Config) { c.Interval = MaxInterval + 1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			err := c.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate: got %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate: got %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, f *fixture)
		wantErr error // nil: success
	}{
		{"ok/initial-load", func(*testing.T, *fixture) {}, nil},
		{"ok/cert-and-key-in-one-file", func(t *testing.T, f *fixture) {
			combined := append(readFileT(t, f.cfg.CertFile), readFileT(t, f.cfg.KeyFile)...)
			writeFile(t, f.path("combined.pem"), combined)
			f.cfg.CertFile, f.cfg.KeyFile = f.path("combined.pem"), f.path("combined.pem")
		}, nil},
		{"fail/invalid-config", func(_ *testing.T, f *fixture) { f.cfg.Bundles = nil }, ErrInvalidConfig},
		{"fail/missing-bundle-file", func(_ *testing.T, f *fixture) {
			f.cfg.Bundles[tdOther] = f.path("missing/ca.pem")
		}, fs.ErrNotExist},
		{"fail/missing-key-file", func(t *testing.T, f *fixture) {
			if err := os.Remove(f.cfg.KeyFile); err != nil {
				t.Fatal(err)
			}
		}, fs.ErrNotExist},
		{"fail/key-of-another-svid", func(t *testing.T, f *fixture) {
			writeFile(t, f.cfg.CertFile, certPEM(f.issue(t).Certificates...))
		}, ErrInvalidSVID},
		{"fail/truncated-cert", func(t *testing.T, f *fixture) {
			b := readFileT(t, f.cfg.CertFile)
			writeFile(t, f.cfg.CertFile, b[:len(b)/2])
		}, ErrInvalidSVID},
		{"fail/two-keys", func(t *testing.T, f *fixture) {
			b := readFileT(t, f.cfg.KeyFile)
			writeFile(t, f.cfg.KeyFile, append(b, b...))
		}, ErrInvalidSVID},
		{"fail/expired-svid", func(t *testing.T, f *fixture) {
			f.writeSVID(t, f.issue(t, pki.WithValidity(f.now.Add(-2*time.Hour), f.now.Add(-time.Hour))))
		}, ErrInvalidSVID},
		{"fail/svid-not-yet-valid", func(t *testing.T, f *fixture) {
			f.writeSVID(t, f.issue(t, pki.WithValidity(f.now.Add(time.Minute), f.now.Add(time.Hour))))
		}, ErrInvalidSVID},
		{"fail/svid-not-signed-by-own-bundle", func(t *testing.T, f *fixture) {
			rogue := newCA(t, tdAcme, f.now)
			s, err := rogue.IssueSVID(idWrit, f.now, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			f.writeSVID(t, s)
		}, ErrInvalidSVID},
		{"fail/empty-bundle", func(t *testing.T, f *fixture) {
			writeFile(t, f.bundlePath(tdOther), nil)
		}, ErrInvalidBundle},
		{"fail/truncated-bundle", func(t *testing.T, f *fixture) {
			two := certPEM(f.other.Certificate(), f.ca.Certificate())
			writeFile(t, f.bundlePath(tdOther), two[:len(two)-40])
		}, ErrInvalidBundle},
		{"fail/bundle-holds-leaf", func(t *testing.T, f *fixture) {
			writeFile(t, f.bundlePath(tdAcme), certPEM(f.svid.Certificates...))
		}, ErrInvalidBundle},
		{"fail/bundle-holds-key", func(t *testing.T, f *fixture) {
			b := append(readFileT(t, f.bundlePath(tdAcme)), readFileT(t, f.cfg.KeyFile)...)
			writeFile(t, f.bundlePath(tdAcme), b)
		}, ErrInvalidBundle},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, t0)
			tt.prepare(t, f)
			src, err := New(f.cfg)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("New: got error %v, want %v", err, tt.wantErr)
				}
				if src != nil {
					t.Fatalf("New: got a source with error %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if got, want := servedSerial(t, src), serial(f.svid); got != want {
				t.Errorf("serial: got %s, want %s", got, want)
			}
			if got, want := src.SVIDExpiry(), f.svid.Certificates[0].NotAfter; !got.Equal(want) {
				t.Errorf("SVIDExpiry: got %v, want %v", got, want)
			}
		})
	}
}

func TestBundlesByTrustDomain(t *testing.T) {
	f := newFixture(t, t0)
	src := f.newSource(t)
	for _, ca := range []*pki.CA{f.ca, f.other} {
		b, err := src.GetX509BundleForTrustDomain(ca.TrustDomain())
		if err != nil {
			t.Fatalf("GetX509BundleForTrustDomain(%q): %v", ca.TrustDomain(), err)
		}
		if got := b.TrustDomain(); got != ca.TrustDomain() {
			t.Errorf("bundle trust domain: got %q, want %q", got, ca.TrustDomain())
		}
		auths := b.X509Authorities()
		if len(auths) != 1 || !auths[0].Equal(ca.Certificate()) {
			t.Errorf("bundle %q: got %d authorities, want only its own CA", ca.TrustDomain(), len(auths))
		}
	}
	unknown := spiffeid.RequireTrustDomainFromString("unknown.example")
	if b, err := src.GetX509BundleForTrustDomain(unknown); !errors.Is(err, ErrUnknownTrustDomain) || b != nil {
		t.Errorf("GetX509BundleForTrustDomain(%q): got (%v, %v), want ErrUnknownTrustDomain", unknown, b, err)
	}

	// Changing the caller's map after New has no effect.
	f.cfg.Bundles[unknown] = f.bundlePath(tdAcme)
	if _, err := src.GetX509BundleForTrustDomain(unknown); !errors.Is(err, ErrUnknownTrustDomain) {
		t.Errorf("after changing Config.Bundles: got %v, want ErrUnknownTrustDomain", err)
	}
}

func TestZeroSourceFails(t *testing.T) {
	var src Source
	if _, err := src.GetX509SVID(); err == nil {
		t.Error("GetX509SVID on zero Source: got nil error")
	}
	if _, err := src.GetX509BundleForTrustDomain(tdAcme); err == nil {
		t.Error("GetX509BundleForTrustDomain on zero Source: got nil error")
	}
	if err := src.Reload(); err == nil {
		t.Error("Reload on zero Source: got nil error")
	}
	if got := src.SVIDExpiry(); !got.IsZero() {
		t.Errorf("SVIDExpiry on zero Source: got %v, want zero", got)
	}
}

func TestReloadRotation(t *testing.T) {
	f := newFixture(t, t0)
	src := f.newSource(t)
	before, _ := src.GetX509SVID()

	// Unchanged files: nothing is swapped.
	if err := src.Reload(); err != nil {
		t.Fatalf("Reload unchanged: %v", err)
	}
	if got, _ := src.GetX509SVID(); got != before {
		t.Error("Reload of unchanged files replaced the SVID")
	}

	f.now = t0.Add(30 * time.Minute)
	next := f.issue(t)
	f.writeSVID(t, next)
	if err := src.Reload(); err != nil {
		t.Fatalf("Reload after rotation: %v", err)
	}
	if got, want := servedSerial(t, src), serial(next); got != want {
		t.Errorf("serial after rotation: got %s, want %s", got, want)
	}
	if got, want := src.SVIDExpiry(), next.Certificates[0].NotAfter; !got.Equal(want) {
		t.Errorf("SVIDExpiry after rotation: got %v, want %v", got, want)
	}
	if !strings.Contains(f.logs.String(), next.Certificates[0].SerialNumber.Text(16)) {
		t.Errorf("log does not name the new serial:\n%s", f.logs)
	}
}

// TestReloadKeepsPrevious covers half-done rotations: each must leave the
// previous snapshot in place, and the source must pick up the good files
// once the rotation completes.
func TestReloadKeepsPrevious(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(t *testing.T, f *fixture, next *pki.SVID)
		wantErr error
	}{
		{"fail/new-cert-old-key", func(t *testing.T, f *fixture, next *pki.SVID) {
			writeFile(t, f.cfg.CertFile, certPEM(next.Certificates...))
		}, ErrInvalidSVID},
		{"fail/new-key-old-cert", func(t *testing.T, f *fixture, next *pki.SVID) {
			dir := t.TempDir()
			if err := next.WriteFiles(dir, "n"); err != nil {
				t.Fatal(err)
			}
			writeFile(t, f.cfg.KeyFile, readFileT(t, dir+"/n-key.pem"))
		}, ErrInvalidSVID},
		{"fail/half-written-key", func(t *testing.T, f *fixture, next *pki.SVID) {
			f.writeSVID(t, next)
			b := readFileT(t, f.cfg.KeyFile)
			writeFile(t, f.cfg.KeyFile, b[:len(b)-30])
		}, ErrInvalidSVID},
		{"fail/empty-cert", func(t *testing.T, f *fixture, next *pki.SVID) {
			f.writeSVID(t, next)
			writeFile(t, f.cfg.CertFile, nil)
		}, ErrInvalidSVID},
		{"fail/key-file-removed", func(t *testing.T, f *fixture, next *pki.SVID) {
			f.writeSVID(t, next)
			if err := os.Remove(f.cfg.KeyFile); err != nil {
				t.Fatal(err)
			}
		}, fs.ErrNotExist},
		{"fail/bundle-corrupt", func(t *testing.T, f *fixture, next *pki.SVID) {
			f.writeSVID(t, next)
			writeFile(t, f.bundlePath(tdOther), []byte("-----BEGIN CERTIFICATE-----\nMIIB"))
		}, ErrInvalidBundle},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, t0)
			src := f.newSource(t)
			next := f.issue(t)
			tt.break_(t, f, next)

			for i := range 2 { // a second poll of the same broken files fails the same way
				if err := src.Reload(); !errors.Is(err, tt.wantErr) {
					t.Fatalf("Reload %d: got %v, want %v", i, err, tt.wantErr)
				}
			}
			if got, want := servedSerial(t, src), serial(f.svid); got != want {
				t.Fatalf("serial after failed reload: got %s, want the previous %s", got, want)
			}
			if got, want := src.SVIDExpiry(), f.svid.Certificates[0].NotAfter; !got.Equal(want) {
				t.Errorf("SVIDExpiry after failed reload: got %v, want %v", got, want)
			}
			logs := f.logs.String()
			if n := strings.Count(logs, "reload failed"); n != 1 {
				t.Errorf("warnings for one failure seen twice: got %d, want 1\n%s", n, logs)
			}

			// The rotation completes.
			f.writeSVID(t, next)
			if err := f.ca.WriteFiles(f.dir+"/"+tdAcme.Name(), pki.WithOverwrite()); err != nil {
				t.Fatal(err)
			}
			if err := f.other.WriteFiles(f.dir+"/"+tdOther.Name(), pki.WithOverwrite()); err != nil {
				t.Fatal(err)
			}
			if err := src.Reload(); err != nil {
				t.Fatalf("Reload after completed rotation: %v", err)
			}
			if got, want := servedSerial(t, src), serial(next); got != want {
				t.Errorf("serial after completed rotation: got %s, want %s", got, want)
			}
		})
	}
}

func TestNoKeyMaterialLogged(t *testing.T) {
	f := newFixture(t, t0)
	src := f.newSource(t)
	next := f.issue(t)
	f.writeSVID(t, next)
	writeFile(t, f.cfg.CertFile, []byte("garbage"))
	_ = src.Reload()
	f.writeSVID(t, next)
	if err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	logs := f.logs.String()
	key := string(readFileT(t, f.cfg.KeyFile))
	body := strings.Split(strings.TrimSpace(key), "\n")[1] // first base64 line
	if strings.Contains(logs, "PRIVATE KEY") || strings.Contains(logs, body) {
		t.Fatalf("log contains key material:\n%s", logs)
	}
	if !strings.Contains(logs, "reload failed") || !strings.Contains(logs, "valid again") {
		t.Errorf("log misses the failure or the recovery:\n%s", logs)
	}
}

// TestConcurrentReads runs readers against rotations and broken writes;
// under -race it checks the snapshot swap, and every SVID a reader sees
// must be a complete, matching pair.
func TestConcurrentReads(t *testing.T) {
	f := newFixture(t, t0)
	src := f.newSource(t)
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				s, err := src.GetX509SVID()
				if err != nil {
					errs <- err
					return
				}
				pub, ok := s.PrivateKey.Public().(interface{ Equal(crypto.PublicKey) bool })
				if !ok || !pub.Equal(s.Certificates[0].PublicKey) {
					errs <- errors.New("served SVID key does not match its certificate")
					return
				}
				if _, err := src.GetX509BundleForTrustDomain(tdAcme); err != nil {
					errs <- err
					return
				}
				_ = src.SVIDExpiry()
			}
		}()
	}
	var last *pki.SVID
	for i := range 20 {
		next := f.issue(t)
		if i%3 == 2 { // a half-done rotation that must not be served
			writeFile(t, f.cfg.CertFile, certPEM(next.Certificates...))
			if err := src.Reload(); err == nil {
				t.Errorf("Reload %d of mismatched pair: got nil error", i)
			}
		}
		f.writeSVID(t, next)
		if err := src.Reload(); err != nil {
			t.Errorf("Reload %d: %v", i, err)
		}
		last = next
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, want := servedSerial(t, src), serial(last); got != want {
		t.Errorf("serial after rotations: got %s, want %s", got, want)
	}
}

func TestRun(t *testing.T) {
	f := newFixture(t, t0)
	f.cfg.Interval = MinInterval
	src := f.newSource(t)
	ctx, cancel := context.WithCancel(t.Context())
	runErr := make(chan error, 1)
	go func() { runErr <- src.Run(ctx) }()

	next := f.issue(t)
	f.writeSVID(t, next)
	// Wait for a poll to pick it up; the deadline only guards against a hang.
	deadline := time.Now().Add(20 * time.Second)
	for servedSerial(t, src) != serial(next) {
		if time.Now().After(deadline) {
			t.Fatalf("Run did not pick up the rotated SVID: serial %s, want %s", servedSerial(t, src), serial(next))
		}
		time.Sleep(MinInterval)
	}

	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("Run: got %v, want nil after cancel", err)
	}
	// goleak in TestMain checks that Run left nothing behind.
}

func BenchmarkGetX509SVID(b *testing.B) {
	f := newFixture(b, t0)
	src, err := New(f.cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := src.GetX509SVID(); err != nil {
				b.Error(err)
				return
			}
			if _, err := src.GetX509BundleForTrustDomain(tdAcme); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestSPIFFEBundleFormat(t *testing.T) {
	f := newFixture(t, t0)
	jwtKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sb := spiffebundle.New(tdAcme)
	sb.AddX509Authority(f.ca.Certificate())
	if err := sb.AddJWTAuthority("k1", jwtKey.Public()); err != nil {
		t.Fatal(err)
	}
	doc, err := sb.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.bundlePath(tdAcme), doc)
	src := f.newSource(t)

	xb, err := src.GetX509BundleForTrustDomain(tdAcme)
	if err != nil || len(xb.X509Authorities()) != 1 || !xb.X509Authorities()[0].Equal(f.ca.Certificate()) {
		t.Fatalf("X.509 bundle from SPIFFE bundle: got (%v, %v), want the CA only", xb, err)
	}
	jb, err := src.GetJWTBundleForTrustDomain(tdAcme)
	if err != nil {
		t.Fatalf("GetJWTBundleForTrustDomain: %v", err)
	}
	if _, ok := jb.FindJWTAuthority("k1"); !ok || jb.TrustDomain() != tdAcme {
		t.Errorf("JWT bundle: got %d authorities for %q, want k1 for %q", len(jb.JWTAuthorities()), jb.TrustDomain(), tdAcme)
	}
	// The other trust domain is configured with PEM: no JWT authorities,
	// and nothing is borrowed from acme.
	if b, err := src.GetJWTBundleForTrustDomain(f.other.TrustDomain()); !errors.Is(err, ErrUnknownTrustDomain) || b != nil {
		t.Errorf("JWT bundle of a PEM-configured trust domain: got (%v, %v), want ErrUnknownTrustDomain", b, err)
	}

	// Bad SPIFFE bundles are refused and the previous snapshot is kept.
	for name, data := range map[string][]byte{
		"truncated":   doc[:len(doc)/2],
		"no-x509":     mustMarshalJWTOnly(t, jwtKey),
		"not-json":    []byte("{nope"),
		"private-key": []byte(`{"keys":[{"kty":"EC","crv":"P-256","use":"jwt-svid","kid":"p","x":"AA","y":"AA","d":"AA"}]}`),
	} {
		writeFile(t, f.bundlePath(tdAcme), data)
		if err := src.Reload(); !errors.Is(err, ErrInvalidBundle) {
			t.Errorf("%s: Reload: got %v, want ErrInvalidBundle", name, err)
		}
		if _, err := src.GetJWTBundleForTrustDomain(tdAcme); err != nil {
			t.Errorf("%s: previous JWT bundle lost: %v", name, err)
		}
	}
}

func mustMarshalJWTOnly(t *testing.T, key *ecdsa.PrivateKey) []byte {
	sb := spiffebundle.New(tdAcme)
	if err := sb.AddJWTAuthority("k1", key.Public()); err != nil {
		t.Fatal(err)
	}
	doc, err := sb.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}
