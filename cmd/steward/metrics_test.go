package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/internal/testutil"
	"github.com/stewardhq/steward/shippers/graphite"
)

// The identity every series carries in these tests.
var identityTags = []string{"app=web", "version=3074f46", "host=testhost"}

func series(name string, tags ...string) string {
	return tagged(name, append(tags, identityTags...)...)
}

// hogScript holds 64 MiB, 20 extra descriptors and 3 extra threads: what
// the programs collector must find in its process group.
const hogScript = `
import threading, time
data = b"x" * (64 << 20)
files = [open("/dev/null") for _ in range(20)]
for _ in range(3):
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
print("hog ready", flush=True)
time.sleep(3600)
`

// TestMetricsToCarbon runs steward as PID 1 in its own cgroup (limits set
// as a runtime would) with real programs, sends to a real carbon-cache,
// and reads back what carbon stored: names, tags, values. Then carbon is
// restarted, and the stored series must have no gap longer than the
// outage.
func TestMetricsToCarbon(t *testing.T) {
	c := startCarbon(t)
	cg := newTestCgroup(t)
	config := fmt.Sprintf(`
[steward]
app = "web"
version = "3074f46"
host = "testhost"

[metrics]
interval = "1s"

[graphite]
addr = "%s"
timeout = "1s"

[programs.app]
main = true
command = ["/usr/bin/python3", "-c", %q]

[programs.burn]
command = ["sh", "-c", "while :; do :; done"]

[programs.flaky]
command = ["sh", "-c", "sleep 1; exit 3"]
restart = "always"
start_secs = "100ms"
`, c.addr, hogScript)
	in := start(t, runOpts{config: config, wrap: cg.wrap()})
	in.waitEvent("app", "started")
	begin := time.Now().Unix()

	// The cgroup: the limits set above, and what the programs use.
	c.want("memory limit", series("container.memory.limit_bytes"), eq(cgMemoryLimit))
	c.want("CPU limit", series("container.cpu.limit_cores"), eq(0.5))
	c.want("pids limit", series("container.pids.limit"), eq(cgPidsLimit))
	c.want("memory in use", series("container.memory.usage_bytes"), atLeast(64<<20))
	c.want("working set", series("container.memory.working_set_bytes"), atLeast(64<<20))
	c.want("processes", series("container.pids.current"), atLeast(4))
	c.want("throttling", series("container.cpu.throttled_periods_total"), atLeast(1))
	c.want("CPU used", series("container.cpu.usage_seconds_total"), atLeast(0.5))
	c.want("pressure", series("container.pressure.cpu.some_seconds_total"), atLeast(0))

	// The programs, tagged program=.
	c.want("hog's memory", series("program.memory_rss_bytes", "program=app"), atLeast(64<<20))
	c.want("hog's threads", series("program.threads", "program=app"), eq(4))
	c.want("hog's descriptors", series("program.open_fds", "program=app"), atLeast(23))
	c.want("burner's CPU", series("program.cpu_seconds_total", "program=burn"), atLeast(0.2))
	c.want("flaky restarts", series("program.restarts_total", "program=flaky"), atLeast(1))
	c.want("flaky exit code", series("program.last_exit_code", "program=flaky"), eq(3))
	c.want("app running", series("program.state", "program=app", "state=running"), eq(1))
	c.want("app not fatal", series("program.state", "program=app", "state=fatal"), eq(0))

	// The network namespace (the host's here: steward's own connection
	// to carbon is one of them) and steward itself.
	c.want("established connections", series("net.tcp.connections", "state=established"), atLeast(1))
	c.want("sent samples", series("steward.graphite.sent_samples_total", "server="+c.addr), atLeast(1))
	c.want("collector success", series("steward.collector.success", "collector=cgroup"), eq(1))
	c.want("steward's memory", series("steward.memory_rss_bytes"), atLeast(1<<20))

	// Carbon restarts after a 5 s outage. steward notices the closed
	// connection, keeps what it cannot send, and sends it when carbon is
	// back, so the stored series has no hole where the outage was. The
	// round written just before carbon closed its socket may have been
	// discarded unread (the plaintext protocol has no acknowledgements):
	// steward sends it again on the new connection.
	const outage = 5 * time.Second
	probe := series("container.cpu.usage_seconds_total")
	stopAt := time.Now()
	c.stop()
	testutil.Eventually(t, "steward noticing carbon is gone", func() bool {
		for _, e := range in.logLines() {
			if strings.HasPrefix(e.str("msg"), "graphite: cannot send") {
				return true
			}
		}
		return false
	})
	time.Sleep(time.Until(stopAt.Add(outage))) // the outage itself, not a wait for a condition
	c.start()
	down := time.Since(stopAt)
	backAt := time.Now().Unix()
	testutil.Eventually(t, "points after the restart", func() bool {
		for _, p := range c.fetch(probe, backAt) {
			if p.v != nil && p.t > backAt+2 {
				return true
			}
		}
		return false
	})
	first, last, gap, longest := int64(0), int64(0), int64(0), int64(0)
	for _, p := range c.fetch(probe, begin) {
		if p.v == nil {
			gap++
			continue
		}
		if first == 0 {
			first = p.t
		} else if gap > longest {
			longest = gap
		}
		gap, last = 0, p.t
	}
	t.Logf("carbon down for %v; %s stored from %d to %d, longest gap %d s", down.Round(time.Millisecond), probe, first, last, longest)
	if first >= stopAt.Unix() || last <= backAt {
		t.Fatalf("the series does not span the outage (%d to %d, outage %d to %d)", first, last, stopAt.Unix(), backAt)
	}
	if longest > 0 {
		t.Fatalf("a gap of %d s in %s across a %v outage: the backlog was not sent", longest, probe, down)
	}
	in.signal(syscall.SIGTERM)
	in.wait()
}

