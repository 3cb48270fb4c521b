package collectors

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Scheduler runs collectors once per interval, on multiples of the interval
// (12:00:00, 12:00:10, ... for 10 s), and hands each round's samples to a
// sink. Every sample of a round carries the round's tick as its time, so
// each series gets exactly one point per interval slot in Graphite, however
// long the collection took.
type Scheduler struct {
	interval   time.Duration
	collectors []Collector
	sink       func([]Sample)
	log        *slog.Logger

	buf []Sample // reused between rounds: the sink copies what it keeps

	mu    sync.Mutex
	stats []roundStats // per collector, last round
}

type roundStats struct {
	tags     []Tag
	duration time.Duration
	ok, ran  bool
	failing  bool // for logging only transitions
}

// NewScheduler returns a scheduler for collectors in the order given. sink
// must not block and must not keep the slice it is given.
func NewScheduler(interval time.Duration, cs []Collector, sink func([]Sample), log *slog.Logger) *Scheduler {
	s := &Scheduler{interval: interval, collectors: cs, sink: sink, log: log}
	s.stats = make([]roundStats, len(cs))
	for i, c := range cs {
		s.stats[i].tags = []Tag{{"collector", c.Name()}}
	}
	return s
}

// Run collects on every tick until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		tick := now.Truncate(s.interval).Add(s.interval)
		timer.Reset(tick.Sub(now))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		// A round may not outlive its interval: the next one is due then.
		rctx, cancel := context.WithTimeout(ctx, s.interval)
		samples := s.Collect(rctx, tick)
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.sink(samples)
	}
}

// Collect runs every collector once and returns the samples, stamped with
// tick. The slice is reused by the next call.
func (s *Scheduler) Collect(ctx context.Context, tick time.Time) []Sample {
	s.buf = s.buf[:0]
	emit := func(smp Sample) {
		// A sample with a time of its own (a relayed line, a check's
		// output) keeps it.
		if smp.Time.IsZero() {
			smp.Time = tick
		}
		s.buf = append(s.buf, smp)
	}
	for i, c := range s.collectors {
		start := time.Now()
		err := c.Collect(ctx, emit)
		d := time.Since(start)
		s.mu.Lock()
		st := &s.stats[i]
		st.duration, st.ok, st.ran = d, err == nil, true
		logFail := err != nil && !st.failing
		logBack := err == nil && st.failing
		st.failing = err != nil
		s.mu.Unlock()
		// One line when a collector starts failing and one when it
		// recovers, not one per round.
		if logFail {
			s.log.Warn("metrics: collector failing", "collector", c.Name(), "err", err)
		} else if logBack {
			s.log.Info("metrics: collector recovered", "collector", c.Name())
		}
	}
	return s.buf
}

// Stats emits each collector's last duration and success.
func (s *Scheduler) Stats(emit func(Sample)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.stats {
		if !st.ran {
			continue
		}
		ok := 0.0
		if st.ok {
			ok = 1
		}
		gauge(emit, "steward.collector.duration_seconds", seconds(st.duration), st.tags)
		gauge(emit, "steward.collector.success", ok, st.tags)
	}
}
