package prometheus

import (
	"bytes"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/stewardhq/steward/collectors"
)

var id = Config{App: "web", Version: "3074f46", Host: "h1"}

func round() []collectors.Sample {
	return []collectors.Sample{
		{Name: "program.cpu_seconds_total", Value: 1.5, Kind: collectors.Counter, Tags: []collectors.Tag{{Key: "program", Value: "worker"}}},
		{Name: "container.memory.working_set_bytes", Value: 1 << 20, Kind: collectors.Gauge},
		{Name: "program.cpu_seconds_total", Value: 0.25, Kind: collectors.Counter, Tags: []collectors.Tag{{Key: "program", Value: "api"}}},
		{Name: "check.status", Value: 2, Kind: collectors.Gauge, Tags: []collectors.Tag{{Key: "check", Value: "say \"hi\"\\\n"}}},
	}
}

func TestRenderIsTheExpositionFormat(t *testing.T) {
	got := string(Render(round(), id))
	want := `# TYPE check_status gauge
check_status{app="web",version="3074f46",host="h1",check="say \"hi\"\\\n"} 2
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{app="web",version="3074f46",host="h1"} 1.048576e+06
# TYPE program_cpu_seconds_total counter
program_cpu_seconds_total{app="web",version="3074f46",host="h1",program="api"} 0.25
program_cpu_seconds_total{app="web",version="3074f46",host="h1",program="worker"} 1.5
`
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	// Prometheus's own parser reads it back, types and labels intact.
	families := parse(t, []byte(got))
	cpu := families["program_cpu_seconds_total"]
	if cpu.GetType() != dto.MetricType_COUNTER || len(cpu.Metric) != 2 || cpu.Metric[1].Counter.GetValue() != 1.5 {
		t.Fatalf("cpu family %v", cpu)
	}
	if v := labelValue(families["check_status"].Metric[0], "check"); v != "say \"hi\"\\\n" {
		t.Fatalf("escaped label read back as %q", v)
	}
}

func TestMetricNames(t *testing.T) {
	for in, want := range map[string]string{
		"container.cpu.usage_seconds_total": "container_cpu_usage_seconds_total",
		"net.tcp.connections":               "net_tcp_connections",
		"9lives-é":                          "_lives___",
	} {
		if got := MetricName(in); got != want || !model.LegacyValidation.IsValidMetricName(got) {
			t.Errorf("MetricName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestServeLatestRound(t *testing.T) {
	e := New(id, slog.New(slog.DiscardHandler))
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || rec.Body.Len() != 0 {
		t.Fatalf("before the first round: %d %q", rec.Code, rec.Body.String())
	}
	e.Ship(round())
	e.Ship(round()[:1]) // the latest round replaces the one before
	rec = httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
	if fams := parse(t, rec.Body.Bytes()); len(fams) != 1 {
		t.Fatalf("%d families, want the latest round's 1", len(fams))
	}
	rec = httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("POST", "/metrics", nil))
	if rec.Code != 405 {
		t.Fatalf("POST: %d", rec.Code)
	}
}

func parse(t *testing.T, page []byte) map[string]*dto.MetricFamily {
	t.Helper()
	// The classic scheme: names any Prometheus server accepts.
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(io.Reader(bytes.NewReader(page)))
	if err != nil {
		t.Fatalf("Prometheus cannot parse it: %v\n%s", err, page)
	}
	return fams
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestShipCopiesAndRendersOnlyWhenScraped: a round costs no allocation
// until a scrape asks for it (rounds nobody scrapes made garbage), and the
// exporter keeps none of the caller's slices: what the caller reuses
// afterwards does not change what is served.
func TestShipCopiesAndRendersOnlyWhenScraped(t *testing.T) {
	e := New(id, slog.New(slog.DiscardHandler))
	samples := round()
	e.Ship(samples) // first round: the exporter's slices grow
	if n := testing.AllocsPerRun(20, func() { e.Ship(samples) }); n != 0 {
		t.Fatalf("Ship allocates %v times a round with no scrape", n)
	}
	want := string(Render(samples, id))
	for i := range samples {
		samples[i].Value = -1
		if len(samples[i].Tags) > 0 {
			samples[i].Tags[0].Value = "reused"
		}
	}
	samples[0].Name = "reused.name"
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Body.String() != want {
		t.Fatalf("served\n%s\nwant the round as shipped\n%s", rec.Body.String(), want)
	}
}
