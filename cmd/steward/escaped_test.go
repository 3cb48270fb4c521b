package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/testutil"
)

// TestRestartEndsEscapedDaemon: a program whose command starts a daemon
// (setsid, out of its process group) and is restarted does not leave the
// first daemon running beside the second until steward exits (issue 10,
// defect 9).
func TestRestartEndsEscapedDaemon(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "control.sock")
	launcher := filepath.Join(dir, "launcher")
	os.WriteFile(launcher, []byte(`#!/bin/sh
setsid sh -c 'echo $$ >> "$T/daemons"; exec sleep 1000' &
exec sleep 1000
`), 0o755)
	in := start(t, runOpts{config: fmt.Sprintf(`
[control]
socket = %q

[programs.app]
main = true
command = ["sleep", "1000"]
start_secs = 0

[programs.d]
command = [%q]
start_secs = 0
`, sock, launcher)})
	daemons := func() []string {
		b, _ := os.ReadFile(filepath.Join(in.dir, "daemons"))
		return strings.Fields(string(b))
	}
	testutil.Eventually(t, "the first daemon", func() bool { return len(daemons()) == 1 })
	first, _ := strconv.Atoi(daemons()[0])
	firstHost := in.hostPID(first)
	if firstHost == 0 || !alive(firstHost) {
		t.Fatalf("first daemon %d not found", first)
	}
	if out, code := ctlRun(t, sock, "restart", "d"); code != 0 {
		t.Fatalf("restart d (exit %d): %s", code, out)
	}
	testutil.Eventually(t, "the second daemon", func() bool { return len(daemons()) == 2 })
	testutil.Eventually(t, "the first daemon gone", func() bool { return !alive(firstHost) })
	second, _ := strconv.Atoi(daemons()[1])
	if in.hostPID(second) == 0 {
		t.Fatal("the second daemon was ended too")
	}
}
