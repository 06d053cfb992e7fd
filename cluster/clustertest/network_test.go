package clustertest

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// quiet is how long a test waits to see that nothing arrives. A pass
// cannot be a false pass by timing: bytes that arrived late would still
// fail the checks that follow.
const quiet = 50 * time.Millisecond

// dialPair runs a's hook for a dial to b's address over net.Pipe and
// returns the hooked connection (a's end) and b's raw end.
func dialPair(t *testing.T, n *network, stopped chan struct{}) (net.Conn, net.Conn) {
	t.Helper()
	var peer net.Conn
	conn, err := n.hook("a", stopped)(t.Context(), "addr-b", func(context.Context) (net.Conn, error) {
		c, p := net.Pipe()
		peer = p
		return c, nil
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close(); peer.Close() })
	return conn, peer
}

func newTestNetwork() *network {
	n := newNetwork()
	n.register("addr-a", "a")
	n.register("addr-b", "b")
	return n
}

// readAsync reads once from c in a goroutine.
func readAsync(c net.Conn) <-chan error {
	ch := make(chan error, 1)
	go func() {
		buf := make([]byte, 16)
		k, err := c.Read(buf)
		if err == nil && string(buf[:k]) != "x" {
			err = errors.New("read " + string(buf[:k]))
		}
		ch <- err
	}()
	return ch
}

func TestFaultConnFlows(t *testing.T) {
	n := newTestNetwork()
	conn, peer := dialPair(t, n, make(chan struct{}))
	got := readAsync(peer)
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("a -> b: %v", err)
	}
	got = readAsync(conn)
	if _, err := peer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("b -> a: %v", err)
	}
}

// TestFaultConnDropsRequests cuts a -> b: a's writes vanish, and once the
// cut heals the connection is closed rather than resuming with a hole.
func TestFaultConnDropsRequests(t *testing.T) {
	n := newTestNetwork()
	conn, peer := dialPair(t, n, make(chan struct{}))
	n.addCut(link{"a", "b"})
	if k, err := conn.Write([]byte("lost")); k != 4 || err != nil {
		t.Fatalf("Write while cut: got (%d, %v), want (4, nil)", k, err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(quiet))
	if k, err := peer.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("b read (%d, %v), want nothing", k, err)
	}
	_ = peer.SetReadDeadline(time.Time{})
	n.setCut(map[link]bool{})
	if _, err := conn.Write([]byte("x")); err == nil {
		t.Fatal("Write after healing a connection that lost bytes: got nil error")
	}
	if _, err := peer.Read(make([]byte, 8)); !errors.Is(err, io.EOF) {
		t.Fatalf("b read after heal: got %v, want EOF (closed)", err)
	}
}

// TestFaultConnDropsResponses cuts b -> a: what b sends on a's connection
// is read and discarded, and never surfaces after the heal.
func TestFaultConnDropsResponses(t *testing.T) {
	n := newTestNetwork()
	conn, peer := dialPair(t, n, make(chan struct{}))
	n.addCut(link{"b", "a"})
	got := readAsync(conn)
	if _, err := peer.Write([]byte("lost")); err != nil {
		t.Fatal(err) // a's Read consumed it
	}
	select {
	case err := <-got:
		t.Fatalf("a's Read returned %v while b -> a is cut", err)
	case <-time.After(quiet):
	}
	// a's requests still reach b.
	sent := readAsync(peer)
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("a -> b during the b -> a cut: %v", err)
	}
	n.setCut(map[link]bool{})
	if err := <-got; err == nil {
		t.Fatal("a's Read after the heal: got data, want an error (the stream has a hole)")
	}
}

// TestFaultConnUntouchedResumes checks that a connection that carried
// nothing during a partition is not closed by the heal.
func TestFaultConnUntouchedResumes(t *testing.T) {
	n := newTestNetwork()
	conn, peer := dialPair(t, n, make(chan struct{}))
	n.setCut(map[link]bool{{"a", "b"}: true, {"b", "a"}: true})
	n.setCut(map[link]bool{})
	got := readAsync(peer)
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatalf("Write after heal: %v", err)
	}
	if err := <-got; err != nil {
		t.Fatalf("b read: %v", err)
	}
}

