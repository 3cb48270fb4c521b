package configs

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func write(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "steward.toml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func problems(t *testing.T, err error) []string {
	t.Helper()
	cerr, ok := err.(*Error)
	if !ok {
		t.Fatalf("want *Error, got %v", err)
	}
	var out []string
	for _, p := range cerr.Problems {
		out = append(out, p.String())
	}
	return out
}

func TestDefaultsAndDerivedValues(t *testing.T) {
	cfg, err := Load(Options{Path: write(t, `
[programs.migrate]
kind = "oneshot"
command = ["migrate"]

[programs.db]
command = ["db"]
ready = { tcp = "127.0.0.1:5432" }

[programs.cache]
command = ["cache"]

[programs.web]
main = true
command = ["web"]
depends_on = ["migrate", "db", "cache"]
`)})
	if err != nil {
		t.Fatal(err)
	}
	web := cfg.Programs["web"]
	if web.Restart != RestartNever || web.OnFatal != OnFatalStop || !web.Forwards() {
		t.Errorf("main defaults: restart %q on_fatal %q forwards %v", web.Restart, web.OnFatal, web.Forwards())
	}
	if cache := cfg.Programs["cache"]; cache.Restart != RestartAlways || cache.OnFatal != OnFatalContinue || cache.Forwards() {
		t.Errorf("service defaults: restart %q on_fatal %q forwards %v", cache.Restart, cache.OnFatal, cache.Forwards())
	}
	wantConds := []string{"migrate:completed", "db:ready", "cache:started"}
	for i, dep := range web.DependsOn {
		if dep.String() != wantConds[i] {
			t.Errorf("dependency %d = %s, want %s", i, dep, wantConds[i])
		}
	}
	if web.StopTimeout.D() != DefaultStopTimeout || web.StartSecs.D() != DefaultStartSecs || web.StopSignal.S() != syscall.SIGTERM {
		t.Errorf("timing defaults: %v %v %v", web.StopTimeout.D(), web.StartSecs.D(), web.StopSignal)
	}
	if got := cfg.Programs["db"].Ready.Interval.D(); got != DefaultProbeInterval {
		t.Errorf("probe interval %v", got)
	}
	if strings.Join(cfg.Order, ",") != "migrate,db,cache,web" {
		t.Errorf("order %v, want the file's", cfg.Order)
	}
	if cfg.Steward.App != "web" || cfg.Steward.Version != "unknown" {
		t.Errorf("identity %q %q", cfg.Steward.App, cfg.Steward.Version)
	}
}

