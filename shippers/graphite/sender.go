package graphite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// sender writes lines to one place.
type sender interface {
	// send writes every buffer; on error, some may not have arrived.
	send(bufs net.Buffers) error
	// interrupt makes a send in progress, and every later one, fail at
	// once: the flush deadline has passed.
	interrupt()
	close()
}

// tcpSender keeps one connection to a carbon line receiver.
type tcpSender struct {
	addr    string
	timeout time.Duration
	log     *slog.Logger

	ctx    context.Context // ended by interrupt
	cancel context.CancelFunc
	once   sync.Once

	mu   sync.Mutex // conn, for interrupt
	conn *net.TCPConn
	// prev is the last write that succeeded. When its connection turns
	// out closed (carbon restarting), it may have been lost in carbon's
	// unread buffer, so it goes again first on the new connection: a
	// repeated point is harmless, carbon keeps one value per timestamp.
	prev net.Buffers
}

func (t *tcpSender) init() {
	t.once.Do(func() { t.ctx, t.cancel = context.WithCancel(context.Background()) })
}

func (t *tcpSender) send(bufs net.Buffers) error {
	t.init()
	t.mu.Lock()
	c := t.conn
	t.mu.Unlock()
	if c != nil {
		if err := peerGone(c); err != nil {
			t.log.Debug("graphite: connection lost, reconnecting", "server", t.addr, "err", err)
			t.drop(c)
			c = nil
		}
	}
	resend := c == nil && t.prev != nil
	if c == nil {
		dctx, cancel := context.WithTimeout(t.ctx, t.timeout)
		nc, err := (&net.Dialer{}).DialContext(dctx, "tcp", t.addr)
		cancel()
		if err != nil {
			return fmt.Errorf("graphite: %w", err)
		}
		c = nc.(*net.TCPConn)
		t.mu.Lock()
		if t.ctx.Err() != nil {
			t.mu.Unlock()
			c.Close()
			return fmt.Errorf("graphite: %s: %w", t.addr, t.ctx.Err())
		}
		t.conn = c
		t.mu.Unlock()
	}
	// A write that does not finish in time (a server that stopped
	// reading) gives up, and the connection with it.
	c.SetWriteDeadline(time.Now().Add(t.timeout))
	sent := slices.Clone(bufs) // WriteTo consumes bufs
	if resend {
		bufs = append(slices.Clone(t.prev), bufs...)
	}
	if _, err := bufs.WriteTo(c); err != nil {
		t.drop(c)
		return fmt.Errorf("graphite: %w", err)
	}
	t.prev = sent
	return nil
}

func (t *tcpSender) drop(c *net.TCPConn) {
	t.mu.Lock()
	if t.conn == c {
		t.conn = nil
	}
	t.mu.Unlock()
	c.Close()
}

func (t *tcpSender) interrupt() {
	t.init()
	t.cancel()
	t.mu.Lock()
	if t.conn != nil {
		t.conn.SetDeadline(time.Now())
	}
	t.mu.Unlock()
}

func (t *tcpSender) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
}

// errPeerClosed: the server closed the connection.
var errPeerClosed = errors.New("closed by the server")

// peerGone reports whether the server has closed or reset the connection.
// It is asked before each write because a write into a connection whose
// peer has closed it (carbon restarting) still succeeds locally, and its
// lines are lost when the reset comes back. Carbon never writes to a
// plaintext client, so whatever a server does send is read and discarded;
// one that floods us is treated as broken.
func peerGone(c *net.TCPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var gone error
	err = rc.Read(func(fd uintptr) bool {
		var buf [4096]byte
		for drained := 0; drained < 64<<10; {
			// The descriptor is non-blocking (Go's poller set it).
			n, err := unix.Read(int(fd), buf[:])
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return true // open, nothing to read
			case err != nil:
				gone = err
				return true
			case n == 0:
				gone = errPeerClosed
				return true
			}
			drained += n
		}
		gone = errors.New("server sends a flood of unexpected data")
		return true
	})
	if err != nil {
		return err
	}
	return gone
}

// udpSender writes datagrams: carbon's UDP listener takes whole lines per
// datagram; a lost datagram is not noticed.
type udpSender struct {
	addr    string
	timeout time.Duration
	mu      sync.Mutex
	conn    net.Conn
	stopped bool
}

// maxDatagram keeps datagrams under a typical 1500-byte MTU.
const maxDatagram = 1400

func (u *udpSender) send(bufs net.Buffers) error {
	u.mu.Lock()
	if u.stopped {
		u.mu.Unlock()
		return errors.New("graphite: interrupted")
	}
	if u.conn == nil {
		c, err := net.DialTimeout("udp", u.addr, u.timeout)
		if err != nil {
			u.mu.Unlock()
			return fmt.Errorf("graphite: %w", err)
		}
		u.conn = c
	}
	c := u.conn
	u.mu.Unlock()
	for _, b := range bufs {
		for len(b) > 0 {
			n := len(b)
			if n > maxDatagram {
				// Cut after the last whole line that fits.
				if i := bytes.LastIndexByte(b[:maxDatagram], '\n'); i >= 0 {
					n = i + 1
				} else if i := bytes.IndexByte(b, '\n'); i >= 0 {
					n = i + 1 // one line longer than a datagram: send it alone
				}
			}
			c.SetWriteDeadline(time.Now().Add(u.timeout))
			if _, err := c.Write(b[:n]); err != nil {
				return fmt.Errorf("graphite: %w", err)
			}
			b = b[n:]
		}
	}
	return nil
}

func (u *udpSender) interrupt() {
	u.mu.Lock()
	u.stopped = true
	u.mu.Unlock()
}

func (u *udpSender) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.conn != nil {
		u.conn.Close()
		u.conn = nil
	}
}

// failoverSender sends through the first server that works, starting with
// the one that worked last.
type failoverSender struct {
	servers []sender
	current int
}

func (f *failoverSender) send(bufs net.Buffers) error {
	var errs []error
	for i := range f.servers {
		k := (f.current + i) % len(f.servers)
		// WriteTo consumes its buffers: each try gets its own list.
		if err := f.servers[k].send(slices.Clone(bufs)); err != nil {
			errs = append(errs, err)
			continue
		}
		f.current = k
		return nil
	}
	return errors.Join(errs...)
}

func (f *failoverSender) interrupt() {
	for _, s := range f.servers {
		s.interrupt()
	}
}

func (f *failoverSender) close() {
	for _, s := range f.servers {
		s.close()
	}
}

// writerSender prints the lines, one write per line so that they do not
// interleave with the programs' output on the same stream.
type writerSender struct {
	w io.Writer
}

func (w *writerSender) send(bufs net.Buffers) error {
	for _, b := range bufs {
		for len(b) > 0 {
			n := bytes.IndexByte(b, '\n') + 1
			if n == 0 {
				n = len(b)
			}
			if _, err := w.w.Write(b[:n]); err != nil {
				return fmt.Errorf("graphite: print: %w", err)
			}
			b = b[n:]
		}
	}
	return nil
}

func (w *writerSender) interrupt() {}
func (w *writerSender) close()     {}
