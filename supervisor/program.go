package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/internal/backoff"
)

// State is where a program is in its life.
type State int

// Program states.
const (
	StateWaiting   State = iota // for its dependencies
	StateStarting               // spawned, younger than start_secs
	StateRunning                // alive for start_secs
	StateBackoff                // exited, restart scheduled
	StateStopping               // stop signal sent
	StateCompleted              // oneshot exited successfully
	StateExited                 // ended and not restarting
	StateFatal                  // too many failed starts
	StateStopped                // stopped on request, or never started before shutdown
)

var stateNames = [...]string{"waiting", "starting", "running", "backoff", "stopping", "completed", "exited", "fatal", "stopped"}

func (st State) String() string { return stateNames[st] }

// program is the loop's record of one configured program. Only the loop
// goroutine touches it.
type program struct {
	spec     *configs.Program
	name     string
	env      []string
	rewrites map[syscall.Signal]configs.SignalRewrite

	state     State
	gen       int // incarnation; stale timers and probes compare it
	pid       int // 0 when not running
	pgid      int // of the last incarnation, kept after exit for group kills
	startedAt time.Time
	reached   map[string]bool // conditions met at least once
	readyNow  bool            // this incarnation passed its readiness

	failures     int // consecutive failed starts
	shortages    int // consecutive starts that failed for lack of resources
	restarts     int
	last         *ExitStatus
	readyFailed  bool // the readiness probe gave up on this incarnation
	stopSent     bool
	stopOverride syscall.Signal
	groupAlive   bool // leader gone, group members still running

	// A stop on request (control, reload): what follows once it is down,
	// the definition to restart with, and whether the program is leaving.
	then     afterStop
	next     *configs.Program
	retiring bool

	timer       *time.Timer // start_secs, restart or group poll
	killTimer   *time.Timer
	probeCancel context.CancelFunc
}

func newProgram(spec *configs.Program, env []string) *program {
	return &program{
		spec:     spec,
		name:     spec.Name,
		env:      programEnv(env, spec),
		rewrites: spec.SignalRewrites(),
		reached:  map[string]bool{},
	}
}

func (p *program) alive() bool { return p.pid != 0 || p.groupAlive }

// rewrite maps a forwarded signal through the program's rewrite table;
// ok is false when the signal is dropped.
func (p *program) rewrite(sig syscall.Signal) (syscall.Signal, bool) {
	r, found := p.rewrites[sig]
	switch {
	case !found:
		return sig, true
	case r.Drop:
		return 0, false
	default:
		return r.Signal, true
	}
}

func (p *program) stopTimers() {
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	if p.killTimer != nil {
		p.killTimer.Stop()
		p.killTimer = nil
	}
	if p.probeCancel != nil {
		p.probeCancel()
		p.probeCancel = nil
	}
}

// after runs f on the loop after d, unless the program has moved on to
// another incarnation by then.
func (s *Supervisor) after(p *program, d time.Duration, f func()) *time.Timer {
	gen := p.gen
	return time.AfterFunc(d, func() {
		s.post(func() {
			if p.gen == gen {
				f()
			}
		})
	})
}

// schedule starts every waiting program whose dependencies are met, and
// gives up on those whose dependencies never will be. Of the programs that
// can start now, the main program is forked first: the others have no
// order among them (none depends on another), and each fork waits for
// its child's exec, so a container's app would otherwise start only after
// every sidecar listed before it had exec'd.
func (s *Supervisor) schedule() {
	for _, main := range []bool{true, false} {
		for _, p := range s.programs {
			if s.shuttingDown {
				return
			}
			if p.spec.Main == main && p.state == StateWaiting {
				s.scheduleProgram(p)
			}
		}
	}
	if !s.shuttingDown {
		s.checkIdle()
	}
}

// scheduleProgram starts p if its dependencies are met, or gives up on it
// when they never will be.
func (s *Supervisor) scheduleProgram(p *program) {
	met, blocker := s.dependencies(p)
	switch {
	case blocker != nil:
		code := 1
		if blocker.last != nil && blocker.last.Code() != 0 {
			code = blocker.last.Code()
		}
		p.state = StateFatal
		s.emit(Event{Program: p.name, Kind: EventFatal, ExitCode: code,
			Message: fmt.Sprintf("dependency %s ended (%s) and will never be met", blocker.name, blocker.state)})
		if p.spec.Main || p.spec.OnFatal == configs.OnFatalStop {
			s.beginShutdown(p.name+" cannot start", &code)
		}
	case met:
		s.start(p)
	}
}

