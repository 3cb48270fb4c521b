package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/creack/pty"

	"github.com/stewardhq/steward/internal/testutil"
)

// TestTTYForeground: with a terminal on stdin, the main program runs in
// the terminal's foreground process group, so Ctrl-C (sent by the kernel's
// line discipline, not by steward) reaches it.
func TestTTYForeground(t *testing.T) {
	master, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	var screen testutil.LockedBuffer
	go io.Copy(&screen, master)
	// Fields 5 and 8 of /proc/self/stat: the process group and the
	// terminal's foreground process group.
	in := start(t, runOpts{stdio: tty, setctty: true, command: []string{"sh", "-c",
		`set -- $(cat /proc/self/stat); echo "pgrp=$5 tpgid=$8"; exec sleep 1000`}})
	tty.Close()
	testutil.Eventually(t, "the program's report", func() bool { return strings.Contains(screen.String(), "tpgid=") })
	var pgrp, tpgid int
	line := screen.String()[strings.Index(screen.String(), "pgrp="):]
	if _, err := fmt.Sscanf(line, "pgrp=%d tpgid=%d", &pgrp, &tpgid); err != nil {
		t.Fatalf("cannot read %q: %v", line, err)
	}
	if pgrp != tpgid {
		t.Fatalf("main program's group %d is not the terminal's foreground group %d", pgrp, tpgid)
	}
	if pgrp == in.pid() {
		t.Fatalf("main program runs in steward's own group")
	}
	master.Write([]byte{3}) // Ctrl-C
	if got := in.wait(); got != 128+int(syscall.SIGINT) {
		t.Fatalf("exit code %d, want 130 (main killed by the terminal's SIGINT)", got)
	}
}

// TestOutputIsKeptByteForByte: long lines, invalid UTF-8 and NUL bytes
// reach steward's stdout unchanged, prefixed per line when there are
// several programs.
func TestOutputIsKeptByteForByte(t *testing.T) {
	long := strings.Repeat("x", 200_000) // over the 64 KiB line limit
	data := filepath.Join(t.TempDir(), "data")
	payload := []byte(long + "\nbad \xff\xfe utf8 and \x00 nul\nlast line without newline")
	os.WriteFile(data, payload, 0o644)

	in := start(t, runOpts{command: []string{"cat", data}})
	in.wait()
	if got, want := in.stdout.Bytes(), append(bytes.Clone(payload), '\n'); !bytes.Equal(got, want) {
		t.Fatalf("stdout differs: %d bytes, want %d", len(got), len(want))
	}

	in = start(t, runOpts{config: `
[programs.a]
main = true
command = ["cat", "` + data + `"]

[programs.b]
command = ["sh", "-c", "echo from b >&2; exec sleep 1000"]
`})
	in.wait()
	want := "[a] " + long + "\n[a] bad \xff\xfe utf8 and \x00 nul\n[a] last line without newline\n"
	if got := in.stdout.String(); got != want {
		t.Fatalf("prefixed stdout differs: %q...", got[:min(len(got), 80)])
	}
	if !strings.Contains(in.stderr.String(), "[b] from b\n") {
		t.Fatal("stderr line of b missing or unprefixed")
	}
}

// TestConfigErrorsListedBeforeAnythingStarts: every problem is reported as
// file:line: key: message, exit code 2, and no program runs.
func TestConfigErrorsListedBeforeAnythingStarts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.toml")
	os.WriteFile(path, []byte(`[steward]
log_level = "loud"

[programs.web]
command = ["sh", "-c", "touch `+dir+`/ran"]
stop_timeout = "ten seconds"
user = "no-such-user-here"
depends_on = ["db"]
restrat = "always"

[programs.db]
command = ["true"]
depends_on = ["web"]
`), 0o644)
	want := []string{
		path + ":2: steward.log_level:",
		path + ":6: programs.web.stop_timeout: bad duration",
		path + ":7: programs.web.user: unknown user",
		path + ":9: programs.web.restrat: unknown key (did you mean \"restart\"?)",
		"dependency cycle",
	}
	for _, args := range [][]string{{"validate", "--config", path}, {"--config", path}} {
		// validate runs where the image's users may not exist: an
		// unknown user is a warning there, a problem at start.
		want[2] = path + ":7: programs.web.user: unknown user"
		if args[0] == "validate" {
			want[2] = "steward validate: warning: " + want[2]
		}
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(stewardBin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if code := exitCode(err); code != 2 {
			t.Fatalf("%v: exit code %d, want 2", args, code)
		}
		for _, w := range want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%v: output lacks %q:\n%s", args, w, stderr.String())
			}
		}
	}
	// steward has exited; a program it had started would have run first.
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Fatal("a program ran despite the bad config")
	}
}

// TestProgramCredentialsAndLimits: user and groups are dropped, umask and
// rlimits applied, the environment extended and trimmed, as the kernel
// reports for the running program.
func TestProgramCredentialsAndLimits(t *testing.T) {
	in := start(t, runOpts{env: []string{"KEEP_ME=1", "DROP_ME=1", "DROP_TOO=1"}, config: `
[programs.check]
main = true
user = "nobody"
groups = ["daemon"]
umask = "027"
rlimits = { nofile = "1234:2345", core = 0 }
env = { ADDED = "yes" }
env_remove = ["DROP_*"]
command = ["sh", "-c", "echo uid=$(id -u) gid=$(id -g) groups=$(id -G) umask=$(umask) nofile=$(ulimit -n) hard=$(ulimit -Hn) core=$(ulimit -c) env=$ADDED,$KEEP_ME,$DROP_ME,$DROP_TOO,$STEWARD_PROGRAM home=$HOME"]
`})
	in.wait()
	out := in.stdout.String()
	for _, want := range []string{"uid=65534", "gid=65534", "groups=65534 1", "umask=0027", "nofile=1234", "hard=2345", "core=0", "env=yes,1,,,check", "home=/nonexistent"} {
		if !strings.Contains(out, want) {
			t.Errorf("program reports %q, want %s", strings.TrimSpace(out), want)
		}
	}
}
