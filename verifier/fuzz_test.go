package verifier

import (
	"context"
	"errors"
	"testing"

	"github.com/writ-dev/writ/spec"
)

var knownReasons = map[string]bool{
	spec.ReasonAllowed: true, spec.ReasonMalformed: true, spec.ReasonLimitsExceeded: true,
	spec.ReasonUnsupported: true, spec.ReasonUnknownKey: true, spec.ReasonBadSignature: true,
	spec.ReasonRevoked: true, spec.ReasonRevocationStale: true, spec.ReasonExpired: true, spec.ReasonPresenterMismatch: true,
	spec.ReasonServiceMismatch: true, spec.ReasonOutsideTimeWindow: true,
	spec.ReasonConstraintViolated: true, spec.ReasonCheckFailed: true, spec.ReasonNotGranted: true,
}

// FuzzAuthorize feeds arbitrary bytes to decoding, signature verification
// and evaluation (and to Inspect). It is seeded with the tokens of the
// reason table. Invariants: no panic; a known reason; Allowed only with
// reason allowed; the same decision from the cache as at first sight;
// Inspect fails only with the package's decode errors.
func FuzzAuthorize(f *testing.F) {
	for _, tc := range coreAuthCases() {
		f.Add(tc.token(f))
	}
	v := coreVerifier(f, nil)
	f.Fuzz(func(t *testing.T, tok []byte) {
		req := coreReq
		req.Presenter = "spiffe://acme.example/agents/support"
		first := v.Authorize(context.Background(), tok, req)
		again := v.Authorize(context.Background(), tok, req)
		if !knownReasons[first.Reason] {
			t.Fatalf("unknown reason %q", first.Reason)
		}
		if first.Allowed != (first.Reason == spec.ReasonAllowed) {
			t.Fatalf("allowed %v with reason %q", first.Allowed, first.Reason)
		}
		if first.Reason != again.Reason || len(first.FailedChecks) != len(again.FailedChecks) {
			t.Fatalf("first sight %q, cached %q", first.Reason, again.Reason)
		}
		if _, err := Inspect(tok); err != nil &&
			!errors.Is(err, ErrMalformed) && !errors.Is(err, ErrLimitsExceeded) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("Inspect: unexpected error %v", err)
		}
	})
}
