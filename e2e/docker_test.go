//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// container is one `docker run -d` the test made; it is removed when the
// test ends, and its logs are shown when the test failed.
type container struct {
	t    testing.TB
	id   string
	name string
}

// runContainer starts image with a config (mounted read-only at /e2e,
// named by STEWARD_CONFIG) and docker run flags.
func runContainer(t testing.TB, config string, flags ...string) *container {
	t.Helper()
	name := fmt.Sprintf("e2e-%s-%d", strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")), len(flags))
	args := []string{"run", "-d", "--name", name}
	if config != "" {
		dir := t.TempDir()
		os.Chmod(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, "steward.toml"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-v", dir+":/e2e:ro", "-e", "STEWARD_CONFIG=/e2e/steward.toml")
	}
	if i := slices.Index(flags, imageMark); i >= 0 {
		args = append(append(args, flags[:i]...), flags[i+1:]...)
	} else {
		args = append(append(args, flags...), baseImage)
	}
	docker("rm", "-f", name) // a leftover of an interrupted run
	id := mustDocker(t, args...)
	c := &container{t: t, id: id, name: name}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := docker("logs", "-t", id)
			t.Logf("docker logs %s:\n%s", name, out)
			t.Logf("docker logs %s (stderr):\n%s", name, c.stderr())
		}
		docker("rm", "-f", "-v", id)
	})
	return c
}

// imageMark in runContainer's flags says that the image (and its command)
// follow; without it the container runs baseImage.
const imageMark = "--image-follows"

func (c *container) stdout() string {
	out, _ := docker("logs", c.id)
	return out
}

// stderr is what the container wrote to its stderr (docker logs keeps
// the two streams apart).
func (c *container) stderr() string {
	cmd := dockerCmd("logs", c.id)
	var b strings.Builder
	cmd.Stderr = &b
	cmd.Run()
	return b.String()
}

// state is docker inspect's .State.
type state struct {
	Status    string
	Running   bool
	ExitCode  int
	OOMKilled bool
	Health    *struct {
		Status string
		Log    []struct {
			ExitCode int
			Output   string
		}
	}
}

func (c *container) state() state {
	c.t.Helper()
	var s state
	if err := json.Unmarshal([]byte(mustDocker(c.t, "inspect", "-f", "{{json .State}}", c.id)), &s); err != nil {
		c.t.Fatal(err)
	}
	return s
}

func (c *container) exec(args ...string) (string, error) {
	return docker(append([]string{"exec", c.id}, args...)...)
}

// waitExit waits until the container has stopped and returns its code.
func (c *container) waitExit() int {
	c.t.Helper()
	out := mustDocker(c.t, "wait", c.id)
	code, err := strconv.Atoi(out)
	if err != nil {
		c.t.Fatalf("docker wait: %q", out)
	}
	return code
}

// waitLog waits until the container's output (both streams) holds re.
func (c *container) waitLog(what string, re *regexp.Regexp) {
	c.t.Helper()
	waitFor(c.t, what, func() bool {
		if re.MatchString(c.stdout()) || re.MatchString(c.stderr()) {
			return true
		}
		if s := c.state(); !s.Running {
			c.t.Fatalf("container exited (code %d) before %s", s.ExitCode, what)
		}
		return false
	})
}

// order checks that the lines matching res appear in out in that order.
func order(t testing.TB, out string, res ...string) {
	t.Helper()
	last := -1
	for _, s := range res {
		i := strings.Index(out, s)
		if i < 0 {
			t.Fatalf("%q not in the output", s)
		}
		if i < last {
			t.Fatalf("%q came before the line that should precede it; output:\n%s", s, out)
		}
		last = i
	}
}

// stopConfig: three programs started in order db, app (main), worker;
// each says when it is told to stop and how it ends.
const stopConfig = `
[steward]
shutdown_timeout = "60s"
output_prefix = "always"

[programs.db]
command = ["sh", "-c", "trap 'echo db: stopping; exit 0' TERM; echo db: up; while :; do sleep 1 & wait $!; done"]
ready = { file = "/tmp/db.ready", interval = "100ms" }
stop_timeout = "50s"

[programs.app]
main = true
depends_on = ["db:ready"]
command = ["sh", "-c", "trap 'echo app: stopping; exit 3' TERM; echo app: up; while :; do sleep 1 & wait $!; done"]
stop_timeout = "50s"

[programs.worker]
depends_on = ["app"]
command = ["sh", "-c", "trap 'echo worker: stopping; exit 0' TERM; echo worker: up; while :; do sleep 1 & wait $!; done"]
stop_timeout = "50s"

[programs.mark]
kind = "oneshot"
command = ["touch", "/tmp/db.ready"]
`

