package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// leaderPollInterval bounds how long WaitLeader can miss a leader change
// if raft dropped the observation.
const leaderPollInterval = 50 * time.Millisecond

// transportMaxRPCsInFlight is 1 to turn off raft's pipelined replication,
// which deadlocks in raft v1.8.0: when a follower rejects a pipelined
// AppendEntries, the pipeline's decoder goroutine exits while the sender
// may still pick a ready trigger over the finish signal and block forever
// handing the next request to the (unbuffered, with the default of 2)
// in-flight channel. Replication to that follower then stops for good
// while heartbeats continue, and the leader's Shutdown waits for the stuck
// goroutine forever. The fault tests (fault_test.go) hit this within
// seconds. Without pipelining each follower has one AppendEntries of up
// to maxAppendEntries entries in flight.
const transportMaxRPCsInFlight = 1

// Node is one raft server: a pebble log and stable store under
// Config.DataDir, file snapshots, a mutual-TLS TCP transport and the FSM.
// It is live as soon as New returns. Tie its lifetime to a context with
// Run, or stop it with Close. All methods are safe for concurrent use.
type Node struct {
	cfg   Config
	log   *slog.Logger
	store *Store
	snaps *raft.FileSnapshotStore
	layer *tlsStreamLayer
	trans *raft.NetworkTransport
	raft  *raft.Raft

	observer *raft.Observer
	obsCh    chan raft.Observation

	start StartInfo // how New brought the FSM in line with the newest snapshot

	mu            sync.Mutex
	leaderChanged chan struct{} // closed and replaced on every leader change

	done        chan struct{} // closed by Close
	raftStopped chan struct{} // closed when raft reaches Shutdown state
	raftDown    chan struct{} // closed by Close once raft has shut down
	stopOnce    sync.Once
	wg          sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New opens (or creates) the node's state under cfg.DataDir, starts the
// transport listener and raft, and bootstraps a single-voter cluster if
// cfg.Bootstrap is set and there is no state yet. On error everything
// opened so far is closed again. The caller must eventually call Run or
// Close. fsm is driven only by raft's goroutines from now on.
func New(cfg Config, fsm FSM) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if fsm == nil {
		return nil, fmt.Errorf("%w: fsm is nil", ErrInvalidConfig)
	}
	n := &Node{
		cfg:           cfg,
		log:           orDiscard(cfg.Logger).With("node", cfg.NodeID),
		leaderChanged: make(chan struct{}),
		done:          make(chan struct{}),
		raftStopped:   make(chan struct{}),
		raftDown:      make(chan struct{}),
	}
	if err := n.open(fsm); err != nil {
		n.closeResources()
		return nil, err
	}
	n.obsCh = make(chan raft.Observation, 16)
	n.observer = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		switch d := o.Data.(type) {
		case raft.LeaderObservation:
			// The term read here is the one a node that reports itself
			// won; a follower's report can carry a newer term (see
			// LeaderChange.Term).
			if cfg.OnLeaderChange != nil {
				cfg.OnLeaderChange(LeaderChange{Term: o.Raft.CurrentTerm(), LeaderID: string(d.LeaderID)})
			}
			return true
		case raft.RaftState:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(n.observer)
	n.wg.Add(1)
	go n.watch()
	// A state change that happened before the observer was registered is
	// caught by WaitLeader's poll and by this check.
	if n.raft.State() == raft.Shutdown {
		n.stopOnce.Do(func() { close(n.raftStopped) })
	}
	return n, nil
}

func (n *Node) open(fsm FSM) error {
	cfg := n.cfg
	if err := os.MkdirAll(cfg.DataDir, dirPerm); err != nil {
		return fmt.Errorf("cluster: create data dir: %w", err)
	}
	store, err := OpenStore(filepath.Join(cfg.DataDir, "log"), StoreOptions{Logger: n.log.With("component", "pebble")})
	if err != nil {
		return err
	}
	n.store = store

	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, snapshotsRetained, newHCLog(n.log, "raft-snapshots"))
	if err != nil {
		return fmt.Errorf("cluster: open snapshot store: %w", err)
	}
	n.snaps = snaps

	layer, err := newTLSStreamLayer(cfg.BindAddr, cfg.AdvertiseAddr, cfg.ServerTLS, cfg.ClientTLS, n.log.With("component", "raft-transport"))
	if err != nil {
		return err
	}
	n.layer = layer
	layer.dialHook = cfg.DialHook
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:          layer,
		MaxPool:         transportPoolSize,
		MaxRPCsInFlight: transportMaxRPCsInFlight,
		Timeout:         transportTimeout,
		Logger:          newHCLog(n.log, "raft-net"),
	})

	logs, err := raft.NewLogCache(logCacheEntries, store.Logs())
	if err != nil {
		return fmt.Errorf("cluster: log cache: %w", err)
	}
	rc := n.raftConfig()
	if cfg.Bootstrap {
		exists, err := raft.HasExistingState(logs, store.Stable(), snaps)
		if err != nil {
			return fmt.Errorf("cluster: check existing state: %w", err)
		}
		if !exists {
			conf := raft.Configuration{Servers: []raft.Server{{
				Suffrage: raft.Voter,
				ID:       raft.ServerID(cfg.NodeID),
				Address:  n.trans.LocalAddr(),
			}}}
			if err := raft.BootstrapCluster(rc, logs, store.Stable(), snaps, n.trans, conf); err != nil {
				return fmt.Errorf("cluster: bootstrap: %w", err)
			}
			n.log.Info("bootstrapped single-voter cluster", "addr", string(n.trans.LocalAddr()))
		}
	}
	if n.start, err = planStart(snaps, store.Logs(), cfg.FSMApplied); err != nil {
		return err
	}
	rc.NoSnapshotRestoreOnStart = !n.start.Restored
	if n.start.SnapshotIndex > 0 {
		n.log.Info("start from snapshot", "snapshot_index", n.start.SnapshotIndex,
			"fsm_applied", n.start.FSMApplied, "restore", n.start.Restored, "why", n.start.Reason)
	}
	r, err := raft.NewRaft(rc, newFSMAdapter(fsm), logs, store.Stable(), snaps, n.trans)
	if err != nil {
		return fmt.Errorf("cluster: start raft: %w", err)
	}
	n.raft = r
	return nil
}

