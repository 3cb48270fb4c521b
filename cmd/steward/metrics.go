package main

import (
	"context"
	"os"

	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/shippers/graphite"
	"github.com/stewardhq/steward/shippers/prometheus"
)

// metrics runs the collectors on their interval and ships each round to
// Graphite (and/or prints it).
type metrics struct {
	stop    context.CancelFunc
	stopped chan struct{}
	ship    *graphite.Shipper
	app     *appInputs
}

// startMetrics runs when Graphite has an address, metrics.print or
// metrics.prometheus is set.
// A collector that cannot work here (no cgroup filesystem, say) is left
// out with a warning; the others run.
func startMetrics(ctx context.Context, w *wiring) (component, error) {
	cfg := w.cfg
	if !cfg.MetricsEnabled() {
		return nil, nil
	}
	m, g := cfg.Metrics, cfg.Graphite
	interval := m.Interval.D()
	gcfg := graphite.Config{
		Servers: g.Addr, Protocol: g.Protocol, Failover: g.Failover,
		Mode: g.Mode, Prefix: g.Prefix, Template: g.Template,
		App: cfg.Steward.App, Version: cfg.Steward.Version, Host: cfg.Steward.Host,
		BufferRounds: g.BufferRounds(interval), Timeout: g.Timeout.D(),
	}
	if m.Print {
		gcfg.Print = os.Stdout
	}
	// Sinks of each round: Graphite (or the printed lines), /metrics.
	var ship *graphite.Shipper
	var sinks []func([]collectors.Sample)
	var stats []func(func(collectors.Sample))
	if len(g.Addr) > 0 || m.Print {
		var err error
		if ship, err = graphite.New(gcfg, w.log); err != nil {
			return nil, err
		}
		sinks = append(sinks, ship.Ship)
		stats = append(stats, ship.Stats)
	}
	if m.Prometheus {
		exp := prometheus.New(prometheus.Config{App: cfg.Steward.App, Version: cfg.Steward.Version, Host: cfg.Steward.Host}, w.log)
		w.mux.Handle("GET /metrics", exp)
		sinks = append(sinks, exp.Ship)
	}
	var sched *collectors.Scheduler
	var cs []collectors.Collector
	for _, name := range m.Collectors {
		var c collectors.Collector
		var err error
		switch name {
		case "cgroup":
			c, err = collectors.NewCgroup(m.Root, w.log)
		case "netstat":
			c, err = collectors.NewNetstat(collectors.NetstatConfig{Root: m.Root, ExcludeInterfaces: m.ExcludeInterfaces}, w.log)
		case "programs":
			c, err = collectors.NewPrograms(collectors.ProgramsConfig{Root: m.Root, Status: w.sup.Status}, w.log)
		case "steward":
			c, err = collectors.NewSelf(collectors.SelfConfig{Root: m.Root, Sources: append([]func(func(collectors.Sample)){
				func(emit func(collectors.Sample)) { sched.Stats(emit) },
				func(emit func(collectors.Sample)) {
					emit(collectors.Sample{Name: "steward.orphans_reaped_total", Value: float64(w.sup.OrphansReaped()), Kind: collectors.Counter})
					emit(collectors.Sample{Name: "steward.start_shortages_total", Value: float64(w.sup.StartShortages()), Kind: collectors.Counter})
				},
				w.sources.emit,
			}, stats...)}, w.log)
		}
		if err != nil {
			w.log.Warn("metrics: collector left out", "collector", name, "err", err)
			continue
		}
		cs = append(cs, c)
	}
	app := newAppInputs(w)
	cs = append(cs, app.collectors...)
	sched = collectors.NewScheduler(interval, cs, func(round []collectors.Sample) {
		for _, sink := range sinks {
			sink(round)
		}
	}, w.log)
	runCtx, stop := context.WithCancel(ctx)
	mt := &metrics{stop: stop, stopped: make(chan struct{}), ship: ship, app: app}
	app.listen(w)
	go func() {
		defer close(mt.stopped)
		sched.Run(runCtx)
	}()
	w.log.Info("metrics: collecting", "interval", interval.String(), "graphite", []string(g.Addr), "mode", g.Mode,
		"print", m.Print, "prometheus", m.Prometheus)
	return mt, nil
}

// Close stops collecting and flushes what is buffered within ctx.
func (m *metrics) Close(ctx context.Context) error {
	m.app.close()
	m.stop()
	select {
	case <-m.stopped:
	case <-ctx.Done():
	}
	if m.ship == nil {
		return nil
	}
	return m.ship.Close(ctx)
}
