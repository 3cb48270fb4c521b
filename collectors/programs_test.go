package collectors

import (
	"bufio"
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/supervisor"
)

// startGroup runs a shell in its own process group that burns some CPU,
// then leaves two sleeping children, and returns once they exist.
func startGroup(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 1000 & sleep 1000 & echo ready; wait`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("group did not start: %q %v", line, err)
	}
	return cmd
}

func TestPrograms(t *testing.T) {
	web := startGroup(t)
	other := startGroup(t) // not a program: must not be counted
	_ = other
	started := time.Now().Add(-90 * time.Second)
	now := started.Add(90 * time.Second)
	status := []supervisor.ProgramStatus{
		{Name: "web", State: supervisor.StateRunning, PID: web.Process.Pid, StartedAt: started, Restarts: 2, LastExitCode: 3, Ready: true},
		{Name: "worker", State: supervisor.StateBackoff, Restarts: 1, LastExitCode: 1},
		{Name: "cache", State: supervisor.StateWaiting, LastExitCode: -1},
	}
	p, err := NewPrograms(ProgramsConfig{Root: "/", Now: func() time.Time { return now },
		Status: func(context.Context) []supervisor.ProgramStatus { return status }}, discard)
	if err != nil {
		t.Fatal(err)
	}
	s, err := collect(t, p)
	if err != nil {
		t.Fatal(err)
	}
	s.want(t, Gauge, map[string]float64{
		"program.processes;program=web":              3,
		"program.threads;program=web":                3,
		"program.uptime_seconds;program=web":         90,
		"program.last_exit_code;program=web":         3,
		"program.last_exit_code;program=worker":      1,
		"program.ready;program=web":                  1,
		"program.ready;program=worker":               0,
		"program.state;program=web;state=running":    1,
		"program.state;program=web;state=backoff":    0,
		"program.state;program=worker;state=backoff": 1,
		"program.state;program=worker;state=running": 0,
		"program.state;program=cache;state=waiting":  1,
		"program.state;program=cache;state=stopped":  0,
	})
	s.want(t, Counter, map[string]float64{"program.restarts_total;program=web": 2, "program.restarts_total;program=worker": 1})
	if v := s["program.cpu_seconds_total;program=web"]; v.Value <= 0 || v.Kind != Counter {
		t.Errorf("cpu_seconds_total = %+v, want > 0 after the busy loop", v)
	}
	if v := s["program.memory_rss_bytes;program=web"].Value; v < 1<<20 {
		t.Errorf("memory_rss_bytes = %v, want three processes' worth", v)
	}
	// Three processes with stdin, stdout and stderr each at least.
	if v := s["program.open_fds;program=web"].Value; v < 9 {
		t.Errorf("open_fds = %v, want >= 9", v)
	}
	// A program without a process has no usage, and one that never exited
	// no exit code: absent, not zero.
	s.absent(t, "program.processes;program=worker", "program.cpu_seconds_total;program=worker",
		"program.uptime_seconds;program=worker", "program.last_exit_code;program=cache")
}

// TestProgramsNotRunning: before the supervisor runs (nil status) there is
// nothing to report and nothing wrong.
func TestProgramsNotRunning(t *testing.T) {
	p, _ := NewPrograms(ProgramsConfig{Root: "/", Status: func(context.Context) []supervisor.ProgramStatus { return nil }}, discard)
	s, err := collect(t, p)
	if err != nil || len(s) != 0 {
		t.Fatalf("got %v, %v", s.names(), err)
	}
}
