package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stewardhq/steward/internal/testutil"
)

// TestLogsFollowEndsWithSteward: `steward logs -f` ends quietly with exit
// code 0 when steward stops normally, after the program's last lines
// (issue 10, defect 9: it ended with "reading logs: EOF" and 1).
func TestLogsFollowEndsWithSteward(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "control.sock")
	in := start(t, runOpts{config: fmt.Sprintf(`
[control]
socket = %q

[programs.app]
main = true
command = ["sh", "-c", "echo app up; trap 'echo app bye; exit 0' TERM; while :; do sleep 0.05; done"]
start_secs = 0
`, sock)})
	testutil.Eventually(t, "app's first line", func() bool {
		out, _ := ctlRun(t, sock, "logs", "app")
		return strings.Contains(out, "app up")
	})
	follow := exec.Command(stewardBin, "logs", "--socket", sock, "-f", "-n", "1", "app")
	var stderr bytes.Buffer
	follow.Stderr = &stderr
	pipe, _ := follow.StdoutPipe()
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(pipe)
	if !sc.Scan() || !strings.Contains(sc.Text(), "app up") {
		t.Fatalf("logs -f began with %q", sc.Text())
	}
	in.signal(syscall.SIGTERM)
	var rest []string
	for sc.Scan() {
		rest = append(rest, sc.Text())
	}
	err := follow.Wait()
	if code := exitCode(err); code != 0 || stderr.Len() > 0 {
		t.Fatalf("logs -f ended with exit code %d: %s", code, stderr.String())
	}
	if !strings.Contains(strings.Join(rest, "\n"), "app bye") {
		t.Errorf("the last line is missing: %q", rest)
	}
	in.wait()
}
