package configs

import (
	"slices"
	"strings"
	"testing"
	"time"
)

const oneProgram = "[programs.web]\ncommand = [\"sleep\", \"1\"]\nmain = true\n"

func TestMetricsDefaults(t *testing.T) {
	cfg, err := load(t, oneProgram)
	if err != nil {
		t.Fatal(err)
	}
	m, g := cfg.Metrics, cfg.Graphite
	if m.Interval.D() != 10*time.Second || !slices.Equal(m.Collectors, MetricsCollectors) || !slices.Equal(m.ExcludeInterfaces, []string{"lo"}) || m.Root != "/" {
		t.Errorf("metrics defaults %+v", m)
	}
	if g.Protocol != "tcp" || g.Mode != "tags" || g.Template != DefaultGraphiteTemplate || g.Buffer.D() != 5*time.Minute || len(g.Addr) != 0 {
		t.Errorf("graphite defaults %+v", g)
	}
	if cfg.MetricsEnabled() {
		t.Error("enabled without an address or print")
	}
	if n := g.BufferRounds(m.Interval.D()); n != 30 {
		t.Errorf("buffer rounds %d, want 30", n)
	}
}

func TestMetricsFileAndEnv(t *testing.T) {
	cfg, err := load(t, oneProgram+`
[metrics]
interval = "30s"
collectors = ["cgroup", "programs"]

[graphite]
addr = "carbon:2003"
mode = "path"
prefix = "apps"
`, "STEWARD_GRAPHITE_ADDR=a:2003, b:2004", "STEWARD_METRICS_INTERVAL=15s", "STEWARD_GRAPHITE_FAILOVER=true")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Graphite.Addr, HostPorts{"a:2003", "b:2004"}) || !cfg.Graphite.Failover || cfg.Metrics.Interval.D() != 15*time.Second {
		t.Errorf("env not applied: %+v %+v", cfg.Graphite, cfg.Metrics)
	}
	if cfg.Graphite.Mode != "path" || cfg.Graphite.Prefix != "apps" || !slices.Equal(cfg.Metrics.Collectors, []string{"cgroup", "programs"}) {
		t.Errorf("file not applied: %+v %+v", cfg.Graphite, cfg.Metrics)
	}
	if !cfg.MetricsEnabled() {
		t.Error("not enabled with an address")
	}
	cfg, err = load(t, oneProgram+"[graphite]\naddr = [\"x:1\", \"y:2\"]\n")
	if err != nil || len(cfg.Graphite.Addr) != 2 {
		t.Fatalf("array form: %v %v", cfg, err)
	}
}

func TestMetricsErrors(t *testing.T) {
	_, err := load(t, oneProgram+`
[metrics]
interval = "100ms"
collectors = ["cgroup", "disk"]

[graphite]
addr = "carbon"
mode = "json"
template = "{app}.{nope}"
`)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		":6: metrics.interval: 100ms is below the minimum of 1s",
		`:7: metrics.collectors: unknown collector "disk"`,
		`:10: graphite.addr: bad address "carbon" (want host:port)`,
		`:11: graphite.mode: "json" is not one of tags, path`,
		`:12: graphite.template: "{app}.{nope}" has no {name}`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	_, err = load(t, oneProgram, "STEWARD_GRAPHITE_ADDR=carbon:99999")
	if err == nil || !strings.Contains(err.Error(), "STEWARD_GRAPHITE_ADDR: graphite.addr: bad port") {
		t.Fatalf("env error: %v", err)
	}
}
