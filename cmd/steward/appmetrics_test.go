package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/testutil"
)

// appServer is the app of TestAppMetricsToCarbon: a Prometheus endpoint.
const appServer = `
import http.server, sys
page = b"""# TYPE http_requests_total counter
http_requests_total{code="200",route="/api"} 1027
http_requests_total{code="500",route="/api"} 3
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1"} 900
http_request_duration_seconds_bucket{le="+Inf"} 1030
http_request_duration_seconds_sum 61.5
http_request_duration_seconds_count 1030
"""
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(page)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`

// TestAppMetricsToCarbon: the app's own metrics through the real binary as
// PID 1 into a real carbon, read back from what carbon stored — StatsD
// over UDP and TCP, Graphite lines through the relay (across a carbon
// outage), the app's Prometheus endpoint, and the output of metric checks
// in the four formats — every series tagged with app, version and host.
// Bad input is counted as drops.
func TestAppMetricsToCarbon(t *testing.T) {
	c := startGraphite(t)
	statsdAddr, relayAddr, appAddr, httpAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	_, appPort, _ := net.SplitHostPort(appAddr)
	config := fmt.Sprintf(`
[steward]
app = "web"
version = "3074f46"
host = "testhost"

[metrics]
interval = "1s"
collectors = ["steward"]
prometheus = true

[http]
addr = "%s"

[metrics.statsd]
enabled = true
addr = "%s"
percentiles = [90, 99.9]

[metrics.relay]
enabled = true
addr = "%s"

[graphite]
addr = "%s"
timeout = "1s"

[programs.app]
main = true
command = ["/usr/bin/python3", "-c", %q, %q]
metrics_url = "http://%s/metrics"

[checks.nagios]
command = ["echo", "DISK OK - free 42%% | 'free space'=42%%;10;5;0;100 load=1.5"]
interval = "1s"
output_metric_format = "nagios_perfdata"
output_metric_tags = { team = "ops" }

[checks.influx]
command = ["echo", "cpu,core=0 usage=0.25,steal=2i"]
interval = "1s"
output_metric_format = "influxdb_line"

[checks.graphite]
command = ["echo", "disk.used;mount=/data 7"]
interval = "1s"
output_metric_format = "graphite_plaintext"

[checks.prom]
command = ["printf", "# TYPE queue_depth gauge\nqueue_depth{queue=\"mail\"} 9\n"]
interval = "1s"
output_metric_format = "prometheus_text"
`, httpAddr, statsdAddr, relayAddr, c.addr, appServer, appPort, appAddr)
	in := start(t, runOpts{config: config})
	listening := func(input string) func() bool {
		return func() bool {
			for _, e := range in.logLines() {
				if e.str("msg") == "app metrics: listening" && e.str("input") == input {
					return true
				}
			}
			return false
		}
	}
	testutil.Eventually(t, "statsd listening", listening("statsd"))
	testutil.Eventually(t, "relay listening", listening("relay"))
	// The listeners come after the first program started.
	lines := in.logLines()
	started, listen := -1, -1
	for i, e := range lines {
		if started < 0 && e.str("msg") == "program started" {
			started = i
		}
		if listen < 0 && e.str("msg") == "app metrics: listening" {
			listen = i
		}
	}
	if started < 0 || listen < started {
		t.Fatalf("listeners bound at log line %d, first program started at %d", listen, started)
	}

	// StatsD: 100 timings of 1..100 ms, 60 requests (sampled at 0.5: 30
	// sent), an error counter with Graphite tags, a gauge with changes,
	// DogStatsD tags, and garbage.
	u, err := net.Dial("udp", statsdAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	var pkt strings.Builder
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&pkt, "http.request_duration:%d|ms|#route:/api\n", i)
	}
	u.Write([]byte(pkt.String()))
	pkt.Reset()
	for range 30 {
		pkt.WriteString("http.requests:1|c|@0.5|#route:/api\n")
	}
	pkt.WriteString("this is not statsd\n")
	u.Write([]byte(pkt.String()))
	tc, err := net.Dial("tcp", statsdAddr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(tc, "http.errors;code=500:2|c\nqueue.size:10|g\nqueue.size:-3|g\n")
	tc.Close()

	route := "route=/api"
	sum := func(s string) float64 {
		var n float64
		for _, p := range c.fetch(s, time.Now().Add(-10*time.Minute).Unix()) {
			if p.v != nil {
				n += *p.v
			}
		}
		return n
	}
	testutil.Eventually(t, "60 requests counted", func() bool { return sum(series("http.requests.count", route)) == 60 })
	testutil.Eventually(t, "100 timings counted", func() bool { return sum(series("http.request_duration.count", route)) == 100 })
	testutil.Eventually(t, "2 errors counted", func() bool { return sum(series("http.errors.count", "code=500")) == 2 })
	c.want("gauge with a change", series("queue.size"), eq(7))
	// The timings arrived in one datagram, so in one round, but a round
	// may cut it: the extremes hold whatever the cut.
	maxOf := func(s string) float64 {
		m := 0.0
		for _, p := range c.fetch(s, time.Now().Add(-10*time.Minute).Unix()) {
			if p.v != nil && *p.v > m {
				m = *p.v
			}
		}
		return m
	}
	testutil.Eventually(t, "upper", func() bool { return maxOf(series("http.request_duration.upper", route)) == 100 })
	testutil.Eventually(t, "p99.9", func() bool { return maxOf(series("http.request_duration.p99_9", route)) == 100 })
	c.want("p90 stored", series("http.request_duration.p90", route), atLeast(1))
	c.want("malformed StatsD counted", series("steward.appmetrics.dropped_total", "input=statsd", "reason=malformed"), eq(1))
	c.want("StatsD lines received", series("steward.appmetrics.received_total", "input=statsd"), eq(134))

	// The inputs' own figures are on steward's /metrics too.
	testutil.Eventually(t, "the StatsD drop on /metrics", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `steward_appmetrics_dropped_total{app="web",version="3074f46",host="testhost",input="statsd",reason="malformed"} 1`+"\n")
	})

	// The Prometheus endpoint, labels as tags, program= added.
	c.want("scraped counter", series("http_requests_total", "code=200", "route=/api", "program=app"), eq(1027))
	c.want("scraped bucket", series("http_request_duration_seconds_bucket", "le=+Inf", "program=app"), eq(1030))
	c.want("scrape success", series("steward.collector.success", "collector=scrape:app"), eq(1))

	// Metric checks, tagged check= (and output_metric_tags).
	c.want("nagios perfdata", series("free_space", "check=nagios", "team=ops"), eq(42))
	c.want("nagios perfdata", series("load", "check=nagios", "team=ops"), eq(1.5))
	c.want("influx line", series("cpu.usage", "check=influx", "core=0"), eq(0.25))
	c.want("influx integer", series("cpu.steal", "check=influx", "core=0"), eq(2))
	c.want("graphite plaintext", series("disk.used", "check=graphite", "mount=/data"), eq(7))
	c.want("prometheus text", series("queue_depth", "check=prom", "queue=mail"), eq(9))

	// Each input read back as a dashboard reads it: graphite-web's tag
	// database (filled by carbon) and its /render API.
	id := "'app=web','version=3074f46','host=testhost'"
	c.wantRendered("StatsD", "seriesByTag('name=queue.size',"+id+")", eq(7))
	c.wantRendered("StatsD timer", "seriesByTag('name=http.request_duration.upper','route=/api',"+id+")", eq(100))
	c.wantRendered("scrape", "seriesByTag('name=http_requests_total','code=200','program=app',"+id+")", eq(1027))
	c.wantRendered("nagios check", "seriesByTag('name=load','check=nagios',"+id+")", eq(1.5))
	c.wantRendered("influx check", "seriesByTag('name=cpu.usage','check=influx',"+id+")", eq(0.25))

	// The relay: a line with its own time and tags, then lines sent while
	// carbon is down arrive when it is back (the shipper's backlog).
	r, err := net.Dial("tcp", relayAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ts := time.Now().Add(-30 * time.Second).Unix()
	fmt.Fprintf(r, "app.jobs;queue=mail 12 %d\ngarbage line here\n", ts)
	testutil.Eventually(t, "relayed line at its own time", func() bool {
		for _, p := range c.fetch(series("app.jobs", "queue=mail"), ts-1) {
			if p.t == ts && p.v != nil && *p.v == 12 {
				return true
			}
		}
		return false
	})
	c.wantRendered("relay", "seriesByTag('name=app.jobs','queue=mail',"+id+")", eq(12))
	c.want("malformed relay line counted", series("steward.appmetrics.dropped_total", "input=relay", "reason=malformed"), eq(1))
	c.stop()
	during := time.Now().Unix()
	fmt.Fprintf(r, "app.outage 5 %d\n", during)
	testutil.Eventually(t, "the relay took the line", func() bool {
		return strings.Contains(in.stderr.String(), "graphite: cannot send")
	})
	c.start()
	testutil.Eventually(t, "line sent during the outage stored", func() bool {
		for _, p := range c.fetch(series("app.outage"), during-1) {
			if p.t == during && p.v != nil && *p.v == 5 {
				return true
			}
		}
		return false
	})
	in.signal(syscall.SIGTERM)
	in.wait()
}
