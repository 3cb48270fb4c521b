package configs

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestArrayElementLines: a bad element of an array is reported at its own
// line, not its table's, and once: the array's checks do not add a second
// problem for the zero value the element left.
func TestArrayElementLines(t *testing.T) {
	path := write(t, `# line 1
[programs.web]
main = true
command = ["web"]
# line 5
groups = [
  "daemon",
  7,
]
depends_on = [
  "db",
  3,
]

[programs.db]
command = ["db"]
`)
	_, err := Load(Options{Path: path})
	got := problems(t, err)
	want := []string{
		path + ":8: programs.web.groups[1]: expected a string, got an integer",
		path + ":12: programs.web.depends_on[1]: ",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("problem %d = %q, want it to start with %q", i, got[i], w)
		}
	}
}

// TestFailedGroupElementNoBogusWarning: an element of groups that fails to
// decode leaves a zero value; validate (DeferUsers) must not warn about an
// unknown group "" for it, as it did beside the real problem.
func TestFailedGroupElementNoBogusWarning(t *testing.T) {
	path := write(t, `[programs.web]
main = true
command = ["web"]
groups = [7]
`)
	_, err := Load(Options{Path: path, DeferUsers: true})
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("want a config error, got %v", err)
	}
	for _, w := range cerr.Warnings {
		if strings.Contains(w.Message, `""`) {
			t.Errorf("bogus warning for the element that failed: %s", w.Message)
		}
	}
	if len(cerr.Problems) != 1 || cerr.Problems[0].Key != "programs.web.groups[0]" {
		t.Errorf("problems = %v, want the one of programs.web.groups[0]", cerr.Problems)
	}
}

// TestEnvironmentProblemsNameTheVariable: a value a STEWARD_* variable set
// is blamed on the variable, never on a line of the file, whether it fails
// to decode or fails a check.
func TestEnvironmentProblemsNameTheVariable(t *testing.T) {
	path := write(t, `[steward]
log_level = "info"
output_prefix = "auto"

[sensu]
backend_url = "ws://sensu:8081"

[programs.web]
main = true
command = ["web"]
`)
	_, err := Load(Options{Path: path, Environ: []string{
		"STEWARD_LOG_LEVEL=loud", "STEWARD_OUTPUT_PREFIX=sometimes",
		"STEWARD_SENSU_BACKEND_URL=http://sensu:8081", "STEWARD_METRICS_COLLECTORS=cgroup,disk",
		"STEWARD_CONTROL_SOCKET=relative.sock",
	}})
	got := problems(t, err)
	want := []string{
		`STEWARD_LOG_LEVEL: steward.log_level: "loud" is not one of`,
		`STEWARD_OUTPUT_PREFIX: steward.output_prefix: "sometimes" is not one of`,
		`STEWARD_SENSU_BACKEND_URL: sensu.backend_url: "http://sensu:8081" is not a ws:// or wss:// URL`,
		`STEWARD_METRICS_COLLECTORS: metrics.collectors: unknown collector "disk"`,
		`STEWARD_CONTROL_SOCKET: control.socket: "relative.sock" is not an absolute path`,
	}
	all := strings.Join(got, "\n")
	if strings.Contains(all, path) {
		t.Errorf("a problem of a variable is blamed on the file:\n%s", all)
	}
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("missing %q in:\n%s", w, all)
		}
	}
}

// TestValidationChangesNothing: the checks only read; every default is in
// before they run, so running them again on loaded configs (every example,
// with an allow list) changes none of them.
func TestValidationChangesNothing(t *testing.T) {
	dir := t.TempDir()
	allow := filepath.Join(dir, "allow.yml")
	os.WriteFile(allow, []byte("- exec: /bin/true\n  args: [\"\"]\n"), 0o644)
	files, _ := filepath.Glob("examples/*.toml")
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if strings.Contains(string(data), "[sensu]") {
			data = []byte(strings.Replace(string(data), "[sensu]", "[sensu]\nallow_list = \""+allow+"\"", 1))
		}
		if _, err := loadData(Options{Path: f, DeferUsers: true}, data); err != nil {
			t.Fatal(err)
		}
		// The phases of loadData up to validation.
		doc, err := parseDocument(data)
		if err != nil {
			t.Fatal(err)
		}
		d := &decoder{source: f, lines: doc.lines, undecoded: map[string]bool{}}
		cfg := newConfig(f)
		d.decode("", doc.tree, reflect.ValueOf(cfg).Elem())
		for name, p := range cfg.Programs {
			p.Name = name
		}
		cfg.Order = d.programOrder(cfg.Programs)
		d.validating = true
		derive(cfg)
		before, _ := json.Marshal(cfg)
		d.validate(cfg)
		after, _ := json.Marshal(cfg)
		if string(before) != string(after) {
			t.Errorf("%s: validation changed the config:\n%s\n%s", f, before, after)
		}
		if len(d.problems) > 0 {
			t.Errorf("%s: a loaded config has problems: %v", f, d.problems)
		}
	}
}
