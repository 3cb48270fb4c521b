package programs

import (
	"fmt"
	"strings"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/supervisor"
)

// judge says what a program's state means for its check: OK while it runs
// (or completed, or waits to start), WARNING while it restarts after a
// crash, is being stopped or was stopped on request, CRITICAL when it ended
// for good with a failure. It also says why the program keeps the container
// from being ready, if it does ("" when not).
func judge(p *checks.ProgramState, state supervisor.State) (status checks.Status, output, notReady string) {
	var b strings.Builder
	b.WriteString(p.Name + ": ")
	status = checks.OK
	switch state {
	case supervisor.StateRunning, supervisor.StateStarting:
		fmt.Fprintf(&b, "%s, pid %d", state, p.PID)
		if p.HasProbe && !p.Ready {
			b.WriteString(", not ready yet")
		}
	case supervisor.StateWaiting:
		b.WriteString("waiting for its dependencies")
	case supervisor.StateCompleted:
		b.WriteString("completed")
	case supervisor.StateBackoff:
		status = checks.Warning
		b.WriteString("restarting after " + exitText(p))
	case supervisor.StateStopping, supervisor.StateStopped:
		status = checks.Warning
		b.WriteString(state.String())
	case supervisor.StateExited:
		if p.LastExitCode != 0 {
			status = checks.Critical
		}
		b.WriteString(exitText(p))
	case supervisor.StateFatal:
		status = checks.Critical
		b.WriteString("fatal, gave up restarting after " + exitText(p))
	default:
		status = checks.Unknown
		b.WriteString(state.String())
	}
	if p.Restarts > 0 {
		fmt.Fprintf(&b, " (%d restarts)", p.Restarts)
	}
	if p.Reason != "" && status != checks.OK {
		b.WriteString(": " + p.Reason)
	}
	return status, b.String(), whyNotReady(p, state)
}

// up: a oneshot has completed; a service runs and, if it has a readiness
// probe, is ready.
func up(p *checks.ProgramState, state supervisor.State) bool {
	if p.Oneshot {
		return state == supervisor.StateCompleted
	}
	return (state == supervisor.StateRunning || state == supervisor.StateStarting) && (!p.HasProbe || p.Ready)
}

// whyNotReady: a program being stopped makes the container not ready as
// soon as its stop begins; so does a main program that is not up, or a
// program with a readiness probe that has not passed. A program stopped on
// request (`steward stop`) is left out until `start`: the operator took it
// out on purpose.
func whyNotReady(p *checks.ProgramState, state supervisor.State) string {
	switch {
	case state == supervisor.StateStopping:
		return "program " + p.Name + " is stopping"
	case p.Main && !up(p, state):
		return "main program " + p.Name + " is " + state.String()
	case state == supervisor.StateStopped:
		return ""
	case p.HasProbe && !up(p, state):
		return "program " + p.Name + " is not ready"
	}
	return ""
}

func exitText(p *checks.ProgramState) string {
	switch {
	case p.OOMKilled:
		return "being killed by the kernel's OOM killer"
	case p.LastSignal != 0:
		return "being killed by " + configs.SignalName(p.LastSignal)
	case p.LastExitCode >= 0:
		return fmt.Sprintf("exit code %d", p.LastExitCode)
	default:
		return "failing to start"
	}
}