// dependencies reports whether all of p's dependencies are met, or which
// one never will be.
func (s *Supervisor) dependencies(p *program) (met bool, blocker *program) {
	met = true
	for _, dep := range p.spec.DependsOn {
		d := s.byName[dep.Name]
		if d.reached[dep.Condition] {
			continue
		}
		met = false
		if d.state == StateExited || d.state == StateFatal || d.state == StateCompleted {
			return false, d
		}
	}
	return met, nil
}

// checkIdle ends steward when nothing is left that could run.
func (s *Supervisor) checkIdle() {
	code := 0
	for _, p := range s.programs {
		switch p.state {
		case StateCompleted:
		case StateExited, StateFatal:
			if p.last != nil && p.last.Code() != 0 {
				code = p.last.Code()
			}
		default:
			return
		}
	}
	s.beginShutdown("no program left to run", &code)
}

// start spawns a new incarnation of p.
func (s *Supervisor) start(p *program) {
	if p.gen > 0 {
		s.endEscaped(p)
	}
	p.gen++
	gen := p.gen
	p.readyFailed, p.stopSent, p.groupAlive, p.readyNow = false, false, false, false
	spec := procSpec{
		argv:   p.spec.Command,
		env:    p.env,
		dir:    p.spec.Directory,
		cred:   p.spec.Cred,
		umask:  p.spec.Umask,
		limits: p.spec.Rlimits,
	}
	stdio, err := s.openStdio(p)
	if err != nil {
		s.onExit(p, gen, ExitStatus{StartErr: err, code: ExitCannotExecute})
		return
	}
	spec.files = stdio.files
	spec.foreground = stdio.foreground
	pid, err := s.reaper.start(func() (int, error) { return s.fork(spec) },
		func(st ExitStatus) { s.post(func() { s.onExit(p, gen, st) }) })
	stdio.closeChildEnds()
	if err != nil {
		stdio.closeParentEnds()
		code := ExitCannotExecute
		var se *startError
		if errors.As(err, &se) {
			code = se.code
		}
		s.onExit(p, gen, ExitStatus{StartErr: err, code: code})
		return
	}
	p.pid, p.pgid = pid, pid
	p.startedAt = time.Now()
	p.state = StateStarting
	p.reached[configs.CondStarted] = true
	s.startCapture(p, pid, stdio)
	s.emit(Event{Program: p.name, Kind: EventStarted, PID: pid, Restarts: p.restarts})
	if p.spec.Kind == configs.KindService {
		if d := p.spec.StartSecs.D(); d > 0 {
			p.timer = s.after(p, d, func() { s.onRunning(p) })
		} else {
			s.onRunning(p)
		}
	}
	if p.spec.Ready != nil {
		s.probeReadiness(p)
	}
	s.schedule()
}

// onRunning: the program has lived start_secs, so this start succeeded.
func (s *Supervisor) onRunning(p *program) {
	if p.state != StateStarting {
		return
	}
	p.state = StateRunning
	p.failures = 0
	if p.spec.Ready == nil {
		p.readyNow = true
		if !p.reached[configs.CondReady] {
			p.reached[configs.CondReady] = true
			s.schedule()
		}
	}
}

// probeReadiness runs the program's readiness probe until it passes, the
// incarnation ends, or max_wait runs out.
func (s *Supervisor) probeReadiness(p *program) {
	ctx, cancel := context.WithCancel(context.Background())
	p.probeCancel = cancel
	probe := checks.FromConfig(p.spec.Ready, s)
	interval, maxWait := p.spec.Ready.Interval.D(), p.spec.Ready.MaxWait.D()
	gen := p.gen
	go func() {
		start := time.Now()
		for {
			res := probe.Probe(ctx)
			if ctx.Err() != nil {
				return
			}
			if res.Status == checks.OK {
				s.post(func() { s.onReady(p, gen, true, res.Output) })
				return
			}
			if maxWait > 0 && time.Since(start) >= maxWait {
				s.post(func() { s.onReady(p, gen, false, res.Output) })
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval):
			}
		}
	}()
}

func (s *Supervisor) onReady(p *program, gen int, ok bool, output string) {
	if gen != p.gen || p.pid == 0 || s.shuttingDown {
		return
	}
	p.probeCancel = nil
	if ok {
		p.readyNow = true
		p.reached[configs.CondReady] = true
		s.emit(Event{Program: p.name, Kind: EventReady, PID: p.pid})
		s.schedule()
		return
	}
	// Not ready in time: this start failed. Stop it; its exit is then
	// counted as a failed start.
	s.log.Error("program not ready in time", "program", p.name, "max_wait", p.spec.Ready.MaxWait.D(), "probe", output)
	p.readyFailed = true
	s.signalProgram(p, p.spec.StopSignal.S())
	p.killTimer = s.after(p, p.spec.StopTimeout.D(), func() { s.kill(p) })
}

