package supervisor

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"syscall"

	"github.com/stewardhq/steward/configs"
)

// Errors of the control operations.
var (
	ErrUnknownProgram = errors.New("no such program")
	ErrShuttingDown   = errors.New("steward is shutting down")
	ErrNotRunning     = errors.New("program is not running")
	ErrAlreadyRunning = errors.New("program is already running or starting")
	errLoopEnded      = errors.New("supervisor: not running")
)

// afterStop says what happens once a program stopped on request is down.
type afterStop int

const (
	stayStopped afterStop = iota
	startAgain            // restart, possibly with a new definition
	retire                // removed from the config
)

// control runs op on the loop and returns its error.
func (s *Supervisor) control(ctx context.Context, name string, op func(p *program) error) error {
	var err error
	if !s.call(ctx, func() {
		if s.shuttingDown {
			err = ErrShuttingDown
			return
		}
		p := s.byName[name]
		if p == nil || p.retiring {
			err = fmt.Errorf("supervisor: %q: %w", name, ErrUnknownProgram)
			return
		}
		err = op(p)
	}) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errLoopEnded
	}
	return err
}

// StartProgram starts a program that is stopped, exited, completed or
// fatal. It starts once its dependencies are met.
func (s *Supervisor) StartProgram(ctx context.Context, name string) error {
	return s.control(ctx, name, func(p *program) error {
		switch p.state {
		case StateStopped, StateExited, StateFatal, StateCompleted:
		default:
			return fmt.Errorf("supervisor: %q is %s: %w", name, p.state, ErrAlreadyRunning)
		}
		p.failures = 0
		p.then = stayStopped
		p.state = StateWaiting
		s.schedule()
		return nil
	})
}

// StopProgram stops a program with its stop signal, then SIGKILL after its
// stop timeout; it stays stopped until started again. Stopping the main
// program stops steward, as its end would.
func (s *Supervisor) StopProgram(ctx context.Context, name string) error {
	return s.control(ctx, name, func(p *program) error {
		if p.spec.Main {
			s.beginShutdown("main program stopped on request", nil)
			return nil
		}
		return s.requestStop(p, stayStopped)
	})
}

// RestartProgram stops a program (if running) and starts it again. The
// restart is not a failure and does not end the container, even for the
// main program.
func (s *Supervisor) RestartProgram(ctx context.Context, name string) error {
	return s.control(ctx, name, func(p *program) error {
		if !p.alive() && p.state != StateBackoff {
			p.failures = 0
			p.state = StateWaiting
			s.schedule()
			return nil
		}
		return s.requestStop(p, startAgain)
	})
}

// SignalProgram sends sig to the program's process group (its pid with
// signal_group = false).
func (s *Supervisor) SignalProgram(ctx context.Context, name string, sig syscall.Signal) error {
	return s.control(ctx, name, func(p *program) error {
		if p.pid == 0 {
			return fmt.Errorf("supervisor: %q: %w", name, ErrNotRunning)
		}
		s.signalProgram(p, sig)
		return nil
	})
}

// requestStop stops p on request and decides what follows.
func (s *Supervisor) requestStop(p *program, then afterStop) error {
	p.then = then
	if then == startAgain {
		// Dependents still waiting must wait for the new incarnation.
		p.reached = map[string]bool{}
	}
	switch {
	case p.state == StateBackoff || p.state == StateWaiting:
		p.stopTimers()
		p.state = StateStopped
		s.afterRequestedStop(p)
	case p.alive():
		if !p.stopSent {
			s.sendStop(p)
		}
	default:
		s.afterRequestedStop(p)
	}
	return nil
}

// afterRequestedStop runs once a program stopped on request is down.
func (s *Supervisor) afterRequestedStop(p *program) {
	then := p.then
	p.then = stayStopped
	switch then {
	case startAgain:
		if p.next != nil {
			s.replaceSpec(p, p.next)
		}
		p.failures = 0
		p.state = StateWaiting
		s.schedule()
	case retire:
		s.removeProgram(p)
		s.schedule()
	}
}

