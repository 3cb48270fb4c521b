package main

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev2 "github.com/sensu/core/v2"

	"github.com/stewardhq/steward/internal/testutil"
	"github.com/stewardhq/steward/shippers/sensu/sensupeer"
)

const (
	sensuPassword = "p4ss-agent-9f2d"
	sensuAPIKey   = "k3y-api-77c1"
)

func newSensuPeer(t *testing.T) *sensupeer.Peer {
	t.Helper()
	p, err := sensupeer.New("agent", sensuPassword, sensuAPIKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// sensuEnv points steward at the peer, secrets in the environment as a
// container would get them.
func sensuEnv(p *sensupeer.Peer, entity string) []string {
	return []string{
		"STEWARD_SENSU_BACKEND_URL=" + p.AgentURL(),
		"STEWARD_SENSU_API_URL=" + p.APIURL(),
		"STEWARD_SENSU_USER=agent",
		"STEWARD_SENSU_PASSWORD=" + sensuPassword,
		"STEWARD_SENSU_API_KEY=" + sensuAPIKey,
		"STEWARD_SENSU_ENTITY_NAME=" + entity,
		"STEWARD_SENSU_SUBSCRIPTIONS=shop,linux",
		"STEWARD_APP=shop",
		"STEWARD_VERSION=3074f46",
	}
}

func validEvent(t *testing.T, payload []byte) *corev2.Event {
	t.Helper()
	var ev corev2.Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatalf("not a core/v2 event: %v\n%s", err, payload)
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("core/v2 rejects the event: %v\n%s", err, payload)
	}
	return &ev
}

// sentEvents decodes every event steward sent for check.
func sentEvents(t *testing.T, p *sensupeer.Peer, check string) []*corev2.Event {
	t.Helper()
	var out []*corev2.Event
	for _, m := range p.Messages("event") {
		if ev := validEvent(t, m.Payload); ev.Check.Name == check {
			out = append(out, ev)
		}
	}
	return out
}

func registered(p *sensupeer.Peer, entity string) func() bool {
	return func() bool { _, ok := p.Entity("default", entity); return ok }
}

func deleted(p *sensupeer.Peer, entity string) bool {
	return slices.Contains(p.Deletions(), "default/"+entity)
}

// TestSensuAgent: registration with labels and subscriptions, keepalives,
// a local check's results, a check request from the backend executed and
// answered, and at TERM the entity deleted before steward exits.
func TestSensuAgent(t *testing.T) {
	p := newSensuPeer(t)
	in := start(t, runOpts{env: sensuEnv(p, "shop-1"), config: `
[sensu]
labels = { team = "payments" }
deregistration_handler = "cleanup"
allow_any_command = true
keepalive_interval = "1s"
keepalive_warning_timeout = "5s"

[programs.app]
main = true
command = ["sleep", "1000"]

[checks.app-alive]
command = ["sh", "-c", "echo app OK; exit 0"]
interval = "1s"
health = true
handlers = ["slack"]
`})
	testutil.Eventually(t, "registration", registered(p, "shop-1"))
	raw, _ := p.Entity("default", "shop-1")
	var ent corev2.Entity
	if err := json.Unmarshal(raw, &ent); err != nil {
		t.Fatal(err)
	}
	if err := ent.Validate(); err != nil {
		t.Fatalf("core/v2 rejects the entity: %v", err)
	}
	if ent.SensuAgentVersion != "steward/"+testStewardVersion || len(ent.Redact) != 9 || ent.System.VMSystem == "" && fileExists("/.dockerenv") {
		t.Errorf("sensu_agent_version %q (want steward's own version), redact %v, vm_system %q", ent.SensuAgentVersion, ent.Redact, ent.System.VMSystem)
	}
	if ua := p.Handshakes()[0].Header.Get("User-Agent"); ua != "steward/"+testStewardVersion {
		t.Errorf("User-Agent %q", ua)
	}
	if ent.EntityClass != "agent" || ent.Labels["app"] != "shop" || ent.Labels["version"] != "3074f46" ||
		ent.Labels["team"] != "payments" || !ent.Deregister || ent.Deregistration.Handler != "cleanup" {
		t.Errorf("entity %+v labels %v", ent, ent.Labels)
	}
	for _, s := range []string{"shop", "linux", "entity:shop-1"} {
		if !slices.Contains(ent.Subscriptions, s) {
			t.Errorf("subscriptions %v lack %s", ent.Subscriptions, s)
		}
	}
	testutil.Eventually(t, "two keepalives", func() bool { return len(p.Messages("keepalive")) >= 2 })
	for _, m := range p.Messages("keepalive") {
		validEvent(t, m.Payload)
	}

	testutil.Eventually(t, "the local check's result", func() bool { return len(sentEvents(t, p, "app-alive")) > 0 })
	local := sentEvents(t, p, "app-alive")[0].Check
	if local.Status != 0 || strings.TrimSpace(local.Output) != "app OK" || !slices.Contains(local.Handlers, "slack") || local.Interval != 1 {
		t.Errorf("local check %+v", local)
	}
	testutil.Eventually(t, "the program check", func() bool { return len(sentEvents(t, p, "program-app")) > 0 })

	cfg := corev2.FixtureCheckConfig("from-backend")
	cfg.Command = "echo entity={{ .name }} app={{ .labels.app }}; exit 2"
	cfg.Subscriptions = []string{"shop"}
	req, _ := json.Marshal(&corev2.CheckRequest{Config: cfg, Issued: 1700000001})
	if n := p.Publish("default", "shop", req); n != 1 {
		t.Fatalf("check request reached %d agents", n)
	}
	testutil.Eventually(t, "the check request's result", func() bool { return len(sentEvents(t, p, "from-backend")) > 0 })
	answered := sentEvents(t, p, "from-backend")[0].Check
	if answered.ProcessedBy != "shop-1" || local.ProcessedBy != "shop-1" || local.Scheduler != "memory" {
		t.Errorf("processed_by %q/%q, scheduler %q", answered.ProcessedBy, local.ProcessedBy, local.Scheduler)
	}
	if answered.Status != 2 || strings.TrimSpace(answered.Output) != "entity=shop-1 app=shop" || answered.Issued != 1700000001 {
		t.Errorf("answer status %d output %q issued %d", answered.Status, answered.Output, answered.Issued)
	}

	in.signal(syscall.SIGTERM)
	if code := in.wait(); code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
	if !deleted(p, "shop-1") {
		t.Fatalf("entity not deleted before steward exited; deletions %v", p.Deletions())
	}
	if len(sentEvents(t, p, "deregistration")) != 1 {
		t.Error("no deregistration event for the deregistration handler")
	}
}

// TestSensuDeregistersOnMainExit: the main program's own exit deletes the
// entity too.
func TestSensuDeregistersOnMainExit(t *testing.T) {
	p := newSensuPeer(t)
	in := start(t, runOpts{env: sensuEnv(p, "shop-2"),
		command: []string{"sh", "-c", `while [ ! -f "$T/stop" ]; do sleep 0.05; done; exit 0`}})
	testutil.Eventually(t, "registration", registered(p, "shop-2"))
	os.WriteFile(filepath.Join(in.dir, "stop"), nil, 0o644)
	if code := in.wait(); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if !deleted(p, "shop-2") {
		t.Fatalf("entity not deleted; deletions %v", p.Deletions())
	}
}

// TestSensuDeregistersOnFatal: a critical program that keeps failing is
// reported as a crash, then fatal, and the give-up deletes the entity.
func TestSensuDeregistersOnFatal(t *testing.T) {
	p := newSensuPeer(t)
	in := start(t, runOpts{env: sensuEnv(p, "shop-3"), config: `
[programs.app]
main = true
command = ["sleep", "1000"]

[programs.worker]
critical = true
command = ["sh", "-c", "while [ ! -f \"$T/crash\" ]; do sleep 0.05; done; exit 3"]
restart = "on-failure"
start_secs = "1h"
start_retries = 1
backoff_initial = "50ms"
backoff_max = "50ms"
`})
	testutil.Eventually(t, "registration", registered(p, "shop-3"))
	os.WriteFile(filepath.Join(in.dir, "crash"), nil, 0o644)
	if code := in.wait(); code != 3 {
		t.Errorf("exit code %d, want the worker's 3", code)
	}
	if !deleted(p, "shop-3") {
		t.Fatalf("entity not deleted; deletions %v", p.Deletions())
	}
	var outputs []string
	for _, ev := range sentEvents(t, p, "program-worker") {
		if ev.Check.Status == 2 {
			outputs = append(outputs, ev.Check.Output)
		}
	}
	joined := strings.Join(outputs, "\n")
	if !strings.Contains(joined, "worker exited with code 3") || !strings.Contains(joined, "worker is fatal") {
		t.Errorf("crash and fatal events not sent; critical outputs:\n%s", joined)
	}
}

// TestSensuStopBoundedWhenBackendDown: the backend goes away and its API
// hangs; the stop still ends within the flush timeout.
func TestSensuStopBoundedWhenBackendDown(t *testing.T) {
	p := newSensuPeer(t)
	hole, err := sensupeer.NewBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	env := append(sensuEnv(p, "shop-4"), "STEWARD_SENSU_API_URL=http://"+hole.Addr(), "STEWARD_FLUSH_TIMEOUT=1s")
	in := start(t, runOpts{env: env, command: []string{"sleep", "1000"}})
	testutil.Eventually(t, "registration", registered(p, "shop-4"))
	p.Close()
	in.signal(syscall.SIGTERM)
	if code := in.wait(); code != 143 {
		t.Errorf("exit code %d", code)
	}
	if !strings.Contains(in.stderr.String(), "gave up at the flush deadline") {
		t.Errorf("the abandoned deletion is not reported")
	}
}

// TestSensuBadCredentials: a refused password is reported clearly, and
// never printed.
func TestSensuBadCredentials(t *testing.T) {
	p := newSensuPeer(t)
	env := append(sensuEnv(p, "shop-5"), "STEWARD_SENSU_PASSWORD=wrong-8d1e")
	in := start(t, runOpts{env: env, command: []string{"sleep", "1000"}})
	testutil.Eventually(t, "the refusal logged", func() bool {
		return strings.Contains(in.stderr.String(), `refused the credentials of user \"agent\" (HTTP 401 bad credentials)`)
	})
	in.signal(syscall.SIGTERM)
	in.wait()
	if strings.Contains(in.stderr.String()+in.stdout.String(), "wrong-8d1e") {
		t.Error("the password was printed")
	}
}

// TestSecretsNotInProgramsEnvironment: no program, check command or
// backend-requested check sees a secret, as /proc/<pid>/environ shows; and
// validate prints none.
func TestSecretsNotInProgramsEnvironment(t *testing.T) {
	p := newSensuPeer(t)
	secretFile := filepath.Join(t.TempDir(), "api-key")
	os.WriteFile(secretFile, []byte(sensuAPIKey+"\n"), 0o600)
	env := sensuEnv(p, "shop-6")
	for i, kv := range env {
		if strings.HasPrefix(kv, "STEWARD_SENSU_API_KEY=") {
			env[i] = "STEWARD_SENSU_API_KEY_FILE=" + secretFile // the Docker secrets way
		}
	}
	in := start(t, runOpts{env: env, config: `
[sensu]
allow_any_command = true

[programs.app]
main = true
command = ["sleep", "1000"]

[programs.sidecar]
command = ["sh", "-c", "exec sleep 1000"]

[checks.env-dump]
command = ["sh", "-c", "env > \"$T/check-env\""]
interval = "1s"
`})
	testutil.Eventually(t, "registration", registered(p, "shop-6"))
	cfg := corev2.FixtureCheckConfig("backend-env")
	cfg.Command = `env > "$T/request-env"`
	req, _ := json.Marshal(&corev2.CheckRequest{Config: cfg})
	p.Publish("default", "entity:shop-6", req)
	testutil.Eventually(t, "both check commands ran", func() bool {
		_, e1 := os.Stat(filepath.Join(in.dir, "check-env"))
		_, e2 := os.Stat(filepath.Join(in.dir, "request-env"))
		return e1 == nil && e2 == nil
	})
	var environs []string
	for _, pr := range in.nsProcs() {
		if pr.PID == in.pid() {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pr.PID))
		if err == nil {
			environs = append(environs, pr.Comm+": "+string(b))
		}
	}
	if len(environs) < 2 {
		t.Fatalf("found %d program processes", len(environs))
	}
	for _, f := range []string{"check-env", "request-env"} {
		b, _ := os.ReadFile(filepath.Join(in.dir, f))
		environs = append(environs, f+": "+string(b))
	}
	for _, e := range environs {
		for _, secret := range []string{sensuPassword, sensuAPIKey, "STEWARD_SENSU_PASSWORD", "STEWARD_SENSU_API_KEY"} {
			if strings.Contains(e, secret) {
				t.Errorf("%s reached a program: %.200s", secret, e)
			}
		}
	}
	// The key from the file was used for the deletion.
	in.signal(syscall.SIGTERM)
	in.wait()
	if !deleted(p, "shop-6") {
		t.Errorf("entity not deleted with the key from %s", secretFile)
	}
	for _, out := range []string{in.stderr.String(), in.stdout.String()} {
		if strings.Contains(out, sensuPassword) || strings.Contains(out, sensuAPIKey) {
			t.Error("a secret was logged")
		}
	}
	var secrets []string
	for _, kv := range env {
		if strings.Contains(kv, "PASSWORD") || strings.Contains(kv, "API_KEY") {
			secrets = append(secrets, kv)
		}
	}
	val := validateOutput(t, secrets)
	if strings.Contains(val, sensuPassword) || strings.Contains(val, sensuAPIKey) {
		t.Errorf("validate printed a secret: %s", val)
	}
}

