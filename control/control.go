// Package control is the local control channel of a running steward: a Unix
// socket (mode 0600, in a directory only steward controls) that takes JSON
// requests by command name, one per line, and answers each with one JSON
// line, or a stream of lines for a streaming command (`steward logs -f`).
// cmd/ registers the handlers (health, status, start, stop, restart,
// signal, logs, reload), so this package knows nothing of them; Call and
// Stream are the client side.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Request is one command to the running steward.
type Request struct {
	Command string          `json:"command"`
	Args    json.RawMessage `json:"args,omitempty"`
}

// Response answers one request. A stream command answers with any number
// of responses marked More, then one without.
type Response struct {
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	More   bool            `json:"more,omitempty"`
}

// HandlerFunc answers a command. Its result is encoded as JSON; an error is
// sent back as the response's error.
type HandlerFunc func(ctx context.Context, args json.RawMessage) (any, error)

// StreamFunc answers a command with a stream of results (`logs -f`): it
// calls send for each, and returns when done, when send fails or when ctx
// ends (the client went away, or steward is stopping).
type StreamFunc func(ctx context.Context, args json.RawMessage, send func(any) error) error

// Limits of the server: the largest request line, how many clients are
// served at once, and how long a connection may sit idle.
const (
	maxRequestBytes = 1 << 20
	maxConnections  = 16
	idleTimeout     = time.Minute
)

// Server serves the control socket.
type Server struct {
	log *slog.Logger

	mu       sync.Mutex
	handlers map[string]HandlerFunc
	streams  map[string]StreamFunc
	ln       *net.UnixListener
	path     string
	conns    map[net.Conn]bool // true while it carries a stream

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	slots  chan struct{}
}

// NewServer returns a server with no handlers.
func NewServer(log *slog.Logger) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{log: log, handlers: map[string]HandlerFunc{}, streams: map[string]StreamFunc{}, conns: map[net.Conn]bool{},
		ctx: ctx, cancel: cancel, slots: make(chan struct{}, maxConnections)}
}

// HandleStream registers a stream command. Register before Listen.
func (s *Server) HandleStream(name string, h StreamFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams[name] = h
}

// Handle registers h for command name. Register before Listen.
func (s *Server) Handle(name string, h HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[name] = h
}

// Commands lists the registered command names.
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.handlers)+len(s.streams))
	for n := range s.handlers {
		names = append(names, n)
	}
	for n := range s.streams {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Path is where the server listens, once Listen succeeded.
func (s *Server) Path() string { return s.path }

// Listen creates the socket at path, readable and writable by its owner
// only, and serves it. A socket left behind by a steward that is gone (a
// restarted container keeps its /run) is replaced; one that answers is
// not.
func (s *Server) Listen(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	// The directory may have been there before us: in a shared /tmp,
	// another user can make /tmp/steward-<uid> first, to replace our socket
	// with one that lies.
	if err := CheckDir(dir); err != nil {
		return err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("control: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("control: %s: %w", path, ErrInUse)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("control: removing stale socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	// Close the window between bind and chmod as far as a portable program
	// can: a directory we created is 0700 already.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	s.ln, s.path = ln, path
	s.wg.Add(1)
	go s.accept()
	return nil
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Warn("control socket: accept", "err", err)
				if errors.Is(err, net.ErrClosed) {
					return
				}
				time.Sleep(100 * time.Millisecond) // e.g. out of descriptors
				continue
			}
			return
		}
		select {
		case s.slots <- struct{}{}:
		default:
			writeResponse(conn, Response{Error: "too many control connections"})
			conn.Close()
			continue
		}
		s.mu.Lock()
		s.conns[conn] = false
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			s.serve(conn)
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
			conn.Close()
		}()
	}
}

func (s *Server) serve(conn net.Conn) {
	r := bufio.NewReaderSize(conn, 4096)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(idleTimeout))
		line, err := readLine(r)
		if err != nil {
			if errors.Is(err, errTooLong) {
				writeResponse(conn, Response{Error: err.Error()})
			}
			return
		}
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		if req, h := s.stream(line); h != nil {
			// A stream owns the connection until it ends.
			s.mu.Lock()
			s.conns[conn] = true
			s.mu.Unlock()
			s.serveStream(conn, r, req, h)
			return
		}
		if err := writeResponse(conn, s.dispatch(line)); err != nil {
			return
		}
	}
}

