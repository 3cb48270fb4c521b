package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/testutil"
)

// readyz returns /readyz's code and why the container is not ready.
func readyz(t *testing.T, addr string) (int, string) {
	t.Helper()
	code, rep := getJSON(t, "http://"+addr+"/readyz")
	return code, strings.Join(rep.NotReady, "; ")
}

func metricsText(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestStoppedProgramKeepsContainerReady: `steward stop side` makes the
// container not ready only while side is being stopped; once stopped (on
// request, until `start`), the container is ready again, as the README
// says (issue 10, defect 3).
func TestStoppedProgramKeepsContainerReady(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	sock := filepath.Join(dir, "control.sock")
	in := start(t, runOpts{config: fmt.Sprintf(`
[health]
grace_period = "0s"
[http]
addr = %q
[control]
socket = %q

[programs.app]
main = true
command = ["sleep", "1000"]
start_secs = 0

[programs.side]
command = ["sleep", "1000"]
start_secs = 0
`, addr, sock)})
	in.waitEvent("side", "started")
	in.waitHTTP()
	testutil.Eventually(t, "ready", func() bool { code, _ := readyz(t, addr); return code == http.StatusOK })
	if out, code := ctlRun(t, sock, "stop", "side"); code != 0 {
		t.Fatalf("stop side (exit %d): %s", code, out)
	}
	testutil.Eventually(t, "ready with side stopped", func() bool {
		code, why := readyz(t, addr)
		if code != http.StatusOK && !strings.Contains(why, "stopping") {
			t.Fatalf("not ready once side has stopped: %s", why)
		}
		return code == http.StatusOK
	})
}

// TestRemovedProgramForgotten: a program removed by a reload, fatal or
// running, leaves no trace in the health state, readiness or metrics once
// it is gone (issue 10, defect 2).
func TestRemovedProgramForgotten(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	sock := filepath.Join(dir, "control.sock")
	base := fmt.Sprintf(`
[health]
grace_period = "0s"
[http]
addr = %q
[control]
socket = %q
[metrics]
prometheus = true
interval = "1s"
collectors = ["steward"]

[programs.app]
main = true
command = ["sleep", "1000"]
start_secs = 0
`, addr, sock)
	in := start(t, runOpts{config: base + `
[programs.side]
command = ["sleep", "1000"]
start_secs = 0

[programs.broken]
command = ["sh", "-c", "exit 3"]
start_secs = "1h"
start_retries = 0
`})
	in.waitEvent("broken", "fatal")
	in.waitEvent("side", "started")
	in.waitHTTP()
	testutil.Eventually(t, "unhealthy with broken fatal, program-side in the metrics", func() bool {
		code, _ := getJSON(t, "http://"+addr+"/healthz")
		return code == http.StatusServiceUnavailable && strings.Contains(metricsText(t, addr), `check="program-side"`)
	})
	os.WriteFile(filepath.Join(in.dir, "steward.toml"), []byte(base), 0o644)
	if out, code := ctlRun(t, sock, "reload"); code != 0 || !strings.Contains(out, "side: removed") || !strings.Contains(out, "broken: removed") {
		t.Fatalf("reload (exit %d): %s", code, out)
	}
	testutil.Eventually(t, "healthy and ready without the removed programs", func() bool {
		hc, rep := getJSON(t, "http://"+addr+"/healthz")
		rc, _ := readyz(t, addr)
		for _, c := range rep.Checks {
			if c.Name == "program-side" || c.Name == "program-broken" {
				return false
			}
		}
		return hc == http.StatusOK && rc == http.StatusOK
	})
	testutil.Eventually(t, "the removed programs' check.status gone from /metrics", func() bool {
		m := metricsText(t, addr)
		return strings.Contains(m, `check="program-app"`) && !strings.Contains(m, `check="program-side"`) && !strings.Contains(m, `check="program-broken"`)
	})
}
