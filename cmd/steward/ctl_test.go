package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/testutil"
)

// ctlRun runs a control command of the real binary against in's socket.
func ctlRun(t *testing.T, socket string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(stewardBin, append(args[:1:1], append([]string{"--socket", socket}, args[1:]...)...)...)
	out, err := cmd.CombinedOutput()
	return string(out), exitCode(err)
}

const ctlConfig = `
[control]
socket = "%[1]s/control.sock"

[programs.app]
main = true
command = ["sleep", "1000"]
start_secs = 0

[programs.worker]
command = ["sh", "-c", "trap 'echo worker got USR1' USR1; echo worker up $$; while :; do sleep 0.05; done"]
start_secs = 0

[programs.extra]
command = ["sleep", "1000"]
start_secs = 0
`

// TestControlCommands drives a running steward (PID 1 of a namespace) with
// the real CLI: status, stop, start, restart, signal, logs and logs -f.
func TestControlCommands(t *testing.T) {
	dir := t.TempDir()
	in := start(t, runOpts{config: fmt.Sprintf(ctlConfig, dir)})
	sock := filepath.Join(dir, "control.sock")
	in.waitEvent("worker", "started")
	testutil.Eventually(t, "the control socket", func() bool { _, err := os.Stat(sock); return err == nil })
	fi, _ := os.Stat(sock)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want 0600", fi.Mode().Perm())
	}

	out, code := ctlRun(t, sock, "status")
	if code != 0 || !strings.Contains(out, "app (main)") || !strings.Contains(out, "worker") || strings.Count(out, "running") != 3 {
		t.Fatalf("status (exit %d):\n%s", code, out)
	}

	out, code = ctlRun(t, sock, "stop", "extra")
	if code != 0 || strings.TrimSpace(out) != "extra: stopped" {
		t.Fatalf("stop (exit %d): %s", code, out)
	}
	if out, code = ctlRun(t, sock, "status"); code != exitNotRunning || !strings.Contains(out, "stopped") {
		t.Fatalf("status after stop (exit %d):\n%s", code, out)
	}
	if out, code = ctlRun(t, sock, "start", "extra"); code != 0 || strings.TrimSpace(out) != "extra: running" {
		t.Fatalf("start (exit %d): %s", code, out)
	}
	if out, code = ctlRun(t, sock, "start", "nope"); code != exitFailed || !strings.Contains(out, `no program "nope"`) {
		t.Fatalf("start unknown (exit %d): %s", code, out)
	}

	// restart: a new process, the old one gone.
	oldPID := programPID(t, in, "worker")
	if out, code = ctlRun(t, sock, "restart", "worker"); code != 0 || strings.TrimSpace(out) != "worker: running" {
		t.Fatalf("restart (exit %d): %s", code, out)
	}
	if alive(oldPID) {
		t.Fatalf("old worker %d still alive after restart", oldPID)
	}

	// logs: what the worker printed, from the ring.
	testutil.Eventually(t, "the new worker's first line", func() bool {
		out, _ := ctlRun(t, sock, "logs", "worker")
		return strings.Count(out, "worker up") == 2
	})

	// logs -f follows: a signal's trap output arrives on the stream.
	testutil.Eventually(t, "the new worker's trap", func() bool {
		out, _ := ctlRun(t, sock, "logs", "-n", "1", "worker")
		return strings.Contains(out, "worker up")
	})
	follow := exec.Command(stewardBin, "logs", "--socket", sock, "-f", "-n", "1", "worker")
	pipe, _ := follow.StdoutPipe()
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// The last kept line arrives once the follower is registered: the
	// ring takes both under one lock.
	select {
	case line := <-lines:
		if !strings.Contains(line, "worker up") {
			t.Fatalf("logs -f -n 1 began with %q", line)
		}
	case <-time.After(testutil.HangGuard):
		t.Fatal("logs -f showed no recent line")
	}
	if out, code = ctlRun(t, sock, "signal", "USR1", "worker"); code != 0 || !strings.Contains(out, "worker: signalled USR1") {
		t.Fatalf("signal (exit %d): %s", code, out)
	}
	// The whole group gets the signal: the shell may also report its
	// sleep killed by it.
	for got := false; !got; {
		select {
		case line := <-lines:
			got = line == "worker got USR1"
		case <-time.After(testutil.HangGuard):
			t.Fatal("logs -f did not show the trap's line")
		}
	}
	follow.Process.Signal(syscall.SIGINT)
	if err := follow.Wait(); err != nil {
		t.Fatalf("logs -f after Ctrl-C: %v", err)
	}

	// stop of the main program stops steward.
	if _, code = ctlRun(t, sock, "stop", "app"); code != 0 {
		t.Fatalf("stop app: exit %d", code)
	}
	if got := in.wait(); got != 143 {
		t.Fatalf("steward exit code %d, want 143", got)
	}
}

