package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
)

// Fault injection, in brief (package clustertest has the full story):
//
//   - Config.DialHook intercepts only outbound connections. Raft sends
//     requests on connections it dials and responses on connections it
//     accepted, so the dialling end of a connection can drop either
//     direction: its own writes (requests) or what it reads (responses).
//     One-way partitions ("A's messages to B are lost, B's reach A") need
//     nothing more: A's dials to B wait, A's writes to B vanish, and on
//     B's connections to A the bytes A sends back are discarded by B's
//     end.
//   - The hook sits above TLS: it can only delay, refuse or wrap the
//     authenticated connection the transport dialled (checked through the
//     NetConn chain), never substitute its own, so it cannot be used to
//     bypass mutual TLS.
//   - With a nil hook (production) Dial is unchanged but for one nil
//     check per new connection; connections are pooled, so nothing is
//     added per RPC or per byte.
//   - Config.OnLeaderChange reports each leader change with the term it
//     happened in, from raft's own goroutine, so that tests can assert
//     that no term had two leaders.

// DialFunc opens one raft connection to the address a DialHook was called
// for, exactly as the transport does without a hook: TCP, then a TLS 1.3
// handshake with Config.ClientTLS that verifies the peer and negotiates
// the raft ALPN protocol. It returns the *tls.Conn.
type DialFunc func(ctx context.Context) (net.Conn, error)

// DialHook intercepts the outbound connections of a node's raft
// transport. It exists for fault-injection tests — package clustertest
// uses it to partition nodes at the transport — and Config.DialHook is nil
// in production.
//
// The hook is called on a raft goroutine for every new outbound connection
// to the peer at addr, with a ctx that ends at raft's dial timeout or when
// the node closes. It may delay the dial (but must return once ctx ends),
// refuse it by returning an error, or call dial and return the connection
// or a wrapper around it. A wrapper must implement NetConn() net.Conn
// returning what it wraps (as *tls.Conn does): the transport follows that
// chain and accepts the connection only if it reaches the connection dial
// returned, so whatever a hook does, raft's bytes still travel through the
// mutually authenticated TLS session. Any other connection is closed and
// the dial fails. A hook must close connections it obtained from dial and
// does not return.
//
// Only outbound connections pass through the hook. In raft every
// connection carries requests from the node that dialled it and responses
// from the node that accepted it, so a hook at the dialling end sees, and
// can drop, both directions of the traffic between the two nodes.
type DialHook func(ctx context.Context, addr string, dial DialFunc) (net.Conn, error)

// maxConnWrapDepth bounds how many NetConn wrappers the transport follows
// when checking a DialHook's connection.
const maxConnWrapDepth = 16

// dialThroughHook runs hook for one dial and checks that the connection it
// returns wraps one that dial produced.
func dialThroughHook(ctx context.Context, hook DialHook, addr string, dial DialFunc) (net.Conn, error) {
	var (
		mu     sync.Mutex
		dialed []net.Conn
	)
	recordingDial := func(ctx context.Context) (net.Conn, error) {
		c, err := dial(ctx)
		if err == nil {
			mu.Lock()
			dialed = append(dialed, c)
			mu.Unlock()
		}
		return c, err
	}
	c, err := hook(ctx, addr, recordingDial)
	if err != nil {
		if c != nil {
			_ = c.Close()
		}
		return nil, fmt.Errorf("cluster: dial %s: %w", addr, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if c == nil {
		return nil, fmt.Errorf("cluster: dial %s: DialHook returned neither a connection nor an error", addr)
	}
	inner, ok := wrapsOneOf(c, dialed)
	if !ok {
		_ = c.Close()
		for _, d := range dialed {
			_ = d.Close()
		}
		return nil, fmt.Errorf("cluster: dial %s: DialHook returned a connection that does not wrap the authenticated TLS connection", addr)
	}
	for _, d := range dialed {
		if d != inner {
			_ = d.Close()
		}
	}
	return c, nil
}

// wrapsOneOf follows c's NetConn chain and returns the element of dialed
// it reaches.
func wrapsOneOf(c net.Conn, dialed []net.Conn) (net.Conn, bool) {
	for range maxConnWrapDepth {
		for _, d := range dialed {
			if c == d {
				return d, true
			}
		}
		if _, isTLS := c.(*tls.Conn); isTLS {
			// Below a TLS connection is plaintext TCP: a different session.
			return nil, false
		}
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil, false
		}
		if c = w.NetConn(); c == nil {
			return nil, false
		}
	}
	return nil, false
}

// LeaderChange is what Config.OnLeaderChange receives.
type LeaderChange struct {
	// Term is this node's current raft term when its view of the leader
	// changed. For a node reporting itself as leader it is the term it
	// won. For a follower it can be newer than the leader's term: raft
	// v1.8 handles heartbeats off its main goroutine, so a heartbeat of
	// the previous leader can be reported after the term moved on.
	Term uint64
	// LeaderID is the NodeID of the leader this node now knows (its own
	// when it has just won an election), or empty when it lost track of
	// the leader.
	LeaderID string
}
