package clustertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/writ-dev/writ/cluster"
)

// errLostBytes is what a connection returns once it has dropped bytes in
// a partition that has since healed: its byte stream has a hole, so it is
// dead, as a TCP connection that timed out would be.
var errLostBytes = errors.New("clustertest: connection lost bytes in a partition")

// errNodeStopped is returned by the dial hook of a node being stopped.
var errNodeStopped = errors.New("clustertest: node is stopping")

// link is the direction from one node to another.
type link struct{ from, to string }

// network is the fault state of a Cluster, consulted by every node's dial
// hook and by every connection the hooks return.
//
// Traffic from A to B is dropped when the link A→B is cut (Partition,
// PartitionOneWay) or either node is down (killed). Since raft sends
// requests on connections it dials and responses on connections it
// accepted, dropping A→B means:
//
//   - on connections A dialled to B, A's writes (its requests) vanish;
//   - on connections B dialled to A, B's reads (A's responses) vanish;
//   - A cannot open a new connection to B: its dial waits until the link
//     heals, the dial times out or A stops. B can still dial A, so B's
//     requests keep reaching A while A's answers are lost.
//
// Both effects are applied by the dialling end's faultConn, which is why
// the hook only needs to see outbound connections. A connection that
// dropped bytes is dead for good once the link heals (errLostBytes) and is
// closed at that moment; connections that carried nothing during a
// partition simply resume.
type network struct {
	mu      sync.Mutex
	cut     map[link]bool
	down    map[string]bool
	addrs   map[string]string // raft address -> node ID
	conns   map[*faultConn]struct{}
	changed chan struct{} // closed and replaced on every change
}

func newNetwork() *network {
	return &network{
		cut:     make(map[link]bool),
		down:    make(map[string]bool),
		addrs:   make(map[string]string),
		conns:   make(map[*faultConn]struct{}),
		changed: make(chan struct{}),
	}
}

func (n *network) register(addr, id string) {
	n.mu.Lock()
	n.addrs[addr] = id
	n.mu.Unlock()
}

func (n *network) droppedLocked(from, to string) bool {
	return n.cut[link{from, to}] || n.down[from] || n.down[to]
}

// dropped reports whether traffic from → to is currently dropped.
func (n *network) dropped(from, to string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.droppedLocked(from, to)
}

// setCut replaces the cut links.
func (n *network) setCut(cut map[link]bool) {
	n.mu.Lock()
	n.cut = cut
	n.changedLocked()
}

// addCut cuts one more link.
func (n *network) addCut(l link) {
	n.mu.Lock()
	n.cut[l] = true
	n.changedLocked()
}

// setUp marks a restarted node reachable again.
func (n *network) setUp(id string) {
	n.mu.Lock()
	delete(n.down, id)
	n.changedLocked()
}

// stop marks id down, closes stopped (so that id's pending dials give up
// and its new dials fail) and closes every connection of id — the way
// the kernel drops a crashed process's sockets.
func (n *network) stop(id string, stopped chan struct{}) {
	n.mu.Lock()
	n.down[id] = true
	close(stopped)
	var doomed []*faultConn
	for c := range n.conns {
		if c.from == id || c.to == id {
			doomed = append(doomed, c)
		}
	}
	n.changedLocked()
	for _, c := range doomed {
		_ = c.Close()
	}
}

// changedLocked wakes waiting dials and closes the connections that lost
// bytes on a link that now carries traffic again. It unlocks n.mu.
func (n *network) changedLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
	var doomed []*faultConn
	for c := range n.conns {
		if c.lostOut.Load() && !n.droppedLocked(c.from, c.to) || c.lostIn.Load() && !n.droppedLocked(c.to, c.from) {
			doomed = append(doomed, c)
		}
	}
	n.mu.Unlock()
	for _, c := range doomed {
		_ = c.Close()
	}
}

// hook returns the dial hook of node local; stopped is closed when this
// incarnation of the node stops.
func (n *network) hook(local string, stopped chan struct{}) cluster.DialHook {
	return func(ctx context.Context, addr string, dial cluster.DialFunc) (net.Conn, error) {
		var remote string
		for {
			n.mu.Lock()
			id, known := n.addrs[addr]
			blocked := known && n.droppedLocked(local, id)
			changed := n.changed
			n.mu.Unlock()
			if !known {
				// Not a member of this cluster: no faults to apply.
				return dial(ctx)
			}
			remote = id
			if !blocked {
				break
			}
			select {
			case <-changed:
			case <-stopped:
				return nil, errNodeStopped
			case <-ctx.Done():
				return nil, fmt.Errorf("clustertest: %s cannot reach %s: %w", local, remote, ctx.Err())
			}
		}
		c, err := dial(ctx)
		if err != nil {
			return nil, err
		}
		fc := &faultConn{Conn: c, net: n, from: local, to: remote}
		n.mu.Lock()
		defer n.mu.Unlock()
		select {
		case <-stopped:
			_ = c.Close()
			return nil, errNodeStopped
		default:
		}
		n.conns[fc] = struct{}{}
		return fc, nil
	}
}

// faultConn is a raft connection dialled by from to to, subject to the
// network's faults. It wraps the authenticated *tls.Conn, so faults act on
// whole plaintext writes and reads and never corrupt the TLS session.
type faultConn struct {
	net.Conn
	net      *network
	from, to string
	lostOut  atomic.Bool // a write was dropped
	lostIn   atomic.Bool // read bytes were dropped
	once     sync.Once
	closeErr error
}

// NetConn returns the TLS connection, as cluster.DialHook requires.
func (c *faultConn) NetConn() net.Conn { return c.Conn }

// Write sends p unless traffic from → to is dropped, in which case it
// pretends to have sent it.
func (c *faultConn) Write(p []byte) (int, error) {
	if c.net.dropped(c.from, c.to) {
		c.lostOut.Store(true)
		return len(p), nil
	}
	if c.lostOut.Load() {
		return 0, errLostBytes
	}
	return c.Conn.Write(p)
}

// Read returns what the peer sent, discarding whatever arrives while
// traffic to → from is dropped.
func (c *faultConn) Read(p []byte) (int, error) {
	for {
		if c.lostIn.Load() && !c.net.dropped(c.to, c.from) {
			return 0, errLostBytes
		}
		k, err := c.Conn.Read(p)
		if k > 0 && c.net.dropped(c.to, c.from) {
			c.lostIn.Store(true)
			if err != nil {
				return 0, err
			}
			continue
		}
		if k > 0 && c.lostIn.Load() {
			return 0, errLostBytes
		}
		return k, err
	}
}

// Close closes the connection and forgets it.
func (c *faultConn) Close() error {
	c.once.Do(func() {
		c.net.mu.Lock()
		delete(c.net.conns, c)
		c.net.mu.Unlock()
		c.closeErr = c.Conn.Close()
	})
	return c.closeErr
}