// onExit handles the end of an incarnation, or its failure to start.
func (s *Supervisor) onExit(p *program, gen int, st ExitStatus) {
	if gen != p.gen {
		return
	}
	wasState := p.state
	p.pid = 0
	p.readyNow = false
	p.last = &st
	p.stopTimers()
	code := st.Code()
	ev := Event{Program: p.name, Kind: EventExited, PID: st.PID, ExitCode: code, Signal: st.Signal(), Restarts: p.restarts}
	if st.StartErr != nil {
		ev.Message = st.StartErr.Error()
	}
	s.emit(ev)
	if !s.shuttingDown && wasState != StateStopping && resourceShortage(st.StartErr) {
		s.retryShortage(p, st.StartErr)
		return
	}
	// A main program restarted on request has not ended the container.
	if p.spec.Main && !s.exitSet && (s.shuttingDown || wasState != StateStopping) {
		s.exitCode, s.exitSet = code, true
	}
	if s.shuttingDown || wasState == StateStopping {
		s.stopped(p)
		return
	}

	oneshot := p.spec.Kind == configs.KindOneshot
	if oneshot && code == 0 {
		p.state = StateCompleted
		for _, c := range []string{configs.CondStarted, configs.CondReady, configs.CondCompleted} {
			p.reached[c] = true
		}
		s.emit(Event{Program: p.name, Kind: EventCompleted, PID: st.PID})
		if p.spec.Main {
			s.beginShutdown("main program completed", &code)
			return
		}
		s.schedule()
		return
	}

	p.shortages = 0
	failedStart := oneshot || wasState == StateStarting || p.readyFailed || st.StartErr != nil
	if failedStart {
		p.failures++
	} else {
		p.failures = 0
	}
	restart := p.spec.Restart == configs.RestartAlways && !oneshot ||
		p.spec.Restart != configs.RestartNever && code != 0
	switch {
	case !restart:
		p.state = StateExited
		if p.spec.Main || p.spec.Critical || oneshot {
			s.beginShutdown(fmt.Sprintf("%s exited with code %d", p.name, code), &code)
			return
		}
	case failedStart && p.failures > p.spec.StartRetries:
		p.state = StateFatal
		s.emit(Event{Program: p.name, Kind: EventFatal, ExitCode: code, Signal: st.Signal(),
			Message: fmt.Sprintf("%d failed starts in a row", p.failures)})
		if p.spec.Main || p.spec.OnFatal == configs.OnFatalStop {
			s.beginShutdown(fmt.Sprintf("%s is fatal", p.name), &code)
			return
		}
	default:
		var delay time.Duration
		if failedStart {
			delay = backoff.Delay(p.spec.BackoffInitial.D(), p.spec.BackoffMax.D(), p.failures)
		}
		p.state = StateBackoff
		p.restarts++
		s.emit(Event{Program: p.name, Kind: EventRestarting, Delay: delay, Restarts: p.restarts})
		s.startAfter(p, delay)
	}
	s.schedule()
}

// startAfter starts p again once delay has passed, unless it left backoff
// (stopped by hand) or steward began stopping meanwhile.
func (s *Supervisor) startAfter(p *program, delay time.Duration) {
	p.timer = s.after(p, delay, func() {
		if p.state == StateBackoff && !s.shuttingDown {
			s.start(p)
		}
	})
}

// resourceShortage tells a start that failed because steward or the
// machine ran out of something (file descriptors: pipe2 or fork with
// EMFILE/ENFILE; processes or memory: EAGAIN, ENOMEM) from one that failed
// because of the program. The program is not at fault and the shortage
// passes (a burst of connections, a leak elsewhere that gets killed), so it
// never counts toward start_retries and never makes the program fatal.
func resourceShortage(err error) bool {
	return err != nil && (errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.ENOMEM))
}

// shortageRetryMin is the first delay after a start failed for lack of
// resources: what ran out is rarely back within milliseconds.
const shortageRetryMin = time.Second

// retryShortage schedules another start of p after a start that failed
// for lack of resources, with backoff, whatever its restart policy: p never
// ran.
func (s *Supervisor) retryShortage(p *program, err error) {
	p.shortages++
	s.shortages.Add(1)
	delay := backoff.Delay(max(p.spec.BackoffInitial.D(), shortageRetryMin), max(p.spec.BackoffMax.D(), shortageRetryMin), p.shortages)
	s.log.Warn("cannot start for lack of resources; trying again", "program", p.name, "err", err,
		"delay", delay.String(), "attempts", p.shortages)
	p.state = StateBackoff
	s.emit(Event{Program: p.name, Kind: EventRestarting, Delay: delay, Restarts: p.restarts, Message: err.Error()})
	s.startAfter(p, delay)
	s.schedule()
}

