package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/stewardhq/steward/collectors/metricfmt"
)

// ListenConfig says where a line listener listens and what it accepts.
type ListenConfig struct {
	// Name prefixes errors and log lines ("statsd").
	Name string
	// Addr is host:port for both TCP and UDP.
	Addr     string
	TCP, UDP bool
	// MaxConns bounds the TCP connections open at once; more are closed
	// at once and counted (too_many_connections).
	MaxConns int
	// MaxLineBytes: longer lines are dropped (too_long).
	MaxLineBytes int
}

// Defaults of a listener.
const (
	DefaultMaxConns = 64
	// udpBuffer is the socket's receive buffer asked for: room for bursts
	// between two reads (the kernel caps it at net.core.rmem_max).
	udpBuffer = 4 << 20
)

// Listener reads lines from TCP connections and UDP datagrams and hands
// each to a handler, which may be called from several goroutines at once.
type Listener struct {
	cfg    ListenConfig
	stats  *Stats
	handle func(line []byte)
	log    *slog.Logger

	tcp   net.Listener
	udp   net.PacketConn
	conns atomic.Int64

	kernelDrops uint64 // last SK_MEMINFO_DROPS seen, by PollDrops

	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Listen binds cfg.Addr and starts reading. handle gets each line without
// its newline; the slice is valid only during the call.
func Listen(cfg ListenConfig, stats *Stats, handle func(line []byte), log *slog.Logger) (*Listener, error) {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxLineBytes <= 0 {
		cfg.MaxLineBytes = metricfmt.DefaultMaxLineBytes
	}
	l := &Listener{cfg: cfg, stats: stats, handle: handle, log: log, open: map[net.Conn]struct{}{}}
	if cfg.TCP {
		tl, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Name, err)
		}
		l.tcp = tl
	}
	if cfg.UDP {
		addr := cfg.Addr
		if l.tcp != nil {
			addr = l.tcp.Addr().String() // the same port when it was :0
		}
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			if l.tcp != nil {
				l.tcp.Close()
			}
			return nil, fmt.Errorf("%s: %w", cfg.Name, err)
		}
		if uc, ok := pc.(*net.UDPConn); ok {
			_ = uc.SetReadBuffer(udpBuffer)
		}
		l.udp = pc
	}
	if l.tcp != nil {
		l.wg.Add(1)
		go l.acceptLoop()
	}
	if l.udp != nil {
		l.wg.Add(1)
		go l.udpLoop()
	}
	return l, nil
}

// TCPAddr and UDPAddr are where the listener is bound ("" when not).
func (l *Listener) TCPAddr() string {
	if l.tcp == nil {
		return ""
	}
	return l.tcp.Addr().String()
}

func (l *Listener) UDPAddr() string {
	if l.udp == nil {
		return ""
	}
	return l.udp.LocalAddr().String()
}

// Close stops listening, closes the connections and waits for the readers.
func (l *Listener) Close() {
	l.mu.Lock()
	l.closed = true
	for c := range l.open {
		c.Close()
	}
	l.mu.Unlock()
	if l.tcp != nil {
		l.tcp.Close()
	}
	if l.udp != nil {
		l.udp.Close()
	}
	l.wg.Wait()
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.log.Warn(l.cfg.Name+": accept", "err", err)
			continue
		}
		if l.conns.Add(1) > int64(l.cfg.MaxConns) {
			l.conns.Add(-1)
			c.Close()
			l.stats.Drop(ReasonTooManyConns, 1)
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			l.conns.Add(-1)
			return
		}
		l.open[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.serve(c)
	}
}

func (l *Listener) serve(c net.Conn) {
	defer l.wg.Done()
	defer func() {
		l.mu.Lock()
		delete(l.open, c)
		l.mu.Unlock()
		c.Close()
		l.conns.Add(-1)
	}()
	br := bufio.NewReaderSize(c, min(l.cfg.MaxLineBytes+1, 64<<10))
	var long []byte // a line longer than the reader's buffer, up to the limit
	tooLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if !tooLong && len(long)+len(chunk) <= l.cfg.MaxLineBytes {
				long = append(long, chunk...)
			} else {
				tooLong, long = true, nil
			}
			continue
		}
		if len(chunk) > 0 {
			line := chunk
			if long != nil {
				line = append(long, chunk...)
			}
			l.line(line, tooLong)
			long, tooLong = nil, false
		}
		if err != nil {
			return
		}
	}
}

func (l *Listener) udpLoop() {
	defer l.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, _, err := l.udp.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		data := buf[:n]
		for len(data) > 0 {
			line := data
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line, data = data[:i+1], data[i+1:]
			} else {
				data = nil
			}
			l.line(line, false)
		}
	}
}

// line strips the line ending, applies the length limit and hands the
// line on.
func (l *Listener) line(line []byte, tooLong bool) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 && !tooLong {
		return
	}
	l.stats.Received(1)
	if tooLong || len(line) > l.cfg.MaxLineBytes {
		l.stats.Drop(metricfmt.ReasonTooLong, 1)
		return
	}
	l.handle(line)
}

// ReasonSocketBuffer tags datagrams the kernel dropped because the UDP
// socket's buffer was full: steward did not read them in time.
const ReasonSocketBuffer = "socket_buffer"

// soMeminfo is SO_MEMINFO (asm-generic/socket.h; x/sys/unix lacks it):
// the socket's memory figures, SK_MEMINFO_DROPS among them.
const soMeminfo = 55

// PollDrops counts the datagrams the kernel dropped on the UDP socket since
// the last call (reason socket_buffer): those never reach steward, so
// only the socket can tell. Call it from one goroutine (the collection
// round).
func (l *Listener) PollDrops() {
	if l.udp == nil {
		return
	}
	sc, ok := l.udp.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var info [unix.SK_MEMINFO_VARS]uint32
	var errno unix.Errno
	if rc.Control(func(fd uintptr) {
		size := uint32(unsafe.Sizeof(info))
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, soMeminfo,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	}) != nil || errno != 0 {
		return
	}
	n := uint64(info[unix.SK_MEMINFO_DROPS])
	if n > l.kernelDrops {
		l.stats.Drop(ReasonSocketBuffer, int(n-l.kernelDrops))
	}
	l.kernelDrops = n
}
