package credential

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// sentinels lists every sentinel of errors.go.
var sentinels = []error{
	ErrInvalidConfig, ErrTooLarge, ErrMalformed, ErrEncrypted, ErrAlgorithm,
	ErrKeyID, ErrHeader, ErrSubject, ErrAudience, ErrExpired, ErrNotYetValid,
	ErrLifetime, ErrSignature, ErrNotSVID, ErrChainTooDeep, ErrUntrusted,
}

// matchedSentinels returns the sentinels err wraps.
func matchedSentinels(err error) []error {
	var got []error
	for _, s := range sentinels {
		if errors.Is(err, s) {
			got = append(got, s)
		}
	}
	return got
}

// checkOneSentinel fails t unless err wraps exactly one sentinel.
func checkOneSentinel(t testing.TB, err error) {
	t.Helper()
	if got := matchedSentinels(err); len(got) != 1 {
		t.Errorf("error %q wraps %d sentinels %v, want exactly 1", err, len(got), got)
	}
}

func TestSentinelsArePrefixed(t *testing.T) {
	for _, s := range sentinels {
		if !strings.HasPrefix(s.Error(), "credential: ") {
			t.Errorf("sentinel %q: got no %q prefix", s, "credential: ")
		}
	}
}
