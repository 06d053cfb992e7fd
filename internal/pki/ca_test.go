package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func TestNewCA(t *testing.T) {
	ca := newCA(t, tdAcme, t0, 24*time.Hour)
	c := ca.Certificate()

	if got := ca.TrustDomain(); got != tdAcme {
		t.Errorf("TrustDomain() = %q, want %q", got, tdAcme)
	}
	if !c.BasicConstraintsValid || !c.IsCA {
		t.Errorf("BasicConstraintsValid, IsCA = %v, %v; want true, true", c.BasicConstraintsValid, c.IsCA)
	}
	if c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("MaxPathLen, MaxPathLenZero = %d, %v; want 0, true", c.MaxPathLen, c.MaxPathLenZero)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; c.KeyUsage != want {
		t.Errorf("KeyUsage = %b, want %b", c.KeyUsage, want)
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != "spiffe://acme.example" {
		t.Errorf("URIs = %v, want [spiffe://acme.example]", c.URIs)
	}
	if want := t0.Add(-ClockSkew); !c.NotBefore.Equal(want) {
		t.Errorf("NotBefore = %v, want %v", c.NotBefore, want)
	}
	if want := t0.Add(24 * time.Hour); !c.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", c.NotAfter, want)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA certificate is not self-signed: %v", err)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if len(c.SubjectKeyId) == 0 {
		t.Error("SubjectKeyId is empty")
	}

	b := ca.Bundle()
	if b.TrustDomain() != tdAcme {
		t.Errorf("Bundle().TrustDomain() = %q, want %q", b.TrustDomain(), tdAcme)
	}
	if auths := b.X509Authorities(); len(auths) != 1 || !auths[0].Equal(c) {
		t.Errorf("Bundle() holds %d authorities, want exactly the CA certificate", len(auths))
	}
	// A caller's change to one bundle must not leak into the next.
	b.AddX509Authority(newCA(t, tdAcme, t0, time.Hour).Certificate())
	if n := len(ca.Bundle().X509Authorities()); n != 1 {
		t.Errorf("fresh Bundle() holds %d authorities after changing another, want 1", n)
	}
}

func TestNewCAErrors(t *testing.T) {
	tests := []struct {
		name string
		td   spiffeid.TrustDomain
		now  time.Time
		ttl  time.Duration
	}{
		{"fail/zero-trust-domain", spiffeid.TrustDomain{}, t0, time.Hour},
		{"fail/zero-time", tdAcme, time.Time{}, time.Hour},
		{"fail/zero-ttl", tdAcme, t0, 0},
		{"fail/negative-ttl", tdAcme, t0, -time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca, err := NewCA(tt.td, tt.now, tt.ttl)
			if err == nil {
				t.Fatalf("NewCA() = %v, nil; want error", ca)
			}
		})
	}
}

func TestIssueSVID(t *testing.T) {
	ca := newCA(t, tdAcme, t0, 24*time.Hour)
	id := spiffeid.RequireFromPath(tdAcme, "/agents/support")
	s, err := ca.IssueSVID(id, t0, time.Hour,
		WithDNS("localhost"), WithIP(netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")))
	if err != nil {
		t.Fatalf("IssueSVID: %v", err)
	}
	if s.ID != id {
		t.Errorf("ID = %q, want %q", s.ID, id)
	}
	if len(s.Certificates) != 1 {
		t.Fatalf("chain length %d, want 1", len(s.Certificates))
	}
	c := s.Certificates[0]
	if len(c.URIs) != 1 || c.URIs[0].String() != id.String() {
		t.Errorf("URIs = %v, want [%s]", c.URIs, id)
	}
	if !c.BasicConstraintsValid || c.IsCA {
		t.Errorf("BasicConstraintsValid, IsCA = %v, %v; want true, false", c.BasicConstraintsValid, c.IsCA)
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage = %b, want digitalSignature only (%b)", c.KeyUsage, x509.KeyUsageDigitalSignature)
	}
	if want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}; !slices.Equal(c.ExtKeyUsage, want) {
		t.Errorf("ExtKeyUsage = %v, want %v", c.ExtKeyUsage, want)
	}
	if want := t0.Add(-ClockSkew); !c.NotBefore.Equal(want) {
		t.Errorf("NotBefore = %v, want %v", c.NotBefore, want)
	}
	if want := t0.Add(time.Hour); !c.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", c.NotAfter, want)
	}
	if !slices.Equal(c.DNSNames, []string{"localhost"}) {
		t.Errorf("DNSNames = %v, want [localhost]", c.DNSNames)
	}
	if len(c.IPAddresses) != 2 || !c.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || !c.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IPAddresses = %v, want [127.0.0.1 ::1]", c.IPAddresses)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v, want in [1, 2^128)", c.SerialNumber)
	}
	if !bytes.Equal(c.AuthorityKeyId, ca.Certificate().SubjectKeyId) {
		t.Errorf("AuthorityKeyId %x, want CA SubjectKeyId %x", c.AuthorityKeyId, ca.Certificate().SubjectKeyId)
	}
	if err := c.CheckSignatureFrom(ca.Certificate()); err != nil {
		t.Errorf("leaf not signed by CA: %v", err)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if !pub.Equal(s.PrivateKey.Public()) {
		t.Error("private key does not match the certificate")
	}

	// Serial numbers and keys are fresh for every certificate.
	s2 := issue(t, ca, "/agents/support", t0, time.Hour)
	if c.SerialNumber.Cmp(s2.Certificates[0].SerialNumber) == 0 {
		t.Errorf("two SVIDs share serial %v", c.SerialNumber)
	}
	if pub.Equal(s2.Certificates[0].PublicKey) {
		t.Error("two SVIDs share a key")
	}
	if c.SerialNumber.Cmp(ca.Certificate().SerialNumber) == 0 {
		t.Error("SVID and CA share a serial number")
	}
}

