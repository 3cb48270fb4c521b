package graphite

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/collectors"
)

func TestClean(t *testing.T) {
	cases := []struct {
		in   string
		p    part
		want string
	}{
		{"web", partTagValue, "web"},
		{"", partTagValue, "_"},
		{"a;b", partTagValue, "a_b"},
		{"~web", partTagValue, "_web"},
		{"we~b", partTagValue, "we~b"},
		{"a=b!c^d", partTagValue, "a=b!c^d"}, // allowed in values
		{"a=b!c^d", partTagKey, "a_b_c_d"},
		{"name", partTagKey, "_name"},
		{"with space\ttab", partTagValue, "with_space_tab"},
		{"héllo", partTagValue, "h__llo"}, // é is two bytes
		{"h1.example.com", partTagValue, "h1.example.com"},
		{"h1.example.com", partNode, "h1_example_com"},
		{"a;b", partNode, "a_b"},
		{"~x.y", partMetric, "_x.y"},
		{strings.Repeat("x", 300), partTagValue, strings.Repeat("x", maxPart)},
	}
	for _, c := range cases {
		if got := clean(c.in, c.p); got != c.want {
			t.Errorf("clean(%q, %d) = %q, want %q", c.in, c.p, got, c.want)
		}
	}
}

var at = time.Unix(1700000010, 0)

func lines(t *testing.T, cfg Config, samples ...collectors.Sample) string {
	t.Helper()
	f, err := newFormatter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	for _, s := range samples {
		s.Time = at
		b = f.appendLine(b, s)
	}
	return string(b)
}

var identity = Config{App: "web", Version: "3074f46", Host: "h1.example.com"}

func TestFormatTags(t *testing.T) {
	got := lines(t, identity,
		collectors.Sample{Name: "container.cpu.usage_seconds_total", Value: 12.5},
		collectors.Sample{Name: "program.open_fds", Value: 7, Tags: []collectors.Tag{{Key: "program", Value: "web;x"}}},
		collectors.Sample{Name: "net.tcp.connections", Value: 3, Tags: []collectors.Tag{{Key: "state", Value: "established"}}},
		collectors.Sample{Name: "nan", Value: math.NaN()},
		collectors.Sample{Name: "big", Value: 1e20},
	)
	want := "container.cpu.usage_seconds_total;app=web;host=h1.example.com;version=3074f46 12.5 1700000010\n" +
		"program.open_fds;app=web;host=h1.example.com;program=web_x;version=3074f46 7 1700000010\n" +
		"net.tcp.connections;app=web;host=h1.example.com;state=established;version=3074f46 3 1700000010\n" +
		"big;app=web;host=h1.example.com;version=3074f46 100000000000000000000 1700000010\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	cfg := identity
	cfg.Prefix = "steward."
	cfg.Version = "" // never empty on the wire
	if got := lines(t, cfg, collectors.Sample{Name: "a.b", Value: 1}); got != "steward.a.b;app=web;host=h1.example.com;version=_ 1 1700000010\n" {
		t.Errorf("prefixed: %q", got)
	}
}

func TestFormatPath(t *testing.T) {
	cfg := identity
	cfg.Mode = ModePath
	got := lines(t, cfg,
		collectors.Sample{Name: "container.memory.usage_bytes", Value: 1024},
		collectors.Sample{Name: "program.cpu_seconds_total", Value: 0.25, Tags: []collectors.Tag{{Key: "program", Value: "web"}}},
		collectors.Sample{Name: "net.interface.receive_bytes_total", Value: 9, Tags: []collectors.Tag{{Key: "interface", Value: "eth0.100"}}},
	)
	// No prefix: its level is dropped. The host's dots are escaped.
	want := "web.3074f46.h1_example_com.container.memory.usage_bytes 1024 1700000010\n" +
		"web.3074f46.h1_example_com.program.web.cpu_seconds_total 0.25 1700000010\n" +
		"web.3074f46.h1_example_com.net.interface.eth0_100.receive_bytes_total 9 1700000010\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	cfg.Prefix = "apps.prod"
	cfg.Template = "{prefix}.{app}.by version.{version}.{name}"
	if got := lines(t, cfg, collectors.Sample{Name: "a.b", Value: 1}); got != "apps.prod.web.by_version.3074f46.a.b 1 1700000010\n" {
		t.Errorf("template: %q", got)
	}
}

func TestParseTemplate(t *testing.T) {
	for _, bad := range []string{"{prefix}.{app}", "{name}.{nope}", "{name}.{app"} {
		if _, err := ParseTemplate(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParseTemplate(""); err != nil {
		t.Errorf("default: %v", err)
	}
}

// BenchmarkFormat is one round's formatting: about what one collection
// emits.
func BenchmarkFormat(b *testing.B) {
	f, _ := newFormatter(identity)
	tags := []collectors.Tag{{Key: "program", Value: "web"}}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:0]
		for range 150 {
			buf = f.appendLine(buf, collectors.Sample{Name: "program.cpu_seconds_total", Value: 1234.5, Tags: tags, Time: at})
		}
	}
}