func (n *Node) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = n.cfg.CommitTimeout
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.TrailingLogs = n.cfg.TrailingLogs
	rc.MaxAppendEntries = maxAppendEntries
	// Buffer the apply channel so that concurrent Apply calls queue up
	// while the leader is syncing the previous batch, and then go to disk
	// together in one StoreLogs (one fsync).
	rc.BatchApplyCh = true
	rc.ShutdownOnRemove = true
	rc.NoLegacyTelemetry = true
	rc.Logger = newHCLog(n.log, "raft")
	return rc
}

// watch turns raft observations into leader-change broadcasts and notices
// raft shutting down on its own (for example after removal from the
// cluster).
func (n *Node) watch() {
	defer n.wg.Done()
	for {
		select {
		case o := <-n.obsCh:
			switch d := o.Data.(type) {
			case raft.LeaderObservation:
				n.broadcastLeaderChange()
			case raft.RaftState:
				if d == raft.Shutdown {
					n.stopOnce.Do(func() { close(n.raftStopped) })
				}
				n.broadcastLeaderChange()
			}
		case <-n.done:
			return
		}
	}
}

func (n *Node) broadcastLeaderChange() {
	n.mu.Lock()
	close(n.leaderChanged)
	n.leaderChanged = make(chan struct{})
	n.mu.Unlock()
}

// LeaderChanged returns a channel closed at the next change of this
// node's view of the leader (a new leader, or none).
func (n *Node) LeaderChanged() <-chan struct{} { return n.leaderChange() }

func (n *Node) leaderChange() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leaderChanged
}

// Run blocks until ctx is done, Close is called, or raft stops on its own
// (this node, as leader, removed itself from the cluster), then shuts the
// node down. It
// returns nil after a clean shutdown caused by ctx or Close, an error
// wrapping ErrShutdown if raft stopped on its own, and any error from
// shutting down.
func (n *Node) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return n.Close()
	case <-n.done:
		return n.Close()
	case <-n.raftStopped:
		select {
		case <-n.done:
			return n.Close()
		default:
		}
		err := fmt.Errorf("cluster: raft stopped (removed from the cluster?): %w", ErrShutdown)
		return errors.Join(err, n.Close())
	}
}

// Close shuts raft down (waiting for in-flight work, failing pending
// requests with ErrShutdown), closes the transport and its connections,
// then the pebble store. It is idempotent; every call returns the first
// call's result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.done)
		n.wg.Wait()
		if n.observer != nil {
			n.raft.DeregisterObserver(n.observer)
		}
		n.closeErr = n.closeResources()
		close(n.raftDown)
	})
	return n.closeErr
}

