package client

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// Transport is an http.RoundTripper that sends a writ token from Source
// as "Authorization: Bearer <token>" with each request. It is safe for
// concurrent use if Source and Base are.
//
// Rules, in order:
//   - A request that already has an Authorization header is sent as is,
//     without asking Source: the caller chose its credential (typically
//     an attenuated token for a delegated call).
//   - A request that follows a redirect to another scheme or host:port
//     than the original request is sent without a token, so that a
//     redirect never hands the token to another service.
//   - A token is sent in clear text (http) only to a loopback host
//     (localhost, 127.0.0.0/8, ::1) unless AllowHTTP is set; otherwise
//     RoundTrip fails with ErrInsecureTransport.
//
// The caller's request is never modified: the header is set on a clone.
// When Source fails, RoundTrip closes the request body and returns the
// error wrapped (errors.Is/As see ErrBackoff, *ProblemError, ...).
type Transport struct {
	// Source supplies the tokens, usually a *Client. Required.
	Source TokenSource
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// AllowHTTP permits sending tokens over plain HTTP to any host, for
	// networks where a sidecar encrypts traffic outside the process.
	AllowHTTP bool
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if len(req.Header.Values("Authorization")) > 0 || !sameOrigin(req) {
		return base.RoundTrip(req)
	}
	if req.URL.Scheme != "https" && !t.AllowHTTP && !isLoopback(req.URL.Hostname()) {
		closeBody(req)
		return nil, fmt.Errorf("%w: %s://%s", ErrInsecureTransport, req.URL.Scheme, req.URL.Host)
	}
	if t.Source == nil {
		closeBody(req)
		return nil, errors.New("client: transport: no token source")
	}
	tok, err := t.Source.Token(req.Context())
	if err == nil && tok == nil {
		err = errors.New("token source returned no token")
	}
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("client: transport: %w", err)
	}
	out := req.Clone(req.Context())
	out.Header.Set("Authorization", "Bearer "+tok.Value)
	return base.RoundTrip(out)
}

// CloseIdleConnections closes the idle connections of Base, if it has
// any; http.Client.CloseIdleConnections calls it.
func (t *Transport) CloseIdleConnections() {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if ci, ok := base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// sameOrigin reports whether req goes to the scheme and host:port of the
// request that started its redirect chain (true when it is not a
// redirect).
func sameOrigin(req *http.Request) bool {
	first := req
	for i := 0; first.Response != nil && first.Response.Request != nil && i < 100; i++ {
		first = first.Response.Request
	}
	return first == req || (first.URL.Scheme == req.URL.Scheme && strings.EqualFold(canonicalHost(first), canonicalHost(req)))
}

// canonicalHost is the host:port a request goes to, with the scheme's
// default port made explicit.
func canonicalHost(req *http.Request) string {
	if req.URL.Port() != "" {
		return req.URL.Host
	}
	port := "443"
	if req.URL.Scheme == "http" {
		port = "80"
	}
	return net.JoinHostPort(req.URL.Hostname(), port)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
