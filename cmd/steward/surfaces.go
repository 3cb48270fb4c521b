package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/net/netutil"

	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/control"
)

// httpComponent serves the local HTTP endpoint: /healthz, /readyz and what
// other components added to the mux.
type httpComponent struct {
	srv  *http.Server
	done chan struct{}
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
		done: make(chan struct{})}
	go func() {
		defer close(c.done)
		if err := c.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.log.Error("http endpoint", "err", err)
		}
	}()
	w.log.Info("http endpoint listening", "addr", ln.Addr().String())
	return c, nil
}

func (c *httpComponent) Close(ctx context.Context) error {
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
