package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/stream"
	"github.com/stewardhq/steward/supervisor"
)

// checksComponent runs the local checks and keeps the implicit checks of
// the programs; both feed the health state and the results stream.
type checksComponent struct {
	sched  *checks.Scheduler
	cancel context.CancelFunc
	done   chan struct{}
}

func startChecks(ctx context.Context, w *wiring) (component, error) {
	list := checks.FromConfigs(w.cfg, w.sup)
	w.health = checks.NewHealth(w.cfg.Health.GracePeriod.D(), list)
	w.sources.add(healthMetrics(w.health))
	publish := func(r checks.Report) {
		if w.checkMetrics != nil {
			w.checkMetrics.Record(r)
		}
		w.health.Record(r)
		w.results.Publish(r)
	}
	c := &checksComponent{sched: checks.NewScheduler(list, publish, w.log), done: make(chan struct{})}
	ctx, c.cancel = context.WithCancel(ctx)
	c.sched.Start(ctx)
	pw := newProgramWatcher(w)
	go func() {
		defer close(c.done)
		pw.run(ctx)
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

// programWatcher turns the supervisor's status and events into the
// implicit checks of the programs. The health state gets every change; the
// results stream (Sensu) gets a CRITICAL event at each crash or fatal
// give-up, a report whenever a program's status changes, and every program
// again each health.program_interval.
type programWatcher struct {
	w        *wiring
	sub      *stream.Subscription[supervisor.Event]
	interval time.Duration

	mu         sync.Mutex
	readyNow   map[string]bool
	lastSignal map[string]syscall.Signal
	oomKilled  map[string]bool
	reason     map[string]string
	sentStatus map[string]checks.Status
	stopping   bool
	oomSeen    uint64
}

// cgroupRoot is where the container's own cgroup is mounted.
const cgroupRoot = "/sys/fs/cgroup"

// statusTimeout bounds a status snapshot once the supervisor runs.
const statusTimeout = 10 * time.Second

func newProgramWatcher(w *wiring) *programWatcher {
	pw := &programWatcher{w: w, interval: w.cfg.Health.ProgramInterval.D(),
		sub:      w.sup.Events().Subscribe("program checks", 1024),
		readyNow: map[string]bool{}, lastSignal: map[string]syscall.Signal{}, oomKilled: map[string]bool{},
		reason: map[string]string{}, sentStatus: map[string]checks.Status{}}
	pw.oomSeen, _ = collectors.OOMKills(cgroupRoot)
	return pw
}

func (pw *programWatcher) run(ctx context.Context) {
	defer pw.w.sup.Events().Unsubscribe(pw.sub)
	// Status answers once the supervisor runs, before any program starts.
	pw.update(ctx, nil, true, 0)
	tick := time.NewTicker(pw.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-pw.sub.C:
			if !ok {
				return
			}
			pw.update(ctx, &ev, false, statusTimeout)
		case <-tick.C:
			pw.update(ctx, nil, true, statusTimeout)
		}
	}
}

// update records an event's details, then reports every program from a
// fresh status snapshot.
func (pw *programWatcher) update(ctx context.Context, ev *supervisor.Event, resend bool, timeout time.Duration) {
	var crash *checks.Report
	if ev != nil {
		crash = pw.note(ev)
	}
	sctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		sctx, cancel = context.WithTimeout(ctx, timeout)
	}
	statuses := pw.w.sup.Status(sctx)
	cancel()
	pw.mu.Lock()
	defer pw.mu.Unlock()
	for _, st := range statuses {
		r := pw.report(st)
		pw.w.health.Record(r)
		switch {
		case pw.stopping:
			// The container is stopping and its entity about to go.
		case crash != nil && crash.Name == r.Name:
			crash.Program = r.Program
			pw.w.results.Publish(*crash)
			pw.sentStatus[r.Name] = crash.Status
		case resend || pw.sentStatus[r.Name] != r.Status:
			if _, seen := pw.sentStatus[r.Name]; seen || resend || r.Status != checks.OK {
				pw.w.results.Publish(r)
			}
			pw.sentStatus[r.Name] = r.Status
		}
	}
}

// note keeps what an event says that the status does not, and returns the
// CRITICAL report of a crash or a fatal give-up.
func (pw *programWatcher) note(ev *supervisor.Event) *checks.Report {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	name := ev.Program
	switch ev.Kind {
	case supervisor.EventStarted:
		pw.readyNow[name] = false
		pw.lastSignal[name], pw.oomKilled[name], pw.reason[name] = 0, false, ""
	case supervisor.EventReady:
		pw.readyNow[name] = true
	case supervisor.EventShutdown:
		pw.stopping = true
	case supervisor.EventExited:
		pw.readyNow[name] = false
		pw.lastSignal[name], pw.reason[name] = ev.Signal, ev.Message
		if ev.Signal == syscall.SIGKILL {
			if n, ok := collectors.OOMKills(cgroupRoot); ok && n > pw.oomSeen {
				pw.oomSeen = n
				pw.oomKilled[name] = true
			}
		}
		if pw.stopping || ev.ExitCode == 0 {
			return nil
		}
		what := fmt.Sprintf("exited with code %d", ev.ExitCode)
		switch {
		case pw.oomKilled[name]:
			what = "was killed by the kernel's OOM killer"
		case ev.Signal != 0:
			what = "was killed by " + signalName(ev.Signal)
		}
		if ev.Message != "" {
			what += ": " + ev.Message
		}
		return pw.crashReport(name, checks.Critical, name+" "+what)
	case supervisor.EventFatal:
		if pw.stopping {
			return nil
		}
		out := name + " is fatal"
		if ev.Message != "" {
			out += ": " + ev.Message
		}
		pw.reason[name] = ev.Message
		return pw.crashReport(name, checks.Critical, out)
	}
	return nil
}

func (pw *programWatcher) crashReport(name string, status checks.Status, output string) *checks.Report {
	return &checks.Report{Name: checks.ProgramCheckName(name), Kind: checks.KindProgram, Target: "program " + name,
		Health: true, Interval: pw.interval, Handlers: pw.w.cfg.Sensu.Handlers,
		Result: checks.Result{Status: status, Output: output, Executed: time.Now()}}
}

func (pw *programWatcher) report(st supervisor.ProgramStatus) checks.Report {
	// The definition comes with the status: a reload may have replaced it.
	ps := &checks.ProgramState{Name: st.Name, State: st.State.String(), PID: st.PID, Restarts: st.Restarts,
		LastExitCode: st.LastExitCode, Main: st.Main, Oneshot: st.Oneshot,
		HasProbe: st.HasProbe, LastSignal: pw.lastSignal[st.Name],
		OOMKilled: pw.oomKilled[st.Name], Reason: pw.reason[st.Name]}
	ps.Ready = pw.readyNow[st.Name]
	if _, seen := pw.readyNow[st.Name]; !seen {
		ps.Ready = st.Ready
	}
	status, out := ps.Status()
	return checks.Report{Name: checks.ProgramCheckName(st.Name), Kind: checks.KindProgram, Target: "program " + st.Name,
		Health: true, Interval: pw.interval, Handlers: pw.w.cfg.Sensu.Handlers, Program: ps,
		Result: checks.Result{Status: status, Output: out, Executed: time.Now()}}
}

func signalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return "signal " + strconv.Itoa(int(sig))
}
