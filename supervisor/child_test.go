package supervisor

import (
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/testutil"
)

// runChild runs argv to its end and returns its output (stdout and stderr)
// and exit status. A test of this package starts every child this way, not
// with exec.Cmd: once a Supervisor ran in the test process, its reaper
// waits for every child of the process, and exec.Cmd.Wait, losing the
// status to it, fails with "waitid: no child processes".
func runChild(t *testing.T, env []string, argv ...string) (string, ExitStatus) {
	t.Helper()
	path, err := exec.LookPath(argv[0])
	if err != nil {
		t.Fatal(err)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	exited := make(chan ExitStatus, 1)
	reaper, err := processReaper()
	if err != nil {
		t.Fatal(err)
	}
	_, err = reaper.start(func() (int, error) {
		return syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: env, Files: []uintptr{null.Fd(), w.Fd(), w.Fd()}})
	}, func(st ExitStatus) { exited <- st })
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Read until every holder of the pipe is gone, as exec.Cmd does.
	output := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r)
		output <- b
	}()
	var st ExitStatus
	select {
	case st = <-exited:
	case <-time.After(testutil.HangGuard):
		t.Fatalf("%v did not exit", argv)
	}
	select {
	case b := <-output:
		return string(b), st
	case <-time.After(testutil.HangGuard):
		t.Fatalf("%v: its output was never closed", argv)
		return "", st
	}
}
