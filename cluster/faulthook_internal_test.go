package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// wrapper is what a fault-injecting DialHook returns: a connection around
// another, exposing it through NetConn.
type wrapper struct {
	net.Conn
	inner net.Conn
}

func (w wrapper) NetConn() net.Conn { return w.inner }

// pipeTLS returns an unconnected *tls.Conn over one end of a pipe (no
// handshake is ever run) and the raw end beneath it.
func pipeTLS(t *testing.T) (*tls.Conn, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return tls.Client(a, &tls.Config{}), a
}

// closeTracker records whether Close was called.
type closeTracker struct {
	net.Conn
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func TestDialThroughHook(t *testing.T) {
	tests := []struct {
		name    string
		hook    func(dialed *tls.Conn, raw net.Conn) DialHook
		wantErr string // empty: the dial succeeds
	}{
		{
			name: "ok/returns-the-tls-conn",
			hook: func(*tls.Conn, net.Conn) DialHook {
				return func(ctx context.Context, _ string, dial DialFunc) (net.Conn, error) { return dial(ctx) }
			},
		},
		{
			name: "ok/wrapped-twice",
			hook: func(*tls.Conn, net.Conn) DialHook {
				return func(ctx context.Context, _ string, dial DialFunc) (net.Conn, error) {
					c, err := dial(ctx)
					if err != nil {
						return nil, err
					}
					w := wrapper{Conn: c, inner: c}
					return wrapper{Conn: w, inner: w}, nil
				}
			},
		},
		{
			name: "fail/hook-error",
			hook: func(*tls.Conn, net.Conn) DialHook {
				return func(context.Context, string, DialFunc) (net.Conn, error) { return nil, errors.New("partitioned") }
			},
			wantErr: "partitioned",
		},
		{
			name: "fail/nil-conn-nil-error",
			hook: func(*tls.Conn, net.Conn) DialHook {
				return func(context.Context, string, DialFunc) (net.Conn, error) { return nil, nil }
			},
			wantErr: "neither a connection nor an error",
		},
		{
			name: "fail/own-conn-without-dial",
			hook: func(*tls.Conn, net.Conn) DialHook {
				return func(context.Context, string, DialFunc) (net.Conn, error) {
					a, _ := net.Pipe()
					return a, nil
				}
			},
			wantErr: "does not wrap",
		},
		{
			name: "fail/wrapper-bypasses-tls",
			hook: func(_ *tls.Conn, raw net.Conn) DialHook {
				return func(ctx context.Context, _ string, dial DialFunc) (net.Conn, error) {
					c, err := dial(ctx)
					if err != nil {
						return nil, err
					}
					// Claims to wrap the plaintext connection under TLS.
					return wrapper{Conn: c, inner: raw}, nil
				}
			},
			wantErr: "does not wrap",
		},
		{
			name: "fail/unwrap-chain-leads-below-tls",
			hook: func(_ *tls.Conn, raw net.Conn) DialHook {
				return func(ctx context.Context, _ string, dial DialFunc) (net.Conn, error) {
					if _, err := dial(ctx); err != nil {
						return nil, err
					}
					return wrapper{Conn: raw, inner: raw}, nil
				}
			},
			wantErr: "does not wrap",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dialed, raw := pipeTLS(t)
			got, err := dialThroughHook(t.Context(), tt.hook(dialed, raw), "peer:1", func(context.Context) (net.Conn, error) {
				return dialed, nil
			})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want a connection", err)
				}
				if inner, ok := wrapsOneOf(got, []net.Conn{dialed}); !ok || inner != dialed {
					t.Fatalf("got %T that does not wrap the dialled connection", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got (%v, %v), want error containing %q", got, err, tt.wantErr)
			}
		})
	}
}

// TestDialThroughHookClosesUnreturned checks that a connection the hook
// dialled but did not return is closed, and so is a refused one.
func TestDialThroughHookClosesUnreturned(t *testing.T) {
	first, second := &closeTracker{Conn: nil}, &closeTracker{Conn: nil}
	dials := []net.Conn{first, second}
	dial := func(context.Context) (net.Conn, error) {
		c := dials[0]
		dials = dials[1:]
		return c, nil
	}
	hook := func(ctx context.Context, _ string, dial DialFunc) (net.Conn, error) {
		if _, err := dial(ctx); err != nil {
			return nil, err
		}
		return dial(ctx)
	}
	c, err := dialThroughHook(t.Context(), hook, "peer:1", dial)
	if err != nil {
		t.Fatalf("dialThroughHook: %v", err)
	}
	if c != second || !first.closed || second.closed {
		t.Fatalf("got conn %p (first closed %v, second closed %v), want the second returned and the first closed", c, first.closed, second.closed)
	}

	refused := &closeTracker{}
	_, err = dialThroughHook(t.Context(), func(ctx context.Context, _ string, dial DialFunc) (net.Conn, error) {
		if _, err := dial(ctx); err != nil {
			return nil, err
		}
		a, _ := net.Pipe()
		return a, nil
	}, "peer:1", func(context.Context) (net.Conn, error) { return refused, nil })
	if err == nil {
		t.Fatal("got no error for a connection that does not wrap the dialled one")
	}
	if !refused.closed {
		t.Fatal("the dialled connection was left open after the hook's connection was refused")
	}
}

// heldFSM blocks Apply until release is closed.
type heldFSM struct{ release chan struct{} }

func (f *heldFSM) Apply(*raft.Log) any                 { <-f.release; return nil }
func (f *heldFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("no snapshots") }
func (f *heldFSM) Restore(io.ReadCloser) error         { return nil }

// TestBindShutdown checks, against the raft version in go.mod, that an
// apply future can be bound to a channel and then resolves with
// ErrRaftShutdown when the channel closes, even though raft has not
// answered it. If a raft upgrade moves the field, this fails.
func TestBindShutdown(t *testing.T) {
	_, trans := raft.NewInmemTransport("")
	store := raft.NewInmemStore()
	snaps := raft.NewInmemSnapshotStore()
	conf := raft.DefaultConfig()
	conf.LocalID = "a"
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.Logger = newHCLog(nil, "raft")
	if err := raft.BootstrapCluster(conf, store, store, snaps, trans, raft.Configuration{
		Servers: []raft.Server{{ID: "a", Address: trans.LocalAddr()}},
	}); err != nil {
		t.Fatal(err)
	}
	fsm := &heldFSM{release: make(chan struct{})}
	r, err := raft.NewRaft(conf, fsm, store, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := r.Shutdown().Error(); err != nil {
			t.Error(err)
		}
	}()
	defer close(fsm.release)
	select {
	case <-r.LeaderCh():
	case <-time.After(10 * time.Second):
		t.Fatal("no leader")
	}

	f := r.Apply([]byte("held"), 0) // its FSM is held: raft cannot answer it
	ch := make(chan struct{})
	if !bindShutdown(f, ch) {
		t.Fatalf("bindShutdown(%T) = false: raft's future no longer has a settable ShutdownCh", f)
	}
	close(ch)
	if err := f.Error(); !errors.Is(err, raft.ErrRaftShutdown) {
		t.Fatalf("Error after the bound channel closed: got %v, want ErrRaftShutdown", err)
	}
}

func TestBindShutdownIgnoresOtherFutures(t *testing.T) {
	if bindShutdown(nil, make(chan struct{})) {
		t.Error("bindShutdown(nil) = true, want false")
	}
	type valueFuture struct{ raft.Future }
	if bindShutdown(valueFuture{}, make(chan struct{})) {
		t.Error("bindShutdown(value without ShutdownCh) = true, want false")
	}
}