// stream returns the stream handler a request names, if any.
func (s *Server) stream(line []byte) (Request, StreamFunc) {
	var req Request
	if json.Unmarshal(line, &req) != nil {
		return req, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return req, s.streams[req.Command]
}

// serveStream runs a stream handler; it ends when the client closes its
// side, which a reader notices while the handler waits for something to
// send.
func (s *Server) serveStream(conn net.Conn, r *bufio.Reader, req Request, h StreamFunc) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	_ = conn.SetReadDeadline(time.Time{})
	go func() {
		_, _ = r.ReadByte() // EOF or an error: the client is gone
		cancel()
	}()
	send := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return writeResponse(conn, Response{OK: true, More: true, Result: b})
	}
	err := h(ctx, req.Args, send)
	switch {
	case err != nil && ctx.Err() == nil:
		writeResponse(conn, Response{Error: err.Error()})
	case ctx.Err() == nil || s.ctx.Err() != nil:
		// Done, or steward is stopping: the stream ends normally, so
		// `steward logs -f` ends quietly with steward.
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		writeResponse(conn, Response{OK: true})
	}
}

var errTooLong = fmt.Errorf("control: request longer than %d bytes", maxRequestBytes)

func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxRequestBytes {
			return nil, errTooLong
		}
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, err
		}
	}
}

func (s *Server) dispatch(line []byte) (resp Response) {
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Response{Error: "bad request: " + err.Error()}
	}
	s.mu.Lock()
	h, ok := s.handlers[req.Command]
	s.mu.Unlock()
	if !ok {
		return Response{Error: fmt.Sprintf("unknown command %q (known: %s)", req.Command, strings.Join(s.Commands(), ", "))}
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("control command panicked", "command", req.Command, "panic", p)
			resp = Response{Error: fmt.Sprintf("command %s failed inside steward", req.Command)}
		}
	}()
	result, err := h(s.ctx, req.Args)
	if err != nil {
		return Response{Error: err.Error()}
	}
	b, err := json.Marshal(result)
	if err != nil {
		return Response{Error: "encoding the result: " + err.Error()}
	}
	return Response{OK: true, Result: b}
}

func writeResponse(conn net.Conn, resp Response) error {
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Write(append(b, '\n'))
	return err
}

// Close stops listening, removes the socket and ends the connections.
func (s *Server) Close(ctx context.Context) error {
	s.cancel()
	if s.ln != nil {
		s.ln.Close()
	}
	// Streams end themselves on the cancel, with a last answer that tells
	// the client the stream is over; the other connections close now.
	if s.closeConns(false) == 0 {
		// No stream to end: steward exits next, and waiting for the
		// accept loop to notice the closed listener only delayed it.
		return nil
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.closeConns(true)
		return fmt.Errorf("control: closing: %w", ctx.Err())
	}
}

// closeConns closes the connections, streams too when all is set. It
// returns how many streams it left open.
func (s *Server) closeConns(all bool) (streams int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, streaming := range s.conns {
		if all || !streaming {
			c.Close()
		} else {
			streams++
		}
	}
	return streams
}

// dial connects to the steward at path and sends one request. The
// connection closes when ctx ends.
func dial(ctx context.Context, path, command string, args any) (net.Conn, func(), error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, nil, fmt.Errorf("control: cannot reach steward at %s: %w", path, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	done := func() { stop(); conn.Close() }
	req := Request{Command: command}
	if args != nil {
		if req.Args, err = json.Marshal(args); err != nil {
			done()
			return nil, nil, fmt.Errorf("control: %w", err)
		}
	}
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		done()
		return nil, nil, fmt.Errorf("control: sending %s: %w", command, err)
	}
	return conn, done, nil
}

