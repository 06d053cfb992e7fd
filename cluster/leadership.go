package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
)

// StepDown asks the leader to hand leadership to the most up-to-date
// follower and returns once the transfer completed (or failed). It returns
// an error matching ErrNotLeader on a follower.
func (n *Node) StepDown(ctx context.Context) error {
	_, err := n.await(ctx, "step down", func(time.Duration) raft.Future {
		return n.raft.LeadershipTransfer()
	})
	return err
}