// TestDockerStop: `docker stop` gives the main program's exit code, well
// inside the grace period (docker would SIGKILL at its end: 137), with the
// programs stopped in reverse start order.
func TestDockerStop(t *testing.T) {
	t.Parallel()
	c := runContainer(t, stopConfig, "--network", "none", "--stop-timeout", "120")
	c.waitLog("worker up", regexp.MustCompile(`(?m)^\[worker\] worker: up$`))
	mustDocker(t, "stop", c.id)
	if code := c.waitExit(); code != 3 {
		t.Fatalf("exit code after docker stop: %d, want the main program's 3 (137 = killed at the grace period's end)", code)
	}
	// Steward's log: started in dependency order, then each stopped only
	// once the one started after it has exited. (The programs' own lines
	// come through one pipe each, so across programs docker logs need not
	// keep their order.)
	ev := func(msg, p string) string { return `msg="program ` + msg + `" app=app program=` + p + " " }
	order(t, c.stderr(), ev("started", "db"), ev("started", "app"), ev("started", "worker"),
		ev("stopping", "worker"), ev("exited", "worker"), ev("stopping", "app"), ev("exited", "app"),
		ev("stopping", "db"), ev("exited", "db"))
	for _, p := range []string{"worker", "app", "db"} {
		if line := "[" + p + "] " + p + ": stopping"; !strings.Contains(c.stdout(), line) {
			t.Errorf("%q missing: %s did not get its stop signal", line, p)
		}
	}
}

// TestDockerKillSignal: a signal given with `docker kill -s` reaches the
// main program, which dies of it: the container exits 128+N.
func TestDockerKillSignal(t *testing.T) {
	t.Parallel()
	c := runContainer(t, stopConfig, "--network", "none")
	c.waitLog("worker up", regexp.MustCompile(`(?m)^\[worker\] worker: up$`))
	mustDocker(t, "kill", "-s", "USR2", c.id)
	if code := c.waitExit(); code != 128+12 {
		t.Fatalf("exit code after docker kill -s USR2: %d, want 140 (128+SIGUSR2)", code)
	}
	if !regexp.MustCompile(`program exited.*program=app.*(signal=(USR2|SIGUSR2|12|"user defined signal 2"))`).MatchString(c.stderr()) {
		t.Fatalf("steward's log does not say the main program died of USR2:\n%s", c.stderr())
	}
}

// TestDockerKill: SIGKILL, which nobody can catch, ends the container with
// 137.
func TestDockerKill(t *testing.T) {
	t.Parallel()
	c := runContainer(t, stopConfig, "--network", "none")
	c.waitLog("worker up", regexp.MustCompile(`(?m)^\[worker\] worker: up$`))
	mustDocker(t, "kill", c.id)
	if code := c.waitExit(); code != 137 {
		t.Fatalf("exit code after docker kill: %d, want 137", code)
	}
}

// TestDockerLogsAndHealth: `docker logs` shows every program's lines on
// the stream it wrote them to, each behind its program's prefix; Docker's
// HEALTHCHECK, asking `steward health`, says starting while a health check
// fails within the start period, healthy once it passes, and unhealthy
// when it fails again.
func TestDockerLogsAndHealth(t *testing.T) {
	t.Parallel()
	c := runContainer(t, `
[health]
grace_period = "0s"

[programs.web]
main = true
command = ["sh", "-c", "echo 'web: listening'; echo 'web: slow request' >&2; exec sleep 3600"]

[programs.jobs]
command = ["sh", "-c", "echo 'jobs: picked 3 jobs'; echo 'jobs: retry later' >&2; exec sleep 3600"]

[checks.marker]
file = "/tmp/ok"
interval = "1s"
health = true
`, "--network", "none", "--health-cmd", "/usr/local/bin/steward health",
		"--health-interval", "1s", "--health-timeout", "30s", "--health-retries", "1", "--health-start-period", "10m")
	// The marker is missing: the probe fails, and within the start period
	// Docker keeps saying starting.
	waitFor(t, "a failing probe", func() bool {
		h := c.state().Health
		return h != nil && len(h.Log) > 0 && h.Log[len(h.Log)-1].ExitCode == 1
	})
	if h := c.state().Health; h.Status != "starting" {
		t.Fatalf("health with a failing probe in the start period: %q, want starting", h.Status)
	}
	if _, err := c.exec("touch", "/tmp/ok"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "healthy", func() bool { return c.state().Health.Status == "healthy" })
	for _, line := range []string{"[web] web: listening", "[jobs] jobs: picked 3 jobs"} {
		waitFor(t, line+" on stdout", func() bool { return strings.Contains(c.stdout(), line) })
	}
	for _, line := range []string{"[web] web: slow request", "[jobs] jobs: retry later"} {
		waitFor(t, line+" on stderr", func() bool { return strings.Contains(c.stderr(), line) })
	}
	if _, err := c.exec("rm", "/tmp/ok"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "unhealthy", func() bool { return c.state().Health.Status == "unhealthy" })
	h := c.state().Health
	if last := h.Log[len(h.Log)-1]; last.ExitCode != 1 || !strings.Contains(last.Output, "marker") {
		t.Fatalf("the failing probe: exit %d, output %q; want 1 and the failing check named", last.ExitCode, last.Output)
	}
	t.Logf("health: starting, healthy, then unhealthy: %q", h.Log[len(h.Log)-1].Output)
}