// Call sends one command to the steward listening at path and decodes its
// result into result (which may be nil).
func Call(ctx context.Context, path, command string, args, result any) error {
	conn, done, err := dial(ctx, path, command, args)
	if err != nil {
		return err
	}
	defer done()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	line, err := readLine(bufio.NewReader(conn))
	if err != nil {
		return fmt.Errorf("control: reading the answer to %s: %w", command, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("control: bad answer to %s: %w", command, err)
	}
	if !resp.OK {
		return &RemoteError{Command: command, Message: resp.Error}
	}
	if result != nil && len(resp.Result) > 0 {
		if err := json.Unmarshal(resp.Result, result); err != nil {
			return fmt.Errorf("control: bad result of %s: %w", command, err)
		}
	}
	return nil
}

// Stream sends a stream command and calls each with every result until the
// steward ends the stream, ctx ends, or each returns an error.
func Stream(ctx context.Context, path, command string, args any, each func(json.RawMessage) error) error {
	conn, done, err := dial(ctx, path, command, args)
	if err != nil {
		return err
	}
	defer done()
	r := bufio.NewReader(conn)
	for {
		line, err := readLine(r)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("control: reading %s: %w", command, err)
		}
		var resp Response
		if err := json.Unmarshal(line, &resp); err != nil {
			return fmt.Errorf("control: bad answer to %s: %w", command, err)
		}
		if !resp.OK {
			return &RemoteError{Command: command, Message: resp.Error}
		}
		if !resp.More {
			return nil
		}
		if err := each(resp.Result); err != nil {
			return err
		}
	}
}

// RemoteError is an error the running steward answered with.
type RemoteError struct {
	Command, Message string
}

func (e *RemoteError) Error() string { return e.Command + ": " + e.Message }

// SocketPaths lists where the control socket may be, in the order the
// server tries them: the configured path alone, or the default under
// /run/steward, then $XDG_RUNTIME_DIR/steward, then a per-user directory
// under the temporary directory, for a steward that cannot write /run.
func SocketPaths(configured string, environ []string) []string {
	if configured != "" {
		return []string{configured}
	}
	paths := []string{"/run/steward/control.sock"}
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "XDG_RUNTIME_DIR="); ok && filepath.IsAbs(v) {
			paths = append(paths, filepath.Join(v, "steward", "control.sock"))
		}
	}
	tmp := "/tmp"
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "TMPDIR="); ok && filepath.IsAbs(v) {
			tmp = v
		}
	}
	return append(paths, filepath.Join(tmp, "steward-"+strconv.Itoa(os.Getuid()), "control.sock"))
}

// ErrInUse: a steward answers on the socket already.
var ErrInUse = errors.New("another steward is listening there")

// ListenFirst listens on the first of paths where a socket can be made. It
// stops at a path where another steward answers, so two never share the
// fallback paths unknowingly.
func (s *Server) ListenFirst(paths []string) error {
	var errs []error
	for _, p := range paths {
		err := s.Listen(p)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if errors.Is(err, ErrInUse) {
			break
		}
	}
	return errors.Join(errs...)
}

// ErrUnsafeDir: a socket's directory is one another user controls.
var ErrUnsafeDir = errors.New("not a directory only this user (or root) controls")

// CheckDir refuses a socket directory that another user could change: it
// must be a real directory (not a symbolic link), owned by this process's
// user or root, and writable by its owner only. Anyone who can write the
// directory can put a socket of their own in place of steward's.
func CheckDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch uid := os.Geteuid(); {
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("control: %s is a symbolic link: %w", dir, ErrUnsafeDir)
	case !fi.IsDir():
		return fmt.Errorf("control: %s is not a directory", dir)
	case st == nil || int(st.Uid) != uid && st.Uid != 0:
		owner := -1
		if st != nil {
			owner = int(st.Uid)
		}
		return fmt.Errorf("control: %s belongs to uid %d, not to uid %d or root: %w", dir, owner, uid, ErrUnsafeDir)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("control: %s can be written by other users (mode %04o): %w", dir, fi.Mode().Perm(), ErrUnsafeDir)
	}
	return nil
}

// FindSocket returns the first of paths where a socket exists in a
// directory CheckDir accepts, for a client; when none does it returns the
// first path, and the reasons it passed over sockets that do exist.
func FindSocket(paths []string) (string, error) {
	var refused []error
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode()&os.ModeSocket == 0 {
			continue
		}
		if err := CheckDir(filepath.Dir(p)); err != nil {
			refused = append(refused, err)
			continue
		}
		return p, nil
	}
	return paths[0], errors.Join(refused...)
}
