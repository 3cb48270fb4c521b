// Package statsd is a StatsD server on loopback (UDP and TCP), as
// etsy/statsd and Telegraf's statsd input: the app sends counters, gauges,
// timings and sets, steward aggregates them per collection interval and
// ships the results with its own series, tagged with app, version and host.
package statsd

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/collectors/ingest"
	"github.com/stewardhq/steward/collectors/metricfmt"
)

// Config of the server.
type Config struct {
	// Addr is host:port, UDP and TCP (default 127.0.0.1:8125).
	Addr     string
	TCP, UDP bool
	MaxConns int
	Limits   metricfmt.Limits
	Options
}

// DefaultAddr is StatsD's usual port, on loopback.
const DefaultAddr = "127.0.0.1:8125"

// Server is a collector whose samples are the interval's aggregates.
type Server struct {
	cfg   Config
	stats *ingest.Stats
	agg   *Aggregator
	l     atomic.Pointer[ingest.Listener] // set by Start, read by the rounds
	log   *slog.Logger
}

// New prepares a server; Start binds it.
func New(cfg Config, log *slog.Logger) *Server {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	st := ingest.NewStats("statsd", log)
	return &Server{cfg: cfg, stats: st, agg: NewAggregator(cfg.Options, st), log: log}
}

// Start listens.
func (s *Server) Start() error {
	l, err := ingest.Listen(ingest.ListenConfig{Name: "statsd", Addr: s.cfg.Addr, TCP: s.cfg.TCP, UDP: s.cfg.UDP,
		MaxConns: s.cfg.MaxConns, MaxLineBytes: s.cfg.Limits.MaxLineBytes}, s.stats, s.Handle, s.log)
	if err != nil {
		return err
	}
	s.l.Store(l)
	return nil
}

// Handle takes one line, as if received.
func (s *Server) Handle(line []byte) {
	lim := s.cfg.Limits
	if lim.MaxNameBytes <= 0 {
		lim.MaxNameBytes = metricfmt.DefaultMaxNameBytes
	}
	if lim.MaxTags <= 0 {
		lim.MaxTags = metricfmt.DefaultMaxTags
	}
	if err := ParseLine(line, lim, s.agg.Add); err != nil {
		reason := metricfmt.ReasonMalformed
		if err == errTooLong {
			reason = metricfmt.ReasonTooLong
		}
		s.stats.Drop(reason, 1)
	}
}

// Addr is the bound address (TCP if on, else UDP), for tests on port 0.
func (s *Server) Addr() string {
	if a := s.l.Load().TCPAddr(); a != "" {
		return a
	}
	return s.l.Load().UDPAddr()
}

// Stats are the server's counters.
func (s *Server) Stats() *ingest.Stats { return s.stats }

// Name implements collectors.Collector.
func (s *Server) Name() string { return "statsd" }

// Collect flushes the interval's aggregates and the server's counters.
func (s *Server) Collect(_ context.Context, emit func(collectors.Sample)) error {
	s.agg.Flush(emit)
	if l := s.l.Load(); l != nil {
		l.PollDrops()
	}
	s.stats.Emit(emit)
	emit(collectors.Sample{Name: "steward.appmetrics.series", Value: float64(s.agg.Series()), Kind: collectors.Gauge,
		Tags: []collectors.Tag{{Key: "input", Value: "statsd"}}})
	return nil
}

// Close stops listening.
func (s *Server) Close() {
	if l := s.l.Load(); l != nil {
		l.Close()
	}
}
