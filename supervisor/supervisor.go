// Package supervisor is steward's PID-1 core: it starts programs in their
// own process groups, is the single reaper of every child, forwards signals,
// restarts with backoff, orders start-up by dependencies and readiness,
// stops in reverse order, and captures every line programs write.
package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/stream"
)

// Config is what the supervisor takes from steward's configuration; cmd/
// builds it from a configs snapshot. The program definitions are shared
// with that snapshot and, like it, never changed.
type Config struct {
	// Programs in the config's order (which breaks ties in start order).
	Programs []*configs.Program
	// ShutdownTimeout bounds the whole stop; what is still alive then is
	// killed.
	ShutdownTimeout time.Duration
	// SuccessExitCodes of the main program are reported as 0.
	SuccessExitCodes []int
	// OutputPrefix puts "[program] " before copied lines: auto (more than
	// one program), always, never.
	OutputPrefix     string
	OutputTimestamps bool
	// MaxLineBytes is the longest line kept whole.
	MaxLineBytes int
	// PdeathSignal is sent to steward when its parent dies (not as PID 1).
	PdeathSignal syscall.Signal
}

// Supervisor runs the programs of one configuration.
type Supervisor struct {
	cfg Config
	log *slog.Logger
	// shortages counts starts that failed for lack of resources.
	shortages atomic.Uint64
	reaper    *reaper
	env       []string // inherited environment, secrets removed
	devNull   *os.File
	out       *output
	prefix    bool
	// stdinTTY: fd 0 is our controlling terminal, so the main program can
	// be put in its foreground.
	stdinTTY bool
	sigs     *signals
	// inheritedIgnored are the signals ignored when steward started,
	// which programs must find ignored too.
	inheritedIgnored []syscall.Signal

	logs   *stream.Stream[LogRecord]
	events *stream.Stream[Event]

	programs []*program // in start order
	byName   map[string]*program
	// order is the config's order of the programs, the supervisor's own:
	// a reload replaces it as a whole, on the loop.
	order      []string
	dependents map[*program][]*program

	inbox    mailbox
	loopDone chan struct{}
	// started is closed once Run has forked the programs that could start
	// at once: what the first exec does not need starts after it.
	started  chan struct{}
	captures sync.WaitGroup

	onHangup func()

	shuttingDown  bool
	shutdownBegan chan struct{}
	shutdownStart time.Time
	deadline      *time.Timer
	exitCode      int
	exitSet       bool
	finished      bool
}

// Option changes a Supervisor made by New.
type Option func(*Supervisor)

// WithOutput sends the programs' captured lines to stdout and stderr
// instead of steward's own.
func WithOutput(stdout, stderr io.Writer) Option {
	return func(s *Supervisor) { s.out.stdout, s.out.stderr = stdout, stderr }
}

// WithHangup makes SIGHUP call reload instead of being forwarded (the
// reload_on_sighup setting). reload runs on its own goroutine and may use
// the supervisor's methods.
func WithHangup(reload func()) Option {
	return func(s *Supervisor) { s.onHangup = reload }
}

// WithEnviron sets the environment programs inherit (default os.Environ).
func WithEnviron(environ []string) Option {
	return func(s *Supervisor) { s.env = baseEnv(environ) }
}

// New prepares a supervisor for cfg. It starts the reaper at once and, when
// steward is not PID 1, makes it a child subreaper, so that orphans of the
// programs are reaped here rather than by the host's init.
func New(cfg Config, log *slog.Logger, opts ...Option) (*Supervisor, error) {
	devNull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	// Non-dumpable before any program starts: steward's memory and its
	// original environment (/proc/1/environ shows the block it was exec'd
	// with, secrets included, whatever steward unsets since) then need
	// CAP_SYS_PTRACE to read, which a container's programs lack (Docker
	// drops it), root or not. Programs are dumpable again: execve resets it.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("supervisor: make steward non-dumpable: %w", err)
	}
	if os.Getpid() != 1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return nil, fmt.Errorf("supervisor: become child subreaper: %w", err)
		}
	}
	s := &Supervisor{
		cfg:      cfg,
		log:      log,
		env:      baseEnv(os.Environ()),
		devNull:  devNull,
		out:      &output{stdout: os.Stdout, stderr: os.Stderr, timestamps: cfg.OutputTimestamps},
		logs:     stream.New[LogRecord]("logs", log),
		events:   stream.New[Event]("events", log),
		byName:   map[string]*program{},
		loopDone: make(chan struct{}),
		started:  make(chan struct{}),

		shutdownBegan: make(chan struct{}),
	}
	s.inbox.ready = make(chan struct{}, 1)
	for _, o := range opts {
		o(s)
	}
	if _, err := unix.IoctlGetInt(0, unix.TIOCGPGRP); err == nil {
		s.stdinTTY = true
	}
	switch cfg.OutputPrefix {
	case "always":
		s.prefix = true
	case "auto":
		s.prefix = len(cfg.Programs) > 1
	}
	for _, spec := range cfg.Programs {
		p := newProgram(spec, s.env)
		s.programs = append(s.programs, p)
		s.byName[p.name] = p
		s.order = append(s.order, p.name)
	}
	s.cfg.Programs = nil // the programs live in s.programs from here on
	s.reorder()
	s.inheritedIgnored = startIgnored()
	if s.reaper, err = processReaper(); err != nil {
		return nil, err
	}
	if s.sigs, err = catchSignals(isTerminal(0) || isTerminal(1) || isTerminal(2)); err != nil {
		return nil, err
	}
	if err := setPdeathSignal(cfg.PdeathSignal); err != nil {
		return nil, err
	}
	return s, nil
}

