package programs

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/internal/testutil"
	"github.com/stewardhq/steward/stream"
	"github.com/stewardhq/steward/supervisor"
)

func TestJudge(t *testing.T) {
	cases := []struct {
		p        checks.ProgramState
		state    supervisor.State
		want     checks.Status
		out      string
		notReady string
	}{
		{checks.ProgramState{Name: "w", PID: 3}, supervisor.StateRunning, checks.OK, "w: running, pid 3", ""},
		{checks.ProgramState{Name: "w", LastExitCode: 1, Restarts: 2}, supervisor.StateBackoff, checks.Warning, "restarting after exit code 1 (2 restarts)", ""},
		{checks.ProgramState{Name: "w", LastExitCode: 137, LastSignal: 9, OOMKilled: true}, supervisor.StateFatal, checks.Critical, "OOM killer", ""},
		{checks.ProgramState{Name: "w", LastExitCode: 143, LastSignal: 15}, supervisor.StateFatal, checks.Critical, "SIGTERM", ""},
		{checks.ProgramState{Name: "w", LastExitCode: 0}, supervisor.StateExited, checks.OK, "exit code 0", ""},
		{checks.ProgramState{Name: "w", LastExitCode: 2}, supervisor.StateExited, checks.Critical, "exit code 2", ""},
		{checks.ProgramState{Name: "m", Oneshot: true}, supervisor.StateCompleted, checks.OK, "completed", ""},
		{checks.ProgramState{Name: "w"}, supervisor.StateStopping, checks.Warning, "stopping", "program w is stopping"},
		// Stopped on request: not counted against readiness, even with a
		// readiness probe (issue 10, defect 3).
		{checks.ProgramState{Name: "w", HasProbe: true}, supervisor.StateStopped, checks.Warning, "stopped", ""},
		{checks.ProgramState{Name: "w", HasProbe: true, PID: 4}, supervisor.StateRunning, checks.OK, "not ready yet", "program w is not ready"},
		{checks.ProgramState{Name: "a", Main: true}, supervisor.StateBackoff, checks.Warning, "restarting", "main program a is backoff"},
	}
	for _, c := range cases {
		st, out, notReady := judge(&c.p, c.state)
		if st != c.want || !strings.Contains(out, c.out) || notReady != c.notReady {
			t.Errorf("%+v %s: %s %q %q, want %s %q %q", c.p, c.state, st, out, notReady, c.want, c.out, c.notReady)
		}
	}
}

// fakeSupervisor serves a status the test sets and an event stream.
type fakeSupervisor struct {
	events *stream.Stream[supervisor.Event]
	mu     sync.Mutex
	status []supervisor.ProgramStatus
	ended  bool          // Status no longer answers
	asked  chan struct{} // if set, told of every Status call
}

func (f *fakeSupervisor) Status(context.Context) []supervisor.ProgramStatus {
	if f.asked != nil {
		f.asked <- struct{}{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended {
		return nil
	}
	return append([]supervisor.ProgramStatus{}, f.status...)
}

func (f *fakeSupervisor) Events() *stream.Stream[supervisor.Event] { return f.events }

func (f *fakeSupervisor) set(st ...supervisor.ProgramStatus) {
	f.mu.Lock()
	f.status = st
	f.mu.Unlock()
}

// TestWatcherForgetsRemovedProgram: once a reload's removed program is
// gone, its check leaves the health state and Sensu gets an OK report
// that resolves the last (issue 10, defect 2).
func TestWatcherForgetsRemovedProgram(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	sup := &fakeSupervisor{events: stream.New[supervisor.Event]("events", log)}
	app := supervisor.ProgramStatus{Name: "app", State: supervisor.StateRunning, PID: 2, Main: true, Ready: true, LastExitCode: -1}
	side := supervisor.ProgramStatus{Name: "side", State: supervisor.StateFatal, LastExitCode: 3}
	sup.set(app, side)
	health := checks.NewHealth(0, nil)
	results := stream.New[checks.Report]("results", log)
	sub := results.Subscribe("test", 100)
	w := New(sup, health, results, Options{Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	testutil.Eventually(t, "side fatal makes the container unhealthy", func() bool { return !health.Report().Healthy })
	sup.set(app)
	sup.events.Publish(supervisor.Event{Program: "side", Kind: supervisor.EventRemoved})
	testutil.Eventually(t, "side forgotten", func() bool {
		rep := health.Report()
		return rep.Healthy && rep.Ready && len(rep.Checks) == 1 && rep.Checks[0].Name == "program-app"
	})
	var last checks.Report
	testutil.Eventually(t, "an OK report for side", func() bool {
		for {
			select {
			case r := <-sub.C:
				if r.Name == "program-side" {
					last = *r
				}
			default:
				return last.Status == checks.OK
			}
		}
	})
	if !strings.Contains(last.Output, "removed from the configuration") {
		t.Fatalf("last report of side: %+v", last)
	}
}

// TestWatcherReportsFatalAfterSupervisorEnded: a critical program's fatal
// give-up ends the supervisor at once, so its status no longer answers when
// the watcher takes the event, and the watcher may be told to end with the
// event still queued; the "is fatal" report is sent all the same (it was
// lost, and TestSensuDeregistersOnFatal failed, under load).
func TestWatcherReportsFatalAfterSupervisorEnded(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, cancelled := range []bool{false, true} {
		for range 20 { // a canceled Run picks the event or the end at random
			sup := &fakeSupervisor{events: stream.New[supervisor.Event]("events", log), ended: true, asked: make(chan struct{}, 2)}
			results := stream.New[checks.Report]("results", log)
			sub := results.Subscribe("test", 100)
			w := New(sup, checks.NewHealth(0, nil), results, Options{Interval: time.Hour})
			sup.events.Publish(supervisor.Event{Program: "worker", Kind: supervisor.EventFatal, ExitCode: 3})
			ctx, cancel := context.WithCancel(context.Background())
			if cancelled {
				cancel()
			}
			done := make(chan struct{})
			go func() { defer close(done); w.Run(ctx) }()
			if !cancelled {
				<-sup.asked // Run's first status
				<-sup.asked // the event's
			}
			cancel()
			<-done
			var got checks.Report
			select {
			case r := <-sub.C:
				got = *r
			default:
			}
			if got.Name != "program-worker" || got.Status != checks.Critical || !strings.Contains(got.Output, "worker is fatal") {
				t.Fatalf("canceled %v: report %+v", cancelled, got)
			}
		}
	}
}
