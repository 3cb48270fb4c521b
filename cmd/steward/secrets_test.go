package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stewardhq/steward/internal/testutil"
)

// dockerCaps is Docker's default capability set (no SYS_PTRACE, SYS_ADMIN
// or PERFMON, which would let a process read another's memory).
const dockerCaps = "-all,+chown,+dac_override,+fsetid,+fowner,+mknod,+net_raw,+setgid,+setuid,+setfcap,+setpcap," +
	"+net_bind_service,+sys_chroot,+kill,+audit_write"

// TestSecretsNotReadableFromRootProgram: steward runs as root and PID 1 of
// its own PID namespace with /proc mounted for it and Docker's default
// capabilities, as in a container; a program it runs, root with the same
// capabilities (no CAP_SYS_PTRACE), can read neither /proc/1/environ,
// where steward's original environment holds the Sensu password and API
// key, nor /proc/1/mem.
func TestSecretsNotReadableFromRootProgram(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the program under test runs as root")
	}
	for _, tool := range []string{"setpriv", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s (util-linux) is needed: %v", tool, err)
		}
	}
	p := newSensuPeer(t)
	in := start(t, runOpts{env: sensuEnv(p, "shop-9"), wrap: []string{"unshare", "--mount-proc", "--",
		"setpriv", "--bounding-set", dockerCaps, "--inh-caps", "-all", "--"}, config: `
[http]
addr = "off"
[control]
socket = "` + filepath.Join(t.TempDir(), "ctl", "control.sock") + `"

[programs.app]
main = true
command = ["sleep", "1000"]

[programs.spy]
command = ["sh", "-c", """
  tr '\\0' '\\n' < /proc/self/environ > "$T/own-environ"
  grep CapEff /proc/self/status > "$T/caps"
  cat /proc/1/cmdline > "$T/cmdline"
  cat /proc/1/environ > "$T/environ" 2> "$T/environ.err"; echo $? > "$T/environ.rc"
  head -c 1 /proc/1/mem > /dev/null 2> "$T/mem.err"; echo $? > "$T/mem.rc"
  exec sleep 1000
"""]
`})
	testutil.Eventually(t, "the spy's attempts", func() bool { _, err := os.Stat(filepath.Join(in.dir, "mem.rc")); return err == nil })
	read := func(name string) string { b, _ := os.ReadFile(filepath.Join(in.dir, name)); return string(b) }
	if !strings.Contains(read("cmdline"), "steward") {
		t.Fatalf("/proc/1 is not steward: %q", read("cmdline"))
	}
	if !strings.Contains(read("own-environ"), "T=") || !strings.HasPrefix(read("caps"), "CapEff:\t00000000a80425fb") {
		t.Fatalf("the spy did not run as expected: %q %q", read("caps"), read("own-environ"))
	}
	if strings.TrimSpace(read("environ.rc")) == "0" || !strings.Contains(read("environ.err"), "Permission denied") {
		t.Errorf("/proc/1/environ readable: rc %s %s", read("environ.rc"), read("environ.err"))
	}
	if env := read("environ"); strings.Contains(env, sensuPassword) || strings.Contains(env, sensuAPIKey) {
		t.Errorf("the spy read steward's secrets: %.300q", env)
	}
	if strings.TrimSpace(read("mem.rc")) == "0" || !strings.Contains(read("mem.err"), "Permission denied") {
		t.Errorf("/proc/1/mem readable: rc %s %s", read("mem.rc"), read("mem.err"))
	}
	in.signal(syscall.SIGKILL)
	in.wait()
}

// TestURLPasswordsRedacted: a password in an HTTP check's URL shows as
// xxxxx in /healthz, `steward health`, the Sensu event (command and
// output), validate and the logs.
func TestURLPasswordsRedacted(t *testing.T) {
	const pw = "hunter2-url-pw"
	p := newSensuPeer(t)
	addr := freeAddr(t)
	closed := freeAddr(t) // nothing listens there: the check fails and says why
	in := start(t, runOpts{env: sensuEnv(p, "shop-10"), config: `
[health]
grace_period = "0s"
[http]
addr = "` + addr + `"
[control]
socket = "` + filepath.Join(t.TempDir(), "ctl", "control.sock") + `"

[programs.app]
main = true
command = ["sleep", "1000"]

[checks.api]
http = "http://monitor:` + pw + `@` + closed + `/status"
interval = "200ms"
health = true
`})
	testutil.Eventually(t, "the check's event", func() bool { return len(sentEvents(t, p, "api")) > 0 })
	ev := sentEvents(t, p, "api")[0].Check
	in.waitHTTP()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	healthz, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, health := runHealth(t, in, "--json")
	_, healthText := runHealth(t, in)
	in.signal(syscall.SIGTERM)
	in.wait()

	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte(`[checks.api]
http = "ftp://monitor:`+pw+`@example.com/"
[programs.app]
main = true
command = ["true"]
`), 0o644)
	val, _ := exec.Command(stewardBin, "validate", "--config", bad).CombinedOutput()

	for what, out := range map[string]string{
		"Sensu command": ev.Command, "Sensu output": ev.Output, "/healthz": string(healthz),
		"steward health --json": health, "steward health": healthText, "validate": string(val),
		"logs": in.stderr.String() + in.stdout.String(),
	} {
		if strings.Contains(out, pw) {
			t.Errorf("%s shows the password: %.400s", what, out)
		}
	}
	for what, out := range map[string]string{"Sensu command": ev.Command, "Sensu output": ev.Output,
		"/healthz": string(healthz), "validate": string(val)} {
		if !strings.Contains(out, "monitor:xxxxx@") {
			t.Errorf("%s does not show the URL redacted: %.400s", what, out)
		}
	}
}
