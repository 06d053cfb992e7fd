package attenuation

import (
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/writ-dev/writ/spec"
)

// kind says which check of token.md §5 a Restriction stands for.
type kind uint8

const (
	kindInvalid kind = iota // the zero Restriction
	kindRights
	kindExpireBy
	kindExpireIn
	kindPresenters
	kindFields
	kindRecords
	kindWindow
	kindAnyWindow
	kindServices
	kindStaleness
)

var kindNames = [...]string{
	kindInvalid:    "zero Restriction",
	kindRights:     "OnlyRights",
	kindExpireBy:   "ExpireBy",
	kindExpireIn:   "ExpireIn",
	kindPresenters: "BindPresenters",
	kindFields:     "OnlyFields",
	kindRecords:    "MaxRecords",
	kindWindow:     "Window",
	kindAnyWindow:  "AnyWindow",
	kindServices:   "OnlyServices",
	kindStaleness:  "MaxStaleness",
}

func (k kind) String() string { return kindNames[k] }

// Restriction is one narrowing of a token: it becomes exactly one check of
// the block Restrict appends (token.md §5). Build one with OnlyRights,
// ExpireBy, ExpireIn, BindPresenters, OnlyFields, MaxRecords, Window,
// AnyWindow, OnlyServices or MaxStaleness; the zero Restriction is
// invalid.
//
// Constructors copy and validate their input. An invalid input does not
// panic: the Restriction carries the error, reported by Err and by
// Restrict. A Restriction is an immutable value, safe to copy and to use
// from several goroutines.
type Restriction struct {
	kind    kind
	err     error
	rights  []spec.Right      // kindRights
	at      time.Time         // kindExpireBy, whole seconds, UTC
	in      time.Duration     // kindExpireIn
	strs    []string          // kindPresenters, kindFields, kindServices: sorted, unique
	n       int64             // kindRecords; kindStaleness: milliseconds
	windows []spec.TimeWindow // kindWindow, kindAnyWindow: unique; each one's Days sorted, unique, never empty
}

// Err returns nil when r is valid, or the error, wrapping
// ErrBadRestriction, that Restrict would return for it.
func (r Restriction) Err() error {
	if r.kind == kindInvalid {
		return fmt.Errorf("%w: zero Restriction", ErrBadRestriction)
	}
	return r.err
}

func bad(k kind, format string, args ...any) Restriction {
	return Restriction{kind: k, err: fmt.Errorf("%w: %s: %s", ErrBadRestriction, k, fmt.Sprintf(format, args...))}
}

// OnlyRights keeps only the permissions that one of rights grants: the
// check passes when the request's (resource, operation) is covered by one
// of them, exactly or by prefix ("crm/notes/*"). Since rights are the
// only source of permission, the token then allows at most the
// intersection of its rights and these.
//
// It wants 1 to MaxRights rights, each valid for spec.Right.Validate;
// duplicates are dropped. The error wraps ErrBadRestriction and, for an
// invalid right, spec.ErrBadRight.
func OnlyRights(rights ...spec.Right) Restriction {
	const k = kindRights
	if len(rights) == 0 {
		return bad(k, "no rights")
	}
	out := make([]spec.Right, 0, len(rights))
	for i, rt := range rights {
		if err := rt.Validate(); err != nil {
			return Restriction{kind: k, err: fmt.Errorf("%w: %s: right %d: %w", ErrBadRestriction, k, i, err)}
		}
		if !slices.Contains(out, rt) {
			out = append(out, rt)
		}
	}
	if len(out) > MaxRights {
		return bad(k, "%d rights, at most %d", len(out), MaxRights)
	}
	return Restriction{kind: k, rights: out}
}

// ExpireBy makes the token expire at t, rounded down to the second: the
// check passes while the verifier's clock is at or before it. It wants a
// non-zero t after the Unix epoch.
func ExpireBy(t time.Time) Restriction {
	const k = kindExpireBy
	if t.IsZero() || t.Unix() <= 0 {
		return bad(k, "time %s is not after the Unix epoch", t.UTC().Format(time.RFC3339))
	}
	return Restriction{kind: k, at: time.Unix(t.Unix(), 0).UTC()}
}

