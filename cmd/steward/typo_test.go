package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSubcommandTypo: `steward stauts` says it is an unknown command and
// suggests status, instead of trying to run a program named stauts (issue
// 10, defect 9); a real program's name still runs it.
func TestSubcommandTypo(t *testing.T) {
	for typo, want := range map[string]string{"stauts": "status", "strat": "start", "relaod": "reload", "helth": "health", "lgos": "logs"} {
		out, err := exec.Command(stewardBin, typo).CombinedOutput()
		if code := exitCode(err); code != exitUsage || !strings.Contains(string(out), "did you mean "+want+"?") {
			t.Errorf("steward %s: exit %d: %s", typo, code, out)
		}
	}
	// "true" is on PATH: it is the main program, however close to a
	// subcommand it may be.
	run := exec.Command(stewardBin, "--", "true")
	run.Env = isolatedEnv(t.TempDir())
	if out, err := run.CombinedOutput(); exitCode(err) != 0 {
		t.Fatalf("steward -- true: %v %s", err, out)
	}
	if didYouMean("true") != "" || didYouMean("./stauts") != "" || didYouMean("nginx") != "" {
		t.Fatal("a program name taken for a typo")
	}
}
