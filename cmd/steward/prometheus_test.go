package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/stewardhq/steward/internal/testutil"
)

// TestPrometheusEndpoint: with metrics.prometheus, GET /metrics on the HTTP
// endpoint serves the latest round in a format Prometheus parses, with the
// identity labels and the components' own figures.
func TestPrometheusEndpoint(t *testing.T) {
	addr := freeAddr(t)
	in := start(t, runOpts{config: fmt.Sprintf(`
[steward]
app = "shop"
version = "3074f46"

[metrics]
prometheus = true
interval = "1s"

[http]
addr = %q

[checks.alive]
command = ["true"]
interval = "1s"

[programs.app]
main = true
command = ["sleep", "1000"]
`, addr)})
	var fams map[string]*dto.MetricFamily
	testutil.Eventually(t, "a round with program and check figures at /metrics", func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		p := expfmt.NewTextParser(model.LegacyValidation)
		fams, err = p.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("Prometheus cannot parse /metrics: %v\n%s", err, body)
		}
		return fams["program_uptime_seconds"] != nil && fams["check_status"] != nil
	})
	up := fams["program_uptime_seconds"]
	if up.GetType() != dto.MetricType_GAUGE {
		t.Errorf("program_uptime_seconds is a %v", up.GetType())
	}
	labels := map[string]string{}
	for _, l := range up.Metric[0].Label {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["app"] != "shop" || labels["version"] != "3074f46" || labels["program"] != "app" {
		t.Errorf("labels %v", labels)
	}
	if f := fams["steward_healthy"]; f == nil || f.Metric[0].Gauge.GetValue() != 1 {
		t.Errorf("steward_healthy %v", f)
	}
	if f := fams["steward_orphans_reaped_total"]; f == nil || f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("steward_orphans_reaped_total %v", f)
	}
	in.signal(syscall.SIGTERM)
	in.wait()
}