// TestSensuKilledContainerExpires: a SIGKILLed steward cannot deregister;
// its keepalives stop and the backend deletes the entity (deregister:
// true) at the first keepalive failure. The peer counts the keepalive
// timeout in 50 ms units instead of seconds.
func TestSensuKilledContainerExpires(t *testing.T) {
	p := newSensuPeer(t)
	p.KeepaliveUnit = 50 * time.Millisecond
	env := append(sensuEnv(p, "shop-7"), "STEWARD_SENSU_KEEPALIVE_INTERVAL=1s")
	in := start(t, runOpts{env: env, config: `
[sensu]
keepalive_warning_timeout = "5s"
deregistration_handler = "cleanup"
`, command: []string{"sleep", "1000"}})
	testutil.Eventually(t, "registration", registered(p, "shop-7"))
	in.signal(syscall.SIGKILL)
	in.wait()
	testutil.Eventually(t, "the entity expired", func() bool { return slices.Contains(p.Expired(), "default/shop-7") })
	if deleted(p, "shop-7") {
		t.Error("a killed steward cannot have deleted its entity")
	}
	runs := p.HandlerRuns()
	if len(runs) == 0 || runs[len(runs)-1].Check != "deregistration" || runs[len(runs)-1].Handlers[0] != "cleanup" {
		t.Errorf("deregistration handler not run: %+v", runs)
	}
}

