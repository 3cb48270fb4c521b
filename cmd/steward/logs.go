package main

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/stewardhq/steward/configs"
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
	// The log path is what bursts: every buffer on it is bounded by
	// queue_bytes, and a soft memory limit well above what those bounds
	// need (measured: a Go heap of about 12 MiB in a burst with the
	// default 4 MiB) makes the collector work harder before steward's
	// memory could grow past it for any reason. Only a backstop: the
	// bounds are the fix. GOMEMLIMIT, when set, wins.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryBackstop + 2*int64(w.cfg.Fluentd.QueueBytes))
	}
	s.Start(w.sup.Logs())
	w.sources.add(fluentdMetrics(s))
	return s, nil
}

const memoryBackstop = 16 << 20

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
