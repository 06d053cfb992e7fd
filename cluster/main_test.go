package cluster_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves goroutines behind: raft,
// the transport, pebble and Apply's waiters must all stop on Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
