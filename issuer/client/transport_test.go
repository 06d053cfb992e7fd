package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ/issuer/client"
)

// staticSource serves one token, or an error; it counts calls.
type staticSource struct {
	tok   *client.Token
	err   error
	calls atomic.Int32
}

func (s *staticSource) Token(ctx context.Context) (*client.Token, error) {
	s.calls.Add(1)
	return s.tok, s.err
}

// authEcho answers with the Authorization headers it received.
func authEcho(w http.ResponseWriter, r *http.Request) {
	w.Write([]byte(strings.Join(r.Header.Values("Authorization"), "|")))
}

// closeRecorder is a request body that records Close.
type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeRecorder) Close() error { c.closed.Store(true); return nil }

func TestTransport(t *testing.T) {
	tok := &client.Token{Value: "dG9rZW4tYnl0ZXM=", ID: strings.Repeat("1", 32), ExpiresAt: time.Now().Add(time.Minute)}
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(authEcho))
	defer tlsSrv.Close()
	plainSrv := httptest.NewServer(http.HandlerFunc(authEcho))
	defer plainSrv.Close()
	for _, tc := range []struct {
		name    string
		url     string
		header  string // Authorization the caller sets
		source  *staticSource
		allow   bool
		want    string // the server sees
		wantErr error
		calls   int32
	}{
		{"ok/bearer-over-tls", tlsSrv.URL + "/x", "", &staticSource{tok: tok}, false, "Bearer " + tok.Value, nil, 1},
		{"ok/bearer-to-loopback-http", plainSrv.URL + "/x", "", &staticSource{tok: tok}, false, "Bearer " + tok.Value, nil, 1},
		{"ok/caller-authorization-kept", tlsSrv.URL + "/x", "Bearer attenuated", &staticSource{tok: tok}, false, "Bearer attenuated", nil, 0},
		{"ok/caller-authorization-kept-on-error-source", tlsSrv.URL + "/x", "Bearer attenuated", &staticSource{err: client.ErrClosed}, false, "Bearer attenuated", nil, 0},
		{"fail/source-error", tlsSrv.URL + "/x", "", &staticSource{err: &client.ProblemError{Status: 403, Code: client.ProblemNotGranted}}, false, "", &client.ProblemError{}, 1},
		{"fail/http-to-remote-host", "http://crm.acme.test/x", "", &staticSource{tok: tok}, false, "", client.ErrInsecureTransport, 0},
		{"ok/http-to-remote-host-allowed", "http://crm.acme.test/x", "", &staticSource{tok: tok}, true, "Bearer " + tok.Value, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var base http.RoundTripper = tlsSrv.Client().Transport
			if !strings.Contains(tc.url, "127.0.0.1") {
				base = loopbackDialer(plainSrv.Listener.Addr().String())
			}
			tr := &client.Transport{Source: tc.source, Base: base, AllowHTTP: tc.allow}
			body := &closeRecorder{Reader: strings.NewReader("payload")}
			req, err := http.NewRequestWithContext(t.Context(), "POST", tc.url, body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			req.Header.Set("X-Caller", "1")
			before := req.Header.Clone()
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if got := tc.source.calls.Load(); got != tc.calls {
				t.Errorf("source calls: got %d, want %d", got, tc.calls)
			}
			if len(req.Header) != len(before) || req.Header.Get("Authorization") != before.Get("Authorization") {
				t.Errorf("caller's request headers changed: got %v, want %v", req.Header, before)
			}
			switch {
			case tc.wantErr != nil:
				var pe *client.ProblemError
				if err == nil || (errors.As(tc.wantErr, &pe) && !errors.As(err, &pe)) || (!errors.As(tc.wantErr, &pe) && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				if !body.closed.Load() {
					t.Error("request body not closed on error")
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if string(got) != tc.want {
				t.Fatalf("server saw Authorization %q, want %q", got, tc.want)
			}
		})
	}
}

// loopbackDialer is a transport that connects every host name to addr,
// so that tests address remote-looking hosts without DNS or network.
func loopbackDialer(addr string) *http.Transport {
	return &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
}

// TestTransportRedirects: the token follows a redirect within the origin,
// never to another host.
func TestTransportRedirects(t *testing.T) {
	tok := &client.Token{Value: "dG9rZW4", ID: strings.Repeat("2", 32)}
	var mu sync.Mutex
	seen := map[string]string{}
	record := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen[name+r.URL.Path] = r.Header.Get("Authorization")
			mu.Unlock()
		}
	}
	other := httptest.NewServer(record("other"))
	defer other.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/same", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/final", http.StatusFound) })
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(other.URL, "127.0.0.1", "localhost", 1)+"/final", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/final", record("origin"))
	origin := httptest.NewServer(mux)
	defer origin.Close()
	hc := &http.Client{Transport: &client.Transport{Source: &staticSource{tok: tok}}}
	for _, path := range []string{"/same", "/away"} {
		resp, err := hc.Get(origin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got := seen["origin/final"]; got != "Bearer "+tok.Value {
		t.Errorf("same-origin redirect: got %q, want the bearer token", got)
	}
	if got, ok := seen["other/final"]; !ok || got != "" {
		t.Errorf("redirect to another host: got %q (reached: %v), want no Authorization", got, ok)
	}
	hc.CloseIdleConnections()
}

// TestTransportWithClient sends a real token from a real issuer.
func TestTransportWithClient(t *testing.T) {
	f := newFixture(t)
	c := newClient(t, f.config(supportID, nil))
	srv := httptest.NewTLSServer(http.HandlerFunc(authEcho))
	defer srv.Close()
	hc := &http.Client{Transport: &client.Transport{Source: c, Base: srv.Client().Transport}}
	resp, err := hc.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	tok, err := c.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "Bearer "+tok.Value {
		t.Fatalf("server saw %.30q…, want the client's token", got)
	}
}