func TestHookWaitsForHeal(t *testing.T) {
	n := newTestNetwork()
	n.addCut(link{"a", "b"})
	dialed := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		c, err := n.hook("a", make(chan struct{}))(t.Context(), "addr-b", func(context.Context) (net.Conn, error) {
			dialed <- struct{}{}
			c, p := net.Pipe()
			p.Close()
			return c, nil
		})
		if c != nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case <-dialed:
		t.Fatal("dialled across a cut link")
	case <-time.After(quiet):
	}
	n.setCut(map[link]bool{})
	if err := <-done; err != nil {
		t.Fatalf("dial after heal: %v", err)
	}
}

func TestHookOneWayLetsTheOtherSideDial(t *testing.T) {
	n := newTestNetwork()
	n.addCut(link{"b", "a"}) // b's messages to a are lost
	// a -> b flows, so a can dial b.
	conn, peer := dialPair(t, n, make(chan struct{}))
	sent := readAsync(peer)
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("a -> b: %v", err)
	}
}

func TestHookGivesUp(t *testing.T) {
	n := newTestNetwork()
	n.addCut(link{"a", "b"})
	never := func(context.Context) (net.Conn, error) { return nil, errors.New("dialled across a cut") }

	ctx, cancel := context.WithTimeout(t.Context(), quiet)
	defer cancel()
	if _, err := n.hook("a", make(chan struct{}))(ctx, "addr-b", never); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("dial until the deadline: got %v, want DeadlineExceeded", err)
	}

	stopped := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := n.hook("a", stopped)(t.Context(), "addr-b", never)
		done <- err
	}()
	n.stop("a", stopped)
	if err := <-done; !errors.Is(err, errNodeStopped) {
		t.Errorf("dial of a stopped node: got %v, want errNodeStopped", err)
	}
}

// TestStopClosesConnections checks that stopping a node closes every
// connection it has, in both directions, as a crash would.
func TestStopClosesConnections(t *testing.T) {
	n := newTestNetwork()
	stoppedA := make(chan struct{})
	_, fromA := dialPair(t, n, stoppedA)
	var toA net.Conn
	c, err := n.hook("b", make(chan struct{}))(t.Context(), "addr-a", func(context.Context) (net.Conn, error) {
		c, p := net.Pipe()
		toA = p
		return c, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer toA.Close()

	n.stop("a", stoppedA)
	for name, peer := range map[string]net.Conn{"a's connection to b": fromA, "b's connection to a": toA} {
		if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("%s after stop: got %v, want EOF", name, err)
		}
	}
	if len(n.conns) != 0 {
		t.Errorf("%d connections still tracked after stop", len(n.conns))
	}
}

func TestHookUnknownAddressIsNotFaulted(t *testing.T) {
	n := newTestNetwork()
	n.addCut(link{"a", "b"})
	c, err := n.hook("a", make(chan struct{}))(t.Context(), "elsewhere:1", func(context.Context) (net.Conn, error) {
		c, p := net.Pipe()
		p.Close()
		return c, nil
	})
	if err != nil {
		t.Fatalf("dial to a non-member: %v", err)
	}
	defer c.Close()
	if _, ok := c.(*faultConn); ok {
		t.Fatal("a connection to a non-member was wrapped")
	}
}

func TestCheckOneLeaderPerTerm(t *testing.T) {
	tests := []struct {
		name    string
		events  []LeaderEvent
		wantErr bool
	}{
		{"ok/none", nil, false},
		{"ok/one-leader-per-term", []LeaderEvent{
			{Observer: "n1", Term: 2, LeaderID: "n1"}, {Observer: "n2", Term: 2, LeaderID: "n1"},
			{Observer: "n2", Term: 3, LeaderID: "n2"}, {Observer: "n1", Term: 3, LeaderID: "n2"},
		}, false},
		{"fail/two-self-claims", []LeaderEvent{{Observer: "n1", Term: 4, LeaderID: "n1"}, {Observer: "n2", Term: 4, LeaderID: "n2"}}, true},
		{"ok/follower-reports-old-leader-under-new-term", []LeaderEvent{{Observer: "n1", Term: 5, LeaderID: "n1"}, {Observer: "n3", Term: 5, LeaderID: "n2"}}, false},
		{"fail/two-self-claims-among-others", []LeaderEvent{{Observer: "n3", Term: 6, LeaderID: "n1"}, {Observer: "n1", Term: 6, LeaderID: "n1"}, {Observer: "n2", Term: 6, LeaderID: "n2"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkOneLeaderPerTerm(tt.events); (err != nil) != tt.wantErr {
				t.Fatalf("got %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}
