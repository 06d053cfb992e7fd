package spiffefile

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.uber.org/goleak"

	"github.com/writ-dev/writ/internal/pki"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	tdAcme  = spiffeid.RequireTrustDomainFromString("acme.example")
	tdOther = spiffeid.RequireTrustDomainFromString("other.example")
	idWrit  = spiffeid.RequireFromPath(tdAcme, "/writ")
)

// fixture is a directory with a CA per trust domain (bundle files
// <td>/ca.pem) and the SVID files svid.pem and svid-key.pem.
type fixture struct {
	dir   string
	now   time.Time
	ca    *pki.CA   // acme.example
	other *pki.CA   // other.example
	svid  *pki.SVID // written at creation
	cfg   Config
	logs  *syncBuffer
}

func newFixture(t testing.TB, now time.Time) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), now: now, logs: &syncBuffer{}}
	f.ca = newCA(t, tdAcme, now)
	f.other = newCA(t, tdOther, now)
	for _, ca := range []*pki.CA{f.ca, f.other} {
		if err := ca.WriteFiles(filepath.Join(f.dir, ca.TrustDomain().Name())); err != nil {
			t.Fatalf("write CA: %v", err)
		}
	}
	f.svid = f.issue(t)
	f.writeSVID(t, f.svid)
	f.cfg = DefaultConfig()
	f.cfg.CertFile = f.path("svid.pem")
	f.cfg.KeyFile = f.path("svid-key.pem")
	f.cfg.Bundles = map[spiffeid.TrustDomain]string{
		tdAcme:  f.bundlePath(tdAcme),
		tdOther: f.bundlePath(tdOther),
	}
	f.cfg.Logger = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.cfg.Now = func() time.Time { return f.now }
	return f
}

func (f *fixture) path(name string) string { return filepath.Join(f.dir, name) }

func (f *fixture) bundlePath(td spiffeid.TrustDomain) string {
	return filepath.Join(f.dir, td.Name(), pki.CACertFile)
}

func (f *fixture) issue(t testing.TB, opts ...pki.Option) *pki.SVID {
	t.Helper()
	s, err := f.ca.IssueSVID(idWrit, f.now, time.Hour, opts...)
	if err != nil {
		t.Fatalf("IssueSVID: %v", err)
	}
	return s
}

// writeSVID replaces svid.pem and svid-key.pem, each atomically.
func (f *fixture) writeSVID(t testing.TB, s *pki.SVID) {
	t.Helper()
	if err := s.WriteFiles(f.dir, "svid", pki.WithOverwrite()); err != nil {
		t.Fatalf("write SVID: %v", err)
	}
}

func (f *fixture) newSource(t testing.TB) *Source {
	t.Helper()
	src, err := New(f.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return src
}

func newCA(t testing.TB, td spiffeid.TrustDomain, now time.Time) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(td, now, 24*time.Hour)
	if err != nil {
		t.Fatalf("NewCA(%q): %v", td, err)
	}
	return ca
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFileT(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func certPEM(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

// servedSerial returns the serial of the leaf the source serves now.
func servedSerial(t testing.TB, src *Source) string {
	t.Helper()
	s, err := src.GetX509SVID()
	if err != nil {
		t.Fatalf("GetX509SVID: %v", err)
	}
	return s.Certificates[0].SerialNumber.String()
}

func serial(s *pki.SVID) string { return s.Certificates[0].SerialNumber.String() }

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
