package checks

import (
	"context"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/stewardhq/steward/configs"
)

// Kinds of checks.
const (
	KindCommand = "command"
	KindHTTP    = "http"
	KindTCP     = "tcp"
	KindFile    = "file"
	// KindProgram is the implicit check of a supervised program's state.
	KindProgram = "program"
)

// Check is a probe run on a schedule.
type Check struct {
	Name string
	Kind string
	// Target says what is checked ("GET http://...", "tcp host:port", the
	// command line); Sensu shows it as the check's command.
	Target   string
	Probe    Probe
	Interval time.Duration
	Timeout  time.Duration
	// Splay delays each run by a random duration below it.
	Splay time.Duration
	// Health marks a check that is part of the container's health.
	Health bool
	// Handlers are the Sensu handlers of the check's events.
	Handlers []string
	// OutputMetricFormat and OutputMetricTags: the output is metrics
	// (collectors/checkmetrics), as Sensu Go's output_metric_format. The
	// map is shared and never modified.
	OutputMetricFormat string
	OutputMetricTags   map[string]string
}

// Report is the result of one run of a check, with what a consumer (the
// health state, a shipper) needs to know about the check.
type Report struct {
	Name     string
	Kind     string
	Target   string
	Health   bool
	Interval time.Duration
	Timeout  time.Duration
	Handlers []string
	// OutputMetricFormat and OutputMetricTags are the check's.
	OutputMetricFormat string
	OutputMetricTags   map[string]string
	// Metrics are the metrics parsed from the output (OutputMetricFormat),
	// for the check's Sensu event as sensu-agent attaches them.
	Metrics []MetricPoint
	Result
	// Program is set for the implicit checks of programs.
	Program *ProgramState
}

// FromConfigs builds the checks of a configuration, sorted by name.
func FromConfigs(cfg *configs.Config, ex Executor) []*Check {
	var out []*Check
	for _, name := range slices.Sorted(maps.Keys(cfg.Checks)) {
		c := cfg.Checks[name]
		p := c.Probe()
		kind := KindFile
		switch {
		case p.TCP != "":
			kind = KindTCP
		case p.HTTP != "":
			kind = KindHTTP
		case len(p.Command) > 0:
			kind = KindCommand
		}
		out = append(out, &Check{Name: name, Kind: kind, Target: Describe(p), Probe: FromConfig(p, ex),
			Interval: c.Interval.D(), Timeout: c.Timeout.D(), Splay: c.Splay.D(),
			Health: c.Health, Handlers: c.Handlers,
			OutputMetricFormat: c.OutputMetricFormat, OutputMetricTags: c.OutputMetricTags})
	}
	return out
}

// RunOnce runs the check now.
func (c *Check) RunOnce(ctx context.Context) Report {
	return Report{Name: c.Name, Kind: c.Kind, Target: c.Target, Health: c.Health,
		Interval: c.Interval, Timeout: c.Timeout, Handlers: c.Handlers,
		OutputMetricFormat: c.OutputMetricFormat, OutputMetricTags: c.OutputMetricTags, Result: c.Probe.Probe(ctx)}
}

// MetricPoint is one metric of a check's output.
type MetricPoint struct {
	Name      string
	Value     float64
	Timestamp int64 // Unix seconds
	Tags      []MetricTag
}

// MetricTag is one tag of a MetricPoint.
type MetricTag struct {
	Name, Value string
}

// Scheduler runs checks at their intervals and hands every report to
// publish. Runs of one check never overlap: a run that outlasts the
// interval delays the next.
type Scheduler struct {
	checks  []*Check
	publish func(Report)
	log     *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewScheduler prepares checks to run; publish must not block for long.
func NewScheduler(checks []*Check, publish func(Report), log *slog.Logger) *Scheduler {
	return &Scheduler{checks: checks, publish: publish, log: log}
}

// Start runs every check at once (after its splay), then every interval,
// until Stop.
func (s *Scheduler) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	for _, c := range s.checks {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.loop(ctx, c)
		}()
	}
}

func (s *Scheduler) loop(ctx context.Context, c *Check) {
	next := time.Now()
	for {
		wait := time.Until(next)
		if c.Splay > 0 {
			wait += rand.N(c.Splay)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		next = time.Now().Add(c.Interval)
		r := c.RunOnce(ctx)
		if ctx.Err() != nil {
			return // stopped mid-run: the result says nothing about the check
		}
		if r.Status != OK {
			s.log.Debug("check not ok", "check", c.Name, "status", r.Status.String(), "output", r.Output)
		}
		s.publish(r)
	}
}

// Stop ends the schedule and waits for runs in progress, whose commands
// are killed.
func (s *Scheduler) Stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}
