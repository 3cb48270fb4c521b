package collectors

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/stewardhq/steward/internal/proc"
)

// SelfConfig says what the steward collector reports.
type SelfConfig struct {
	// Root is the filesystem root /proc is read under.
	Root string
	// Sources report other components' own figures: the scheduler's
	// per-collector durations, shippers' queue depths and drops, the
	// supervisor's reaped orphans. Each must be quick and must not block.
	Sources []func(emit func(Sample))
}

// Self reports steward itself: its CPU, memory, descriptors, threads and
// goroutines, then what its sources report.
type Self struct {
	dir     string // root/proc/self
	page    float64
	r       reader
	sources []func(emit func(Sample))
}

// NewSelf returns a steward collector.
func NewSelf(cfg SelfConfig, log *slog.Logger) (*Self, error) {
	dir := filepath.Join(cfg.Root, "proc/self")
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("self: %w", err)
	}
	return &Self{dir: dir, page: float64(os.Getpagesize()), sources: cfg.Sources}, nil
}

// Name implements Collector.
func (s *Self) Name() string { return "steward" }

// Collect implements Collector.
func (s *Self) Collect(_ context.Context, emit func(Sample)) error {
	var err error
	if b, e := s.r.read(s.dir + "/stat"); e != nil {
		err = fmt.Errorf("self: %w", e)
	} else if st, e := proc.ParseStat(b); e != nil {
		err = fmt.Errorf("self: %s/stat: %w", s.dir, e)
	} else {
		// steward's own CPU only: what the orphans it reaped used is
		// theirs.
		counter(emit, "steward.cpu_seconds_total", float64(st.Utime+st.Stime)/userHZ, nil)
		gauge(emit, "steward.memory_rss_bytes", float64(st.RSSPages)*s.page, nil)
		gauge(emit, "steward.threads", float64(st.Threads), nil)
		if n, e := s.r.countEntries(s.dir + "/fd"); e == nil {
			gauge(emit, "steward.open_fds", float64(n), nil)
		}
	}
	gauge(emit, "steward.goroutines", float64(runtime.NumGoroutine()), nil)
	for _, src := range s.sources {
		src(emit)
	}
	return err
}
