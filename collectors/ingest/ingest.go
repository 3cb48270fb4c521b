// Package ingest is what every input of the app's own metrics shares
// (StatsD, the Graphite relay, the Prometheus scrape, metric checks): its
// counters of received, parsed and dropped metrics, a bounded buffer of
// samples between collection rounds, and a loopback line listener (TCP and
// UDP) bounded in line length and connections.
package ingest

import (
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/collectors/metricfmt"
	"github.com/stewardhq/steward/internal/drops"
)

// Reasons of drops, besides the parsers' (metricfmt.Reason*).
const (
	ReasonTooManySeries = "too_many_series"
	ReasonTooManyConns  = "too_many_connections"
	ReasonTooLarge      = "too_large"
)

// Stats counts one input's traffic: lines received, samples parsed, and
// drops by reason. Drops are logged once per burst.
type Stats struct {
	tags  []collectors.Tag
	drops *drops.Counter

	received, parsed atomic.Uint64

	mu       sync.Mutex
	byReason map[string]*atomic.Uint64
	reasons  []string // sorted, for a stable emit order
}

// NewStats returns the counters of one input ("statsd", "relay", ...);
// extra tags tell apart inputs of one kind (program=).
func NewStats(input string, log *slog.Logger, extra ...collectors.Tag) *Stats {
	return &Stats{
		tags:     metricfmt.SortTags(append([]collectors.Tag{{Key: "input", Value: input}}, extra...)),
		drops:    drops.New(log, input+": dropping bad or excess metrics (see steward.appmetrics.dropped_total by reason)", "input", input),
		byReason: map[string]*atomic.Uint64{},
	}
}

// Received counts lines (or datagrams' lines) taken in.
func (s *Stats) Received(n int) { s.received.Add(uint64(n)) }

// Parsed counts metrics understood.
func (s *Stats) Parsed(n int) { s.parsed.Add(uint64(n)) }

// Count adds a parse's lines and drops (not its samples: callers may drop
// some of those later, as too_many_series).
func (s *Stats) Count(res metricfmt.Result) {
	s.Received(res.Lines)
	for reason, n := range res.Dropped {
		s.Drop(reason, n)
	}
}

// Drop counts n drops for reason.
func (s *Stats) Drop(reason string, n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	c := s.byReason[reason]
	if c == nil {
		c = &atomic.Uint64{}
		s.byReason[reason] = c
		s.reasons = append(s.reasons, reason)
		slices.Sort(s.reasons)
	}
	s.mu.Unlock()
	c.Add(uint64(n))
	s.drops.Add(n)
}

// Dropped is the count of drops for reason.
func (s *Stats) Dropped(reason string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.byReason[reason]; c != nil {
		return c.Load()
	}
	return 0
}

// Emit writes the counters as steward.appmetrics.* series tagged input=.
func (s *Stats) Emit(emit func(collectors.Sample)) {
	emit(collectors.Sample{Name: "steward.appmetrics.received_total", Value: float64(s.received.Load()), Kind: collectors.Counter, Tags: s.tags})
	emit(collectors.Sample{Name: "steward.appmetrics.parsed_total", Value: float64(s.parsed.Load()), Kind: collectors.Counter, Tags: s.tags})
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.reasons {
		tags := metricfmt.SortTags(append(slices.Clone(s.tags), collectors.Tag{Key: "reason", Value: r}))
		emit(collectors.Sample{Name: "steward.appmetrics.dropped_total", Value: float64(s.byReason[r].Load()), Kind: collectors.Counter, Tags: tags})
	}
}

// Buffer keeps the samples that arrive between two collection rounds, up
// to a number: past it, samples are dropped (too_many_series) until the
// round takes them.
type Buffer struct {
	max   int
	stats *Stats

	mu      sync.Mutex
	samples []collectors.Sample
	spare   []collectors.Sample
}

// NewBuffer holds up to max samples per round.
func NewBuffer(max int, stats *Stats) *Buffer {
	return &Buffer{max: max, stats: stats}
}

// Add keeps s for the next round, or drops it when the round is full.
func (b *Buffer) Add(s collectors.Sample) {
	b.mu.Lock()
	full := len(b.samples) >= b.max
	if !full {
		b.samples = append(b.samples, s)
	}
	b.mu.Unlock()
	if full {
		b.stats.Drop(ReasonTooManySeries, 1)
	} else {
		b.stats.Parsed(1)
	}
}

// Drain emits the samples kept and empties the buffer.
func (b *Buffer) Drain(emit func(collectors.Sample)) {
	b.mu.Lock()
	out := b.samples
	b.samples, b.spare = b.spare[:0], nil
	b.mu.Unlock()
	for _, s := range out {
		emit(s)
	}
	clear(out)
	b.mu.Lock()
	if b.spare == nil && cap(out) <= 2*b.max {
		b.spare = out[:0]
	}
	b.mu.Unlock()
}
