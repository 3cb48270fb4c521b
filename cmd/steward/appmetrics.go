package main

import (
	"context"
	"sync"

	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/collectors/checkmetrics"
	"github.com/stewardhq/steward/collectors/metricfmt"
	"github.com/stewardhq/steward/collectors/relay"
	"github.com/stewardhq/steward/collectors/scrape"
	"github.com/stewardhq/steward/collectors/statsd"
	"github.com/stewardhq/steward/configs"
)

// appInputs are the app's own metrics: the collectors that run with
// steward's, and the listeners bound once a program has started (the
// first exec does not wait for them).
type appInputs struct {
	collectors []collectors.Collector
	listeners  []interface {
		Start() error
		Close()
		Name() string
	}
	checks *checkmetrics.MetricOutputs

	mu     sync.Mutex
	closed bool
}

func newAppInputs(w *wiring) *appInputs {
	cfg := w.cfg
	m := cfg.Metrics
	a := &appInputs{}
	if s := m.StatsD; s.Enabled {
		srv := statsd.New(statsd.Config{Addr: s.Addr, UDP: s.UDP, TCP: s.TCP, MaxConns: s.MaxConnections,
			Limits: metricfmt.Limits{MaxLineBytes: s.MaxLineBytes},
			Options: statsd.Options{Percentiles: s.Percentiles, PercentileLimit: s.PercentileLimit, MaxSeries: s.MaxSeries,
				DeleteCounters: s.DeleteCounters, DeleteGauges: s.DeleteGauges, DeleteTimings: s.DeleteTimings, DeleteSets: s.DeleteSets}}, w.log)
		a.collectors = append(a.collectors, srv)
		a.listeners = append(a.listeners, srv)
	}
	if r := m.Relay; r.Enabled {
		rl := relay.New(relay.Config{Addr: r.Addr, MaxSeries: r.MaxSeries, MaxConns: r.MaxConnections,
			Limits: metricfmt.Limits{MaxLineBytes: r.MaxLineBytes}}, w.log)
		a.collectors = append(a.collectors, rl)
		a.listeners = append(a.listeners, rl)
	}
	for _, name := range cfg.Order {
		if u := cfg.Programs[name].MetricsURL; u != "" {
			// A scrape may not outlive the round it belongs to.
			a.collectors = append(a.collectors, scrape.New(scrape.Config{Program: name, URL: u,
				Timeout: min(m.Scrape.Timeout.D(), m.Interval.D()), MaxBytes: m.Scrape.MaxBytes, MaxSeries: m.Scrape.MaxSeries}, w.log))
		}
	}
	if w.checkMetrics != nil {
		a.checks = w.checkMetrics
		a.collectors = append(a.collectors, a.checks)
	}
	return a
}

// startCheckMetrics makes the parser of checks' metric output before the
// checks run (it must see their first results); the metrics, which start
// after the programs, collect from it.
func startCheckMetrics(ctx context.Context, w *wiring) (component, error) {
	if !w.cfg.MetricsEnabled() {
		return nil, nil
	}
	for _, c := range w.cfg.Checks {
		if c.OutputMetricFormat != "" {
			w.checkMetrics = checkmetrics.NewMetricOutputs(configs.DefaultCheckMetricLimit, w.log)
			break
		}
	}
	return nil, nil
}

// listen binds the listeners. The metrics start once the programs have
// been forked (lateStarters), so the ports never delay the first exec; a
// port that cannot be bound is logged and the programs run on.
func (a *appInputs) listen(w *wiring) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	for _, l := range a.listeners {
		if err := l.Start(); err != nil {
			w.log.Error("app metrics: cannot listen", "input", l.Name(), "err", err)
			continue
		}
		w.log.Info("app metrics: listening", "input", l.Name(), "addr", addrOf(l))
	}
}

func addrOf(l any) string {
	if a, ok := l.(interface{ Addr() string }); ok {
		return a.Addr()
	}
	return ""
}

// close stops the listeners.
func (a *appInputs) close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	for _, l := range a.listeners {
		l.Close()
	}
}
