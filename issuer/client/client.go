package client

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

// userAgent identifies the client to the issuer.
const userAgent = "writ-go-client/1"

// Client gets writ tokens from the issuer for one set of rights and keeps
// one fresh. Create it with New; it is safe for concurrent use. Token
// serves the cached token until its renewal time; Run renews it in the
// background so that Token rarely waits. Close releases the connections.
type Client struct {
	cfg   Config
	log   *slog.Logger
	http  *http.Client
	idle  func() // closes idle connections of the transport
	url   string
	body  []byte
	sleep func(ctx context.Context, d time.Duration) error

	// cur is the token being served; nil before the first one and after
	// Close. Read without locking on Token's fast path.
	cur atomic.Pointer[held]

	mu       sync.Mutex
	flight   *flight   // the token request in progress, if any
	failures int       // consecutive failed requests
	retryAt  time.Time // no request before this (backoff)
	lastErr  error     // why the last request failed
	closed   bool
	closing  chan struct{}  // closed by Close: wakes Run
	wg       sync.WaitGroup // request goroutines
}

// held is a token and the times that govern serving it.
type held struct {
	tok     *Token
	renewAt time.Time // from then on, callers ask for a new one
	staleAt time.Time // from then on, tok is never returned (ExpiresAt − ExpiryMargin)
}

func (h *held) usable(now time.Time) bool { return h != nil && now.Before(h.staleAt) }

// flight is one token request shared by every caller that needs a token
// while it runs.
type flight struct {
	done    chan struct{} // closed when tok, err are set
	cancel  context.CancelFunc
	waiters int  // callers waiting; at 0 after a caller gave up, the request is cancelled
	dropped bool // cancelled because nobody waits any more, or Close
	tok     *Token
	err     error
}

