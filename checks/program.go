package checks

import (
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/stewardhq/steward/configs"
)

// ProgramState is what the implicit check of a program looks at. It is the
// supervisor's status of the program in plain terms, so this package does
// not depend on the supervisor (which depends on it for probes).
type ProgramState struct {
	Name  string `json:"name"`
	State string `json:"state"` // the supervisor's state name: running, backoff, fatal, ...
	PID   int    `json:"pid,omitempty"`
	// Oneshot programs are up once completed, services while running.
	Oneshot  bool `json:"oneshot,omitempty"`
	Main     bool `json:"main,omitempty"`
	Restarts int  `json:"restarts"`
	// LastExitCode is -1 before the first exit.
	LastExitCode int `json:"last_exit_code"`
	// LastSignal killed the last incarnation, if any.
	LastSignal syscall.Signal `json:"-"`
	// HasProbe: the program has a readiness probe; Ready: it passed for
	// the current incarnation.
	HasProbe bool `json:"has_readiness_probe,omitempty"`
	Ready    bool `json:"ready"`
	// OOMKilled: the kernel's OOM killer ended the last incarnation.
	OOMKilled bool `json:"oom_killed,omitempty"`
	// Reason explains the last failure, e.g. why a start failed.
	Reason string `json:"reason,omitempty"`
}

// ProgramCheckName is the name of a program's implicit check.
func ProgramCheckName(program string) string { return configs.ProgramCheckPrefix + program }

// Status judges a program's state: OK while it runs (or completed, or
// waits to start), WARNING while it restarts after a crash or is being
// stopped, CRITICAL when it ended for good with a failure.
func (p ProgramState) Status() (Status, string) {
	var b strings.Builder
	b.WriteString(p.Name + ": ")
	status := OK
	switch p.State {
	case "running", "starting":
		fmt.Fprintf(&b, "%s, pid %d", p.State, p.PID)
		if p.HasProbe && !p.Ready {
			b.WriteString(", not ready yet")
		}
	case "waiting":
		b.WriteString("waiting for its dependencies")
	case "completed":
		b.WriteString("completed")
	case "backoff":
		status = Warning
		b.WriteString("restarting after " + p.exitText())
	case "stopping", "stopped":
		status = Warning
		b.WriteString(p.State)
	case "exited":
		if p.LastExitCode != 0 {
			status = Critical
		}
		b.WriteString(p.exitText())
	case "fatal":
		status = Critical
		b.WriteString("fatal, gave up restarting after " + p.exitText())
	default:
		status = Unknown
		b.WriteString(p.State)
	}
	if p.Restarts > 0 {
		fmt.Fprintf(&b, " (%d restarts)", p.Restarts)
	}
	if p.Reason != "" && status != OK {
		b.WriteString(": " + p.Reason)
	}
	return status, b.String()
}

func (p ProgramState) exitText() string {
	switch {
	case p.OOMKilled:
		return "being killed by the kernel's OOM killer"
	case p.LastSignal != 0:
		return "being killed by " + unix.SignalName(p.LastSignal)
	case p.LastExitCode >= 0:
		return fmt.Sprintf("exit code %d", p.LastExitCode)
	default:
		return "failing to start"
	}
}

// Up reports whether the program is doing its job: a oneshot has
// completed; a service runs and, if it has a readiness probe, is ready.
func (p ProgramState) Up() bool {
	if p.Oneshot {
		return p.State == "completed"
	}
	return (p.State == "running" || p.State == "starting") && (!p.HasProbe || p.Ready)
}
