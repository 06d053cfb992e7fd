package spec

import (
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // verifiers must not depend on the host's zoneinfo
)

// TimeWindow is a recurring window of local time in an IANA time zone,
// e.g. business hours: Mon–Fri 09:00–18:00 Europe/Paris. It is encoded as
// a local_time check (token.md §2).
type TimeWindow struct {
	// Zone is an IANA time zone name ("Europe/Paris", "UTC").
	Zone string `json:"zone"`
	// Days are the weekdays the window is open; empty means every day.
	Days []time.Weekday `json:"days,omitempty"`
	// From and To are minutes after local midnight, From < To ≤ 1440.
	// The window is [From, To).
	From int `json:"from"`
	To   int `json:"to"`
}

// MaxZoneNameBytes bounds an IANA zone name.
const MaxZoneNameBytes = 64

// CanonicalZone reports whether name is spelled as an IANA zone name:
// "/"-separated segments of ASCII letters, digits, "_", "+" and "-", none
// empty, none "." or "..", at most MaxZoneNameBytes. "Local", "posix/…"
// and "right/…" are refused: they depend on the host or are aliases, so
// two verifiers could read them differently (token.md §3).
func CanonicalZone(name string) bool {
	if name == "" || len(name) > MaxZoneNameBytes || name == "Local" ||
		strings.HasPrefix(name, "posix/") || strings.HasPrefix(name, "right/") {
		return false
	}
	seg := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '/':
			if seg == 0 {
				return false
			}
			seg = 0
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '+', c == '-':
			seg++
		default:
			return false
		}
	}
	return seg > 0
}

// ErrBadWindow is wrapped by every error TimeWindow.Validate returns.
var ErrBadWindow = errors.New("spec: bad time window")

// Validate checks the zone loads and the bounds are sane.
func (w TimeWindow) Validate() error {
	if w.Zone == "" {
		return fmt.Errorf("%w: empty zone", ErrBadWindow)
	}
	if !CanonicalZone(w.Zone) {
		return fmt.Errorf("%w: zone %q is not a canonical IANA name", ErrBadWindow, w.Zone)
	}
	if _, err := time.LoadLocation(w.Zone); err != nil {
		return fmt.Errorf("%w: zone %q: %v", ErrBadWindow, w.Zone, err)
	}
	if w.From < 0 || w.To > 1440 || w.From >= w.To {
		return fmt.Errorf("%w: want 0 <= from < to <= 1440, got %d..%d", ErrBadWindow, w.From, w.To)
	}
	for _, d := range w.Days {
		if d < time.Sunday || d > time.Saturday {
			return fmt.Errorf("%w: weekday %d out of range", ErrBadWindow, d)
		}
	}
	return nil
}

// Contains reports whether instant t falls inside the window. It is the
// reference semantics of the local_time check.
func (w TimeWindow) Contains(t time.Time) bool {
	loc, err := time.LoadLocation(w.Zone)
	if err != nil {
		return false
	}
	lt := t.In(loc)
	if len(w.Days) > 0 {
		ok := false
		for _, d := range w.Days {
			if d == lt.Weekday() {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	m := lt.Hour()*60 + lt.Minute()
	return m >= w.From && m < w.To
}
