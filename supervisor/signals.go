package supervisor

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/stewardhq/steward/configs"
)

// What steward does with each signal it receives (the README's table):
//
//   - KILL and STOP cannot be caught.
//   - CHLD is the reaper's (reaper.go) and is never forwarded.
//   - TERM and INT start the shutdown, unless every program that takes
//     forwarded signals drops them; forwarded, after rewriting, they are
//     those programs' stop signal.
//   - HUP reloads the configuration when reload_on_sighup is set.
//   - TTIN and TTOU are ignored by steward when it has a terminal: steward
//     writes to it from a background process group (the main program owns
//     the foreground), and a caught TTOU would make the kernel restart each
//     such write forever (tini's configure_signals does the same).
//   - Every other signal is caught and forwarded to the programs that take
//     forwarded signals, the fault signals included: a SEGV, BUS, FPE, ILL,
//     TRAP, SYS or ABRT sent with kill(2) is not a fault, and the Go runtime
//     hands such signals to os/signal (si_code SI_USER) while a real fault in
//     steward still crashes it with a stack dump, as it should.
//   - URG is forwarded too, except the URGs the Go runtime sends its own
//     threads to preempt goroutines (rawsig.go).
//   - PIPE is forwarded, except a PIPE raised by steward's own writes; 32
//     and 33 belong to the C library and the Go runtime and are ignored
//     (rawsig.go).

// signals are the channels steward's loop receives signals on.
type signals struct {
	c   chan os.Signal
	urg chan os.Signal
	// jobControlIgnored: TTIN and TTOU are ignored (steward has a
	// terminal), so programs must be started with them reset.
	jobControlIgnored bool
}

// caughtSignals lists the signals steward catches and forwards, URG aside.
func caughtSignals(jobControlIgnored bool) []syscall.Signal {
	var out []syscall.Signal
	for n := 1; n <= configs.SigRTMax; n++ {
		sig := syscall.Signal(n)
		switch {
		case configs.NotForwarded(sig) != nil:
		case sig == syscall.SIGURG:
		case (sig == syscall.SIGTTIN || sig == syscall.SIGTTOU) && jobControlIgnored:
		default:
			out = append(out, sig)
		}
	}
	return out
}

// catchSignals starts catching every signal steward handles. The signals
// stay caught for the life of the process: steward exits once its
// supervisor is done.
func catchSignals(jobControlIgnored bool) (*signals, error) {
	s := &signals{
		// Room for every distinct signal: each is pending at most once.
		c:                 make(chan os.Signal, configs.SigRTMax),
		urg:               make(chan os.Signal, 1),
		jobControlIgnored: jobControlIgnored,
	}
	if jobControlIgnored {
		signal.Ignore(syscall.SIGTTIN, syscall.SIGTTOU)
	}
	if err := notify(s.c, caughtSignals(jobControlIgnored)...); err != nil {
		return nil, err
	}
	// Without steward's handler the runtime's own preemption URGs come
	// too, in bursts: they get a one-slot channel of their own so that
	// they never crowd out another signal.
	urg := s.c
	if !rawSupported {
		urg = s.urg
	}
	if err := notify(urg, syscall.SIGURG); err != nil {
		return nil, err
	}
	return s, nil
}

