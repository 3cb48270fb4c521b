// Package statsd is a StatsD server on loopback (UDP and TCP), as
// etsy/statsd and Telegraf's statsd input: the app sends counters, gauges,
// timings and sets, steward aggregates them per collection interval and
// ships the results with its own series, tagged with app, version and host.
package statsd

import (
	"context"
	"log/slog"

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
	*ingest.Input
	cfg   Config
	stats *ingest.Stats
	agg   *Aggregator
}

// New prepares a server; Start binds it.
func New(cfg Config, log *slog.Logger) *Server {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	s := &Server{cfg: cfg}
	s.Input = ingest.NewInput(ingest.ListenConfig{Name: "statsd", Addr: cfg.Addr, TCP: cfg.TCP, UDP: cfg.UDP,
		MaxConns: cfg.MaxConns, MaxLineBytes: cfg.Limits.MaxLineBytes}, s.Handle, log)
	s.stats = s.Input.Stats()
	s.agg = NewAggregator(cfg.Options, s.stats)
	return s
}

// Handle takes one line, as if received.
func (s *Server) Handle(line []byte) {
	if err := ParseLine(line, s.cfg.Limits, s.agg.Add); err != nil {
		reason := metricfmt.ReasonMalformed
		if err == errTooLong {
			reason = metricfmt.ReasonTooLong
		}
		s.stats.Drop(reason, 1)
	}
}

// Collect flushes the interval's aggregates and the server's counters.
func (s *Server) Collect(_ context.Context, emit func(collectors.Sample)) error {
	s.agg.Flush(emit)
	s.EmitStats(emit)
	emit(collectors.Sample{Name: "steward.appmetrics.series", Value: float64(s.agg.Series()), Kind: collectors.Gauge,
		Tags: []collectors.Tag{{Key: "input", Value: "statsd"}}})
	return nil
}
