package main

import (
	"syscall"
	"testing"
)

// TestInterruptBeforeMainStarted: Ctrl-C while the main program still waits
// for its dependencies ends steward with 128+SIGINT, as a shell reports a
// program SIGINT killed, not 0: the app never ran (issue 10, defect 9).
func TestInterruptBeforeMainStarted(t *testing.T) {
	in := start(t, runOpts{config: `
[programs.setup]
kind = "oneshot"
command = ["sleep", "1000"]

[programs.app]
main = true
depends_on = ["setup:completed"]
command = ["sleep", "1000"]
`})
	in.waitEvent("setup", "started")
	in.signal(syscall.SIGINT)
	if code := in.wait(); code != 128+int(syscall.SIGINT) {
		t.Fatalf("exit code %d, want %d", code, 128+int(syscall.SIGINT))
	}
}