// New checks cfg and returns a Client; it sends nothing. The returned
// error wraps ErrInvalidConfig.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, err := tokenURL(cfg.IssuerURL)
	if err != nil {
		return nil, err
	}
	body, err := requestBody(&cfg)
	if err != nil {
		return nil, fmt.Errorf("client: encode token request: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	auth := tlsconfig.AuthorizeID(cfg.IssuerID)
	tlsCfg := tlsconfig.TLSClientConfig(cfg.Bundles, auth)
	if cfg.X509SVID != nil {
		tlsCfg = tlsconfig.MTLSClientConfig(cfg.X509SVID, cfg.Bundles, auth)
	}
	spiffeVerify := tlsCfg.VerifyPeerCertificate
	tlsCfg.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
		if err := spiffeVerify(raw, chains); err != nil {
			return fmt.Errorf("%w: %w", ErrIssuerUnverified, err)
		}
		return nil
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
	}
	var rt http.RoundTripper = tr
	if cfg.WrapTransport != nil {
		if rt = cfg.WrapTransport(tr); rt == nil {
			return nil, invalid("WrapTransport returned nil")
		}
	}
	return &Client{
		cfg: cfg,
		log: log,
		http: &http.Client{
			Transport: rt,
			// A redirect would carry the request, JWT-SVID included, to
			// another URL: never follow one.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		idle:    tr.CloseIdleConnections,
		url:     u,
		body:    body,
		sleep:   sleepCtx,
		closing: make(chan struct{}),
	}, nil
}

// Token returns a token for Config.Rights.
//
// The cached token is returned without any I/O until its renewal time.
// From then on Token asks the issuer for a new one; concurrent callers
// share that one request. If it fails, Token returns the previous token
// as long as it is more than Config.ExpiryMargin from expiry, and the
// error otherwise. After a failure no request is sent before the backoff
// delay has passed: meanwhile Token returns the previous token or an error
// wrapping ErrBackoff and the failure.
//
// Errors: a *ProblemError when the issuer refused (errors.As; Code
// ProblemNotGranted, ProblemUnavailable, ...); ErrIssuerUnverified when
// the server is not Config.IssuerID; ErrCredential, ErrBadResponse,
// ErrShortLived, ErrClosed, network errors, and ctx's error when ctx ended
// before a token arrived (the request itself goes on for the other
// callers, and is cancelled when no caller waits for it any more).
//
// The returned *Token is shared: do not modify it.
func (c *Client) Token(ctx context.Context) (*Token, error) {
	now := c.cfg.Now()
	if h := c.cur.Load(); h != nil && now.Before(h.renewAt) {
		return h.tok, nil
	}
	return c.slowToken(ctx)
}

func (c *Client) slowToken(ctx context.Context) (*Token, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	now := c.cfg.Now()
	h := c.cur.Load()
	if h != nil && now.Before(h.renewAt) {
		c.mu.Unlock()
		return h.tok, nil
	}
	f := c.flight
	if f == nil {
		if now.Before(c.retryAt) {
			if h.usable(now) {
				c.mu.Unlock()
				return h.tok, nil
			}
			err := fmt.Errorf("%w (next request in %v): %w", ErrBackoff, c.retryAt.Sub(now).Round(time.Millisecond), c.lastErr)
			c.mu.Unlock()
			return nil, err
		}
		f = c.startLocked(ctx)
	}
	f.waiters++
	c.mu.Unlock()

	select {
	case <-f.done:
		if f.err == nil {
			return f.tok, nil
		}
		if h := c.cur.Load(); h.usable(c.cfg.Now()) {
			return h.tok, nil
		}
		return nil, f.err
	case <-ctx.Done():
		c.mu.Lock()
		if f.waiters--; f.waiters == 0 && c.flight == f {
			// Nobody wants the answer any more: do not keep a goroutine
			// and a connection busy for it.
			f.dropped = true
			c.flight = nil
			f.cancel()
		}
		c.mu.Unlock()
		if h := c.cur.Load(); h.usable(c.cfg.Now()) {
			return h.tok, nil
		}
		return nil, fmt.Errorf("client: waiting for a token: %w", context.Cause(ctx))
	}
}

// startLocked starts a token request. Its context keeps ctx's values but
// not its cancellation: it belongs to every caller that joins it.
func (c *Client) startLocked(ctx context.Context) *flight {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
	f := &flight{done: make(chan struct{}), cancel: cancel}
	c.flight = f
	c.wg.Add(1)
	go c.runFlight(fctx, f)
	return f
}

func (c *Client) runFlight(ctx context.Context, f *flight) {
	defer c.wg.Done()
	defer f.cancel()
	tok, err := c.fetch(ctx)
	var h *held
	if err == nil {
		h, err = c.schedule(tok)
	}

	if err != nil {
		tok = nil
	}

	c.mu.Lock()
	now := c.cfg.Now()
	switch {
	case c.closed:
		tok, err = nil, ErrClosed
	case err == nil:
		c.cur.Store(h)
		c.failures, c.retryAt, c.lastErr = 0, time.Time{}, nil
		c.log.Info("writ token obtained", "token_id", tok.ID, "key_id", tok.KeyID, "expires_at", tok.ExpiresAt,
			"renew_at", h.renewAt, "granted", len(tok.Granted), "denied", len(tok.Denied), "policy_version", tok.PolicyVersion)
	case f.dropped:
		// Cancelled because every caller left: not a failure of the
		// issuer.
	default:
		c.failures++
		delay := c.backoff(err, c.failures)
		c.retryAt, c.lastErr = now.Add(delay), err
		c.log.Warn("writ token request failed", "err", err, "failures", c.failures, "retry_in", delay,
			"permanent", permanent(err), "serving_previous", c.cur.Load().usable(now))
	}
	if c.flight == f {
		c.flight = nil
	}
	f.tok, f.err = tok, err
	c.mu.Unlock()
	close(f.done)
}

// schedule decides when tok is renewed and when it stops being served.
// Lifetimes are measured from its arrival by the client's clock.
func (c *Client) schedule(tok *Token) (*held, error) {
	now := c.cfg.Now()
	life := tok.ExpiresAt.Sub(now)
	if life <= c.cfg.ExpiryMargin {
		return nil, fmt.Errorf("%w: token %s expires in %v by this clock, margin %v", ErrShortLived, tok.ID, life.Round(time.Millisecond), c.cfg.ExpiryMargin)
	}
	jitter := 1 + c.cfg.RenewJitter*(2*c.rand()-1)
	left := time.Duration(float64(life) * c.cfg.RenewFraction * jitter)
	h := &held{tok: tok, renewAt: tok.ExpiresAt.Add(-left), staleAt: tok.ExpiresAt.Add(-c.cfg.ExpiryMargin)}
	if h.renewAt.After(h.staleAt) {
		h.renewAt = h.staleAt
	}
	return h, nil
}

// backoff returns the delay before the next request after the failures-th
// consecutive failure err.
func (c *Client) backoff(err error, failures int) time.Duration {
	lo, hi := c.cfg.MinBackoff, c.cfg.MaxBackoff
	if permanent(err) {
		return hi
	}
	var pe *ProblemError
	if errors.As(err, &pe) && pe.RetryAfter > 0 {
		return min(max(pe.RetryAfter, lo), hi)
	}
	ceil := lo
	for i := 1; i < failures && ceil < hi; i++ {
		ceil *= 2
	}
	ceil = min(ceil, hi)
	return lo + time.Duration(c.rand()*float64(ceil-lo))
}

// rand returns Config.Rand's number, forced into [0, 1].
func (c *Client) rand() float64 {
	r := c.cfg.Rand()
	if !(r >= 0) { // also NaN
		return 0
	}
	return min(r, 1)
}

// fetch sends one token request.
func (c *Client) fetch(ctx context.Context) (*Token, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(c.body))
	if err != nil {
		return nil, fmt.Errorf("client: token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", userAgent)
	if c.cfg.JWTSVID != nil {
		svid, err := c.cfg.JWTSVID.FetchJWTSVID(ctx, jwtsvid.Params{Audience: c.cfg.IssuerID.String()})
		if err != nil {
			return nil, fmt.Errorf("%w: fetch JWT-SVID: %w", ErrCredential, err)
		}
		if svid == nil || !headerSafeJWT(svid.Marshal()) {
			return nil, fmt.Errorf("%w: the JWT-SVID source returned no compact JWT", ErrCredential)
		}
		req.Header.Set("Authorization", "Bearer "+svid.Marshal())
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: token request: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := readBounded(resp.Body, maxProblemBytes)
		return nil, problemFromResponse(resp, body, c.cfg.Now)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return nil, fmt.Errorf("%w: content type %q, want application/json", ErrBadResponse, cut(mt, 64))
	}
	body, err := readBounded(resp.Body, maxTokenResponseBytes)
	if err != nil {
		return nil, fmt.Errorf("client: read token response: %w", err)
	}
	return decodeTokenResponse(body)
}

// readBounded reads r to its end, at most limit bytes; a longer body is an
// error and is not read further.
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: body over %d bytes", ErrBadResponse, limit)
	}
	return b, nil
}

