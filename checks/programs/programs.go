// Package programs is the implicit check of every program, "program-NAME":
// it turns the supervisor's events and status snapshots into check reports
// for the health state (/healthz, /readyz, `steward health`) and for the
// results stream (Sensu, metrics). It judges the supervisor's typed states
// (judge.go); checks.Health only reads the verdict.
//
// The health state gets every change; the results stream gets a CRITICAL
// report at each crash or fatal give-up, a report whenever a program's
// status changes, and every program again each Options.Interval. A program
// a reload removed is forgotten once it is gone: its last report is dropped
// from the health state, and Sensu gets an OK report that resolves what it
// showed last.
package programs

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/stream"
	"github.com/stewardhq/steward/supervisor"
)

// Supervisor is what the watcher reads: status snapshots and events.
type Supervisor interface {
	Status(ctx context.Context) []supervisor.ProgramStatus
	Events() *stream.Stream[supervisor.Event]
}

// Options are the watcher's settings.
type Options struct {
	// Interval is how often every program is reported again
	// (health.program_interval).
	Interval time.Duration
	// Handlers are the Sensu handlers of the reports.
	Handlers []string
	// CgroupRoot is where the container's own cgroup is mounted
	// ("/sys/fs/cgroup"), to tell an OOM kill from another SIGKILL; ""
	// reads none.
	CgroupRoot string
	// StatusTimeout bounds a status snapshot once the supervisor runs;
	// 10 s when zero.
	StatusTimeout time.Duration
}

// Watcher keeps the program checks.
type Watcher struct {
	sup     Supervisor
	health  *checks.Health
	results *stream.Stream[checks.Report]
	o       Options
	sub     *stream.Subscription[supervisor.Event]

	// Only Run's goroutine touches these.
	incarnation map[string]*incarnation
	recorded    map[string]bool // programs in the health state
	sentStatus  map[string]checks.Status
	stopping    bool
	oomSeen     uint64
}

// incarnation is what the events say about a program's current run that
// its status does not.
type incarnation struct {
	ready      *bool // nil: take the status's
	lastSignal syscall.Signal
	oomKilled  bool
	reason     string
}

// New subscribes to the supervisor's events at once, so that none is
// missed between now and Run.
func New(sup Supervisor, health *checks.Health, results *stream.Stream[checks.Report], o Options) *Watcher {
	if o.StatusTimeout <= 0 {
		o.StatusTimeout = 10 * time.Second
	}
	w := &Watcher{sup: sup, health: health, results: results, o: o,
		sub:         sup.Events().Subscribe("program checks", 1024),
		incarnation: map[string]*incarnation{}, recorded: map[string]bool{}, sentStatus: map[string]checks.Status{}}
	w.oomSeen, _ = w.oomKills()
	return w
}

func (w *Watcher) oomKills() (uint64, bool) {
	if w.o.CgroupRoot == "" {
		return 0, false
	}
	return collectors.OOMKills(w.o.CgroupRoot)
}

// Run keeps the checks until ctx ends or the event stream closes.
func (w *Watcher) Run(ctx context.Context) {
	defer w.sup.Events().Unsubscribe(w.sub)
	// Status answers once the supervisor runs, before any program starts.
	w.update(ctx, nil, true, 0)
	tick := time.NewTicker(w.o.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			w.drain()
			return
		case ev, ok := <-w.sub.C:
			if !ok {
				return
			}
			w.update(ctx, ev, false, w.o.StatusTimeout)
		case <-tick.C:
			w.update(ctx, nil, true, w.o.StatusTimeout)
		}
	}
}

// update records an event's details, then reports every program from a
// fresh status snapshot, and forgets the programs no longer in it.
func (w *Watcher) update(ctx context.Context, ev *supervisor.Event, resend bool, timeout time.Duration) {
	var crash *checks.Report
	if ev != nil {
		crash = w.note(ev)
	}
	sctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		sctx, cancel = context.WithTimeout(ctx, timeout)
	}
	statuses := w.sup.Status(sctx)
	cancel()
	if statuses == nil {
		// No answer: the supervisor has ended, or is stuck. The crash
		// still goes out: a fatal give-up ends the supervisor at once.
		w.publishCrash(crash)
		return
	}
	present := make(map[string]bool, len(statuses))
	for _, st := range statuses {
		present[st.Name] = true
		r := w.report(st)
		w.health.Record(r)
		w.recorded[st.Name] = true
		switch {
		case w.stopping:
			// The container is stopping and its entity about to go.
		case crash != nil && crash.Name == r.Name:
			crash.Program = r.Program
			w.results.Publish(*crash)
			w.sentStatus[st.Name] = crash.Status
		case resend || w.sentStatus[st.Name] != r.Status:
			if _, seen := w.sentStatus[st.Name]; seen || resend || r.Status != checks.OK {
				w.results.Publish(r)
			}
			w.sentStatus[st.Name] = r.Status
		}
	}
	for name := range w.recorded {
		if !present[name] {
			w.forget(name)
		}
	}
}

