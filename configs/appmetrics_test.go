package configs

import (
	"slices"
	"strings"
	"testing"
)

func TestAppMetricsDefaults(t *testing.T) {
	cfg, err := load(t, oneProgram+`
[metrics]
print = true
[metrics.statsd]
enabled = true
[metrics.relay]
enabled = true
`)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Metrics.StatsD
	if s.Addr != "127.0.0.1:8125" || !s.UDP || !s.TCP || !slices.Equal(s.Percentiles, []float64{90}) || !s.DeleteTimings || s.DeleteGauges {
		t.Fatalf("%+v", s)
	}
	if cfg.Metrics.Relay.Addr != "127.0.0.1:2003" {
		t.Fatalf("%+v", cfg.Metrics.Relay)
	}
}

// TestAppMetricsErrors: each bad key named with its file and line.
func TestAppMetricsErrors(t *testing.T) {
	_, err := load(t, oneProgram+`
[programs.api]
command = ["api"]
metrics_url = "ftp://x/metrics"

[metrics.statsd]
enabled = true
addr = "0.0.0.0:8125"
percentiles = [0, 120]
max_line_bytes = 10

[metrics.relay]
enabled = true
addr = "nohost"

[checks.disk]
command = ["check_disk"]
output_metric_format = "xml"
output_metric_tags = { "a=b" = "x" }

[checks.tcp]
tcp = "127.0.0.1:1"
output_metric_format = "nagios_perfdata"
`)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`:7: programs.api.metrics_url: "ftp://x/metrics" is not an http:// or https:// URL`,
		`:10: metrics.statsd.enabled: the app's metrics go where steward's go`,
		`:11: metrics.statsd.addr: "0.0.0.0:8125": listen on a loopback address`,
		`:12: metrics.statsd.percentiles: 0 is not in (0, 100]`,
		`:12: metrics.statsd.percentiles: 120 is not in (0, 100]`,
		`:13: metrics.statsd.max_line_bytes: 10 is outside 64 to 1048576`,
		`:17: metrics.relay.addr: "nohost" is not host:port`,
		`:21: checks.disk.output_metric_format: "xml" is not one of graphite_plaintext, influxdb_line, nagios_perfdata, prometheus_text`,
		`:22: checks.disk.output_metric_tags: tag "a=b" = "x"`,
		`:26: checks.tcp.output_metric_format: only command and http checks have an output to parse`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestAppMetricsEnv(t *testing.T) {
	cfg, err := load(t, oneProgram+"[metrics]\nprint = true\n",
		"STEWARD_METRICS_STATSD_ENABLED=true", "STEWARD_METRICS_STATSD_ADDR=127.0.0.1:9125",
		"STEWARD_METRICS_RELAY_ENABLED=true", "STEWARD_METRICS_RELAY_ADDR=[::1]:2004")
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Metrics
	if !m.StatsD.Enabled || m.StatsD.Addr != "127.0.0.1:9125" || !m.Relay.Enabled || m.Relay.Addr != "[::1]:2004" {
		t.Fatalf("%+v %+v", m.StatsD, m.Relay)
	}
	_, err = load(t, oneProgram+"[metrics]\nprint = true\n", "STEWARD_METRICS_STATSD_ENABLED=true", "STEWARD_METRICS_STATSD_ADDR=10.0.0.1:8125")
	if err == nil || !strings.Contains(err.Error(), "STEWARD_METRICS_STATSD_ADDR: metrics.statsd.addr") {
		t.Fatalf("%v", err)
	}
}
