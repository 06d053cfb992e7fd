package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// raftALPN is the TLS application protocol both ends of a raft connection
// must negotiate, so that a connection meant for another service on a
// node is never read as raft traffic.
const raftALPN = "writ-raft/1"

// tlsStreamLayer is a raft.StreamLayer over TCP with mutual TLS. Inbound
// connections are handed to raft only after a completed handshake in
// which the peer presented a certificate that ServerTLS verified; a
// plaintext or unauthorised peer never reaches raft.
type tlsStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	serverTLS *tls.Config
	clientTLS *tls.Config
	log       *slog.Logger

	// ctx is cancelled by Close; it bounds dials and handshakes. raft's
	// StreamLayer interface carries no context, so the layer owns one.
	ctx    context.Context
	cancel context.CancelFunc

	accepted chan net.Conn
	slots    chan struct{} // one token per handshake in progress

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // inbound connections not yet closed
	closed bool
	wg     sync.WaitGroup

	// dialHook is Config.DialHook (nil in production). It is set before
	// raft starts and never changed.
	dialHook DialHook
}

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

// newTLSStreamLayer listens on bind. advertise is the address peers dial;
// empty means the bound address, which must then not be unspecified.
func newTLSStreamLayer(bind, advertise string, serverTLS, clientTLS *tls.Config, log *slog.Logger) (*tlsStreamLayer, error) {
	var lc net.ListenConfig
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := lc.Listen(ctx, "tcp", bind)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cluster: listen on %s: %w", bind, err)
	}
	var adv net.Addr = ln.Addr()
	if advertise != "" {
		adv = advertisedAddr(advertise)
	} else if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || tcp.IP.IsUnspecified() {
		_ = ln.Close()
		cancel()
		return nil, fmt.Errorf("%w: bind address %s is not advertisable: set AdvertiseAddr", ErrInvalidConfig, ln.Addr())
	}
	s := &tlsStreamLayer{
		ln:        ln,
		advertise: adv,
		serverTLS: hardenTLS(serverTLS),
		clientTLS: hardenTLS(clientTLS),
		log:       log,
		ctx:       ctx,
		cancel:    cancel,
		accepted:  make(chan net.Conn),
		slots:     make(chan struct{}, maxPendingHandshakes),
		conns:     make(map[net.Conn]struct{}),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// hardenTLS returns a copy of c requiring TLS 1.3 and the raft ALPN.
func hardenTLS(c *tls.Config) *tls.Config {
	c = c.Clone()
	if c.MinVersion < tls.VersionTLS13 {
		c.MinVersion = tls.VersionTLS13
	}
	c.NextProtos = []string{raftALPN}
	return c
}

type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

func (s *tlsStreamLayer) acceptLoop() {
	defer s.wg.Done()
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			// Typically out of file descriptors: back off and retry.
			s.log.Error("raft transport accept failed", "error", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(acceptRetryDelay):
				continue
			}
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.log.Warn("raft transport dropped connection: too many handshakes in progress", "remote", raw.RemoteAddr().String())
			_ = raw.Close()
			continue
		}
		conn := tls.Server(raw, s.serverTLS)
		if !s.track(conn) {
			_ = conn.Close()
			<-s.slots
			return
		}
		s.wg.Add(1)
		go s.handshake(conn)
	}
}

// handshake completes the server side of the TLS handshake and hands the
// connection to Accept, or closes it.
func (s *tlsStreamLayer) handshake(conn *tls.Conn) {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
	err := conn.HandshakeContext(ctx)
	cancel()
	<-s.slots
	if err == nil && conn.ConnectionState().NegotiatedProtocol != raftALPN {
		err = fmt.Errorf("peer did not negotiate %s", raftALPN)
	}
	if err != nil {
		s.log.Warn("raft transport refused connection", "remote", conn.RemoteAddr().String(), "error", err)
		s.closeConn(conn)
		return
	}
	select {
	case s.accepted <- &trackedConn{Conn: conn, s: s}:
	case <-s.ctx.Done():
		s.closeConn(conn)
	}
}

func (s *tlsStreamLayer) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *tlsStreamLayer) closeConn(c net.Conn) error {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	return c.Close()
}

// trackedConn removes itself from the layer's set when raft closes it.
type trackedConn struct {
	net.Conn
	s    *tlsStreamLayer
	once sync.Once
	err  error
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.err = c.s.closeConn(c.Conn) })
	return c.err
}

// Accept returns the next authenticated inbound connection.
func (s *tlsStreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.accepted:
		return c, nil
	case <-s.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops listening, closes every inbound connection, and waits for
// the layer's goroutines. Outbound connections belong to raft's pool.
func (s *tlsStreamLayer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()

	s.cancel()
	err := s.ln.Close()
	for c := range conns {
		_ = c.Close()
	}
	s.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("cluster: close listener: %w", err)
	}
	return nil
}

// Addr returns the advertised address.
func (s *tlsStreamLayer) Addr() net.Addr { return s.advertise }

// Dial connects to a peer and completes the TLS handshake (the peer's
// certificate is verified by ClientTLS) within timeout. With a DialHook
// the hook decides whether and when that happens (see DialHook).
func (s *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	if s.dialHook != nil {
		return dialThroughHook(ctx, s.dialHook, string(address), func(ctx context.Context) (net.Conn, error) {
			return s.dialTLS(ctx, string(address))
		})
	}
	return s.dialTLS(ctx, string(address))
}

func (s *tlsStreamLayer) dialTLS(ctx context.Context, address string) (net.Conn, error) {
	d := tls.Dialer{Config: s.clientTLS}
	c, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("cluster: dial %s: %w", address, err)
	}
	if p := c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != raftALPN {
		_ = c.Close()
		return nil, fmt.Errorf("cluster: dial %s: peer negotiated %q, want %q", address, p, raftALPN)
	}
	return c, nil
}