// closeResources releases whatever open managed to create, in reverse.
func (n *Node) closeResources() error {
	var errs []error
	if n.raft != nil {
		// Shutdown also closes the transport and its listener.
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("cluster: shut down raft: %w", err))
		}
	}
	if n.trans != nil {
		n.trans.CloseStreams()
		if err := n.trans.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cluster: close transport: %w", err))
		}
	}
	if n.layer != nil {
		if err := n.layer.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (n *Node) closed() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// ID returns this node's ID (Config.NodeID).
func (n *Node) ID() string { return n.cfg.NodeID }

// Addr returns the address peers dial to reach this node: AdvertiseAddr,
// or the bound address (with the real port when BindAddr used port 0).
func (n *Node) Addr() string { return string(n.trans.LocalAddr()) }

// Apply proposes cmd to the cluster and waits until it is committed and
// applied to the local FSM, returning the FSM's value for it. It must be
// called on the leader.
//
// Errors: *CommandTooLargeError (ErrCommandTooLarge) if cmd exceeds
// MaxCommandBytes; *NotLeaderError (ErrNotLeader) on a follower — nothing
// was applied; ErrShutdown once the node is closed; ErrLeadershipLost,
// ErrTimeout, or the ctx error (context.Canceled, or
// context.DeadlineExceeded together with ErrTimeout) when the outcome is
// unknown: the command may still be applied, so commands that must not
// apply twice need an idempotency key. ErrShutdown for a command in
// flight when the node closes also leaves its outcome unknown.
//
// Apply takes ownership of cmd: the caller must not modify it afterwards.
func (n *Node) Apply(ctx context.Context, cmd []byte) (any, error) {
	if len(cmd) > n.cfg.MaxCommandBytes {
		return nil, &CommandTooLargeError{Size: len(cmd), Max: n.cfg.MaxCommandBytes}
	}
	f, err := n.await(ctx, "apply", func(timeout time.Duration) raft.Future {
		return n.raft.Apply(cmd, timeout)
	})
	if err != nil {
		return nil, err
	}
	return f.(raft.ApplyFuture).Response(), nil
}

// Barrier waits until every entry committed before the call has been
// applied to the local FSM. Leader only; errors as for Apply.
func (n *Node) Barrier(ctx context.Context) error {
	_, err := n.await(ctx, "barrier", func(timeout time.Duration) raft.Future {
		return n.raft.Barrier(timeout)
	})
	return err
}

// VerifyLeader checks with a quorum that this node is still the leader,
// for linearizable reads. Errors: ErrNotLeader, ErrLeadershipLost,
// ErrShutdown, ctx errors.
func (n *Node) VerifyLeader(ctx context.Context) error {
	_, err := n.await(ctx, "verify leader", func(time.Duration) raft.Future {
		return n.raft.VerifyLeader()
	})
	return err
}

// AddVoter adds the node id at addr as a voter, or updates its address if
// it is already a member. Leader only; the change is committed through
// the log when it returns nil.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	_, err := n.await(ctx, "add voter", func(timeout time.Duration) raft.Future {
		return n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout)
	})
	return err
}

// RemoveServer removes the node id from the cluster. Leader only. A
// leader that removes itself shuts down once the change commits (its Run
// returns an error wrapping ErrShutdown); a removed follower stops hearing
// from the leader and idles without a leader until it is closed.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	_, err := n.await(ctx, "remove server", func(timeout time.Duration) raft.Future {
		return n.raft.RemoveServer(raft.ServerID(id), 0, timeout)
	})
	return err
}

// Server is one member of the cluster configuration.
type Server struct {
	ID    string
	Addr  string
	Voter bool // false for a non-voting member
}