// TestMetricsUnreachableGraphite: one Graphite refuses connections and
// another talks garbage. Programs' output keeps flowing, the backlog
// drops its oldest rounds (counted, logged once), and steward stops
// within its flush timeout with the main program's exit code.
func TestMetricsUnreachableGraphite(t *testing.T) {
	dead := freeAddr(t) // nothing listens there any more
	garbage, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer garbage.Close()
	go func() {
		for {
			c, err := garbage.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("500 what is this\r\n\x00\xff"))
			c.Close()
		}
	}()
	in := start(t, runOpts{config: fmt.Sprintf(`
[steward]
flush_timeout = "1s"

[metrics]
interval = "1s"

[graphite]
addr = ["%s", "%s"]
buffer = "2s"
timeout = "200ms"

[programs.talk]
main = true
command = ["sh", "-c", "trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo line $i; sleep 0.01; done"]
`, dead, garbage.Addr())})
	testutil.Eventually(t, "dropped samples for the dead server", func() bool {
		for _, e := range in.logLines() {
			if e.str("msg") == "graphite: backlog full, dropping oldest samples" && e.str("server") == dead {
				return true
			}
		}
		return false
	})
	seen := strings.Count(in.stdout.String(), "line ")
	testutil.Eventually(t, "the program's output still flowing", func() bool {
		return strings.Count(in.stdout.String(), "line ") > seen+100
	})
	in.signal(syscall.SIGTERM)
	if code := in.wait(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	drops := 0
	for _, e := range in.logLines() {
		if e.str("msg") == "graphite: backlog full, dropping oldest samples" && e.str("server") == dead {
			drops++
		}
	}
	if drops != 1 {
		t.Errorf("%d drop lines for one outage, want 1", drops)
	}
}

// TestMetricsPrint: with print on and no Graphite, the lines steward
// would send appear on its stdout — what the demo shows.
func TestMetricsPrint(t *testing.T) {
	demo, err := filepath.Abs("../../configs/examples/demo.toml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(demo)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "print = true") {
		t.Fatal("the demo does not print metrics")
	}
	in := start(t, runOpts{config: `
[steward]
app = "demo"
version = "0.0.1"
host = "h"

[metrics]
interval = "1s"
print = true

[programs.main]
main = true
command = ["sleep", "1000"]
`})
	testutil.Eventually(t, "printed series", func() bool {
		return strings.Contains(in.stdout.String(), "program.state;app=demo;host=h;program=main;state=running;version=0.0.1 1 ")
	})
	in.signal(syscall.SIGTERM)
	in.wait()
}

// TestGraphiteModesToCarbon: dotted paths (carbon before 1.1) and UDP
// datagrams, each read back from what carbon stored.
func TestGraphiteModesToCarbon(t *testing.T) {
	c := startCarbon(t)
	now := time.Now().Truncate(time.Second)
	for _, tc := range []struct {
		cfg  graphite.Config
		path string // as stored
	}{
		{graphite.Config{Mode: graphite.ModePath, Prefix: "steward", Host: "h1.example.com"},
			"steward.web.3074f46.h1_example_com.program.worker.cpu_seconds_total"},
		{graphite.Config{Protocol: graphite.UDP, Host: "h1"},
			tagged("program.cpu_seconds_total", "app=web", "host=h1", "program=worker", "version=3074f46")},
	} {
		cfg := tc.cfg
		cfg.Servers, cfg.App, cfg.Version = []string{c.addr}, "web", "3074f46"
		s, err := graphite.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		s.Ship([]collectors.Sample{{Name: "program.cpu_seconds_total", Value: 12.5, Kind: collectors.Counter,
			Tags: []collectors.Tag{{Key: "program", Value: "worker"}}, Time: now}})
		ctx, cancel := context.WithTimeout(context.Background(), testutil.HangGuard)
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		testutil.Eventually(t, tc.path+" in carbon", func() bool {
			v, ok := c.last(tc.path)
			return ok && v == 12.5
		})
	}
}