// drain reports the crashes of the events already emitted when Run is told
// to end: the last moments of a stop (a program's fatal give-up that ended
// it) still reach Sensu, which steward flushes after the checks.
func (w *Watcher) drain() {
	for {
		select {
		case ev, ok := <-w.sub.C:
			if !ok {
				return
			}
			w.publishCrash(w.note(ev))
		default:
			return
		}
	}
}

// publishCrash sends a crash report without a status snapshot, once the
// supervisor no longer answers.
func (w *Watcher) publishCrash(crash *checks.Report) {
	if crash != nil {
		w.results.Publish(*crash)
	}
}

// forget drops a program a reload removed, once it is gone: from the
// health state, and from Sensu's view with an OK report when the last one
// it got was not OK.
func (w *Watcher) forget(name string) {
	last, sent := w.sentStatus[name]
	delete(w.recorded, name)
	delete(w.sentStatus, name)
	delete(w.incarnation, name)
	w.health.Forget(checks.ProgramCheckName(name))
	if sent && last != checks.OK && !w.stopping {
		w.results.Publish(*w.crashReport(name, checks.OK, name+" was removed from the configuration"))
	}
}

func (w *Watcher) inc(name string) *incarnation {
	in := w.incarnation[name]
	if in == nil {
		in = &incarnation{}
		w.incarnation[name] = in
	}
	return in
}

// note keeps what an event says that the status does not, and returns the
// CRITICAL report of a crash or a fatal give-up.
func (w *Watcher) note(ev *supervisor.Event) *checks.Report {
	name := ev.Program
	switch ev.Kind {
	case supervisor.EventStarted:
		ready := false
		*w.inc(name) = incarnation{ready: &ready}
	case supervisor.EventReady:
		ready := true
		w.inc(name).ready = &ready
	case supervisor.EventShutdown:
		w.stopping = true
	case supervisor.EventExited:
		in := w.inc(name)
		ready := false
		in.ready, in.lastSignal, in.reason = &ready, ev.Signal, ev.Message
		if ev.Signal == syscall.SIGKILL {
			if n, ok := w.oomKills(); ok && n > w.oomSeen {
				w.oomSeen = n
				in.oomKilled = true
			}
		}
		if w.stopping || ev.ExitCode == 0 {
			return nil
		}
		what := fmt.Sprintf("exited with code %d", ev.ExitCode)
		switch {
		case in.oomKilled:
			what = "was killed by the kernel's OOM killer"
		case ev.Signal != 0:
			what = "was killed by " + configs.SignalName(ev.Signal)
		}
		if ev.Message != "" {
			what += ": " + ev.Message
		}
		return w.crashReport(name, checks.Critical, name+" "+what)
	case supervisor.EventFatal:
		if w.stopping {
			return nil
		}
		out := name + " is fatal"
		if ev.Message != "" {
			out += ": " + ev.Message
		}
		w.inc(name).reason = ev.Message
		return w.crashReport(name, checks.Critical, out)
	}
	return nil
}

func (w *Watcher) crashReport(name string, status checks.Status, output string) *checks.Report {
	return &checks.Report{Name: checks.ProgramCheckName(name), Kind: checks.KindProgram, Target: "program " + name,
		Health: true, Interval: w.o.Interval, Handlers: w.o.Handlers,
		Result: checks.Result{Status: status, Output: output, Executed: time.Now()}}
}

func (w *Watcher) report(st supervisor.ProgramStatus) checks.Report {
	in := w.incarnation[st.Name]
	if in == nil {
		in = &incarnation{}
	}
	// The definition comes with the status: a reload may have replaced it.
	ps := &checks.ProgramState{Name: st.Name, State: st.State.String(), PID: st.PID, Restarts: st.Restarts,
		LastExitCode: st.LastExitCode, Main: st.Main, Oneshot: st.Oneshot, HasProbe: st.HasProbe,
		Ready: st.Ready, LastSignal: in.lastSignal, OOMKilled: in.oomKilled, Reason: in.reason}
	if in.ready != nil {
		ps.Ready = *in.ready
	}
	status, out, notReady := judge(ps, st.State)
	ps.NotReady = notReady
	return checks.Report{Name: checks.ProgramCheckName(st.Name), Kind: checks.KindProgram, Target: "program " + st.Name,
		Health: true, Interval: w.o.Interval, Handlers: w.o.Handlers, Program: ps,
		Result: checks.Result{Status: status, Output: out, Executed: time.Now()}}
}