// Servers returns the latest cluster configuration known to this node
// (possibly not yet committed).
func (n *Node) Servers(ctx context.Context) ([]Server, error) {
	f, err := n.await(ctx, "get configuration", func(time.Duration) raft.Future {
		return n.raft.GetConfiguration()
	})
	if err != nil {
		return nil, err
	}
	conf := f.(raft.ConfigurationFuture).Configuration()
	out := make([]Server, 0, len(conf.Servers))
	for _, s := range conf.Servers {
		out = append(out, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// Snapshot asks raft to snapshot the FSM now and compact the log down to
// Config.TrailingLogs entries. Having nothing new to snapshot is not an
// error. Raft also does this on its own per SnapshotInterval and
// SnapshotThreshold.
func (n *Node) Snapshot(ctx context.Context) error {
	_, err := n.await(ctx, "snapshot", func(time.Duration) raft.Future {
		return n.raft.Snapshot()
	})
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil
	}
	return err
}

// Term returns the node's current raft term. It does not block.
func (n *Node) Term() uint64 { return n.raft.CurrentTerm() }

// IsLeader reports whether this node currently believes it is the leader.
// Use VerifyLeader before a read that must be linearizable.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the current leader's ID and address as this node knows
// them, or empty strings when no leader is known.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// WaitLeader blocks until this node knows a leader (itself or another),
// ctx is done (returning its error), or the node shuts down (ErrShutdown).
func (n *Node) WaitLeader(ctx context.Context) error {
	t := time.NewTimer(leaderPollInterval)
	defer t.Stop()
	for {
		changed := n.leaderChange()
		if n.closed() {
			return fmt.Errorf("cluster: wait leader: %w", ErrShutdown)
		}
		if id, _ := n.Leader(); id != "" {
			return nil
		}
		t.Reset(leaderPollInterval)
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: wait leader: %w", ctx.Err())
		case <-n.done:
			return fmt.Errorf("cluster: wait leader: %w", ErrShutdown)
		case <-changed:
		case <-t.C:
		}
	}
}

// Ready reports whether the node is open, knows a leader, and has applied
// everything it knows to be committed. It is a cheap health signal, not a
// linearizability guarantee (use Barrier or VerifyLeader for that).
func (n *Node) Ready() bool {
	if n.closed() {
		return false
	}
	if id, _ := n.Leader(); id == "" {
		return false
	}
	return n.raft.AppliedIndex() >= n.raft.CommitIndex()
}

// Stats is a point-in-time view of a node, for metrics and health checks.
type Stats struct {
	State             string    // "Follower", "Candidate", "Leader" or "Shutdown"
	Term              uint64    // current raft term
	FirstLogIndex     uint64    // lowest index in the log store, 0 if empty
	LastLogIndex      uint64    // highest index in the log (or last snapshot)
	CommitIndex       uint64    // highest index known to be committed
	AppliedIndex      uint64    // highest index handed to the FSM
	LastSnapshotIndex uint64    // index of the newest snapshot on disk, 0 if none
	LastContact       time.Time // last contact with a leader; zero on the leader or before any contact
}

// Stats returns the node's current Stats. It does not block on raft.
func (n *Node) Stats() Stats {
	s := Stats{
		State:        n.raft.State().String(),
		Term:         n.raft.CurrentTerm(),
		LastLogIndex: n.raft.LastIndex(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.raft.AppliedIndex(),
		LastContact:  n.raft.LastContact(),
	}
	if first, err := n.store.Logs().FirstIndex(); err == nil {
		s.FirstLogIndex = first
	}
	if metas, err := n.snaps.List(); err == nil && len(metas) > 0 {
		s.LastSnapshotIndex = metas[0].Index
	}
	return s
}

// await starts a raft operation and waits for its future or ctx. The
// enqueue timeout given to start is the time left until ctx's deadline
// (0, meaning none, without a deadline). Every future resolves at the
// latest when Close has shut raft down (bindShutdown sees to the ones raft
// itself would drop), so the waiting goroutine never outlives Close.
func (n *Node) await(ctx context.Context, op string, start func(timeout time.Duration) raft.Future) (raft.Future, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxError(op, err)
	}
	if n.closed() {
		return nil, fmt.Errorf("cluster: %s: %w", op, ErrShutdown)
	}
	var timeout time.Duration
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
		if timeout <= 0 {
			return nil, ctxError(op, context.DeadlineExceeded)
		}
	}
	var (
		f    raft.Future
		ferr error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		f = start(timeout)
		bindShutdown(f, n.raftDown)
		ferr = f.Error()
	}()
	result := func() (raft.Future, error) {
		if ferr != nil {
			return nil, n.mapError(op, ferr)
		}
		return f, nil
	}
	select {
	case <-done:
		return result()
	case <-ctx.Done():
		return nil, ctxError(op, ctx.Err())
	case <-n.raftDown:
		// Raft is gone; a future it dropped would never resolve (see
		// bindShutdown). The outcome is unknown.
		select {
		case <-done:
			return result()
		default:
			return nil, fmt.Errorf("cluster: %s: %w", op, ErrShutdown)
		}
	}
}

