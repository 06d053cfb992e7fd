package clustertest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind: nodes, dial
// hooks waiting on a partition and fault connections must all stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
