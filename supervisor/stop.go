package supervisor

import (
	"bytes"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stewardhq/steward/internal/proc"
)

// Shutdown timings that are not configurable: how often a process group
// whose leader has exited is checked for stragglers, how long programs get
// after the shutdown deadline's SIGKILL, and how long leftover processes get
// between TERM and KILL at the very end.
const (
	groupPollInterval = 20 * time.Millisecond
	killGrace         = time.Second
	leftoverGrace     = 2 * time.Second
	captureDrainWait  = time.Second
)

// beginShutdown stops every program in reverse dependency order. code, when
// given, is the exit code steward will exit with (a program that ended the
// container); otherwise the main program's code counts.
func (s *Supervisor) beginShutdown(reason string, code *int) {
	if s.shuttingDown {
		return
	}
	s.shuttingDown = true
	close(s.shutdownBegan)
	s.shutdownStart = time.Now()
	if code != nil && !s.exitSet {
		s.exitCode, s.exitSet = *code, true
	}
	s.log.Info("stopping all programs", "reason", reason, "timeout", s.cfg.ShutdownTimeout)
	s.events.Publish(Event{Time: s.shutdownStart, Kind: EventShutdown, Message: reason})
	for _, p := range s.programs {
		if p.state == StateWaiting || p.state == StateBackoff {
			p.stopTimers()
			p.state = StateStopped
		}
	}
	s.deadline = time.AfterFunc(s.cfg.ShutdownTimeout, func() { s.post(s.onDeadline) })
	s.advanceStop()
}

// advanceStop signals each running program whose dependents have all
// stopped; programs independent of each other stop in parallel. When
// nothing is left running, the shutdown finishes.
func (s *Supervisor) advanceStop() {
	if s.finished {
		return
	}
	pending := false
	for _, p := range s.programs {
		if !p.alive() {
			continue
		}
		pending = true
		if p.stopSent || s.dependentsAlive(p) {
			continue
		}
		s.sendStop(p)
	}
	if !pending {
		s.finishShutdown()
	}
}

func (s *Supervisor) dependentsAlive(p *program) bool {
	for _, d := range s.dependents[p] {
		if d.alive() {
			return true
		}
	}
	return false
}

func (s *Supervisor) sendStop(p *program) {
	sig := s.stopSignal(p)
	p.stopSent = true
	p.state = StateStopping
	if p.timer != nil { // start_secs or readiness no longer matter
		p.timer.Stop()
		p.timer = nil
	}
	if p.probeCancel != nil {
		p.probeCancel()
		p.probeCancel = nil
	}
	s.emit(Event{Program: p.name, Kind: EventStopping, PID: p.pid, Message: "sent " + signalName(sig)})
	s.signalProgram(p, sig)
	p.killTimer = s.after(p, p.spec.StopTimeout.D(), func() { s.kill(p) })
}

// stopped handles an exit during a stop: the program is down once the rest
// of its process group is gone too, since the group gets SIGKILL at the
// stop timeout.
func (s *Supervisor) stopped(p *program) {
	if groupExists(p.pgid) {
		p.groupAlive = true
		if p.stopSent && p.killTimer == nil {
			p.killTimer = s.after(p, p.spec.StopTimeout.D(), func() { s.kill(p) })
		}
		p.timer = s.after(p, groupPollInterval, func() { s.stopped(p) })
		return
	}
	p.groupAlive = false
	if p.killTimer != nil {
		p.killTimer.Stop()
		p.killTimer = nil
	}
	requested := p.state == StateStopping && !s.shuttingDown
	if p.state == StateStopping {
		p.state = StateStopped
		s.emit(Event{Program: p.name, Kind: EventStopped})
	} else if p.state != StateStopped {
		p.state = StateExited
	}
	switch {
	case s.shuttingDown:
		s.advanceStop()
	case requested:
		s.afterRequestedStop(p)
	}
}

// onDeadline: the shutdown timeout ran out. Everything left gets SIGKILL,
// and the shutdown finishes after a short grace whatever happens.
func (s *Supervisor) onDeadline() {
	if s.finished {
		return
	}
	s.log.Warn("shutdown timeout reached, killing what is left", "timeout", s.cfg.ShutdownTimeout)
	for _, p := range s.programs {
		if p.alive() {
			s.kill(p)
		}
	}
	time.AfterFunc(killGrace, func() { s.post(s.finishShutdown) })
}