// programPID is the host pid of a program's latest process, from
// steward's events.
func programPID(t *testing.T, in *instance, program string) int {
	t.Helper()
	evs := in.events(program)
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].kind() == "started" {
			if pid := in.hostPID(evs[i].num("pid")); pid != 0 {
				return pid
			}
			t.Fatalf("%s: no process with pid %d in the namespace", program, evs[i].num("pid"))
		}
	}
	t.Fatalf("%s never started", program)
	return 0
}

// TestReloadCommandAndSighup: reload adds, removes and changes programs and
// leaves the rest alone; a bad config is refused and the running one kept;
// with reload_on_sighup a HUP does the same.
func TestReloadCommandAndSighup(t *testing.T) {
	dir := t.TempDir()
	cfgText := fmt.Sprintf("[steward]\nreload_on_sighup = true\n"+ctlConfig, dir)
	in := start(t, runOpts{config: cfgText})
	sock := filepath.Join(dir, "control.sock")
	in.waitEvent("extra", "started")
	testutil.Eventually(t, "the control socket", func() bool { _, err := os.Stat(sock); return err == nil })
	appPID, workerPID := programPID(t, in, "app"), programPID(t, in, "worker")
	cfgPath := filepath.Join(in.dir, "steward.toml")

	// A broken config is refused.
	os.WriteFile(cfgPath, []byte(cfgText+"\n[programs.bad]\ncommand = 7\n"), 0o644)
	badLine := strings.Count(cfgText, "\n") + 3
	out, code := ctlRun(t, sock, "reload")
	if code != exitFailed || !strings.Contains(out, fmt.Sprintf("steward.toml:%d: programs.bad.command", badLine)) || !strings.Contains(out, "running one is kept") {
		t.Fatalf("reload of a bad config (exit %d): %s", code, out)
	}

	// worker changed, extra removed, fresh added.
	next := strings.Replace(cfgText, "echo worker up", "echo worker v2 up", 1)
	next = next[:strings.Index(next, "[programs.extra]")] + "[programs.fresh]\ncommand = [\"sleep\", \"999\"]\nstart_secs = 0\n"
	os.WriteFile(cfgPath, []byte(next), 0o644)
	out, code = ctlRun(t, sock, "reload")
	if code != 0 || !strings.Contains(out, "fresh: added") || !strings.Contains(out, "extra: removed") || !strings.Contains(out, "worker: changed") {
		t.Fatalf("reload (exit %d): %s", code, out)
	}
	in.waitEvent("fresh", "started")
	testutil.Eventually(t, "worker v2", func() bool { return strings.Contains(in.stdout.String(), "worker v2 up") })
	testutil.Eventually(t, "extra gone", func() bool {
		out, _ := ctlRun(t, sock, "status")
		return !strings.Contains(out, "extra")
	})
	if alive(workerPID) {
		t.Fatal("the changed worker's old process is still alive")
	}
	if programPID(t, in, "app") != appPID || !alive(appPID) {
		t.Fatal("the unchanged main program was restarted")
	}

	// SIGHUP reloads too (instead of reaching the main program).
	os.WriteFile(cfgPath, []byte(next+"[programs.late]\ncommand = [\"sleep\", \"998\"]\nstart_secs = 0\n"), 0o644)
	in.signal(syscall.SIGHUP)
	in.waitEvent("late", "started")
	if !alive(appPID) {
		t.Fatal("HUP reached the main program")
	}
	in.signal(syscall.SIGTERM)
	in.wait()
}
