// Package cluster runs a hashicorp/raft node whose log, stable state and
// snapshots live on local disk, with cockroachdb/pebble as the log store.
// It replicates opaque commands through a caller-supplied FSM and knows
// nothing of what the commands mean: writ's issuer owns the state machine.
//
// # Pieces
//
//   - Node: one raft server. New opens DataDir, listens, starts raft and
//     (with Config.Bootstrap) makes a fresh node the single voter of a new
//     cluster. Run(ctx) ties its life to a context; Close stops it.
//     Apply(ctx, cmd) proposes a command and returns the FSM's value.
//   - FSM / BatchFSM / Snapshot: what the caller implements. A BatchFSM gets
//     the commands raft committed together in one ApplyBatch call.
//   - Store, LogStore, StableStore: raft's raft.LogStore and
//     raft.StableStore on pebble (one database, synced writes, one batch
//     per StoreLogs, first/last index cached). Exported so that tools and
//     tests can open a node's log; Node uses them itself.
//
// Layout of Config.DataDir: "log" is the pebble database, "snapshots" is
// raft's file snapshot store (two retained). Other names are the caller's.
//
// # Trust boundary
//
// Peers are other writ nodes reached over TCP with mutual TLS only: the
// caller provides ServerTLS and ClientTLS (go-spiffe tlsconfig configs
// authorising node SPIFFE IDs), Validate refuses configs that would not
// verify the peer, and TLS 1.3 with the "writ-raft/1" ALPN protocol is
// enforced. An inbound connection reaches raft only after its handshake
// completed, so plaintext or unauthorised peers never get a byte decoded.
// Authenticated peers are trusted as raft members: a compromised node can
// propose anything. Bytes read back from disk are checked (checksummed,
// strictly decoded log entries; a versioned store format) and refused with
// ErrCorruptLog or ErrStoreVersion rather than misread.
//
// # Errors
//
// Apply and the other leader operations return ErrNotLeader (as
// *NotLeaderError naming the leader) when nothing was applied, and
// ErrLeadershipLost, ErrTimeout or a context error when the outcome is
// unknown; commands that must not be applied twice carry their own
// idempotency key. ErrShutdown follows Close.
//
// # Throughput
//
// Concurrent Apply calls are batched by raft: the commands that queue up
// while the leader syncs the previous batch are written in one StoreLogs
// call (one pebble batch, one fsync) and handed to a BatchFSM together, so
// many small commands from many goroutines cost far fewer than one fsync
// each (see BenchmarkApply).
//
// # Example
//
//	cfg := cluster.DefaultConfig()
//	cfg.NodeID = "node-1"
//	cfg.DataDir = "/var/lib/writ/raft"
//	cfg.BindAddr = "10.0.0.5:7400"
//	cfg.Bootstrap = true // single voter on first start; no-op afterwards
//	cfg.ServerTLS = tlsconfig.MTLSServerConfig(svidSource, bundleSource, tlsconfig.AuthorizeOneOf(nodeIDs...))
//	cfg.ClientTLS = tlsconfig.MTLSClientConfig(svidSource, bundleSource, tlsconfig.AuthorizeOneOf(nodeIDs...))
//	cfg.Logger = logger
//
//	node, err := cluster.New(cfg, state) // state implements cluster.FSM
//	if err != nil {
//		return err
//	}
//	go func() { errc <- node.Run(ctx) }() // shuts down when ctx ends
//
//	if err := node.WaitLeader(ctx); err != nil {
//		return err
//	}
//	v, err := node.Apply(ctx, cmd)
//	var nl *cluster.NotLeaderError
//	switch {
//	case errors.As(err, &nl):
//		// forward to nl.LeaderID / nl.LeaderAddr
//	case err != nil:
//		return err
//	}
//	result := v.(MyResult) // whatever the FSM returned for cmd
//
// # Growing the cluster
//
// Start the other nodes with Bootstrap false, their own NodeID and a fixed
// BindAddr, then call AddVoter(ctx, id, addr) on the leader for each.
// Node addresses are recorded in the replicated configuration, so nodes of
// a multi-node cluster need stable addresses across restarts.
//
// # Fault injection and testing
//
// Config.DialHook lets a test intercept the raft transport's outbound
// connections; package clustertest uses it to kill, partition (also one
// way) and heal nodes of an in-process cluster, and fault_test.go checks
// that no acknowledged command is lost, all FSMs end identical and no term
// has two leaders (TestChaos, with WRIT_CHAOS=1, runs longer random
// faults). The hook is nil in production, where it costs one nil check
// per new connection, and it cannot weaken authentication: the connection
// it returns must wrap the mutually authenticated TLS connection the
// transport dialled. Config.OnLeaderChange reports each leader change with
// its term.
//
// Two raft v1.8.0 defects are worked around here, both found by those
// tests: pipelined replication can deadlock after a follower rejects an
// AppendEntries (stalling replication to it and hanging Close), so it is
// turned off; and raft drops the futures of commands still queued for the
// FSM when it shuts down, so Node answers them with ErrShutdown rather
// than letting Apply or its waiting goroutine hang.
package cluster