// ReloadResult says what a reload changed.
type ReloadResult struct {
	Added, Removed, Changed, Unchanged []string
}

// Reload applies a new configuration's programs (in the config's order), as
// supervisorctl update does: new programs start, removed ones stop, changed
// ones restart with their new definition, the rest are untouched. Settings
// outside [programs] take effect at the next start of steward.
func (s *Supervisor) Reload(ctx context.Context, programs []*configs.Program) (ReloadResult, error) {
	var res ReloadResult
	var err error
	if !s.call(ctx, func() {
		if s.shuttingDown {
			err = ErrShuttingDown
			return
		}
		res = s.reload(programs)
	}) {
		return res, errLoopEnded
	}
	return res, err
}

func (s *Supervisor) reload(programs []*configs.Program) ReloadResult {
	var res ReloadResult
	specs := make(map[string]*configs.Program, len(programs))
	order := make([]string, 0, len(programs))
	for _, spec := range programs {
		specs[spec.Name] = spec
		order = append(order, spec.Name)
	}
	for _, p := range s.programs {
		if p.retiring {
			continue
		}
		spec, kept := specs[p.name]
		switch {
		case !kept:
			res.Removed = append(res.Removed, p.name)
			p.retiring = true
			s.requestStop(p, retire)
		case specEqual(p.spec, spec):
			res.Unchanged = append(res.Unchanged, p.name)
		default:
			res.Changed = append(res.Changed, p.name)
			if p.alive() {
				p.next = spec
				s.requestStop(p, startAgain)
			} else {
				s.replaceSpec(p, spec)
				p.stopTimers()
				p.failures = 0
				p.state = StateWaiting
			}
		}
	}
	for _, name := range order {
		if _, exists := s.byName[name]; !exists {
			res.Added = append(res.Added, name)
			p := newProgram(specs[name], s.env)
			s.byName[name] = p
			s.programs = append(s.programs, p)
		}
	}
	s.order = order
	s.reorder()
	s.log.Info("configuration reloaded", "added", res.Added, "removed", res.Removed, "changed", res.Changed)
	s.schedule()
	return res
}

// specEqual compares two program definitions as the user wrote them.
func specEqual(a, b *configs.Program) bool {
	return reflect.DeepEqual(a, b)
}

func (s *Supervisor) replaceSpec(p *program, spec *configs.Program) {
	fresh := newProgram(spec, s.env)
	p.spec, p.env, p.rewrites, p.next = fresh.spec, fresh.env, fresh.rewrites, nil
	p.reached = map[string]bool{}
}

func (s *Supervisor) removeProgram(p *program) {
	delete(s.byName, p.name)
	for i, q := range s.programs {
		if q == p {
			s.programs = append(s.programs[:i:i], s.programs[i+1:]...)
			break
		}
	}
	s.reorder()
	s.emit(Event{Program: p.name, Kind: EventRemoved})
}

// reorder puts programs in start order and rebuilds the dependents index.
// Programs on their way out keep their place at the end until they are down.
func (s *Supervisor) reorder() {
	var ordered, retiring []*program
	spec := func(name string) *configs.Program {
		p := s.byName[name]
		switch {
		case p == nil || p.retiring:
			return nil
		case p.next != nil: // the definition it restarts with
			return p.next
		}
		return p.spec
	}
	for _, name := range startOrder(s.order, spec) {
		if p := s.byName[name]; p != nil && !p.retiring {
			ordered = append(ordered, p)
		}
	}
	for _, p := range s.programs {
		if p.retiring {
			retiring = append(retiring, p)
		}
	}
	s.programs = append(ordered, retiring...)
	s.dependents = map[*program][]*program{}
	for _, p := range s.programs {
		if p.retiring {
			continue
		}
		for _, dep := range p.spec.DependsOn {
			if d := s.byName[dep.Name]; d != nil {
				s.dependents[d] = append(s.dependents[d], p)
			}
		}
	}
}
