package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/internal/testutil"
)

// validateOutput runs `steward validate` on a config with mistakes in its
// Sensu section, secrets in env, and returns what it printed.
func validateOutput(t *testing.T, env []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(path, []byte(`
[sensu]
backend_url = ["http://agent:`+sensuPassword+`@sensu:8081"]
keepalive_interval = "0s"
[programs.app]
main = true
command = ["true"]
`), 0o644)
	cmd := exec.Command(stewardBin, "validate", "--config", path)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if exitCode(err) != 2 || !strings.Contains(string(out), "sensu.backend_url") || !strings.Contains(string(out), "sensu.keepalive_interval") {
		t.Fatalf("validate: exit %d\n%s", exitCode(err), out)
	}
	return string(out)
}

// runHealth runs `steward health` as Docker's HEALTHCHECK would, from
// outside steward's PID namespace, finding the socket through the config.
func runHealth(t *testing.T, in *instance, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(stewardBin, append([]string{"health"}, args...)...)
	cmd.Env = append(os.Environ(), "STEWARD_CONFIG="+filepath.Join(in.dir, "steward.toml"))
	if in.socket != "" {
		cmd.Env = append(cmd.Env, "STEWARD_CONTROL_SOCKET="+in.socket)
	}
	out, err := cmd.CombinedOutput()
	return exitCode(err), string(out)
}

func getJSON(t *testing.T, url string) (int, checks.HealthReport) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep checks.HealthReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, rep
}

// TestHealthCommandAndEndpoints: `steward health` and /healthz, /readyz
// against a running steward (PID 1 of its namespace), healthy then
// unhealthy when a health check fails, and not ready once it stops.
func TestHealthCommandAndEndpoints(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "healthy")
	os.WriteFile(flag, nil, 0o644)
	addr := freeAddr(t)
	socket := filepath.Join(dir, "ctl", "control.sock")
	in := start(t, runOpts{config: `
[health]
grace_period = "0s"
[http]
addr = "` + addr + `"
[control]
socket = "` + socket + `"

[programs.app]
main = true
command = ["sleep", "1000"]
ready = { file = "` + flag + `", interval = "50ms" }

[checks.flag]
file = "` + flag + `"
interval = "100ms"
health = true
`})
	in.waitEvent("app", "ready")
	testutil.Eventually(t, "healthy", func() bool { code, _ := runHealth(t, in); return code == 0 })
	if code, out := runHealth(t, in, "--ready"); code != 0 || !strings.Contains(out, "healthy, ready") {
		t.Fatalf("--ready: exit %d %q", code, out)
	}
	if fi, err := os.Stat(socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v", fi, err)
	}
	code, rep := getJSON(t, "http://"+addr+"/healthz")
	if code != 200 || rep.Status != "healthy" || len(rep.Checks) != 2 {
		t.Fatalf("/healthz %d %+v", code, rep)
	}
	if code, _ := getJSON(t, "http://"+addr+"/readyz"); code != 200 {
		t.Fatalf("/readyz %d", code)
	}

	os.Remove(flag)
	testutil.Eventually(t, "unhealthy", func() bool { code, _ := runHealth(t, in); return code == 1 })
	code, out := runHealth(t, in)
	if code != 1 || !strings.Contains(out, "unhealthy (flag: file "+flag+": does not exist)") {
		t.Fatalf("exit %d %q", code, out)
	}
	if code, rep := getJSON(t, "http://"+addr+"/healthz"); code != 503 || rep.Healthy {
		t.Fatalf("/healthz %d %+v", code, rep)
	}
	if code, rep := getJSON(t, "http://"+addr+"/readyz"); code != 503 || rep.Ready {
		t.Fatalf("/readyz %d %+v", code, rep)
	}

	in.signal(syscall.SIGTERM)
	in.wait()
	if code, out := runHealth(t, in); code != 1 || !strings.Contains(out, "cannot reach steward") {
		t.Fatalf("after exit: %d %q", code, out)
	}
	if _, err := os.Stat(socket); err == nil {
		t.Error("socket left behind")
	}
}
