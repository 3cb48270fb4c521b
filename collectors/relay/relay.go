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
// Lines sent before Start are not lost to the app: it sees a refused
// connection (TCP) and reconnects, as with carbon.
type Relay struct {
	*ingest.Input
	cfg Config
	buf *ingest.Buffer
}

// New prepares a relay; Start binds it.
func New(cfg Config, log *slog.Logger) *Relay {
	r := &Relay{cfg: cfg}
	r.Input = ingest.NewInput(ingest.ListenConfig{Name: "relay", Addr: cfg.Addr, TCP: true, UDP: true,
		MaxConns: cfg.MaxConns, MaxLineBytes: cfg.Limits.MaxLineBytes}, r.handle, log)
	r.buf = ingest.NewBuffer(cfg.MaxSeries, r.Stats())
	return r
}

func (r *Relay) handle(line []byte) {
	reason, _ := metricfmt.ParseLine(metricfmt.Graphite, string(line), r.cfg.Limits, r.buf.Add)
	if reason != "" {
		r.Stats().Drop(reason, 1)
	}
}

// Collect emits what arrived since the last round and the relay's counters.
func (r *Relay) Collect(_ context.Context, emit func(collectors.Sample)) error {
	r.buf.Drain(emit)
	r.EmitStats(emit)
	return nil
}