// TestSensuDeregistersWhileFluentdHangs: the components flush side by
// side at the stop, so a Fluentd that accepts connections and never
// answers (lines waiting for their acks) does not take the time the Sensu
// deregistration needs.
func TestSensuDeregistersWhileFluentdHangs(t *testing.T) {
	p := newSensuPeer(t)
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	go func() {
		var held []net.Conn // accepted, never read: acks never come
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	env := append(sensuEnv(p, "shop-5"),
		"STEWARD_FLUENTD_ADDR=tcp://"+hang.Addr().String(),
		"STEWARD_FLUENTD_SPOOL_DIR="+t.TempDir(),
		"STEWARD_FLUENTD_FLUSH_INTERVAL=100ms",
		"STEWARD_FLUSH_TIMEOUT=3s")
	in := start(t, runOpts{env: env, command: []string{"sh", "-c", `seq 1 20000; while [ ! -f "$T/stop" ]; do sleep 0.05; done`}})
	testutil.Eventually(t, "registration", registered(p, "shop-5"))
	os.WriteFile(filepath.Join(in.dir, "stop"), nil, 0o644)
	in.wait()
	if !deleted(p, "shop-5") {
		t.Fatalf("entity not deleted while Fluentd hung; deletions %v", p.Deletions())
	}
}

// TestSensuAllowList: through steward as PID 1, a check request on the
// allow list runs; one outside it and one whose executable does not match
// its sha512 are answered UNKNOWN with the reason, logged, and never run.
func TestSensuAllowList(t *testing.T) {
	p := newSensuPeer(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "check_app.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho app fine $1\n"), 0o755)
	tampered := filepath.Join(dir, "check_tampered.sh")
	os.WriteFile(tampered, []byte("#!/bin/sh\necho tampered\n"), 0o755)
	sum := sha512.Sum512([]byte("#!/bin/sh\necho app fine $1\n"))
	list := filepath.Join(dir, "allow-list.json")
	os.WriteFile(list, []byte(`[
  {"exec": "`+script+`", "args": ["--quick"], "sha512": "`+hex.EncodeToString(sum[:])+`"},
  {"exec": "`+tampered+`", "args": [""], "sha512": "`+hex.EncodeToString(sum[:])+`"}
]`), 0o644)
	in := start(t, runOpts{env: append(sensuEnv(p, "shop-8"), "STEWARD_SENSU_ALLOW_LIST="+list), command: []string{"sleep", "1000"}})
	testutil.Eventually(t, "registration", registered(p, "shop-8"))
	testutil.Eventually(t, "the session", func() bool { return p.Connected("shop-8") })
	ask := func(name, command string) *corev2.Check {
		cfg := corev2.FixtureCheckConfig(name)
		cfg.Command = command
		req, _ := json.Marshal(&corev2.CheckRequest{Config: cfg, Issued: 1})
		p.Publish("default", "entity:shop-8", req)
		testutil.Eventually(t, name+"'s result", func() bool { return len(sentEvents(t, p, name)) > 0 })
		return sentEvents(t, p, name)[0].Check
	}
	if c := ask("allowed", script+" --quick"); c.Status != 0 || strings.TrimSpace(c.Output) != "app fine --quick" {
		t.Errorf("allowed: status %d output %q", c.Status, c.Output)
	}
	marker := filepath.Join(dir, "owned")
	if c := ask("refused", "touch "+marker); c.Status != 3 || !strings.Contains(c.Output, "is not on the allow list") {
		t.Errorf("refused: status %d output %q", c.Status, c.Output)
	}
	if c := ask("mismatch", tampered); c.Status != 3 || !strings.Contains(c.Output, "sha512") {
		t.Errorf("sha512 mismatch: status %d output %q", c.Status, c.Output)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a refused command ran")
	}
	in.signal(syscall.SIGTERM)
	in.wait()
	if n := strings.Count(in.stderr.String(), "check request refused"); n != 2 {
		t.Errorf("%d refusals logged, want 2", n)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestVersionIsStewards: `steward version` prints the stamped version, not
// "dev".
func TestVersionIsStewards(t *testing.T) {
	out, err := exec.Command(stewardBin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "steward "+testStewardVersion+" (go") {
		t.Errorf("steward version printed %q", out)
	}
}
