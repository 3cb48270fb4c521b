package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/checks/programs"
	"github.com/stewardhq/steward/collectors"
)

// checksComponent runs the local checks and keeps the implicit checks of
// the programs; both feed the health state and the results stream.
type checksComponent struct {
	sched       *checks.Scheduler
	cancel      context.CancelFunc
	stopWatcher context.CancelFunc
	done        chan struct{} // the program watcher's
}

func startChecks(ctx context.Context, w *wiring) (component, error) {
	list := checks.FromConfigs(w.cfg, w.sup)
	w.health = checks.NewHealth(w.cfg.Health.GracePeriod.D(), list)
	w.sources.add(collectors.HealthMetrics(w.health))
	publish := func(r checks.Report) {
		if w.checkMetrics != nil {
			r.Metrics = w.checkMetrics.Record(r)
		}
		w.health.Record(r)
		w.results.Publish(r)
	}
	c := &checksComponent{sched: checks.NewScheduler(list, publish, w.log), done: make(chan struct{})}
	ctx, c.cancel = context.WithCancel(ctx)
	// The checks' first runs wait for the programs' first forks
	// (startCheckRuns): a command check forks through the same reaper, and
	// every run takes CPU the main program's start needs.
	w.checkRuns = func() { c.sched.Start(ctx) }
	pw := programs.New(w.sup, w.health, w.results, programs.Options{Interval: w.cfg.Health.ProgramInterval.D(),
		Handlers: w.cfg.Sensu.Handlers, CgroupRoot: cgroupRoot})
	wctx, stopWatcher := context.WithCancel(ctx)
	c.stopWatcher = stopWatcher
	go func() {
		defer close(c.done)
		pw.Run(wctx)
	}()

	w.mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) {
		rep := w.health.Report()
		writeReport(rw, rep, rep.Healthy)
	})
	w.mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		rep := w.health.Report()
		writeReport(rw, rep, rep.Ready)
	})
	w.control.Handle("health", func(ctx context.Context, _ json.RawMessage) (any, error) {
		return w.health.Report(), nil
	})
	if len(list) > 0 {
		w.log.Info("checks scheduled", "checks", len(list))
	}
	return c, nil
}

// startCheckRuns starts the local checks' schedule, once the programs that
// could start at once have been forked.
func startCheckRuns(_ context.Context, w *wiring) (component, error) {
	if w.checkRuns != nil {
		w.checkRuns()
	}
	return nil, nil
}

func writeReport(rw http.ResponseWriter, rep checks.HealthReport, ok bool) {
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	if ok {
		rw.WriteHeader(http.StatusOK)
	} else {
		rw.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(rw)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
}

// Finish ends the program watcher once it has published the reports of the
// events already emitted (a fatal give-up that ended the supervisor):
// closeAll calls it before the shippers flush.
func (c *checksComponent) Finish(ctx context.Context) error {
	c.stopWatcher()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("checks: stopping the program watcher: %w", ctx.Err())
	}
}

func (c *checksComponent) Close(ctx context.Context) error {
	c.cancel()
	done := make(chan struct{})
	go func() { c.sched.Stop(); <-c.done; close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("checks: stopping: %w", ctx.Err())
	}
}

// cgroupRoot is where the container's own cgroup is mounted.
const cgroupRoot = "/sys/fs/cgroup"
