package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// inEtcSandbox runs script in a private mount namespace whose /etc is an
// overlay over the host's, with a fake systemctl first on PATH that logs
// its arguments: installing a service there leaves the host untouched.
func inEtcSandbox(t *testing.T, script string) (out string, systemctl string, err error) {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"bin", "ov"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "bin", "systemctl"), []byte("#!/bin/sh\necho \"$@\" >> "+dir+"/systemctl.log\n"), 0o755)
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-ec", fmt.Sprintf(`
mount -t tmpfs tmpfs %[1]s/ov
mkdir -p %[1]s/ov/up %[1]s/ov/work
mount -t overlay overlay -o lowerdir=/etc,upperdir=%[1]s/ov/up,workdir=%[1]s/ov/work /etc
mkdir -p /etc/systemd/system
export PATH=%[1]s/bin:$PATH
%[2]s`, dir, script))
	b, err := cmd.CombinedOutput()
	log, _ := os.ReadFile(filepath.Join(dir, "systemctl.log"))
	return string(b), string(log), err
}

// TestServiceInstall: `steward service install` writes a systemd unit that
// runs steward with the config, leaves the ordered stop to steward, and
// passes systemd's own verifier.
func TestServiceInstall(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "steward.toml")
	os.WriteFile(cfg, []byte("[steward]\nshutdown_timeout = \"20s\"\nflush_timeout = \"3s\"\n[programs.app]\nmain = true\ncommand = [\"sleep\", \"1\"]\n"), 0o644)
	out, systemctl, err := inEtcSandbox(t, fmt.Sprintf(`%[1]s service install --config %[2]s --system linux-systemd --name steward-test
cat /etc/systemd/system/steward-test.service > %[3]s/unit
%[1]s service uninstall --name steward-test --system linux-systemd
test ! -e /etc/systemd/system/steward-test.service`, stewardBin, cfg, filepath.Dir(cfg)))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// daemon-reload only where systemd runs; an image build has none.
	wantCalls := "enable steward-test.service\ndisable steward-test.service\n"
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		wantCalls = "enable steward-test.service\ndaemon-reload\ndisable steward-test.service\ndaemon-reload\n"
	}
	if systemctl != wantCalls {
		t.Errorf("systemctl calls:\n%s\nwant:\n%s", systemctl, wantCalls)
	}
	if _, err := os.Stat("/etc/systemd/system/steward-test.service"); err == nil {
		t.Fatal("the unit reached the host's /etc")
	}
	unitPath := filepath.Join(filepath.Dir(cfg), "unit")
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	sections := parseUnit(t, string(unit))
	want := map[string]map[string]string{
		"Service": {
			"ExecStart":      fmt.Sprintf("%s \"--config\" \"%s\"", stewardBin, cfg),
			"KillMode":       "mixed",
			"TimeoutStopSec": "28", // shutdown 20 s + flush 3 s + 5 s
			"Type":           "simple",
		},
		"Install": {"WantedBy": "multi-user.target"},
	}
	for section, keys := range want {
		for k, v := range keys {
			if got := sections[section][k]; got != v {
				t.Errorf("[%s] %s = %q, want %q", section, k, got, v)
			}
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		named := filepath.Join(t.TempDir(), "steward-test.service")
		os.WriteFile(named, unit, 0o644)
		out, err := exec.Command("systemd-analyze", "verify", named).CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, named) {
				t.Errorf("systemd-analyze: %s", line)
			}
		}
		if err != nil {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
}

// TestServiceInstallRefusesBadConfig: nothing is installed for a config
// steward could not run.
func TestServiceInstallRefusesBadConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(cfg, []byte("[programs.app]\ncommand = 42\n"), 0o644)
	out, systemctl, err := inEtcSandbox(t, fmt.Sprintf(`%s service install --config %s --system linux-systemd --name steward-test || echo "exit $?"
test ! -e /etc/systemd/system/steward-test.service`, stewardBin, cfg))
	if err != nil || !strings.Contains(out, "exit 2") || !strings.Contains(out, "bad.toml:2: programs.app.command") {
		t.Fatalf("%v\n%s", err, out)
	}
	if systemctl != "" {
		t.Fatalf("systemctl called: %s", systemctl)
	}
}

// parseUnit reads a systemd unit into sections of keys.
func parseUnit(t *testing.T, unit string) map[string]map[string]string {
	t.Helper()
	sections := map[string]map[string]string{}
	var cur string
	for _, line := range strings.Split(unit, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			cur = strings.Trim(line, "[]")
			sections[cur] = map[string]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || cur == "" {
				t.Fatalf("unit line %q is not key=value in a section", line)
			}
			sections[cur][k] = v
		}
	}
	for _, s := range []string{"Unit", "Service", "Install"} {
		if sections[s] == nil {
			t.Fatalf("unit lacks [%s]", s)
		}
	}
	return sections
}
