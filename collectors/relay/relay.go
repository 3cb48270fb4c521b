// Package relay takes the app's own Graphite plaintext lines ("name value
// [timestamp]", tags as "name;k=v") on a loopback port, TCP and UDP, as
// carbon does, and passes them on with the next collection round: the
// Graphite shipper then adds steward's app, version and host tags and
// carries them through outages in its bounded backlog, as it does
// steward's own series.
package relay

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/collectors/ingest"
	"github.com/stewardhq/steward/collectors/metricfmt"
)

// Config of the relay.
type Config struct {
	// Addr is host:port, TCP and UDP.
	Addr string
	// MaxSeries bounds the samples kept between two rounds; more are
	// dropped (too_many_series).
	MaxSeries int
	MaxConns  int
	Limits    metricfmt.Limits
}

// Relay is a collector whose samples are the lines received since the
// last round, with their own timestamps (the round's when they have none).
type Relay struct {
	cfg   Config
	stats *ingest.Stats
	buf   *ingest.Buffer
	l     atomic.Pointer[ingest.Listener] // set by Start, read by the rounds
	log   *slog.Logger
}

// New prepares a relay; Start binds it.
func New(cfg Config, log *slog.Logger) *Relay {
	st := ingest.NewStats("relay", log)
	return &Relay{cfg: cfg, stats: st, buf: ingest.NewBuffer(cfg.MaxSeries, st), log: log}
}

// Start listens. Lines that arrive before are not lost to the app: it
// sees a refused connection (TCP) and reconnects, as with carbon.
func (r *Relay) Start() error {
	l, err := ingest.Listen(ingest.ListenConfig{Name: "relay", Addr: r.cfg.Addr, TCP: true, UDP: true,
		MaxConns: r.cfg.MaxConns, MaxLineBytes: r.cfg.Limits.MaxLineBytes}, r.stats, r.handle, r.log)
	if err != nil {
		return err
	}
	r.l.Store(l)
	return nil
}

func (r *Relay) handle(line []byte) {
	reason, _ := metricfmt.ParseLine(metricfmt.Graphite, string(line), r.cfg.Limits, r.buf.Add)
	if reason != "" {
		r.stats.Drop(reason, 1)
	}
}

// Addr is the bound TCP address (for tests on port 0).
func (r *Relay) Addr() string { return r.l.Load().TCPAddr() }

// Name implements collectors.Collector.
func (r *Relay) Name() string { return "relay" }

// Collect emits what arrived since the last round and the relay's counters.
func (r *Relay) Collect(_ context.Context, emit func(collectors.Sample)) error {
	r.buf.Drain(emit)
	if l := r.l.Load(); l != nil {
		l.PollDrops()
	}
	r.stats.Emit(emit)
	return nil
}

// Close stops listening.
func (r *Relay) Close() {
	if l := r.l.Load(); l != nil {
		l.Close()
	}
}