func TestValueSyntaxes(t *testing.T) {
	cfg, err := Load(Options{Path: write(t, `
[steward]
shutdown_timeout = 45
success_exit_codes = [143, 130]

[programs.x]
main = true
command = ["x"]
stop_timeout = "1m30s"
start_secs = 0.5
stop_signal = "SIGQUIT"
umask = "0o027"
rlimits = { nofile = 1024, core = "unlimited", nproc = "100:200" }
signals = { HUP = "USR1", WINCH = "drop", 10 = "TERM" }
`)})
	if err != nil {
		t.Fatal(err)
	}
	x := cfg.Programs["x"]
	checks := []struct {
		name      string
		got, want any
	}{
		{"shutdown_timeout", cfg.Steward.ShutdownTimeout.D(), 45 * time.Second},
		{"stop_timeout", x.StopTimeout.D(), 90 * time.Second},
		{"start_secs", x.StartSecs.D(), 500 * time.Millisecond},
		{"stop_signal", x.StopSignal.S(), syscall.SIGQUIT},
		{"umask", *x.Umask, Umask(0o27)},
		{"nofile", x.Rlimits["nofile"], Rlimit{1024, 1024}},
		{"core", x.Rlimits["core"], Rlimit{Unlimited, Unlimited}},
		{"nproc", x.Rlimits["nproc"], Rlimit{100, 200}},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	rw := x.SignalRewrites()
	if rw[syscall.SIGHUP].Signal != syscall.SIGUSR1 || !rw[syscall.SIGWINCH].Drop || rw[syscall.SIGUSR1].Signal != syscall.SIGTERM {
		t.Errorf("rewrites %v", rw)
	}
}

// TestEveryProblemWithFileAndLine: decoding and semantic problems are all
// reported at once, each at its line.
func TestEveryProblemWithFileAndLine(t *testing.T) {
	path := write(t, `[steward]
log_level = "loud"
bogus = 1

[programs.web]
command = "/bin/web"
depends_on = ["nope", "db"]
stop_timeout = "soon"
user = "no-such-user-steward-test"
restrat = "always"
kind = "daemon"

[programs.db]
command = ["db"]
main = true
depends_on = ["web:completed"]
ready = { tcp = "localhost", interval = 0 }
signals = { BOGUS = "drop", HUP = "NOPE" }
rlimits = { nofiles = 1 }
umask = 22

[programs.other]
command = ["x"]
main = true
`)
	_, err := Load(Options{Path: path})
	got := strings.Join(problems(t, err), "\n")
	want := []string{
		path + ":2: steward.log_level: \"loud\" is not one of",
		path + ":3: steward.bogus: unknown key",
		path + ":6: programs.web.command: expected an array, got a string",
		path + ":7: programs.web.depends_on: unknown program \"nope\"",
		path + ":8: programs.web.stop_timeout: bad duration \"soon\"",
		path + ":9: programs.web.user: unknown user \"no-such-user-steward-test\"",
		path + ":10: programs.web.restrat: unknown key (did you mean \"restart\"?)",
		path + ":11: programs.web.kind: \"daemon\" is not one of service, oneshot",
		path + ":15: programs.db.main: only one program can be main (db, other)",
		path + ":16: programs.db.depends_on: \"web\" is not a oneshot and never completes",
		path + ":17: programs.db.ready.tcp: \"localhost\" is not host:port",
		path + ":17: programs.db.ready.interval: must be above zero",
		path + ":18: programs.db.signals.BOGUS: unknown signal \"BOGUS\"",
		path + ":18: programs.db.signals.HUP: unknown signal \"NOPE\"",
		path + ":19: programs.db.rlimits.nofiles: unknown resource",
		path + ":20: programs.db.umask: expected an octal string",
		"dependency cycle: web -> db -> web",
	}
	if strings.Contains(got, "is empty") {
		t.Errorf("a key that failed to decode is reported twice:\n%s", got)
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
}

func TestNoPrograms(t *testing.T) {
	_, err := Load(Options{Path: write(t, "[steward]\napp = \"x\"\n")})
	if got := problems(t, err); len(got) != 1 || !strings.Contains(got[0], "programs: no programs") {
		t.Fatalf("got %q", got)
	}
}

func TestSyntaxErrorHasLine(t *testing.T) {
	path := write(t, "[programs.web]\ncommand = [\"a\",\n  oops]\n")
	got := problems(t, func() error { _, err := Load(Options{Path: path}); return err }())
	if len(got) != 1 || !strings.HasPrefix(got[0], path+":3: ") {
		t.Fatalf("got %q, want one problem at line 3", got)
	}
}

func TestEnvironmentOverridesFile(t *testing.T) {
	path := write(t, `
[steward]
app = "from-file"
shutdown_timeout = "5s"

[programs.x]
main = true
command = ["x"]
`)
	cfg, err := Load(Options{Path: path, Environ: []string{
		"STEWARD_APP=from-env", "STEWARD_SHUTDOWN_TIMEOUT=7s", "STEWARD_SUCCESS_EXIT_CODES=143, 3",
		"STEWARD_OUTPUT_TIMESTAMPS=true", "STEWARD_UNRELATED=x",
	}})
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Steward
	if s.App != "from-env" || s.ShutdownTimeout.D() != 7*time.Second || !s.OutputTimestamps ||
		len(s.SuccessExitCodes) != 2 || s.SuccessExitCodes[1] != 3 {
		t.Fatalf("env not applied: %+v", s)
	}
	_, err = Load(Options{Path: path, Environ: []string{"STEWARD_SHUTDOWN_TIMEOUT=later", "STEWARD_MAX_LINE_BYTES=lots"}})
	got := strings.Join(problems(t, err), "\n")
	for _, w := range []string{
		"STEWARD_SHUTDOWN_TIMEOUT: steward.shutdown_timeout: bad duration \"later\"",
		"STEWARD_MAX_LINE_BYTES: steward.max_line_bytes: bad value \"lots\"",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
}

func TestCommandLineMainProgram(t *testing.T) {
	// No config: the command is the main program, named after it.
	cfg, err := Load(Options{Command: []string{"/usr/bin/my-app.v2", "--flag"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.MainProgram(); p == nil || p.Name != "my-app_v2" || p.Command[1] != "--flag" || p.Restart != RestartNever {
		t.Fatalf("main program %+v", p)
	}
	// With a config whose main has a command: the command line replaces it.
	path := write(t, "[programs.web]\nmain = true\ncommand = [\"old\"]\nuser = \"nobody\"\n")
	cfg, err = Load(Options{Path: path, Command: []string{"new", "arg"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Programs["web"]; strings.Join(p.Command, " ") != "new arg" || p.Cred == nil {
		t.Fatalf("main program %+v", p)
	}
	// A main program without a command needs one on the command line.
	path = write(t, "[programs.web]\nmain = true\n")
	_, err = Load(Options{Path: path})
	if got := problems(t, err); len(got) != 1 || !strings.Contains(got[0], "give the command after --") {
		t.Fatalf("got %q", got)
	}
}

func TestCredentials(t *testing.T) {
	cfg, err := Load(Options{Path: write(t, `
[programs.a]
command = ["a"]
user = "nobody"
groups = ["daemon", "0"]

[programs.b]
command = ["b"]
user = "12345"
group = "daemon"
`)})
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Programs["a"].Cred
	if a.UID != 65534 || a.GID != 65534 || a.Username != "nobody" || len(a.Groups) != 2 || a.Groups[0] != 1 || a.Groups[1] != 0 {
		t.Errorf("nobody: %+v", a)
	}
	b := cfg.Programs["b"].Cred
	if b.UID != 12345 || b.GID != 1 || b.Home != "/" {
		t.Errorf("numeric user: %+v", b)
	}
}

// TestExamplesValidate keeps configs/examples true. Users named in the
// examples exist in the images they are written for, not here: they are
// warnings, as `steward validate` reports them.
func TestExamplesValidate(t *testing.T) {
	files, _ := filepath.Glob("examples/*.toml")
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	for _, f := range files {
		cfg, err := Load(Options{Path: f, DeferUsers: true})
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		for _, w := range cfg.Warnings {
			if !strings.Contains(w.String(), "unknown user \"app\"") {
				t.Errorf("%s", w)
			}
		}
	}
}
