package main

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/testutil"
)

// TestFallbackSocketDirTakenByAnotherUser: steward runs as a user without
// /run (uid 1000, as Dockerfile.example's app user) and falls back to
// $TMPDIR/steward-1000, which another user made first and serves a fake
// steward from. steward refuses the directory and says so; `steward health`
// refuses the fake socket instead of reporting "healthy".
func TestFallbackSocketDirTakenByAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run steward as another user")
	}
	// The binary where uid 1000 can run it.
	binDir, err := os.MkdirTemp("", "steward-bin-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(binDir)
	os.Chmod(binDir, 0o755)
	bin := filepath.Join(binDir, "steward")
	src, _ := os.ReadFile(stewardBin)
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	shared, err := os.MkdirTemp("", "steward-tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(shared)
	os.Chmod(shared, 0o1777)
	taken := filepath.Join(shared, "steward-1000")
	os.Mkdir(taken, 0o777)
	os.Chmod(taken, 0o777)
	if err := os.Chown(taken, 2000, 2000); err != nil {
		t.Fatal(err)
	}
	// The other user's fake steward: healthy, whatever is asked.
	ln, err := net.Listen("unix", filepath.Join(taken, "control.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := bufio.NewReader(c).ReadBytes('\n'); err == nil {
					io.WriteString(c, `{"ok":true,"result":{"status":"healthy","healthy":true,"ready":true}}`+"\n")
				}
			}()
		}
	}()

	env := []string{"TMPDIR=" + shared, "XDG_RUNTIME_DIR=", "STEWARD_HTTP_ADDR=off", "STEWARD_CONFIG=", "STEWARD_CONTROL_SOCKET="}
	asUser := []string{"setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"}
	in := start(t, runOpts{bin: bin, wrap: asUser, env: env, command: []string{"sleep", "1000"}})
	in.waitEvent("sleep", "started")
	testutil.Eventually(t, "the refusal in the log", func() bool {
		return strings.Contains(in.stderr.String(), taken+" belongs to uid 2000")
	})

	cmd := exec.Command(asUser[0], append(asUser[1:], bin, "health")...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if code := exitCode(err); code == 0 || strings.HasPrefix(string(out), "healthy") || !strings.Contains(string(out), "belongs to uid 2000") {
		t.Errorf("steward health answered by the fake (exit %d):\n%s", code, out)
	}
}
