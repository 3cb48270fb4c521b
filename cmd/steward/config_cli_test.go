package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/testutil"
)

// TestValidateShippedExamples: `steward validate` passes every shipped
// example on a host without the users they name (a build host, CI): such a
// user is a warning, looked up again when steward starts in the image.
func TestValidateShippedExamples(t *testing.T) {
	files, _ := filepath.Glob("../../configs/examples/*.toml")
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	_, appErr := user.Lookup("app")
	for _, f := range files {
		cmd := exec.Command(stewardBin, "validate", "--config", f)
		cmd.Env = append(os.Environ(), "STEWARD_CONFIG=")
		out, err := cmd.CombinedOutput()
		if code := exitCode(err); code != 0 || !strings.Contains(string(out), ": ok, ") {
			t.Errorf("%s: exit %d:\n%s", f, code, out)
		}
		uses, _ := os.ReadFile(f)
		if appErr != nil && strings.Contains(string(uses), `user = "app"`) && !strings.Contains(string(out), `warning: `+f) {
			t.Errorf("%s: no warning about the unknown user:\n%s", f, out)
		}
	}
	// Starting with it is another matter: the user must exist.
	if appErr != nil {
		cmd := exec.Command(stewardBin, "--config", "../../configs/examples/single.toml")
		out, err := cmd.CombinedOutput()
		if code := exitCode(err); code != exitUsage || !strings.Contains(string(out), `unknown user "app"`) {
			t.Errorf("start with an unknown user: exit %d:\n%s", code, out)
		}
	}
}

// TestProblemCountGrammar: "1 problem", "2 problems".
func TestProblemCountGrammar(t *testing.T) {
	for _, c := range []struct {
		body, want string
	}{
		{"[programs.x]\nmain = true\ncommand = [\"x\"]\nbogus = 1\n", "(1 problem):"},
		{"[programs.x]\nmain = true\ncommand = [\"x\"]\nbogus = 1\nmore = 2\n", "(2 problems):"},
	} {
		path := filepath.Join(t.TempDir(), "c.toml")
		os.WriteFile(path, []byte(c.body), 0o644)
		out, err := exec.Command(stewardBin, "validate", "--config", path).CombinedOutput()
		if exitCode(err) != exitUsage || !strings.Contains(string(out), "invalid configuration "+c.want) {
			t.Errorf("exit %d, want %q in:\n%s", exitCode(err), c.want, out)
		}
	}
}

// TestSubcommandHelp: --help of every command prints its usage and exits 0;
// a bad flag still exits 2.
func TestSubcommandHelp(t *testing.T) {
	for _, sub := range [][]string{
		{"validate"}, {"health"}, {"status"}, {"start"}, {"stop"}, {"restart"}, {"signal"},
		{"logs"}, {"reload"}, {"service", "install"}, {},
	} {
		out, err := exec.Command(stewardBin, append(sub, "--help")...).CombinedOutput()
		if code := exitCode(err); code != 0 || !strings.Contains(strings.ToLower(string(out)), "usage") {
			t.Errorf("steward %s --help: exit %d:\n%s", strings.Join(sub, " "), code, out)
		}
		out, err = exec.Command(stewardBin, append(sub, "--no-such-flag")...).CombinedOutput()
		if code := exitCode(err); code != exitUsage {
			t.Errorf("steward %s --no-such-flag: exit %d, want %d:\n%s", strings.Join(sub, " "), code, exitUsage, out)
		}
	}
}

// TestControlClientFindsItsSteward: a control command reads only the
// socket's key from the config, so a problem elsewhere in it does not send
// the command to another steward listening on a default path; a config
// that keeps the socket from being known is an error (exit 2), never a
// silent fallback.
func TestControlClientFindsItsSteward(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	const rest = "[http]\naddr = \"off\"\n\n[programs.%s]\nmain = true\nstart_secs = 0\ncommand = [\"sleep\", \"1000\"]\n"
	cfgA := fmt.Sprintf("[control]\nsocket = \"%s/control.sock\"\n"+rest, dirA, "alpha")
	a := start(t, runOpts{config: cfgA})
	// B listens where the default paths lead: $XDG_RUNTIME_DIR/steward.
	b := start(t, runOpts{config: fmt.Sprintf("[control]\nsocket = \"%s/steward/control.sock\"\n"+rest, dirB, "bravo")})
	a.waitEvent("alpha", "started")
	b.waitEvent("bravo", "started")
	for _, sock := range []string{dirA + "/control.sock", dirB + "/steward/control.sock"} {
		testutil.Eventually(t, sock, func() bool { _, err := os.Stat(sock); return err == nil })
	}
	client := func(body string, args ...string) (string, int) {
		path := filepath.Join(t.TempDir(), "steward.toml")
		os.WriteFile(path, []byte(body), 0o644)
		cmd := exec.Command(stewardBin, append(append(args[:1:1], "--config", path), args[1:]...)...)
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+dirB, "STEWARD_CONFIG=", "STEWARD_CONTROL_SOCKET=")
		out, err := cmd.CombinedOutput()
		return string(out), exitCode(err)
	}

	// A problem elsewhere in A's config: the command still reaches A.
	out, code := client(cfgA+"bogus = 1\n", "status")
	if code != 0 || !strings.Contains(out, "alpha") || strings.Contains(out, "bravo") {
		t.Errorf("status with an unrelated problem (exit %d):\n%s", code, out)
	}
	out, code = client(cfgA+"bogus = 1\n", "health")
	if code != 0 || strings.Contains(out, "bravo") {
		t.Errorf("health with an unrelated problem (exit %d):\n%s", code, out)
	}
	// The socket cannot be known: exit 2 and say why; B is not asked.
	for _, bad := range []string{
		"[control]\nsocket = 7\n",
		"[control]\nsocket = \"relative.sock\"\n",
		"[control\nsocket = \"" + dirA + "/control.sock\"\n",
	} {
		for _, command := range []string{"status", "health", "reload"} {
			out, code := client(bad, command)
			if code != exitUsage || !strings.Contains(out, "cannot tell which control socket") || strings.Contains(out, "bravo") || strings.Contains(out, "no program changed") {
				t.Errorf("%s with %q: exit %d:\n%s", command, bad, code, out)
			}
		}
	}
}