// metricLine finds the newest printed sample of a series (name and tags
// as a prefix) in print mode's output.
func metricLine(out, name string) (float64, bool) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `;\S* (\S+) \d+$`)
	m := re.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[len(m)-1][1], 64)
	return v, err == nil
}

// TestDockerLimitsAndOOM: the limits steward reports from inside are the
// ones given to docker run; a program the kernel's OOM killer ends is
// counted and named, and steward goes on.
func TestDockerLimitsAndOOM(t *testing.T) {
	t.Parallel()
	c := runContainer(t, `
[metrics]
interval = "1s"
print = true

[programs.app]
main = true
command = ["sleep", "3600"]

# Asks for 256 MiB in one buffer inside a 64 MiB container.
[programs.hog]
restart = "never"
depends_on = ["app"]
command = ["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.2; done; echo hog: allocating; exec dd if=/dev/zero of=/dev/null bs=256M count=1"]
`, "--network", "none", "--memory", "64m", "--memory-swap", "64m", "--cpus", "0.5", "--pids-limit", "50")
	var hc struct {
		Memory, MemorySwap, NanoCpus int64
		PidsLimit                    *int64
	}
	json.Unmarshal([]byte(mustDocker(t, "inspect", "-f", "{{json .HostConfig}}", c.id)), &hc)
	want := map[string]float64{
		"container.memory.limit_bytes": float64(hc.Memory),
		"container.cpu.limit_cores":    float64(hc.NanoCpus) / 1e9,
		"container.pids.limit":         float64(*hc.PidsLimit),
	}
	t.Logf("docker inspect: memory %d, cpus %d nano, pids %d", hc.Memory, hc.NanoCpus, *hc.PidsLimit)
	if want["container.memory.limit_bytes"] != 64<<20 || want["container.cpu.limit_cores"] != 0.5 || want["container.pids.limit"] != 50 {
		t.Fatalf("docker did not set the limits asked: %v", want)
	}
	for name, v := range want {
		waitFor(t, name, func() bool { _, ok := metricLine(c.stdout(), name); return ok })
		if got, _ := metricLine(c.stdout(), name); got != v {
			t.Errorf("%s = %v seen from inside, docker run gave %v", name, got, v)
		}
	}
	if v, _ := metricLine(c.stdout(), "container.pids.current"); v < 2 || v > 50 {
		t.Errorf("container.pids.current = %v", v)
	}
	if v, ok := metricLine(c.stdout(), "container.memory.oom_kills_total"); ok && v != 0 {
		t.Fatalf("OOM kills before the hog ran: %v", v)
	}
	c.exec("touch", "/tmp/go")
	waitFor(t, "the OOM kill counted", func() bool {
		v, _ := metricLine(c.stdout(), "container.memory.oom_kills_total")
		return v >= 1
	})
	var health struct {
		Checks []struct {
			Name, Output string
			Program      *struct {
				OOMKilled bool `json:"oom_killed"`
			}
		}
	}
	var named string
	waitFor(t, "the hog named as OOM-killed", func() bool {
		out, _ := c.exec("steward", "health", "--json")
		json.Unmarshal([]byte(out), &health)
		for _, ch := range health.Checks {
			if ch.Name == "program-hog" && ch.Program != nil && ch.Program.OOMKilled && strings.Contains(ch.Output, "OOM killer") {
				named = ch.Output
				return true
			}
		}
		return false
	})
	t.Logf("program-hog: %s", named)
	// steward survived: still PID 1, still answering, the app untouched.
	if s := c.state(); !s.Running {
		t.Fatalf("the container stopped: %+v", s)
	}
	// status exits non-zero while a program has failed; its table is what counts.
	status, _ := c.exec("steward", "status")
	if !regexp.MustCompile(`(?m)^app \(main\)\s+running`).MatchString(status) {
		t.Fatalf("steward status after the OOM kill:\n%s", status)
	}
	if comm, _ := c.exec("cat", "/proc/1/comm"); comm != "steward" {
		t.Fatalf("PID 1 is %q", comm)
	}
	t.Logf("after the OOM kill:\n%s", status)
}
