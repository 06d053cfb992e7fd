package verifier

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/writ-dev/writ/spec"
)

// Verifier authorizes requests carrying writ tokens, offline. It is safe
// for concurrent use; create one per service with New and share it.
type Verifier struct {
	keys      KeySource
	revs      RevocationSource
	agentRevs AgentRevocationSource // revs, when it implements it
	keyRevs   KeyRevocationSource   // keys, when it implements it
	fresh     FreshnessSource       // nil: no freshness bound, no revocation_age fact
	maxStale  time.Duration
	now       func() time.Time
	lim       Limits
	service   string
	log       *slog.Logger
	cache     *tokenCache // nil: no cache
	pool      sync.Pool   // *evalCtx
}

// New returns a Verifier for cfg. It returns an error wrapping
// ErrInvalidConfig when cfg.Validate fails. The Verifier keeps cfg's
// KeySource, RevocationSource and FreshnessSource and calls them on every
// Authorize; whether they implement AgentRevocationSource and
// KeyRevocationSource is decided here, once.
func New(cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{
		keys:    cfg.Keys,
		revs:    cfg.Revocations,
		fresh:   cfg.Freshness,
		now:     cfg.Now,
		lim:     cfg.Limits,
		service: cfg.Service,
		log:     cfg.Logger,
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.fresh != nil {
		v.maxStale = cfg.MaxStaleness
	}
	v.agentRevs, _ = cfg.Revocations.(AgentRevocationSource)
	v.keyRevs, _ = cfg.Keys.(KeyRevocationSource)
	if cfg.CacheSize > 0 {
		v.cache = newTokenCache(cfg.CacheSize)
	}
	lim := &v.lim
	v.pool.New = func() any { return newEvalCtx(lim) }
	return v, nil
}

// Authorize decides whether token (the raw protobuf bytes; see DecodeToken
// for the base64url form) allows req. It never returns an error and never
// panics on input: every refusal is a denial Decision with the reason of
// token.md §7, in this order, the first failure winning:
//
//  1. the request: empty Resource or Operation, negative Records →
//     malformed; more Attributes than MaxAttributes or more Fields than
//     MaxSetElements → limits_exceeded; a Service other than
//     Config.Service, when that is set → service_mismatch;
//  2. the token's structure and limits (malformed, limits_exceeded,
//     unsupported), all checked before anything is evaluated;
//  3. the root key (unknown_key) and the signature chain and proof
//     (bad_signature);
//  4. revocation: any block's id or the token id (RevocationSource), the
//     token's agent issued before its revocation (AgentRevocationSource),
//     the root key that verified it (KeyRevocationSource) → revoked; then,
//     with a FreshnessSource, a copy never current or older than
//     Config.MaxStaleness → revocation_stale;
//  5. every check of every block, all evaluated, every failure listed in
//     FailedChecks, the reason being that of the most significant one
//     (revocation_stale — a max_staleness check, token.md §2 —, expired,
//     presenter_mismatch, service_mismatch, outside_time_window,
//     constraint_violated, check_failed, in that order);
//  6. the allow policy (not_granted, with MissingRight).
//
// Steps 2 and 3 run once per distinct token: their result is cached by the
// SHA-256 of the bytes (Config.CacheSize) and reused while the root key
// that verified the token is still in the KeySource. Revocation (of
// ids, agents and keys, so a cached token of a key revoked later is
// refused), freshness, the clock and every check are evaluated on every
// call. Config.Now is read once per call: the time fact and the
// staleness come from the same instant.
//
// An allowed decision carries Constraints the service must apply when it
// passed Records 0 or no Fields. When req.Records is 0, a token whose
// record limit is below 1, or that has a check on records Constraints
// cannot carry (not of the shape of token.md §5), is denied
// constraint_violated; likewise a check on fields Constraints cannot
// carry when req.Fields is empty. Decision.FailedChecks lists at most 8
// checks, their literals and text cut short (token.md §7).
//
// The revocation_age fact (token.md §3) is the staleness in milliseconds,
// rounded up, and is supplied only with a FreshnessSource: without one a
// token carrying a max_staleness check is denied revocation_stale (it
// fails closed).
//
// ctx is used for logging only: Authorize does no I/O besides the
// KeySource, RevocationSource and FreshnessSource calls, and its work is
// bounded by Limits.
func (v *Verifier) Authorize(ctx context.Context, token []byte, req Request) Decision {
	d := v.authorize(token, &req)
	if v.log.Enabled(ctx, slog.LevelDebug) {
		v.log.LogAttrs(ctx, slog.LevelDebug, "authorize",
			slog.String("reason", d.Reason),
			slog.String("token_id", d.TokenID),
			slog.Int("blocks", d.Blocks),
			slog.String("resource", req.Resource),
			slog.String("operation", req.Operation))
	}
	return d
}

func deny(reason, msg string) Decision {
	return Decision{Reason: reason, Message: msg}
}

func denyErr(err error) Decision {
	return Decision{Reason: reasonOf(err), Message: err.Error()}
}

// requestBytes is the total length of the strings of req.
func requestBytes(req *Request) int {
	n := len(req.Resource) + len(req.Operation) + len(req.Presenter) + len(req.Service)
	for _, f := range req.Fields {
		n += len(f)
	}
	for k, val := range req.Attributes {
		n += len(k) + len(val)
	}
	return n
}

func (v *Verifier) authorize(token []byte, req *Request) Decision {
	switch {
	case req.Resource == "":
		return deny(spec.ReasonMalformed, "request: empty resource")
	case req.Operation == "":
		return deny(spec.ReasonMalformed, "request: empty operation")
	case req.Records < 0:
		return deny(spec.ReasonMalformed, "request: negative records")
	case len(req.Attributes) > v.lim.MaxAttributes:
		return deny(spec.ReasonLimitsExceeded, fmt.Sprintf("request: %d attributes, limit %d", len(req.Attributes), v.lim.MaxAttributes))
	case len(req.Fields) > v.lim.MaxSetElements:
		return deny(spec.ReasonLimitsExceeded, fmt.Sprintf("request: %d fields, limit %d", len(req.Fields), v.lim.MaxSetElements))
	case requestBytes(req) > v.lim.MaxRequestBytes:
		return deny(spec.ReasonLimitsExceeded, fmt.Sprintf("request: strings longer than %d bytes in all", v.lim.MaxRequestBytes))
	case v.service != "" && req.Service != "" && req.Service != v.service:
		return deny(spec.ReasonServiceMismatch, "request: service is not the verifier's configured service")
	}
	if len(token) > v.lim.MaxTokenBytes {
		return deny(spec.ReasonLimitsExceeded, fmt.Sprintf("token is %d bytes, limit %d", len(token), v.lim.MaxTokenBytes))
	}
	c, err := v.load(token)
	if err != nil {
		return denyErr(err)
	}
	return v.evaluate(c, req)
}

// load returns the compiled, verified token, from the cache or by
// decoding, compiling and verifying it.
func (v *Verifier) load(token []byte) (*compiled, error) {
	var key [32]byte
	if v.cache != nil {
		key = sha256.Sum256(token)
		if c := v.cache.get(&key); c != nil {
			// The key that verified the token must still be trusted.
			if k, ok := v.keys.RootKey(c.rootKeyID); ok && string(k.Public) == string(c.rootPub[:]) {
				return c, nil
			}
			v.cache.remove(&key)
		}
	}
	t, err := decodeToken(token, &v.lim)
	if err != nil {
		return nil, err
	}
	c, err := compile(t, &v.lim)
	if err != nil {
		return nil, err
	}
	// A key source that drops revoked keys would answer unknown_key;
	// say revoked when it knows better.
	if t.hasRootKeyID && v.keyRevs != nil && v.keyRevs.KeyRevoked(t.rootKeyID) {
		return nil, fmt.Errorf("%w: root key id %d", ErrKeyRevoked, t.rootKeyID)
	}
	buf := chainBuffer(t)
	root, buf, err := selectRootKey(t, v.keys, &v.lim, buf)
	if err != nil {
		return nil, err
	}
	if err := verifyChain(t, buf); err != nil {
		return nil, err
	}
	c.rootKeyID = root.ID
	copy(c.rootPub[:], root.Public)
	c.loadZones()
	if v.cache != nil {
		v.cache.put(&key, c)
	}
	return c, nil
}

// evaluate runs steps 4 to 6 of Authorize on a verified token.
func (v *Verifier) evaluate(c *compiled, req *Request) Decision {
	d := Decision{
		TokenID:   c.tokenID,
		Agent:     c.agent,
		Issuer:    c.issuer,
		RootKeyID: c.rootKeyID,
		Blocks:    c.blocks,
	}
	if c.hasMaxRecords {
		d.Constraints.MaxRecords = int(max(c.maxRecords, 0))
	}
	if c.hasFields {
		d.Constraints.Fields = append(make([]string, 0, len(c.fields)), c.fields...)
	}
	if v.revs != nil {
		for i, id := range c.revIDs {
			if v.revs.Revoked(id) {
				d.Reason = spec.ReasonRevoked
				d.Message = fmt.Sprintf("block %d is revoked (revocation id %s)", i, id)
				return d
			}
		}
		if v.revs.Revoked(c.tokenID) {
			d.Reason = spec.ReasonRevoked
			d.Message = "token id " + c.tokenID + " is revoked"
			return d
		}
	}
	if v.agentRevs != nil && v.agentRevs.AgentRevoked(c.agent, c.issuedAtTime()) {
		d.Reason = spec.ReasonRevoked
		d.Message = "the token's agent is revoked for tokens issued before its revocation"
		return d
	}
	if v.keyRevs != nil && v.keyRevs.KeyRevoked(c.rootKeyID) {
		d.Reason = spec.ReasonRevoked
		d.Message = fmt.Sprintf("root key %d is revoked", c.rootKeyID)
		return d
	}
	now := v.now()
	age := int64(-1) // no revocation_age fact
	if v.fresh != nil {
		asOf, ok := v.fresh.CurrentAsOf()
		if !ok {
			d.Reason = spec.ReasonRevocationStale
			d.Message = "the revocation list has never been current"
			return d
		}
		stale := max(now.Sub(asOf), 0)
		if stale > v.maxStale {
			d.Reason = spec.ReasonRevocationStale
			d.Message = fmt.Sprintf("the revocation list is %v old, more than %v", stale.Round(time.Millisecond), v.maxStale)
			return d
		}
		age = ageMillis(stale)
	}

	service := req.Service
	if service == "" {
		service = v.service
	}
	e := v.pool.Get().(*evalCtx)
	e.setAmbient(c, now.Unix(), req, service, age)
	best := len(reasonRank)
	failed := 0
	for i := range c.checks {
		ch := &c.checks[i]
		if e.runCheck(ch) {
			continue
		}
		if failed++; failed <= maxFailedChecks {
			d.FailedChecks = append(d.FailedChecks, FailedCheck{Block: ch.block, Check: ch.rendered(), Reason: ch.reason})
		}
		if r := rankOf(ch.reason); r < best {
			best = r
		}
	}
	v.pool.Put(e)

	if failed > 0 {
		d.Reason = reasonRank[best]
		d.Message = fmt.Sprintf("%d check(s) failed; first: block %d: %s", failed, d.FailedChecks[0].Block, cutText(d.FailedChecks[0].Check, maxMessageCheckBytes))
		return d
	}
	if !c.granted(req.Resource, req.Operation) {
		d.Reason = spec.ReasonNotGranted
		d.MissingRight = &spec.Right{Resource: req.Resource, Operation: req.Operation}
		d.Message = "no right covers " + req.Operation + " on " + req.Resource
		return d
	}
	if req.Records == 0 {
		switch {
		case c.hasMaxRecords && c.maxRecords < 1:
			d.Reason = spec.ReasonConstraintViolated
			d.Message = "the token allows no records"
			return d
		case c.looseRecords:
			d.Reason = spec.ReasonConstraintViolated
			d.Message = "a check on records is not a plain record limit: the request must name its records"
			return d
		}
	}
	if len(req.Fields) == 0 && c.looseFields {
		d.Reason = spec.ReasonConstraintViolated
		d.Message = "a check on fields is not a plain field list: the request must name its fields"
		return d
	}
	d.Allowed = true
	d.Reason = spec.ReasonAllowed
	return d
}

// ageMillis is the revocation_age fact of a staleness: whole milliseconds,
// rounded up, so that a bound of N ms holds only for a staleness of at
// most N ms.
func ageMillis(stale time.Duration) int64 {
	return int64((stale + time.Millisecond - 1) / time.Millisecond)
}

// issuedAtTime is the time AgentRevoked is asked about: the issued_at
// fact, or the zero time when the token has none (every agent revocation
// then applies: fail closed).
func (c *compiled) issuedAtTime() time.Time {
	if !c.hasIssuedAt {
		return time.Time{}
	}
	return time.Unix(c.issuedAt, 0).UTC()
}

// reasonRank orders the reasons of failed checks (token.md §7).
var reasonRank = []string{
	spec.ReasonRevocationStale,
	spec.ReasonExpired,
	spec.ReasonPresenterMismatch,
	spec.ReasonServiceMismatch,
	spec.ReasonOutsideTimeWindow,
	spec.ReasonConstraintViolated,
	spec.ReasonCheckFailed,
}

func rankOf(reason string) int {
	for i, r := range reasonRank {
		if r == reason {
			return i
		}
	}
	return len(reasonRank) - 1
}
