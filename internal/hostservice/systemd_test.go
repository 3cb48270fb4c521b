package hostservice

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeSystemctl is a systemctl that logs its arguments and answers
// is-active with state.
func fakeSystemctl(t *testing.T, state string) (*Manager, string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$@\" >> " + log + "\nif [ \"$1\" = is-active ]; then echo " + state + "; [ " + state + " = active ]; fi\n"
	bin := filepath.Join(dir, "systemctl")
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	units := filepath.Join(dir, "units")
	os.Mkdir(units, 0o755)
	return &Manager{Dir: units, Systemctl: bin, Running: true}, log
}

func calls(t *testing.T, log string) string {
	b, _ := os.ReadFile(log)
	return string(b)
}

func TestInstallUninstall(t *testing.T) {
	m, log := fakeSystemctl(t, "inactive")
	u := Unit{Name: "web", Description: "steward supervising shop 1.2", Exec: "/usr/local/bin/steward",
		Args: []string{"--config", "/etc/steward/shop.toml"}, StopTimeout: 38 * time.Second}
	if err := m.Install(u); err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(filepath.Join(m.Dir, "web.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nExecStart=/usr/local/bin/steward \"--config\" \"/etc/steward/shop.toml\"\n",
		"\nKillMode=mixed\n", "\nTimeoutStopSec=38\n", "\nRestart=on-failure\n",
		"\nEnvironmentFile=-/etc/default/web\n", "\nWantedBy=multi-user.target\n",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	if err := m.Install(u); err == nil || !strings.Contains(err.Error(), "installed already") {
		t.Errorf("second install: %v", err)
	}
	state, running, err := m.Status("web")
	if err != nil || running || state != "inactive" {
		t.Errorf("status = %q %v %v, want inactive", state, running, err)
	}
	if err := m.Control("web", "start"); err != nil {
		t.Fatal(err)
	}
	if err := m.Uninstall("web"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.Dir, "web.service")); !os.IsNotExist(err) {
		t.Errorf("unit left behind: %v", err)
	}
	if got, want := calls(t, log), "enable web.service\ndaemon-reload\nis-active web.service\nstart web.service\ndisable web.service\ndaemon-reload\n"; got != want {
		t.Errorf("systemctl calls:\n%s\nwant:\n%s", got, want)
	}
	state, running, err = m.Status("web")
	if err != nil || running || state != "not installed" {
		t.Errorf("status after uninstall = %q %v %v", state, running, err)
	}
}

func TestStatusActive(t *testing.T) {
	m, _ := fakeSystemctl(t, "active")
	os.WriteFile(filepath.Join(m.Dir, "web.service"), nil, 0o644)
	state, running, err := m.Status("web")
	if err != nil || !running || state != "active" {
		t.Errorf("status = %q %v %v, want active and running", state, running, err)
	}
}

func TestSystemctlFailureIsReported(t *testing.T) {
	m, _ := fakeSystemctl(t, "inactive")
	m.Systemctl = "/bin/false"
	err := m.Control("web", "stop")
	if err == nil || !strings.Contains(err.Error(), "systemctl stop web.service") {
		t.Errorf("err = %v", err)
	}
}

func TestOpen(t *testing.T) {
	if _, err := Open("linux-upstart"); err == nil || !strings.Contains(err.Error(), "unknown service manager") {
		t.Errorf("unknown system: %v", err)
	}
	if m, err := Open(Systemd); err != nil || m.Dir != "/etc/systemd/system" {
		t.Errorf("forced systemd: %v %v", m, err)
	}
}

// TestRenderQuoting: arguments with spaces and quotes reach steward as
// given, as systemd parses them.
func TestRenderQuoting(t *testing.T) {
	u := Unit{Name: "s", Exec: "/opt/my steward/steward", Args: []string{"--config", `/etc/a "b" c\d.toml`}}
	got := u.Render()
	if want := `ExecStart=/opt/my\x20steward/steward "--config" "/etc/a \"b\" c\\d.toml"`; !strings.Contains(got, want+"\n") {
		t.Errorf("render:\n%s\nwant line %s", got, want)
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		return
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "s.service")
	u.Exec = "/bin/true"
	os.WriteFile(p, []byte(u.Render()), 0o644)
	if out, err := exec.Command("systemd-analyze", "verify", p).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestInstallRollsBack: a daemon-reload that fails (systemd not answering)
// leaves no unit behind, enabled or not (issue 10, defect 9).
func TestInstallRollsBack(t *testing.T) {
	m, log := fakeSystemctl(t, "inactive")
	script := "#!/bin/sh\necho \"$@\" >> " + log + "\n[ \"$1\" != daemon-reload ]\n"
	os.WriteFile(m.Systemctl, []byte(script), 0o755)
	err := m.Install(Unit{Name: "web", Exec: "/usr/local/bin/steward"})
	if err == nil || !strings.Contains(err.Error(), "daemon-reload") {
		t.Fatalf("install: %v", err)
	}
	if _, err := os.Stat(filepath.Join(m.Dir, "web.service")); !os.IsNotExist(err) {
		t.Errorf("unit left behind: %v", err)
	}
	if got, want := calls(t, log), "enable web.service\ndaemon-reload\ndisable web.service\n"; got != want {
		t.Errorf("systemctl calls:\n%s\nwant:\n%s", got, want)
	}
}

// TestInstallWithoutSystemdRunning: in an image build, the unit is written
// and enabled, and no daemon-reload is tried.
func TestInstallWithoutSystemdRunning(t *testing.T) {
	m, log := fakeSystemctl(t, "inactive")
	m.Running = false
	if err := m.Install(Unit{Name: "web", Exec: "/usr/local/bin/steward"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Uninstall("web"); err != nil {
		t.Fatal(err)
	}
	if got, want := calls(t, log), "enable web.service\ndisable web.service\n"; got != want {
		t.Errorf("systemctl calls:\n%s\nwant:\n%s", got, want)
	}
}
