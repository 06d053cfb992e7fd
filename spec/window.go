package spec

import (
	"errors"
	"fmt"
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

// ErrBadWindow is wrapped by every error TimeWindow.Validate returns.
var ErrBadWindow = errors.New("spec: bad time window")

// Validate checks the zone loads and the bounds are sane.
func (w TimeWindow) Validate() error {
	if w.Zone == "" {
		return fmt.Errorf("%w: empty zone", ErrBadWindow)
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