// Run keeps the token fresh until ctx ends: it renews it at its renewal
// time (Config.RenewFraction, RenewJitter) and, after a failure, retries
// with the backoff of Config.MinBackoff and MaxBackoff. Failures are
// logged, not returned: Token reports them to its callers.
//
// Run returns nil when ctx ends and ErrClosed when the Client is closed,
// with nothing of its own left running (a request only it waited for is
// cancelled). Run at most once at a time per Client.
func (c *Client) Run(ctx context.Context) error {
	c.log.Debug("writ token renewal started")
	defer c.log.Debug("writ token renewal stopped")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		now := c.cfg.Now()
		wake := c.retryAt
		if h := c.cur.Load(); h != nil && now.Before(h.renewAt) {
			wake = h.renewAt
		}
		c.mu.Unlock()
		if d := wake.Sub(now); d > 0 {
			if err := c.sleep(ctx, d); err != nil {
				return c.stopped()
			}
			continue
		}
		c.Token(ctx) // failures are logged by the request and kept for callers
		if ctx.Err() != nil {
			return c.stopped()
		}
	}
}

// stopped is what Run returns when its context ended: ErrClosed if Close
// ended it.
func (c *Client) stopped() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	return nil
}

// Close cancels the request in progress, waits for it to end, drops the
// cached token, stops Run and closes idle connections. Token then returns
// ErrClosed, and so does Run. Close is idempotent and always returns nil.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.closing)
	c.cur.Store(nil)
	if f := c.flight; f != nil {
		f.dropped = true
		c.flight = nil
		f.cancel()
	}
	c.mu.Unlock()
	c.wg.Wait()
	c.idle()
	return nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
