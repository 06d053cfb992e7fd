// Package clustertest is test scaffolding for code built on package
// cluster: a throwaway SPIFFE certificate authority (CA) issuing node
// X.509-SVIDs and go-spiffe mTLS configs, single-node helpers (Config,
// StartNode, Run), and Cluster, a fault-injection harness that runs N real
// nodes in one process.
//
// It is for tests only: keys are generated in memory, certificates are
// short-lived, and failures call t.Fatal.
//
// # Cluster
//
// Start runs n cluster.Nodes on 127.0.0.1 with real mutual TLS from a CA
// of its own, pebble logs in the test's temporary directory and fast
// timeouts (TestHeartbeatTimeout and friends); n1 bootstraps and the
// others join with AddVoter. A test can then
//
//   - Kill a member (as a crash: connections dropped, raft shut down
//     without handing over leadership, the in-memory FSM discarded) and
//     Restart it on the same data directory and address;
//   - Partition members into groups, PartitionOneWay (A's messages to B
//     lost, B's to A delivered) and Heal;
//   - AddNode and RemoveNode during traffic;
//   - Apply like a client that retries the same command on the current
//     leader after an unknown outcome;
//   - WaitLeader, WaitConverged (same leader, term, last/commit/applied
//     index and, for FSMs implementing StateHasher, state hash on every
//     running member), and AssertOneLeaderPerTerm over every leader
//     change any member reported (cluster.Config.OnLeaderChange).
//
// KV is a deterministic test FSM for such tests: lists of values appended
// by Op commands, applied at most once per Op.ID, with snapshots, a
// chained state hash and Hold (to make a commit outlive its proposer's
// wait).
//
// # How faults are injected
//
// Every node gets a cluster.Config.DialHook. Raft sends requests on
// connections it dials and answers on connections it accepted, so the
// dialling end sees both directions of the traffic between two nodes:
// when A's messages to B are to be lost, A's hook holds back A's new dials
// to B until the link heals (as a lost SYN would), A's writes on its
// connections to B vanish, and on B's connections to A the bytes A sends
// back are read and discarded before B's raft sees them. B can still dial
// A, so B's requests reach A — a one-way partition. Faults act above TLS
// on whole reads and writes, so a session is never corrupted; a
// connection that lost bytes is closed when its link heals (its stream
// has a hole, like a TCP connection that timed out), and raft redials.
// Killing a node closes all of its connections at once.
//
// # Example
//
//	c := clustertest.Start(t, 3, clustertest.NewKVFSM)
//	leader := c.Leader(t)
//	c.Partition([]string{leader.ID()}) // isolate the leader
//	v, err := c.Apply(ctx, clustertest.Op{ID: "op-1", Key: "k", Value: "v"}.Encode())
//	c.Heal()
//	if err := c.WaitConverged(ctx); err != nil {
//		t.Fatal(err)
//	}
//	c.AssertOneLeaderPerTerm(t)
package clustertest