func ctxError(op string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("cluster: %s: %w: %w", op, ErrTimeout, err)
	}
	return fmt.Errorf("cluster: %s: %w", op, err)
}

// mapError translates raft's errors to this package's sentinels.
func (n *Node) mapError(op string, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		id, addr := n.Leader()
		return fmt.Errorf("cluster: %s: %w", op, &NotLeaderError{LeaderID: id, LeaderAddr: addr})
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("cluster: %s: %w", op, ErrLeadershipLost)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("cluster: %s: %w", op, ErrShutdown)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("cluster: %s: %w: %w", op, ErrTimeout, context.DeadlineExceeded)
	case errors.Is(err, raft.ErrNothingNewToSnapshot):
		return err
	default:
		return fmt.Errorf("cluster: %s: %w", op, err)
	}
}

// StartInfo tells how New brought the FSM in line with the newest
// snapshot on disk (see Config.FSMApplied).
type StartInfo struct {
	// SnapshotIndex is the index of the newest snapshot when New ran; 0 if
	// there was none (then nothing was restored or skipped).
	SnapshotIndex uint64
	// FSMApplied is what Config.FSMApplied reported; 0 when it is nil.
	FSMApplied uint64
	// Restored is true when raft restored the snapshot into the FSM, false
	// when the FSM's own state stood in for it (or there was none).
	Restored bool
	// Reason says why, for logs and operators.
	Reason string
}

// StartInfo returns how New brought the FSM in line with the newest
// snapshot. It does not change after New.
func (n *Node) StartInfo() StartInfo { return n.start }

// planStart decides whether the FSM's own state can stand in for the
// newest snapshot (see Config.FSMApplied). It only reads: the snapshot
// list and, when the FSM is slightly behind the snapshot, the log entries
// in between. Any doubt means restore.
func planStart(snaps raft.SnapshotStore, logs raft.LogStore, fsmApplied func() uint64) (StartInfo, error) {
	metas, err := snaps.List()
	if err != nil {
		return StartInfo{}, fmt.Errorf("cluster: list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return StartInfo{Reason: "no snapshot"}, nil
	}
	snap := metas[0] // newest first, the one raft would restore
	info := StartInfo{SnapshotIndex: snap.Index, Restored: true}
	if fsmApplied == nil {
		info.Reason = "the FSM does not report its applied index"
		return info, nil
	}
	info.FSMApplied = fsmApplied()
	info.Restored, info.Reason = mustRestore(snap.Index, snap.Term, info.FSMApplied, logs)
	return info, nil
}

// mustRestore reports whether an FSM whose state reflects the commands up
// to index applied must be replaced by the snapshot at (snapIndex,
// snapTerm), and why.
func mustRestore(snapIndex, snapTerm, applied uint64, logs raft.LogStore) (bool, string) {
	last, err := logs.LastIndex()
	if err != nil {
		return true, fmt.Sprintf("cannot read the log: %v", err)
	}
	if end := max(last, snapIndex); applied > end {
		// The FSM saw entries this node's log does not have: its state is
		// not from this log. The snapshot at least is.
		return true, fmt.Sprintf("the FSM's applied index %d is past the end of the log (%d)", applied, end)
	}
	if applied >= snapIndex {
		return false, "the FSM's state already holds the snapshot"
	}
	// The FSM is behind the snapshot. It still holds the same state if the
	// entries in between are not commands. They are the entries the
	// snapshot covers only if the local entry at the snapshot's index has
	// the snapshot's term (two logs that agree on an entry's index and term
	// agree on every entry before it).
	var l raft.Log
	if err := logs.GetLog(snapIndex, &l); err != nil {
		return true, fmt.Sprintf("the FSM is behind the snapshot (%d < %d) and the log no longer holds the entries in between", applied, snapIndex)
	}
	if l.Term != snapTerm {
		return true, fmt.Sprintf("the log's entry %d has term %d, the snapshot's %d", snapIndex, l.Term, snapTerm)
	}
	for i := applied + 1; i <= snapIndex; i++ {
		if err := logs.GetLog(i, &l); err != nil {
			return true, fmt.Sprintf("the FSM is behind the snapshot (%d < %d) and the log no longer holds entry %d", applied, snapIndex, i)
		}
		if l.Type == raft.LogCommand {
			return true, fmt.Sprintf("the FSM is behind the snapshot: command %d is not in its state", i)
		}
	}
	return false, "the FSM's state holds the snapshot (only non-command entries follow its applied index)"
}
