package sensu

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev2 "github.com/sensu/core/v2"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/internal/testutil"
	"github.com/stewardhq/steward/shippers/sensu/sensupeer"
	"github.com/stewardhq/steward/supervisor"
)

// executor is the real one: the supervisor's single reaper runs the
// commands of check requests, as in steward.
var (
	execOnce sync.Once
	realExec *supervisor.Supervisor
)

func executor(t testing.TB) checks.Executor {
	t.Helper()
	execOnce.Do(func() {
		cfg, err := configs.Load(configs.Options{Command: []string{"true"}})
		if err != nil {
			panic(err)
		}
		realExec, err = supervisor.New(supervisor.Config{Programs: cfg.ProgramList()}, slog.New(slog.DiscardHandler))
		if err != nil {
			panic(err)
		}
	})
	return realExec
}

const (
	testUser     = "agent"
	testPassword = "s3cret-agent-password"
	testAPIKey   = "a1b2c3d4-api-key"
)

func newPeer(t testing.TB) *sensupeer.Peer {
	t.Helper()
	p, err := sensupeer.New(testUser, testPassword, testAPIKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func testConfig(p *sensupeer.Peer) *configs.Sensu {
	c := &configs.Sensu{}
	// The defaults, as the config loader sets them.
	c.Namespace, c.User, c.Deregister, c.AgentManagedEntity = "default", testUser, true, true
	c.KeepaliveInterval = configs.Duration(20 * time.Second)
	c.KeepaliveWarningTimeout = configs.Duration(120 * time.Second)
	c.QueueSize, c.MaxOutputBytes = 100, 4096
	c.EventSpacing = configs.Duration(configs.DefaultSensuEventSpacing)
	c.BackendURLs = []string{p.AgentURL()}
	c.Password = testPassword
	c.EntityName = "web-7f9c"
	c.Subscriptions = []string{"linux", "shop"}
	c.Labels = map[string]string{"team": "payments"}
	c.DeregistrationHandler = "cleanup"
	c.APIURL, c.APIKey = p.APIURL(), testAPIKey
	return c
}

func startAgent(t testing.TB, cfg *configs.Sensu) (*Agent, *testutil.LockedBuffer) {
	t.Helper()
	logs := &testutil.LockedBuffer{}
	a, err := New(cfg, Identity{App: "shop", Version: "3074f46", Hostname: "web-7f9c"}, executor(t),
		slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	a.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		a.Close(ctx)
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	return a, logs
}

// waitFor waits until cond holds, woken by every change of the peer; the
// limit only guards against a hang.
func waitFor(t testing.TB, p *sensupeer.Peer, what string, cond func() bool) {
	t.Helper()
	limit := time.After(testutil.HangGuard)
	for {
		changed := p.Changed()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		case <-limit:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// decodeEvent reads a payload into core/v2's Event and validates it as the
// backend does.
func decodeEvent(t *testing.T, payload []byte) *corev2.Event {
	t.Helper()
	var ev corev2.Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatalf("not a core/v2 event: %v\n%s", err, payload)
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("core/v2 rejects the event: %v\n%s", err, payload)
	}
	if ev.Timestamp == 0 {
		t.Fatalf("event without timestamp (agentd rejects keepalives without one)")
	}
	return &ev
}

func TestRegistration(t *testing.T) {
	p := newPeer(t)
	cfg := testConfig(p)
	startAgent(t, cfg)
	waitFor(t, p, "a keepalive", func() bool { return len(p.Messages("keepalive")) > 0 })

	hs := p.Handshakes()[0]
	for k, want := range map[string]string{"Sensu-AgentName": "web-7f9c", "Sensu-Namespace": "default",
		"Sensu-User": "agent", "Sensu-Subscriptions": "linux,shop"} {
		if got := hs.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if u, pw, ok := sensupeer.BasicAuth(hs.Header); !ok || u != testUser || pw != testPassword {
		t.Errorf("basic auth %q %q %v", u, pw, ok)
	}
	if hs.Header.Get("Accept") == "application/octet-stream" {
		t.Error("asked for protobuf, which steward does not speak")
	}

	ka := decodeEvent(t, p.Messages("keepalive")[0].Payload)
	if ka.Check.Name != corev2.KeepaliveCheckName || ka.Check.Interval != 20 || ka.Check.Timeout != 120 {
		t.Errorf("keepalive check %+v", ka.Check)
	}
	e := ka.Entity
	if e.EntityClass != corev2.EntityAgentClass || e.Name != "web-7f9c" || e.Namespace != "default" {
		t.Errorf("entity %s/%s class %q", e.Namespace, e.Name, e.EntityClass)
	}
	for k, want := range map[string]string{"app": "shop", "version": "3074f46", "team": "payments", corev2.ManagedByLabel: "sensu-agent"} {
		if e.Labels[k] != want {
			t.Errorf("label %s = %q, want %q (labels %v)", k, e.Labels[k], want, e.Labels)
		}
	}
	if !e.Deregister || e.Deregistration.Handler != "cleanup" || e.User != testUser {
		t.Errorf("deregister %v handler %q user %q", e.Deregister, e.Deregistration.Handler, e.User)
	}
	for _, s := range []string{"linux", "shop", "entity:web-7f9c"} {
		if !contains(e.Subscriptions, s) {
			t.Errorf("subscriptions %v lack %s", e.Subscriptions, s)
		}
	}
	if _, ok := p.Entity("default", "web-7f9c"); !ok {
		t.Error("the keepalive did not register the entity")
	}
	if strings.Contains(string(p.Messages("keepalive")[0].Payload), testPassword) {
		t.Error("the password is in the keepalive")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestKeepalivesRepeat(t *testing.T) {
	p := newPeer(t)
	cfg := testConfig(p)
	cfg.KeepaliveInterval = configs.Duration(time.Second)
	cfg.KeepaliveWarningTimeout = configs.Duration(5 * time.Second)
	cfg.KeepaliveCriticalTimeout = configs.Duration(10 * time.Second)
	startAgent(t, cfg)
	waitFor(t, p, "three keepalives", func() bool { return len(p.Messages("keepalive")) >= 3 })
	var seqs []int64
	for _, m := range p.Messages("keepalive")[:3] {
		ev := decodeEvent(t, m.Payload)
		if ev.Check.Ttl != 10 || ev.Check.Timeout != 5 || ev.Check.Interval != 1 {
			t.Errorf("keepalive interval %d timeout %d ttl %d", ev.Check.Interval, ev.Check.Timeout, ev.Check.Ttl)
		}
		seqs = append(seqs, ev.Sequence)
	}
	if seqs[0] != 1 || seqs[1] != 2 || seqs[2] != 3 {
		t.Errorf("keepalive sequences %v, want 1 2 3", seqs)
	}
}

func TestLocalResultsAreEvents(t *testing.T) {
	p := newPeer(t)
	a, _ := startAgent(t, testConfig(p))
	now := time.Now()
	a.Publish(checks.Report{Name: "disk", Kind: checks.KindCommand, Target: "check_disk -w 10%",
		Interval: 30 * time.Second, Timeout: 5 * time.Second, Handlers: []string{"slack"},
		Result: checks.Result{Status: checks.Warning, Output: "DISK WARNING - 8% free", Executed: now, Duration: 12 * time.Millisecond}})
	waitFor(t, p, "the event", func() bool { return len(p.Events("default", "web-7f9c")["disk"]) > 0 })
	ev := decodeEvent(t, p.Events("default", "web-7f9c")["disk"])
	c := ev.Check
	if c.Status != 1 || c.Output != "DISK WARNING - 8% free" || c.Command != "check_disk -w 10%" ||
		c.Interval != 30 || c.Timeout != 5 || c.Executed != now.Unix() || !contains(c.Handlers, "slack") {
		t.Errorf("check %+v", c)
	}
	if ev.Entity.Name != "web-7f9c" || len(ev.ID) != 16 {
		t.Errorf("entity %q id %x", ev.Entity.Name, ev.ID)
	}
}

func TestCheckRequestExecutedAndAnswered(t *testing.T) {
	p := newPeer(t)
	ac := testConfig(p)
	ac.AllowAnyCommand = true // the execution itself is under test
	startAgent(t, ac)
	waitFor(t, p, "the session", func() bool { return p.Connected("web-7f9c") && len(p.Messages("keepalive")) > 0 })
	cfg := corev2.FixtureCheckConfig("app-version")
	cfg.Command = `echo "{{ .labels.app }} {{ .labels.missing | default "none" }} $GREETING"; read line; echo "$line" | grep -q '"name":"app-version"' && exit 1; exit 3`
	cfg.EnvVars = []string{"GREETING=hello"}
	cfg.Stdin = true
	cfg.Subscriptions = []string{"shop"}
	cfg.Handlers = []string{"pagerduty"}
	cfg.Timeout = 10
	cfg.Labels = map[string]string{"tier": "gold"}
	req := &corev2.CheckRequest{Config: cfg, Issued: 1700000000}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if n := p.Publish("default", "shop", b); n != 1 {
		t.Fatalf("published to %d agents", n)
	}
	waitFor(t, p, "the result", func() bool { return len(p.Events("default", "web-7f9c")["app-version"]) > 0 })
	ev := decodeEvent(t, p.Events("default", "web-7f9c")["app-version"])
	c := ev.Check
	if c.Status != 1 || strings.TrimSpace(c.Output) != "shop none hello" {
		t.Errorf("status %d output %q", c.Status, c.Output)
	}
	if c.Issued != 1700000000 || c.Executed == 0 || c.Interval != cfg.Interval || !contains(c.Handlers, "pagerduty") ||
		c.Labels["tier"] != "gold" || !contains(c.Subscriptions, "shop") {
		t.Errorf("check fields not carried over: %+v", c)
	}
}

func TestCheckRequestTimeoutKillsCommand(t *testing.T) {
	p := newPeer(t)
	ac := testConfig(p)
	ac.AllowAnyCommand = true
	startAgent(t, ac)
	waitFor(t, p, "the session", func() bool { return p.Connected("web-7f9c") && len(p.Messages("keepalive")) > 0 })
	cfg := corev2.FixtureCheckConfig("slow")
	cfg.Command = "echo started; exec sleep 600"
	cfg.Timeout = 1
	b, _ := json.Marshal(&corev2.CheckRequest{Config: cfg, Issued: time.Now().Unix()})
	p.Publish("default", "entity:web-7f9c", b)
	waitFor(t, p, "the result", func() bool { return len(p.Events("default", "web-7f9c")["slow"]) > 0 })
	ev := decodeEvent(t, p.Events("default", "web-7f9c")["slow"])
	if ev.Check.Status != 2 || !strings.Contains(ev.Check.Output, "timed out") || !strings.Contains(ev.Check.Output, "started") {
		t.Errorf("status %d output %q", ev.Check.Status, ev.Check.Output)
	}
}

func TestCloseDeregisters(t *testing.T) {
	p := newPeer(t)
	a, _ := startAgent(t, testConfig(p))
	waitFor(t, p, "registration", func() bool { _, ok := p.Entity("default", "web-7f9c"); return ok })
	a.Publish(checks.Report{Name: "last", Result: checks.Result{Status: checks.OK, Output: "final", Executed: time.Now()}})
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangGuard)
	defer cancel()
	if err := a.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if d := p.Deletions(); len(d) != 1 || d[0] != "default/web-7f9c" {
		t.Fatalf("deletions %v", d)
	}
	if _, ok := p.Entity("default", "web-7f9c"); ok {
		t.Error("entity still there")
	}
	if len(p.Events("default", "web-7f9c")) != 0 {
		t.Error("events still there")
	}
	var sawLast, sawDereg bool
	for _, m := range p.Messages("event") {
		ev := decodeEvent(t, m.Payload)
		switch ev.Check.Name {
		case "last":
			sawLast = true
		case "deregistration":
			sawDereg = ev.Check.Status == 1 && contains(ev.Check.Handlers, "cleanup")
		}
	}
	if !sawLast || !sawDereg {
		t.Errorf("final event sent %v, deregistration event sent %v", sawLast, sawDereg)
	}
}

func TestCloseBoundedWhenBackendHangs(t *testing.T) {
	hole, err := sensupeer.NewBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	p := newPeer(t)
	cfg := testConfig(p)
	cfg.BackendURLs = []string{"ws://" + hole.Addr() + "/"}
	cfg.APIURL = "http://" + hole.Addr()
	a, _ := startAgent(t, cfg)
	a.Publish(checks.Report{Name: "queued", Result: checks.Result{Status: checks.OK, Executed: time.Now()}})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Close(ctx) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not sent") {
			t.Errorf("close of a hanging backend returned %v, want the unsent events reported", err)
		}
	case <-time.After(testutil.HangGuard):
		t.Fatal("Close hangs on a backend that does not answer")
	}
}

func TestBadCredentialsReportedClearly(t *testing.T) {
	p := newPeer(t)
	cfg := testConfig(p)
	cfg.Password = "wrong-password-xyz"
	_, logs := startAgent(t, cfg)
	waitFor(t, p, "a refused handshake", func() bool { return len(p.Handshakes()) > 0 })
	deadline := time.Now().Add(testutil.HangGuard)
	for !strings.Contains(logs.String(), "refused the credentials") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	out := logs.String()
	if !strings.Contains(out, `refused the credentials of user \"agent\" (HTTP 401 bad credentials)`) {
		t.Errorf("log does not say the credentials were refused:\n%s", out)
	}
	if strings.Contains(out, "wrong-password-xyz") {
		t.Error("the password is in the log")
	}
}

func TestFailover(t *testing.T) {
	hole, err := sensupeer.NewBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	hole.Close() // a refused port
	p := newPeer(t)
	cfg := testConfig(p)
	cfg.BackendURLs = []string{"ws://" + hole.Addr() + "/", p.AgentURL()}
	startAgent(t, cfg)
	waitFor(t, p, "a keepalive through the second backend", func() bool { return len(p.Messages("keepalive")) > 0 })
}

func TestQueueDropsOldestWhenFull(t *testing.T) {
	q := newQueue(3, slog.New(slog.DiscardHandler))
	for i := range 5 {
		q.push(message{typ: "event", payload: []byte{byte('0' + i)}})
	}
	var got []message
	for {
		m, ok := q.next(func(string) bool { return true })
		if !ok {
			break
		}
		got = append(got, m)
	}
	if len(got) != 3 || string(got[0].payload) != "2" || q.dropped.Total() != 2 {
		t.Fatalf("kept %d, first %q, dropped %d", len(got), got[0].payload, q.dropped.Total())
	}
}

// TestQueueCoalescesRepeatsOnly: a waiting result of the same check and
// status is replaced; a change of status never is.
func TestQueueCoalescesRepeatsOnly(t *testing.T) {
	q := newQueue(100, slog.New(slog.DiscardHandler))
	for i, s := range []uint32{0, 0, 2, 2, 2, 0, 1, 0, 0} {
		q.push(message{typ: "event", check: "c", status: s, seq: int64(i)})
		q.push(message{typ: "event", check: "other", status: 0, seq: int64(i)})
	}
	var statuses []uint32
	var held int
	for {
		m, ok := q.next(func(c string) bool { return c == "c" })
		if !ok {
			break
		}
		statuses = append(statuses, m.status)
	}
	held = q.len()
	if !slices.Equal(statuses, []uint32{0, 2, 0, 1, 0}) || held != 1 || q.coalesced.Load() != 4+8 {
		t.Fatalf("sent %v, held %d, coalesced %d", statuses, held, q.coalesced.Load())
	}
}

func TestFraming(t *testing.T) {
	b := encodeMessage("event", []byte(`{"a":"b\nc"}`))
	typ, payload, err := decodeMessage(b)
	if err != nil || typ != "event" || string(payload) != `{"a":"b\nc"}` {
		t.Fatalf("%q %q %v", typ, payload, err)
	}
	if _, _, err := decodeMessage([]byte("no newline")); err == nil {
		t.Fatal("a message without a type line decoded")
	}
}

// TestCheckMetricsInEvent: a check with an output_metric_format carries its
// parsed metrics in its event, as sensu-agent attaches them, readable as
// core/v2 Metrics.
func TestCheckMetricsInEvent(t *testing.T) {
	p := newPeer(t)
	a, _ := startAgent(t, testConfig(p))
	now := time.Now()
	a.Publish(checks.Report{Name: "disk", Kind: checks.KindCommand, Target: "check_disk",
		OutputMetricFormat: "nagios_perfdata",
		Metrics: []checks.MetricPoint{{Name: "used", Value: 80, Timestamp: now.Unix(),
			Tags: []checks.MetricTag{{Name: "check", Value: "disk"}, {Name: "mount", Value: "/data"}}}},
		Result: checks.Result{Status: checks.OK, Output: "DISK OK | used=80%", Executed: now}})
	waitFor(t, p, "the event", func() bool { return len(p.Events("default", "web-7f9c")["disk"]) > 0 })
	ev := decodeEvent(t, p.Events("default", "web-7f9c")["disk"])
	if ev.Check.OutputMetricFormat != "nagios_perfdata" {
		t.Errorf("output_metric_format %q", ev.Check.OutputMetricFormat)
	}
	if ev.Metrics == nil || len(ev.Metrics.Points) != 1 {
		t.Fatalf("metrics %+v", ev.Metrics)
	}
	pt := ev.Metrics.Points[0]
	if pt.Name != "used" || pt.Value != 80 || pt.Timestamp != now.Unix() || len(pt.Tags) != 2 || pt.Tags[1].Value != "/data" {
		t.Errorf("point %+v", pt)
	}
}
