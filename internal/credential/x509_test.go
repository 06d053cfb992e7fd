package credential

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/internal/pki"
)

// x509Now is the fixed verification time of the X.509 tests.
var x509Now = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

var tdD = spiffeid.RequireTrustDomainFromString("d.example") // hand-built chains

// chainCA is a CA built with crypto/x509 directly, for chains pki does not
// make: intermediates, odd key usages.
type chainCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serialN int64

func template(now time.Time) *x509.Certificate {
	serialN++
	return &x509.Certificate{
		SerialNumber:          big.NewInt(serialN),
		Subject:               pkix.Name{CommonName: "test"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		BasicConstraintsValid: true,
	}
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func create(t testing.TB, tmpl *x509.Certificate, parent *chainCA, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	parentCert, signer := tmpl, key
	if parent != nil {
		parentCert, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newChainCA returns a root (parent nil) or an intermediate of parent,
// with the trust domain ID as URI SAN and no path length limit.
func newChainCA(t testing.TB, td spiffeid.TrustDomain, parent *chainCA, isCA bool) *chainCA {
	t.Helper()
	key := mustKey(t)
	tmpl := template(x509Now)
	tmpl.IsCA = isCA
	tmpl.MaxPathLen = -1
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	tmpl.URIs = []*url.URL{td.ID().URL()}
	return &chainCA{cert: create(t, tmpl, parent, key), key: key}
}

// leaf returns an X.509-SVID for id signed by ca, after edit.
func (ca *chainCA) leaf(t testing.TB, id string, edit func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	tmpl := template(x509Now)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
	u, err := url.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.URIs = []*url.URL{u}
	if edit != nil {
		edit(tmpl)
	}
	return create(t, tmpl, ca, mustKey(t))
}

func raws(certs ...*x509.Certificate) [][]byte {
	out := make([][]byte, len(certs))
	for i, c := range certs {
		out[i] = c.Raw
	}
	return out
}

type x509Fixture struct {
	caA, caB, caC *pki.CA // caC's bundle is not in the set
	root          *chainCA
	i1, i2, i3    *chainCA // root → i1 → i2 → i3
	bundles       *x509bundle.Set
}

func newX509Fixture(t testing.TB) *x509Fixture {
	t.Helper()
	fx := &x509Fixture{}
	for _, p := range []struct {
		ca **pki.CA
		td spiffeid.TrustDomain
	}{{&fx.caA, tdA}, {&fx.caB, tdB}, {&fx.caC, tdC}} {
		ca, err := pki.NewCA(p.td, x509Now, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		*p.ca = ca
	}
	fx.root = newChainCA(t, tdD, nil, true)
	fx.i1 = newChainCA(t, tdD, fx.root, true)
	fx.i2 = newChainCA(t, tdD, fx.i1, true)
	fx.i3 = newChainCA(t, tdD, fx.i2, true)
	fx.bundles = x509bundle.NewSet(fx.caA.Bundle(), fx.caB.Bundle(),
		x509bundle.FromX509Authorities(tdD, []*x509.Certificate{fx.root.cert}))
	return fx
}

func (fx *x509Fixture) issue(t testing.TB, ca *pki.CA, id spiffeid.ID, opts ...pki.Option) *x509.Certificate {
	t.Helper()
	s, err := ca.IssueSVID(id, x509Now, time.Hour, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s.Certificates[0]
}

type x509Case struct {
	name   string
	raw    [][]byte
	cfg    func(*X509Config)
	want   error
	wantID spiffeid.ID
}

func x509Cases(t testing.TB, fx *x509Fixture) []x509Case {
	t.Helper()
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	idD := spiffeid.RequireFromPath(tdD, "/agents/deep")
	leafA := fx.issue(t, fx.caA, idAgentA)
	garbage := []byte("not a certificate")
	// A self-signed leaf claiming an identity of A.
	selfKey := mustKey(t)
	selfTmpl := template(x509Now)
	selfTmpl.KeyUsage = x509.KeyUsageDigitalSignature
	selfTmpl.URIs = []*url.URL{idAgentA.URL()}
	self := create(t, selfTmpl, nil, selfKey)

	return []x509Case{
		{name: "ok/leaf-a", raw: raws(leafA), wantID: idAgentA},
		{name: "ok/leaf-b", raw: raws(fx.issue(t, fx.caB, idAgentB)), wantID: idAgentB},
		{name: "ok/leaf-with-root-appended", raw: raws(leafA, fx.caA.Certificate()), wantID: idAgentA},
		{name: "ok/one-intermediate", raw: raws(fx.i1.leaf(t, idD.String(), nil), fx.i1.cert), wantID: idD},
		{name: "ok/chain-depth-at-max", raw: raws(fx.i2.leaf(t, idD.String(), nil), fx.i2.cert, fx.i1.cert), wantID: idD},

		{name: "fail/empty", raw: nil, want: ErrNotSVID},
		{name: "fail/garbage-der", raw: [][]byte{garbage}, want: ErrMalformed},
		{name: "fail/garbage-intermediate", raw: [][]byte{leafA.Raw, garbage}, want: ErrMalformed},
		{name: "fail/cert-over-16KiB", raw: [][]byte{make([]byte, MaxCertBytes+1)}, want: ErrTooLarge},
		{name: "fail/leaf-ca", raw: raws(fx.issue(t, fx.caA, idAgentA, pki.WithCA(true))), want: ErrNotSVID},
		{name: "fail/no-uri-san", raw: raws(fx.issue(t, fx.caA, idAgentA, pki.WithNoURI())), want: ErrNotSVID},
		{name: "fail/two-uri-sans", raw: raws(fx.issue(t, fx.caA, idAgentA, pki.WithExtraURI(mustURL("spiffe://a.example/agents/other")))), want: ErrNotSVID},
		{name: "fail/uri-san-https", raw: raws(fx.issue(t, fx.caA, idAgentA, pki.WithNoURI(), pki.WithExtraURI(mustURL("https://a.example/agents/support")))), want: ErrNotSVID},
		{name: "fail/uri-san-trust-domain-only", raw: raws(fx.issue(t, fx.caA, idAgentA, pki.WithNoURI(), pki.WithExtraURI(mustURL("spiffe://a.example")))), want: ErrNotSVID},
		{name: "fail/uri-san-malformed-spiffe-id", raw: raws(fx.issue(t, fx.caA, idAgentA, pki.WithNoURI(), pki.WithExtraURI(mustURL("spiffe://A.example/x?q=1")))), want: ErrNotSVID},
		{name: "fail/leaf-key-usage-cert-sign", raw: raws(fx.i1.leaf(t, idD.String(), func(c *x509.Certificate) {
			c.KeyUsage |= x509.KeyUsageCertSign
		}), fx.i1.cert), want: ErrNotSVID},
		{name: "fail/leaf-key-usage-crl-sign", raw: raws(fx.i1.leaf(t, idD.String(), func(c *x509.Certificate) {
			c.KeyUsage |= x509.KeyUsageCRLSign
		}), fx.i1.cert), want: ErrNotSVID},
		{name: "fail/leaf-no-digital-signature", raw: raws(fx.i1.leaf(t, idD.String(), func(c *x509.Certificate) {
			c.KeyUsage = x509.KeyUsageKeyEncipherment
		}), fx.i1.cert), want: ErrNotSVID},
		{name: "fail/expired", raw: raws(fx.issue(t, fx.caA, idAgentA, pki.WithValidity(x509Now.Add(-2*time.Hour), x509Now.Add(-time.Second)))), want: ErrExpired},
		{name: "fail/not-yet-valid", raw: raws(fx.issue(t, fx.caA, idAgentA, pki.WithValidity(x509Now.Add(time.Second), x509Now.Add(time.Hour)))), want: ErrNotYetValid},
		{name: "fail/expired-at-injected-time", raw: raws(leafA), cfg: func(c *X509Config) {
			c.Now = func() time.Time { return x509Now.Add(2 * time.Hour) }
		}, want: ErrExpired},
		{name: "fail/no-bundle-for-trust-domain", raw: raws(fx.issue(t, fx.caC, idAgentC)), want: ErrUntrusted},
		{name: "fail/cross-trust-domain", raw: raws(fx.issue(t, fx.caA, idAgentA, pki.WithNoURI(), pki.WithExtraURI(idAgentB.URL()))), want: ErrUntrusted},
		{name: "fail/cross-trust-domain-with-own-root", raw: raws(fx.issue(t, fx.caA, idAgentA, pki.WithNoURI(), pki.WithExtraURI(idAgentB.URL())), fx.caA.Certificate()), want: ErrUntrusted},
		{name: "fail/self-signed", raw: raws(self), want: ErrUntrusted},
		{name: "fail/intermediate-not-ca", raw: func() [][]byte {
			notCA := newChainCA(t, tdD, fx.root, false)
			return raws(notCA.leaf(t, idD.String(), nil), notCA.cert)
		}(), want: ErrUntrusted},
		{name: "fail/intermediate-missing", raw: raws(fx.i2.leaf(t, idD.String(), nil), fx.i2.cert), want: ErrUntrusted},
		{name: "fail/chain-presented-too-deep", raw: [][]byte{leafA.Raw, garbage, garbage, garbage, garbage}, want: ErrChainTooDeep},
		{name: "fail/chain-verified-too-deep", raw: raws(fx.i3.leaf(t, idD.String(), nil), fx.i3.cert, fx.i2.cert, fx.i1.cert), want: ErrChainTooDeep},
		{name: "fail/chain-verified-over-narrowed-max", raw: raws(fx.i1.leaf(t, idD.String(), nil), fx.i1.cert),
			cfg: func(c *X509Config) { c.MaxChainDepth = 2 }, want: ErrChainTooDeep},
	}
}

func (fx *x509Fixture) cfg() X509Config {
	c := DefaultX509Config()
	c.Now = func() time.Time { return x509Now }
	return c
}

func TestVerifyPeer(t *testing.T) {
	fx := newX509Fixture(t)
	for _, c := range x509Cases(t, fx) {
		t.Run(c.name, func(t *testing.T) {
			cfg := fx.cfg()
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			id, err := VerifyPeer(c.raw, fx.bundles, cfg)
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("got error %v, want %v", err, c.want)
				}
				if !id.IsZero() {
					t.Errorf("got ID %v with error, want zero", id)
				}
				checkOneSentinel(t, err)
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if id != c.wantID {
				t.Errorf("got ID %v, want %v", id, c.wantID)
			}
		})
	}
}

func TestX509ConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*X509Config)
		ok   bool
	}{
		{"ok/default", func(*X509Config) {}, true},
		{"ok/depth-min", func(c *X509Config) { c.MaxChainDepth = MinChainDepth }, true},
		{"ok/depth-limit", func(c *X509Config) { c.MaxChainDepth = MaxChainDepthLimit }, true},
		{"fail/depth-zero", func(c *X509Config) { c.MaxChainDepth = 0 }, false},
		{"fail/depth-one", func(c *X509Config) { c.MaxChainDepth = 1 }, false},
		{"fail/depth-over-limit", func(c *X509Config) { c.MaxChainDepth = MaxChainDepthLimit + 1 }, false},
		{"fail/now-nil", func(c *X509Config) { c.Now = nil }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultX509Config()
			c.edit(&cfg)
			err := cfg.Validate()
			switch {
			case c.ok && err != nil:
				t.Errorf("got error %v, want nil", err)
			case !c.ok && !errors.Is(err, ErrInvalidConfig):
				t.Errorf("got error %v, want %v", err, ErrInvalidConfig)
			}
		})
	}
	fx := newX509Fixture(t)
	if _, err := VerifyPeer(raws(fx.issue(t, fx.caA, idAgentA)), nil, fx.cfg()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil bundles: got error %v, want %v", err, ErrInvalidConfig)
	}
}

// TestVerifyPeerTLSHandshake runs real mTLS handshakes over 127.0.0.1 in
// which both sides check the other with VerifyPeer, and shows that a
// refused client chain fails the server's handshake with the sentinel.
func TestVerifyPeerTLSHandshake(t *testing.T) {
	fx := newX509Fixture(t)
	serverSVID, err := fx.caA.IssueSVID(idIssuer, x509Now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fx.cfg()
	for _, c := range []struct {
		name   string
		client func() *pki.SVID
		want   error
	}{
		{"ok/client-svid-a", func() *pki.SVID { return mustSVID(t, fx.caA, idAgentA) }, nil},
		{"ok/client-svid-b", func() *pki.SVID { return mustSVID(t, fx.caB, idAgentB) }, nil},
		{"fail/client-leaf-ca", func() *pki.SVID { return mustSVID(t, fx.caA, idAgentA, pki.WithCA(true)) }, ErrNotSVID},
		{"fail/client-two-uri-sans", func() *pki.SVID {
			return mustSVID(t, fx.caA, idAgentA, pki.WithExtraURI(idAgentB.URL()))
		}, ErrNotSVID},
		{"fail/client-untrusted-trust-domain", func() *pki.SVID { return mustSVID(t, fx.caC, idAgentC) }, ErrUntrusted},
		{"fail/client-cross-trust-domain", func() *pki.SVID {
			return mustSVID(t, fx.caA, idAgentA, pki.WithNoURI(), pki.WithExtraURI(idAgentB.URL()))
		}, ErrUntrusted},
	} {
		t.Run(c.name, func(t *testing.T) {
			clientSVID := c.client()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()

			type result struct {
				id  spiffeid.ID
				err error
			}
			done := make(chan result, 1)
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					done <- result{err: err}
					return
				}
				defer conn.Close()
				var id spiffeid.ID
				srv := tls.Server(conn, &tls.Config{
					MinVersion:   tls.VersionTLS13,
					Certificates: []tls.Certificate{serverSVID.TLSCertificate()},
					ClientAuth:   tls.RequireAnyClientCert,
					VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
						var err error
						id, err = VerifyPeer(raw, fx.bundles, cfg)
						return err
					},
				})
				err = srv.HandshakeContext(ctx)
				done <- result{id: id, err: err}
			}()

			var serverID spiffeid.ID
			d := tls.Dialer{Config: &tls.Config{
				MinVersion:         tls.VersionTLS13,
				Certificates:       []tls.Certificate{clientSVID.TLSCertificate()},
				InsecureSkipVerify: true, // replaced by VerifyPeer below
				VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
					var err error
					serverID, err = VerifyPeer(raw, fx.bundles, cfg)
					return err
				},
			}}
			conn, clientErr := d.DialContext(ctx, "tcp", ln.Addr().String())
			if clientErr == nil {
				// In TLS 1.3 the server checks the client's certificate
				// after the client's handshake is done: the refusal
				// arrives as an alert on the first read.
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, clientErr = conn.Read(make([]byte, 1))
				conn.Close()
			}
			res := <-done

			if serverID != idIssuer {
				t.Errorf("client saw server ID %v, want %v", serverID, idIssuer)
			}
			if c.want == nil {
				if res.err != nil {
					t.Fatalf("server handshake: got error %v, want nil", res.err)
				}
				if res.id != clientSVID.ID {
					t.Errorf("server saw client ID %v, want %v", res.id, clientSVID.ID)
				}
				return
			}
			if !errors.Is(res.err, c.want) {
				t.Fatalf("server handshake: got error %v, want %v", res.err, c.want)
			}
			// crypto/tls does not export its alert type for TCP
			// connections (tls.AlertError is for QUIC only).
			if clientErr == nil || !strings.Contains(clientErr.Error(), "bad certificate") {
				t.Errorf("client: got error %v, want a bad certificate alert", clientErr)
			}
		})
	}
}

func mustSVID(t testing.TB, ca *pki.CA, id spiffeid.ID, opts ...pki.Option) *pki.SVID {
	t.Helper()
	s, err := ca.IssueSVID(id, x509Now, time.Hour, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
