package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/stewardhq/steward/internal/testutil"
)

// TestReloadRaceFree: the supervisor's reloads and the components that
// follow the programs (program checks) share no mutable config. Crash-looping
// programs keep the program checks reading while 200 SIGHUPs each reload the
// config; the race detector built into the binary must stay silent.
func TestReloadRaceFree(t *testing.T) {
	if !raceEnabled {
		t.Skip("needs the race detector: go test -race")
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
[steward]
reload_on_sighup = true

[control]
socket = "%s/control.sock"

[programs.app]
main = true
command = ["sleep", "1000"]
start_secs = 0
`, dir)
	for i := range 3 {
		cfg += fmt.Sprintf(`
[programs.crash%d]
command = ["sh", "-c", "exit 3"]
start_secs = 0
start_retries = 1000000
backoff_initial = "10ms"
backoff_max = "20ms"
`, i)
	}
	in := start(t, runOpts{config: cfg})
	in.waitEvent("app", "started")
	reloads := func() int { return strings.Count(in.stderr.String(), `"msg":"configuration reloaded"`) }
	for i := range 200 {
		in.signal(syscall.SIGHUP)
		testutil.Eventually(t, fmt.Sprintf("reload %d", i+1), func() bool { return reloads() > i })
		if strings.Contains(in.stderr.String(), "DATA RACE") {
			break
		}
	}
	in.signal(syscall.SIGTERM)
	code := in.wait()
	if strings.Contains(in.stderr.String(), "DATA RACE") {
		t.Fatalf("the race detector reported a data race (exit %d)", code)
	}
}