// startOrder sorts programs so each comes after its dependencies, ties kept
// in the config's order. The config has no cycles.
func startOrder(order []string, specs func(name string) *configs.Program) []string {
	var sorted []string
	placed := map[string]bool{}
	var place func(name string)
	place = func(name string) {
		if placed[name] {
			return
		}
		placed[name] = true
		if spec := specs(name); spec != nil {
			for _, dep := range spec.DependsOn {
				place(dep.Name)
			}
		}
		sorted = append(sorted, name)
	}
	for _, name := range order {
		place(name)
	}
	return sorted
}

// Logs is the stream of every line programs write.
func (s *Supervisor) Logs() *stream.Stream[LogRecord] { return s.logs }

// Events is the stream of program events.
func (s *Supervisor) Events() *stream.Stream[Event] { return s.events }

// Started is closed once Run has started the programs whose dependencies
// were met at once (the main program, in a plain `steward -- CMD`), or has
// begun to stop because one could not start. Components that no program
// needs before its exec (listeners, connections, collectors) start then,
// so that they do not delay it.
func (s *Supervisor) Started() <-chan struct{} { return s.started }

// ShuttingDown is closed when steward begins to stop every program (a stop
// of one program on request is not a shutdown).
func (s *Supervisor) ShuttingDown() <-chan struct{} { return s.shutdownBegan }

// StartShortages counts program starts that failed for lack of resources
// (file descriptors, processes, memory) and were tried again.
func (s *Supervisor) StartShortages() uint64 { return s.shortages.Load() }

// OrphansReaped counts processes reaped that were not programs or commands
// of a Supervisor (orphans reparented to steward).
func (s *Supervisor) OrphansReaped() uint64 { return s.reaper.orphans.Load() }

// Run starts the programs and supervises them until they have all stopped:
// because the main or a critical program ended, a signal (TERM, INT) asked
// for it, or ctx ended. It returns the exit code steward should exit with.
func (s *Supervisor) Run(ctx context.Context) int {
	defer close(s.loopDone)
	stop := context.AfterFunc(ctx, func() {
		s.post(func() { s.beginShutdown("shutdown requested", nil) })
	})
	defer stop()

	s.schedule()
	close(s.started)
	for !s.finished {
		select {
		case sig := <-s.sigs.c:
			s.onSignal(sig.(syscall.Signal))
		case sig := <-s.sigs.urg:
			s.onSignal(sig.(syscall.Signal))
		case <-s.inbox.ready:
			for _, f := range s.inbox.take() {
				f()
				if s.finished {
					break
				}
			}
		}
	}
	code := s.exitCode
	if slices.Contains(s.cfg.SuccessExitCodes, code) {
		code = 0
	}
	return code
}

// post queues f to run on the loop goroutine.
func (s *Supervisor) post(f func()) { s.inbox.post(f) }

// call runs f on the loop and waits for it; false if the loop has ended.
func (s *Supervisor) call(ctx context.Context, f func()) bool {
	done := make(chan struct{})
	s.post(func() { f(); close(done) })
	select {
	case <-done:
		return true
	case <-s.loopDone:
		return false
	case <-ctx.Done():
		return false
	}
}

// mailbox is an unbounded queue: the reaper and timers must never block on
// a busy loop.
type mailbox struct {
	mu    sync.Mutex
	queue []func()
	ready chan struct{}
}

func (m *mailbox) post(f func()) {
	m.mu.Lock()
	m.queue = append(m.queue, f)
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
}

func (m *mailbox) take() []func() {
	m.mu.Lock()
	q := m.queue
	m.queue = nil
	m.mu.Unlock()
	return q
}
