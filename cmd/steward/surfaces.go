package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"

	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/control"
)

// httpComponent serves the local HTTP endpoint: /healthz, /readyz and what
// other components added to the mux.
type httpComponent struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	// conns counts the connections open (new, active or idle).
	conns atomic.Int64
	// closed is set when Close closed the listener itself.
	closed atomic.Bool
}

// Bounds of the HTTP endpoint, which probes and scrapers use: a handful of
// connections at a time, each sending its request promptly.
const (
	httpMaxConns      = 64
	httpHeaderTimeout = 5 * time.Second
	httpIdleTimeout   = 30 * time.Second
	httpWriteTimeout  = 30 * time.Second
)

func startHTTP(ctx context.Context, w *wiring) (component, error) {
	addr := w.cfg.HTTP.Addr
	if strings.EqualFold(addr, configs.HTTPOff) {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if w.cfg.HTTP.AddrSet {
			return nil, fmt.Errorf("http endpoint: %w", err)
		}
		// The default address is a convenience: a port the app uses must
		// not stop the container.
		w.log.Warn("http endpoint not started", "addr", addr, "err", err)
		return nil, nil
	}
	// At most httpMaxConns connections at once: beyond, connections wait
	// in the kernel's backlog, costing steward no descriptor, so a flood of
	// idle connections can never take the descriptors programs need.
	ln = netutil.LimitListener(ln, httpMaxConns)
	c := &httpComponent{srv: &http.Server{Handler: w.mux, ReadHeaderTimeout: httpHeaderTimeout,
		IdleTimeout: httpIdleTimeout, WriteTimeout: httpWriteTimeout, MaxHeaderBytes: 16 << 10},
		ln: ln, done: make(chan struct{})}
	c.srv.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			c.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			c.conns.Add(-1)
		}
	}
	go func() {
		defer close(c.done)
		if err := c.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !c.closed.Load() {
			w.log.Error("http endpoint", "err", err)
		}
	}()
	w.log.Info("http endpoint listening", "addr", ln.Addr().String())
	return c, nil
}

// Close lets the requests in flight finish, within ctx. With none,
// closing the listener is the whole of it: steward exits next, and waiting
// for the accept loop to notice (Shutdown does) added a goroutine's wake-up
// to every stop (issue 14's SIGTERM-to-exit figure).
func (c *httpComponent) Close(ctx context.Context) error {
	if c.conns.Load() == 0 {
		c.closed.Store(true)
		return c.ln.Close()
	}
	err := c.srv.Shutdown(ctx)
	<-c.done
	return err
}

// controlComponent serves the control socket.
type controlComponent struct{ srv *control.Server }

func startControl(ctx context.Context, w *wiring) (component, error) {
	paths := control.SocketPaths(w.cfg.Control.Socket, os.Environ())
	if err := w.control.ListenFirst(paths); err != nil {
		if w.cfg.Control.Socket != "" {
			return nil, err
		}
		w.log.Warn("control socket not started: `steward health` will not reach this steward", "err", err)
		return nil, nil
	}
	w.log.Info("control socket listening", "path", w.control.Path())
	return &controlComponent{srv: w.control}, nil
}

func (c *controlComponent) Close(ctx context.Context) error { return c.srv.Close(ctx) }