// finishShutdown ends leftover processes, waits briefly for the last output
// to be read, and ends the loop.
func (s *Supervisor) finishShutdown() {
	if s.finished {
		return
	}
	if s.deadline != nil {
		s.deadline.Stop()
	}
	s.endLeftovers()
	drained := make(chan struct{})
	go func() { s.captures.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(captureDrainWait):
		s.log.Warn("program output still open after stop; not waiting for it")
	}
	s.log.Info("all programs stopped", "took", time.Since(s.shutdownStart).Round(time.Millisecond),
		"orphans_reaped", s.reaper.orphans.Load())
	s.finished = true
}

// endLeftovers sends TERM, then KILL, to processes that outlived their
// programs' process groups (daemons that called setsid, say). As PID 1
// that is every other process in the namespace; as a subreaper, the
// orphans reparented to steward.
func (s *Supervisor) endLeftovers() {
	pid1 := os.Getpid() == 1
	signalAll := func(sig unix.Signal) int {
		if pid1 {
			if unix.Kill(-1, sig) != nil {
				return 0
			}
			return 1
		}
		pids := proc.Children("/proc", os.Getpid())
		for _, pid := range pids {
			_ = unix.Kill(pid, sig)
		}
		return len(pids)
	}
	waitGone := func(d time.Duration) bool {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if signalAll(0) == 0 {
				return true
			}
		}
		return signalAll(0) == 0
	}
	if signalAll(0) == 0 {
		return
	}
	s.log.Info("terminating leftover processes")
	signalAll(unix.SIGTERM)
	if waitGone(leftoverGrace) {
		return
	}
	s.log.Warn("killing leftover processes")
	signalAll(unix.SIGKILL)
	waitGone(killGrace)
}

// escapedGrace is how long the escaped processes of a program's earlier
// run get between TERM and KILL.
const escapedGrace = leftoverGrace

// endEscaped ends what an earlier run of p left behind outside its process
// group (a daemon that called setsid) before p starts again: such a
// process, reparented to steward, is known by the STEWARD_PROGRAM=name
// every program's environment carries. It gets TERM (its whole group, if
// it leads one), then KILL after escapedGrace if it is still there: left
// running, it would hold the port or the lock the new run needs, until
// steward exits.
func (s *Supervisor) endEscaped(p *program) {
	pids := s.escaped(p.name)
	if len(pids) == 0 {
		return
	}
	s.log.Info("ending processes an earlier run left behind", "program", p.name, "pids", pids)
	signal := func(pid int, sig unix.Signal) {
		if pgid, err := unix.Getpgid(pid); err == nil && pgid == pid {
			_ = unix.Kill(-pid, sig)
			return
		}
		_ = unix.Kill(pid, sig)
	}
	for _, pid := range pids {
		signal(pid, unix.SIGTERM)
	}
	time.AfterFunc(escapedGrace, func() {
		for _, pid := range pids {
			// Still ours (steward's child, marked for p): not a pid reused
			// since.
			if slices.Contains(s.escapedNow(p.name), pid) {
				signal(pid, unix.SIGKILL)
			}
		}
	})
}

// escaped lists steward's children marked for the program name that are
// no program's current process; on the loop.
func (s *Supervisor) escaped(name string) []int {
	var pids []int
	for _, pid := range s.escapedNow(name) {
		current := false
		for _, q := range s.programs {
			if q.pid == pid || q.pgid == pid && q.alive() {
				current = true
				break
			}
		}
		if !current {
			pids = append(pids, pid)
		}
	}
	return pids
}

// escapedNow lists steward's children whose environment marks them as
// started for the program name, by the pids steward's own namespace gives
// them. /proc may be an outer namespace's, so steward finds itself there
// first and translates each child's pid back.
func (s *Supervisor) escapedNow(name string) []int {
	self, err := proc.Self("/proc")
	if err != nil {
		return nil
	}
	marker := []byte("STEWARD_PROGRAM=" + name + "\x00")
	var pids []int
	for _, pid := range proc.Children("/proc", self) {
		env, err := proc.Environ("/proc", pid)
		if err == nil && (bytes.HasPrefix(env, marker) || bytes.Contains(env, append([]byte{0}, marker...))) {
			pids = append(pids, proc.LocalPID("/proc", pid))
		}
	}
	return pids
}
