package fluentd

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/shippers/fluentd/fluentdtest"
	logstream "github.com/stewardhq/steward/stream"
	"github.com/stewardhq/steward/supervisor"
)

// testLog is a logger that writes into the test's output and keeps the
// lines for assertions.
type testLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.lines = append(l.lines, string(p))
	l.mu.Unlock()
	return len(p), nil
}

func (l *testLog) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "")
}

type harness struct {
	t    *testing.T
	s    *Shipper
	logs *logstream.Stream[supervisor.LogRecord]
	out  *testLog
}

// shipperConfig is the shipper's part of a loaded config, as cmd/ builds
// it.
func shipperConfig(cfg *configs.Config) Config {
	logs := map[string]*configs.ProgramLogs{}
	for _, p := range cfg.ProgramList() {
		if p.Logs != nil {
			logs[p.Name] = p.Logs
		}
	}
	return Config{Fluentd: *cfg.Fluentd, App: cfg.Steward.App, Version: cfg.Steward.Version, Host: cfg.Steward.Host, Programs: logs}
}

// startShipper runs a shipper on cfg, fed by a stream the test publishes
// to as the supervisor's capture would.
func startShipper(t *testing.T, cfg *configs.Config) *harness {
	t.Helper()
	out := &testLog{}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(shipperConfig(cfg), log)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, s: s, logs: logstream.New[supervisor.LogRecord]("logs", log), out: out}
	s.Start(h.logs)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Close(ctx)
		if t.Failed() {
			t.Logf("shipper log:\n%s", out.String())
		}
	})
	return h
}

// publish sends lines "prefix-N" for N in [from, to) in batches of 100.
func (h *harness) publish(program, source, prefix string, from, to int) {
	var batch []supervisor.LogRecord
	for i := from; i < to; i++ {
		batch = append(batch, supervisor.LogRecord{Time: time.Now(), Program: program, PID: 42, Source: source, Text: prefix + strconv.Itoa(i)})
		if len(batch) == 100 {
			h.logs.PublishBatch(batch)
			batch = nil
		}
	}
	h.logs.PublishBatch(batch)
}

func (h *harness) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.s.Close(ctx); err != nil {
		h.t.Fatal(err)
	}
}

// collector gathers what a peer received.
type collector struct {
	mu     sync.Mutex
	events []map[string]any
	tags   []string
	logs   map[string]int // log field -> times received
	times  []time.Time
	ext    int // events whose time was an EventTime
	modes  map[fluentdtest.Mode]int
}

func newCollector() *collector {
	return &collector{logs: map[string]int{}, modes: map[fluentdtest.Mode]int{}}
}

func (c *collector) onEvent(keep bool) func(fluentdtest.Event) {
	return func(e fluentdtest.Event) {
		c.mu.Lock()
		defer c.mu.Unlock()
		v, _ := e.Field("log")
		s, _ := v.(string)
		c.logs[s]++
		if e.EventTime {
			c.ext++
		}
		c.modes[e.Mode]++
		if keep {
			rec, _ := e.Record()
			c.events = append(c.events, rec)
			c.tags = append(c.tags, e.Tag)
			c.times = append(c.times, e.Time)
		}
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.logs)
}

func (c *collector) has(s string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs[s]
}

func listen(t *testing.T, cfg fluentdtest.Config) *fluentdtest.Peer {
	t.Helper()
	p, err := fluentdtest.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); p.Wait() })
	return p
}
