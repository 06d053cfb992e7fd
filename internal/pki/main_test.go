package pki

import (
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the fixed issuing time of tests that do not do TLS handshakes.
var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

var (
	tdAcme  = spiffeid.RequireTrustDomainFromString("acme.example")
	tdOther = spiffeid.RequireTrustDomainFromString("other.example")
)

func newCA(t testing.TB, td spiffeid.TrustDomain, now time.Time, ttl time.Duration) *CA {
	t.Helper()
	ca, err := NewCA(td, now, ttl)
	if err != nil {
		t.Fatalf("NewCA(%q): %v", td, err)
	}
	return ca
}

func issue(t testing.TB, ca *CA, path string, now time.Time, ttl time.Duration, opts ...Option) *SVID {
	t.Helper()
	id := spiffeid.RequireFromPath(ca.TrustDomain(), path)
	s, err := ca.IssueSVID(id, now, ttl, opts...)
	if err != nil {
		t.Fatalf("IssueSVID(%q): %v", id, err)
	}
	return s
}