// kill sends SIGKILL to the program's group once its stop timeout is over.
func (s *Supervisor) kill(p *program) {
	if !p.alive() {
		return
	}
	s.emit(Event{Program: p.name, Kind: EventKilled, PID: p.pid,
		Message: fmt.Sprintf("still running %s after %s", signalName(s.stopSignal(p)), p.spec.StopTimeout.D())})
	s.signalGroup(p, syscall.SIGKILL)
}

func (s *Supervisor) stopSignal(p *program) syscall.Signal {
	if p.stopOverride != 0 {
		return p.stopOverride
	}
	return p.spec.StopSignal.S()
}

// groupExists reports whether any process is left in process group pgid.
func groupExists(pgid int) bool {
	return pgid > 0 && unix.Kill(-pgid, 0) == nil
}

// ProgramStatus is a snapshot of one program for status commands and
// metrics.
type ProgramStatus struct {
	Name      string
	State     State
	PID       int
	StartedAt time.Time
	Restarts  int
	// LastExitCode is -1 before the first exit.
	LastExitCode int
	// Ready: this run passed its readiness probe (or, without one, ran
	// start_secs).
	Ready bool
	Main  bool
	// Oneshot and HasProbe come from the definition the program runs
	// with, which a reload may have replaced.
	Oneshot, HasProbe bool
}

// Status returns a snapshot of every program, or nil once Run has ended.
func (s *Supervisor) Status(ctx context.Context) []ProgramStatus {
	var out []ProgramStatus
	s.call(ctx, func() {
		for _, p := range s.programs {
			ps := ProgramStatus{Name: p.name, State: p.state, PID: p.pid, Restarts: p.restarts,
				LastExitCode: -1, Ready: p.readyNow, Main: p.spec.Main,
				Oneshot: p.spec.Kind == configs.KindOneshot, HasProbe: p.spec.Ready != nil}
			if p.pid != 0 {
				ps.StartedAt = p.startedAt
			}
			if p.last != nil {
				ps.LastExitCode = p.last.Code()
			}
			out = append(out, ps)
		}
	})
	return out
}

// stdio holds the descriptors of one incarnation.
type stdio struct {
	files          []uintptr
	foreground     bool
	childEnds      []*os.File // closed in steward once the child has them
	stdout, stderr *os.File   // read ends of the pipes, nil when inherited
}

func (s *Supervisor) openStdio(p *program) (*stdio, error) {
	mode := p.spec.Stdio
	if mode == "" {
		mode = configs.StdioCapture
		if p.spec.Main && s.stdinTTY {
			// An interactive main program needs the terminal itself:
			// shells only prompt when stdin and stderr are terminals.
			mode = configs.StdioInherit
		}
	}
	st := &stdio{files: []uintptr{s.devNull.Fd(), 1, 2}}
	if p.spec.Main {
		st.files[0] = 0
		st.foreground = s.stdinTTY
	}
	if mode == configs.StdioInherit {
		return st, nil
	}
	for i := 1; i <= 2; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			st.closeChildEnds()
			st.closeParentEnds()
			return nil, fmt.Errorf("supervisor: pipe: %w", err)
		}
		// Fd puts the write end in blocking mode, which is what programs
		// expect of their stdout.
		st.files[i] = w.Fd()
		st.childEnds = append(st.childEnds, w)
		if i == 1 {
			st.stdout = r
		} else {
			st.stderr = r
		}
	}
	return st, nil
}

func (st *stdio) closeChildEnds() {
	for _, f := range st.childEnds {
		f.Close()
	}
	st.childEnds = nil
}

func (st *stdio) closeParentEnds() {
	for _, f := range []*os.File{st.stdout, st.stderr} {
		if f != nil {
			f.Close()
		}
	}
}

// startCapture copies the incarnation's pipes until their writers are all
// gone, which may be after the program itself if it left children behind.
func (s *Supervisor) startCapture(p *program, pid int, st *stdio) {
	var prefix []byte
	if s.prefix {
		prefix = []byte("[" + p.name + "] ")
	}
	for _, pipe := range []struct {
		r      *os.File
		source string
		dst    io.Writer
	}{{st.stdout, "stdout", s.out.stdout}, {st.stderr, "stderr", s.out.stderr}} {
		if pipe.r == nil {
			continue
		}
		c := &capture{program: p.name, pid: pid, source: pipe.source, prefix: prefix, dst: pipe.dst, out: s.out, records: s.logs}
		s.captures.Add(1)
		go func(r *os.File) {
			defer s.captures.Done()
			defer r.Close()
			if err := c.run(r, s.cfg.MaxLineBytes); err != nil {
				s.log.Warn("reading program output", "program", p.name, "source", c.source, "err", err)
			}
		}(pipe.r)
	}
}
