package pki

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

func TestJWTAuthority(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("acme.example")
	dir := t.TempDir()
	now := time.Now()
	ca, _, err := LoadOrCreateCA(dir, td, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a, created, err := LoadOrCreateJWTAuthority(dir, td)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateJWTAuthority: got (%v, %v), want a new authority", created, err)
	}
	again, created, err := LoadOrCreateJWTAuthority(dir, td)
	if err != nil || created || again.KeyID() != a.KeyID() {
		t.Fatalf("reload: got (kid %q, created %v, %v), want kid %q reused", again.KeyID(), created, err, a.KeyID())
	}
	if err := WriteSPIFFEBundle(dir, ca, a); err != nil {
		t.Fatal(err)
	}
	b, err := spiffebundle.Load(td, filepath.Join(dir, BundleFile))
	if err != nil {
		t.Fatal(err)
	}
	agent := spiffeid.RequireFromPath(td, "/agents/a")
	tok, err := again.Sign(agent, []string{"spiffe://acme.example/writ"}, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := jwtsvid.ParseAndValidate(tok, b, []string{"spiffe://acme.example/writ"})
	if err != nil {
		t.Fatalf("JWT-SVID signed by the reloaded key does not verify against bundle.json: %v", err)
	}
	if svid.ID != agent {
		t.Errorf("subject: got %q, want %q", svid.ID, agent)
	}
	other := spiffeid.RequireFromString("spiffe://other.example/x")
	if _, err := a.Sign(other, []string{"x"}, now, time.Minute); !errors.Is(err, ErrTrustDomainMismatch) {
		t.Errorf("sign for another trust domain: got %v, want ErrTrustDomainMismatch", err)
	}
	if _, err := a.Sign(agent, nil, now, time.Minute); err == nil {
		t.Error("sign without audience: got nil error")
	}
	fi, err := os.Stat(filepath.Join(dir, JWTKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != keyPerm {
		t.Errorf("key file mode: got %v, want %v", fi.Mode().Perm(), os.FileMode(keyPerm))
	}
}
