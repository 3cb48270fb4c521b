package collectors

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"

	"github.com/prometheus/procfs"
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
	fs      procfs.FS
	sources []func(emit func(Sample))
}

// NewSelf returns a steward collector.
func NewSelf(cfg SelfConfig, log *slog.Logger) (*Self, error) {
	pfs, err := procfs.NewFS(filepath.Join(cfg.Root, "proc"))
	if err != nil {
		return nil, fmt.Errorf("self: %w", err)
	}
	return &Self{fs: pfs, sources: cfg.Sources}, nil
}

// Name implements Collector.
func (s *Self) Name() string { return "steward" }

// Collect implements Collector.
func (s *Self) Collect(_ context.Context, emit func(Sample)) error {
	var err error
	if p, e := s.fs.Self(); e != nil {
		err = fmt.Errorf("self: %w", e)
	} else if st, e := p.Stat(); e != nil {
		err = fmt.Errorf("self: %w", e)
	} else {
		counter(emit, "steward.cpu_seconds_total", st.CPUTime(), nil)
		gauge(emit, "steward.memory_rss_bytes", float64(st.ResidentMemory()), nil)
		gauge(emit, "steward.threads", float64(st.NumThreads), nil)
		if n, e := p.FileDescriptorsLen(); e == nil {
			gauge(emit, "steward.open_fds", float64(n), nil)
		}
	}
	gauge(emit, "steward.goroutines", float64(runtime.NumGoroutine()), nil)
	for _, src := range s.sources {
		src(emit)
	}
	return err
}
