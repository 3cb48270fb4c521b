package main

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
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
