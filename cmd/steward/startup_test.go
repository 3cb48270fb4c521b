package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestLateStartFailureStops: the HTTP endpoint listens only once the main
// program has been started; when it cannot (an address set explicitly and
// taken), steward still stops the programs and exits 1, as it did when it
// failed before starting them.
func TestLateStartFailureStops(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	in := start(t, runOpts{config: fmt.Sprintf("[http]\naddr = %q\n[control]\nsocket = %q\n", taken.Addr().String(),
		filepath.Join(t.TempDir(), "control.sock")), command: []string{"sleep", "1000"}})
	if code := in.wait(); code != exitFailed {
		t.Fatalf("exit %d, want %d", code, exitFailed)
	}
	if !strings.Contains(in.stderr.String(), "http endpoint") {
		t.Errorf("no error about the endpoint:\n%s", in.stderr.String())
	}
	// The program was started, then stopped in order.
	evs := in.events("sleep")
	if index(evs, "sleep", "started") < 0 || index(evs, "sleep", "exited") < 0 {
		t.Errorf("events of sleep: %v", evs)
	}
}
