package checks

import (
	"syscall"

	"github.com/stewardhq/steward/configs"
)

// ProgramState is the supervisor's status of a program in plain terms, as
// its implicit check reports it (checks/programs judges it, from the
// supervisor's typed states): this package does not depend on the
// supervisor, which depends on it for probes.
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
	// NotReady says why the program keeps the container from being ready
	// ("" when it does not); Health lists it under not_ready.
	NotReady string `json:"-"`
}

// ProgramCheckName is the name of a program's implicit check.
func ProgramCheckName(program string) string { return configs.ProgramCheckPrefix + program }
