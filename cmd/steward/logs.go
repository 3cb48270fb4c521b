package main

import (
	"context"
	"os"
	"runtime/debug"
	"time"

	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/internal/gcpace"
	"github.com/stewardhq/steward/shippers/fluentd"
)

// startLogs forwards every program's lines to Fluentd when [fluentd] (or
// STEWARD_FLUENTD_ADDR) names a server.
func startLogs(ctx context.Context, w *wiring) (component, error) {
	if w.cfg.Fluentd == nil {
		return nil, nil
	}
	s, err := fluentd.New(fluentdConfig(w.cfg), w.log)
	if err != nil {
		return nil, err
	}
	// The log path is what bursts, and every buffer on it is bounded by
	// queue_bytes, so its live heap is small (about 5 MB in a burst with
	// the default 2 MiB). With Go's default GOGC of 100 the collector then
	// runs every few megabytes of the ~300 bytes a line allocates on its
	// way (its text, its record), and its cycles and write barriers cost
	// up to a third more CPU per line than with 200 (measured with
	// bench/fluentd.sh). 150 takes most of that back for about 1.5 MiB
	// more at the peak (200 cost 3.5 MiB: too near the 24 MiB the log
	// path promises). That is the pace while collections come often; an
	// idle steward, collected every minute or two, goes to a tight pace
	// (gcpace: the heap goal is at least 4 MiB × GOGC/100, and what the
	// heap grew to stays resident). A soft memory
	// limit well above what the bounds need makes the collector work
	// harder before steward's memory could grow past it for any other
	// reason: only a backstop, the bounds are the fix. GOGC and
	// GOMEMLIMIT, when set, win.
	if os.Getenv("GOGC") == "" {
		gcpace.Start(gcpace.Options{Busy: logPathGCPercent, Idle: idleGCPercent,
			BusyWithin: 10 * time.Second, IdleAfter: time.Minute})
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryBackstop + 2*int64(w.cfg.Fluentd.QueueBytes))
	}
	s.Start(w.sup.Logs())
	w.sources.add(s.Metrics)
	return s, nil
}

const (
	logPathGCPercent = 150
	// idleGCPercent makes the heap goal of an idle steward 2 MiB: a
	// collection every few minutes at its rate of garbage.
	idleGCPercent  = 50
	memoryBackstop = 16 << 20
)

// fluentdConfig is the shipper's part of the config snapshot.
func fluentdConfig(cfg *configs.Config) fluentd.Config {
	st := cfg.Steward
	c := fluentd.Config{Fluentd: *cfg.Fluentd, App: st.App, Version: st.Version, Host: st.Host,
		ContainerName: st.ContainerName, Programs: map[string]*configs.ProgramLogs{}}
	for name, p := range cfg.Programs {
		if p.Logs != nil {
			c.Programs[name] = p.Logs
		}
	}
	return c
}
