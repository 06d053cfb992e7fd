package policy

import (
	"strconv"
	"time"

	"github.com/writ-dev/writ/spec"
)

// The canonical form of a policy is RFC 8785 (JCS) JSON of its meaning,
// after defaults are applied and every set is sorted (spec/policy.md §6).
// Only strings, non-negative integers, booleans, arrays and objects occur,
// object keys are written in sorted order, and strings were checked free
// of control characters, so the encoding below is JCS without a general
// JSON encoder.

func canonical(doc *document) []byte {
	b := []byte(`{"rules":[`)
	for i, r := range doc.rules {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendRule(b, r)
	}
	b = append(b, `],"version":`...)
	b = strconv.AppendInt(b, FormatVersion, 10)
	return append(b, '}')
}

// appendRule writes one rule; keys in sorted order, optional keys omitted
// when the rule does not restrict them.
func appendRule(b []byte, r *rule) []byte {
	b = append(b, `{"bind_presenter":`...)
	b = strconv.AppendBool(b, r.bindPresenter)
	if len(r.delegateTo) > 0 {
		b = append(b, `,"delegate_to":`...)
		b = appendPatterns(b, r.delegateTo)
	}
	if r.description != "" {
		b = append(b, `,"description":`...)
		b = appendString(b, r.description)
	}
	if r.fields != nil {
		b = append(b, `,"fields":`...)
		b = appendStrings(b, r.fields)
	}
	if r.maxRecords > 0 {
		b = append(b, `,"max_records":`...)
		b = strconv.AppendInt(b, int64(r.maxRecords), 10)
	}
	if r.maxStaleness > 0 {
		b = append(b, `,"max_staleness":`...)
		b = strconv.AppendInt(b, int64(r.maxStaleness/time.Second), 10)
	}
	b = append(b, `,"max_ttl":`...)
	b = strconv.AppendInt(b, int64(r.maxTTL/time.Second), 10)
	b = append(b, `,"name":`...)
	b = appendString(b, r.name)
	b = append(b, `,"rights":[`...)
	for i, rt := range r.rights {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, rt.String())
	}
	b = append(b, ']')
	if r.services != nil {
		b = append(b, `,"services":`...)
		b = appendStrings(b, r.services)
	}
	b = append(b, `,"subjects":`...)
	b = appendPatterns(b, r.subjects)
	if len(r.windows) > 0 {
		b = append(b, `,"time_windows":[`...)
		for i, w := range r.windows {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendWindow(b, w.TimeWindow)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendWindow writes a time window: days as weekday numbers (0 = Sunday,
// as in the token's local_time fact), omitted when every day is open;
// from and to in minutes after midnight.
func appendWindow(b []byte, w spec.TimeWindow) []byte {
	b = append(b, '{')
	if len(w.Days) > 0 {
		b = append(b, `"days":[`...)
		for i, d := range w.Days {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(d), 10)
		}
		b = append(b, "],"...)
	}
	b = append(b, `"from":`...)
	b = strconv.AppendInt(b, int64(w.From), 10)
	b = append(b, `,"to":`...)
	b = strconv.AppendInt(b, int64(w.To), 10)
	b = append(b, `,"zone":`...)
	b = appendString(b, w.Zone)
	return append(b, '}')
}

func appendPatterns(b []byte, ps []idPattern) []byte {
	b = append(b, '[')
	for i, p := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, p.text)
	}
	return append(b, ']')
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendString writes s as a JCS string: '"' and '\' escaped, control
// characters below U+0020 as in RFC 8785 §3.2.2.2, everything else as is.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\t':
			b = append(b, '\\', 't')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