// ExpireIn makes the token expire d after the moment it is attenuated (the
// Now of the Restricter, rounded down to the second). It wants d > 0.
func ExpireIn(d time.Duration) Restriction {
	const k = kindExpireIn
	if d <= 0 {
		return bad(k, "duration %s is not positive", d)
	}
	return Restriction{kind: k, in: d}
}

// BindPresenters binds the token to its presenters: the check passes only
// when the verifier knows the caller's SPIFFE ID (mTLS peer) and it is one
// of ids. It wants 1 to MaxSetElements SPIFFE IDs in canonical form, each
// at most MaxStringBytes long.
func BindPresenters(ids ...string) Restriction {
	return spiffeIDs(kindPresenters, ids)
}

// OnlyServices restricts the audience: the check passes only at verifiers
// whose service SPIFFE ID is one of ids. It wants 1 to MaxSetElements
// SPIFFE IDs in canonical form, each at most MaxStringBytes long.
func OnlyServices(ids ...string) Restriction {
	return spiffeIDs(kindServices, ids)
}

func spiffeIDs(k kind, ids []string) Restriction {
	if len(ids) == 0 {
		return bad(k, "no SPIFFE IDs")
	}
	for i, s := range ids {
		if len(s) > MaxStringBytes {
			return bad(k, "SPIFFE ID %d longer than %d bytes", i, MaxStringBytes)
		}
		id, err := spiffeid.FromString(s)
		if err != nil {
			return bad(k, "SPIFFE ID %d %q: %v", i, s, err)
		}
		if id.String() != s {
			return bad(k, "SPIFFE ID %d %q is not canonical (want %q)", i, s, id.String())
		}
	}
	return set(k, ids)
}

// OnlyFields restricts the fields the request may read: the check passes
// when every requested field is one of fields (a request that names no
// field passes, and the verifier's decision then carries the field list
// for the service to apply). It wants 1 to MaxSetElements non-empty UTF-8
// names without control characters, each at most MaxStringBytes long.
func OnlyFields(fields ...string) Restriction {
	const k = kindFields
	if len(fields) == 0 {
		return bad(k, "no fields")
	}
	for i, f := range fields {
		switch {
		case f == "":
			return bad(k, "field %d is empty", i)
		case len(f) > MaxStringBytes:
			return bad(k, "field %d longer than %d bytes", i, MaxStringBytes)
		case !utf8.ValidString(f):
			return bad(k, "field %d is not UTF-8", i)
		case hasControl(f):
			return bad(k, "field %d %q has a control character", i, f)
		}
	}
	return set(k, fields)
}

// set returns a Restriction holding a sorted, duplicate-free copy of strs.
func set(k kind, strs []string) Restriction {
	out := slices.Clone(strs)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > MaxSetElements {
		return bad(k, "%d elements, at most %d", len(out), MaxSetElements)
	}
	return Restriction{kind: k, strs: out}
}

// MaxRecords caps the records one request may touch at n: the check passes
// when the request's record count is at most n (a request that reports 0
// passes, and the verifier's decision then carries the limit for the
// service to apply). It wants n >= 1: a limit of 0 would read as "no
// limit" in decisions.
func MaxRecords(n int) Restriction {
	const k = kindRecords
	if n < 1 {
		return bad(k, "limit %d, want at least 1", n)
	}
	return Restriction{kind: k, n: int64(n)}
}

// MaxStaleness makes the token usable only at verifiers whose copy of the
// revocation list was current at most d ago (spec/sync.md §5): the check
// passes when the verifier's revocation_age fact, in milliseconds, is at
// most d. A verifier that tracks no freshness supplies no such fact, so
// the check fails there (token.md §2). A token may carry several such
// checks; the smallest bound rules, so adding one only narrows.
//
// d is rounded down to the millisecond; it wants 1 ms to
// MaxStalenessBound.
func MaxStaleness(d time.Duration) Restriction {
	const k = kindStaleness
	ms := d.Milliseconds()
	if ms < 1 || d > MaxStalenessBound {
		return bad(k, "bound %s, want 1ms to %s", d, MaxStalenessBound)
	}
	return Restriction{kind: k, n: ms}
}