// onSignal handles a signal steward received, with one debug line saying
// what became of it.
func (s *Supervisor) onSignal(sig syscall.Signal) {
	name := configs.SignalName(sig)
	if sig == syscall.SIGHUP && s.onHangup != nil {
		s.log.Debug("signal received", "signal", name, "action", "reload")
		go s.onHangup()
		return
	}
	if err := configs.NotForwarded(sig); err != nil {
		s.log.Debug("signal received", "signal", name, "action", "ignored", "why", err.Error())
		return
	}
	if (sig == syscall.SIGTERM || sig == syscall.SIGINT) && !s.shuttingDown {
		takers, dropped := 0, 0
		for _, p := range s.programs {
			if p.spec.Forwards() {
				takers++
				if _, ok := p.rewrite(sig); !ok {
					dropped++
				}
			}
		}
		if takers > 0 && dropped == takers {
			// dumb-init's -r 15:0: the user asked for nothing to happen.
			s.log.Debug("signal received", "signal", name, "action", "dropped")
			return
		}
		// The forwarded signal is the stop signal of the programs that
		// receive forwarded signals; the rest get their own, in order.
		for _, p := range s.programs {
			if p.spec.Forwards() {
				if to, ok := p.rewrite(sig); ok {
					p.stopOverride = to
				}
			}
		}
		s.log.Debug("signal received", "signal", name, "action", "shutdown")
		s.beginShutdown("received "+name, s.signalExitCode(sig))
		return
	}
	var forwarded, dropped []string
	for _, p := range s.programs {
		if !p.spec.Forwards() || !p.alive() {
			continue
		}
		to, ok := p.rewrite(sig)
		if !ok {
			dropped = append(dropped, p.name)
			continue
		}
		s.signalProgram(p, to)
		if to != sig {
			forwarded = append(forwarded, p.name+" as "+configs.SignalName(to))
		} else {
			forwarded = append(forwarded, p.name)
		}
	}
	s.log.Debug("signal received", "signal", name, "action", "forward",
		"forwarded", strings.Join(forwarded, ","), "dropped", strings.Join(dropped, ","))
}

// signalProgram sends sig to the program's process group, or to its pid
// alone with signal_group = false.
func (s *Supervisor) signalProgram(p *program, sig syscall.Signal) {
	if !p.spec.SignalsGroup() {
		if p.pid > 0 {
			s.sendSignal(p, p.pid, sig)
		}
		return
	}
	s.signalGroup(p, sig)
}

// signalGroup sends sig to the program's whole process group.
func (s *Supervisor) signalGroup(p *program, sig syscall.Signal) {
	if p.pgid > 0 {
		s.sendSignal(p, -p.pgid, sig)
	}
}

func (s *Supervisor) sendSignal(p *program, pid int, sig syscall.Signal) {
	if err := unix.Kill(pid, sig); err != nil && err != unix.ESRCH {
		s.log.Warn("cannot signal program", "program", p.name, "signal", signalName(sig), "err", err)
	}
}

func signalName(sig syscall.Signal) string { return configs.SignalName(sig) }

// isTerminal reports whether fd is a terminal.
func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// startIgnored is the set of signals ignored when the first supervisor was
// made, before steward changed any disposition (inherit.go).
var startIgnored = sync.OnceValue(ignoredSignals)

// startPPID is steward's parent when the process started, to tell whether
// the parent died before the parent-death signal was set.
var startPPID = os.Getppid()

// setPdeathSignal asks the kernel for sig when steward's parent dies (tini
// -p), for steward run under another supervisor. A parent that died before
// the prctl would never trigger it, so that case sends sig at once. As
// PID 1 there is no parent to lose. Only steward itself sets it: the kernel
// clears it in children, the chain loader included.
func setPdeathSignal(sig syscall.Signal) error {
	if sig == 0 || os.Getpid() == 1 {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(sig), 0, 0, 0); err != nil {
		return fmt.Errorf("supervisor: set parent-death signal: %w", err)
	}
	if os.Getppid() != startPPID {
		return unix.Kill(os.Getpid(), sig)
	}
	return nil
}

// signalExitCode is the container's exit code when sig stops steward before
// the main program has run: 128+sig, as a shell reports a program the signal
// killed, so that a container that never ran its app does not report
// success. nil when the main program runs: its own exit gives the code.
func (s *Supervisor) signalExitCode(sig syscall.Signal) *int {
	for _, p := range s.programs {
		if p.spec.Main && p.alive() {
			return nil
		}
	}
	code := 128 + int(sig)
	return &code
}