func TestIssueSVIDClampsToCA(t *testing.T) {
	ca := newCA(t, tdAcme, t0, time.Hour)
	s := issue(t, ca, "/w", t0.Add(30*time.Minute), time.Hour)
	if got, want := s.Certificates[0].NotAfter, ca.Certificate().NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter = %v, want CA NotAfter %v", got, want)
	}
}

func TestIssueSVIDErrors(t *testing.T) {
	ca := newCA(t, tdAcme, t0, time.Hour)
	good := spiffeid.RequireFromPath(tdAcme, "/w")
	tests := []struct {
		name string
		id   spiffeid.ID
		now  time.Time
		ttl  time.Duration
		opts []Option
		want error // nil: any error
	}{
		{name: "fail/zero-id", id: spiffeid.ID{}, now: t0, ttl: time.Minute},
		{name: "fail/other-trust-domain", id: spiffeid.RequireFromPath(tdOther, "/w"), now: t0, ttl: time.Minute, want: ErrTrustDomainMismatch},
		{name: "fail/trust-domain-id", id: tdAcme.ID(), now: t0, ttl: time.Minute},
		{name: "fail/zero-time", id: good, ttl: time.Minute},
		{name: "fail/zero-ttl", id: good, now: t0},
		{name: "fail/negative-ttl", id: good, now: t0, ttl: -time.Minute},
		{name: "fail/ca-expired", id: good, now: t0.Add(2 * time.Hour), ttl: time.Minute, want: ErrCANotValid},
		{name: "fail/ca-not-yet-valid", id: good, now: t0.Add(-time.Hour), ttl: time.Minute, want: ErrCANotValid},
		{name: "fail/validity-inverted", id: good, now: t0, ttl: time.Minute, opts: []Option{WithValidity(t0, t0.Add(-time.Second))}},
		{name: "fail/invalid-ip", id: good, now: t0, ttl: time.Minute, opts: []Option{WithIP(netip.Addr{})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ca.IssueSVID(tt.id, tt.now, tt.ttl, tt.opts...)
			if err == nil {
				t.Fatalf("IssueSVID() = %v, nil; want error", s.Certificates)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("IssueSVID() error = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestVerify checks that go-spiffe accepts the SVIDs this package issues
// and rejects each kind of bad certificate its options can produce.
func TestVerify(t *testing.T) {
	const ttl = time.Hour
	ca := newCA(t, tdAcme, t0, 24*time.Hour)
	otherTD := newCA(t, tdOther, t0, 24*time.Hour)
	rogue := newCA(t, tdAcme, t0, 24*time.Hour) // same trust domain, different key
	shortCA := newCA(t, tdAcme, t0, 2*time.Hour)
	bundle := ca.Bundle()
	bundle.AddX509Authority(shortCA.Certificate())
	bundles := x509bundle.NewSet(bundle)

	extra := spiffeid.RequireFromPath(tdAcme, "/second").URL()
	tests := []struct {
		name    string
		svid    *SVID
		at      time.Time
		wantErr string // "" means the SVID must verify
	}{
		{"ok/leaf", issue(t, ca, "/agents/support", t0, ttl), t0, ""},
		{"ok/with-dns-and-ip", issue(t, ca, "/writ", t0, ttl, WithDNS("localhost"), WithIP(netip.MustParseAddr("127.0.0.1"))), t0, ""},
		{"ok/within-clock-skew", issue(t, ca, "/w", t0, ttl), t0.Add(-ClockSkew / 2), ""},
		{"ok/last-second", issue(t, ca, "/w", t0, ttl), t0.Add(ttl), ""},
		{"ok/explicit-validity", issue(t, ca, "/w", t0, ttl, WithValidity(t0.Add(time.Hour), t0.Add(2*time.Hour))), t0.Add(90 * time.Minute), ""},
		{"fail/leaf-is-ca", issue(t, ca, "/w", t0, ttl, WithCA(true)), t0, "CA flag"},
		{"fail/two-uri-sans", issue(t, ca, "/w", t0, ttl, WithExtraURI(extra)), t0, "more than one URI SAN"},
		{"fail/no-uri-san", issue(t, ca, "/w", t0, ttl, WithNoURI()), t0, "no URI SAN"},
		{"fail/non-spiffe-uri-san", issue(t, ca, "/w", t0, ttl, WithNoURI(), WithExtraURI(&url.URL{Scheme: "https", Host: "acme.example"})), t0, "scheme"},
		{"fail/expired", issue(t, ca, "/w", t0, ttl, WithValidity(t0.Add(-2*time.Hour), t0.Add(-time.Hour))), t0, "expired"},
		{"fail/expired-by-ttl", issue(t, ca, "/w", t0, ttl), t0.Add(ttl + time.Second), "expired"},
		{"fail/not-yet-valid", issue(t, ca, "/w", t0, ttl), t0.Add(-2 * ClockSkew), "not yet valid"},
		{"fail/ca-expired", issue(t, shortCA, "/w", t0, ttl, WithValidity(t0, t0.Add(4*time.Hour))), t0.Add(3 * time.Hour),
			"is after " + shortCA.Certificate().NotAfter.Format(time.RFC3339)},
		{"fail/other-trust-domain", issue(t, otherTD, "/w", t0, ttl), t0, "no X.509 bundle"},
		{"fail/rogue-ca-same-trust-domain", issue(t, rogue, "/w", t0, ttl), t0, "unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, chains, err := x509svid.Verify(tt.svid.Certificates, bundles, x509svid.WithTime(tt.at))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if id != tt.svid.ID {
					t.Errorf("Verify ID = %q, want %q", id, tt.svid.ID)
				}
				if len(chains) == 0 {
					t.Error("Verify returned no chains")
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify = %q, nil; want error containing %q", id, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Verify error = %q, want it to contain %q", err, tt.wantErr)

			}
		})
	}
}

func TestX509SVIDAndTLSCertificate(t *testing.T) {
	ca := newCA(t, tdAcme, t0, time.Hour)
	s := issue(t, ca, "/w", t0, time.Hour)

	x := s.X509SVID()
	if x.ID != s.ID || len(x.Certificates) != 1 || x.Certificates[0] != s.Certificates[0] || x.PrivateKey != s.PrivateKey {
		t.Errorf("X509SVID() = %+v, want the SVID's ID, chain and key", x)
	}
	got, err := x.GetX509SVID()
	if err != nil || got != x {
		t.Errorf("GetX509SVID() = %p, %v; want %p, nil", got, err, x)
	}
	x.Certificates[0] = nil
	if s.Certificates[0] == nil {
		t.Error("changing the X509SVID chain changed the SVID")
	}

	tc := s.TLSCertificate()
	if len(tc.Certificate) != 1 || !bytes.Equal(tc.Certificate[0], s.Certificates[0].Raw) {
		t.Error("TLSCertificate().Certificate is not the leaf's DER")
	}
	if tc.Leaf != s.Certificates[0] || tc.PrivateKey != s.PrivateKey {
		t.Error("TLSCertificate() Leaf or PrivateKey is not the SVID's")
	}
}

func TestIssueSVIDConcurrent(t *testing.T) {
	ca := newCA(t, tdAcme, t0, time.Hour)
	bundle := ca.Bundle()
	const n = 8
	serials := make([]*big.Int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := spiffeid.RequireFromPath(tdAcme, "/w")
			s, err := ca.IssueSVID(id, t0, time.Minute)
			if err == nil {
				_, _, err = x509svid.Verify(s.Certificates, bundle, x509svid.WithTime(t0))
			}
			if err == nil {
				serials[i] = s.Certificates[0].SerialNumber
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(serials, (*big.Int).Cmp)
	if len(slices.CompactFunc(serials, func(a, b *big.Int) bool { return a.Cmp(b) == 0 })) != n {
		t.Error("concurrent issuance produced duplicate serial numbers")
	}
}

func BenchmarkIssueSVID(b *testing.B) {
	ca := newCA(b, tdAcme, t0, time.Hour)
	id := spiffeid.RequireFromPath(tdAcme, "/w")
	for b.Loop() {
		if _, err := ca.IssueSVID(id, t0, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewCA(b *testing.B) {
	for b.Loop() {
		if _, err := NewCA(tdAcme, t0, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}