// Window restricts use to a recurring window of local time, e.g. business
// hours: the check passes when the verifier's clock, read in w.Zone, falls
// on one of w.Days (every day when empty) within [w.From, w.To). It wants
// w valid for spec.TimeWindow.Validate; the error then also wraps
// spec.ErrBadWindow.
//
// Window(w) builds the same check as AnyWindow(w); only the name in its
// errors differs.
func Window(w spec.TimeWindow) Restriction {
	return windows(kindWindow, []spec.TimeWindow{w})
}

// AnyWindow restricts use to a set of recurring windows of local time, of
// which any one may be open, e.g. Mon–Fri 09:00–18:00 or Sat 10:00–14:00:
// the check passes when the verifier's clock falls inside at least one of
// ws, each read as by Window. It is one check with one query per window
// (token.md §5); several AnyWindow restrictions must all pass.
//
// It wants 1 to MaxWindows windows after duplicates are dropped (the
// queries of one check), each valid for spec.TimeWindow.Validate, naming
// at most MaxTimeZones distinct zones. Windows keep their order. The error
// wraps ErrBadRestriction and, for an invalid window, spec.ErrBadWindow.
func AnyWindow(ws ...spec.TimeWindow) Restriction {
	return windows(kindAnyWindow, ws)
}

// windows validates and normalizes ws: days sorted and unique, every day
// when empty, duplicate windows dropped.
func windows(k kind, ws []spec.TimeWindow) Restriction {
	if len(ws) == 0 {
		return bad(k, "no windows")
	}
	// which names window i in errors; Window has only one.
	which := func(i int) string {
		if k == kindWindow {
			return ""
		}
		return fmt.Sprintf("window %d: ", i)
	}
	out := make([]spec.TimeWindow, 0, len(ws))
	var zones []string
	for i, w := range ws {
		if len(w.Zone) > MaxStringBytes {
			return bad(k, "%szone longer than %d bytes", which(i), MaxStringBytes)
		}
		if err := validateWindow(w); err != nil {
			return Restriction{kind: k, err: fmt.Errorf("%w: %s: %s%w", ErrBadRestriction, k, which(i), err)}
		}
		days := slices.Clone(w.Days)
		if len(days) == 0 {
			days = []time.Weekday{time.Sunday, time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday}
		}
		slices.Sort(days)
		w.Days = slices.Compact(days)
		if slices.ContainsFunc(out, func(o spec.TimeWindow) bool { return sameWindow(o, w) }) {
			continue
		}
		out = append(out, w)
		if !slices.Contains(zones, w.Zone) {
			zones = append(zones, w.Zone)
		}
	}
	if len(out) > MaxWindows {
		return bad(k, "%d windows, at most %d", len(out), MaxWindows)
	}
	if len(zones) > MaxTimeZones {
		return bad(k, "%d distinct time zones, at most %d", len(zones), MaxTimeZones)
	}
	return Restriction{kind: k, windows: out}
}

// sameWindow compares two normalized windows.
func sameWindow(a, b spec.TimeWindow) bool {
	return a.Zone == b.Zone && a.From == b.From && a.To == b.To && slices.Equal(a.Days, b.Days)
}

// knownZones holds the zone names time.LoadLocation has accepted. Loading
// a zone parses the embedded tz database (tens of microseconds) and Window
// is on the issuer's minting path. Only names that loaded are stored, so
// the map never outgrows the tz database.
var knownZones sync.Map

// validateWindow is w.Validate, loading each zone once per process.
func validateWindow(w spec.TimeWindow) error {
	if _, ok := knownZones.Load(w.Zone); ok {
		w.Zone = "UTC" // known to load; Validate checks the other fields and does not load "UTC"
		return w.Validate()
	}
	if err := w.Validate(); err != nil {
		return err
	}
	knownZones.Store(w.Zone, struct{}{})
	return nil
}

func hasControl(s string) bool {
	for _, c := range s {
		if c < 0x20 || (c >= 0x7f && c < 0xa0) {
			return true
		}
	}
	return false
}
