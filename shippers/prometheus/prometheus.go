// Package prometheus serves the latest round of samples at /metrics in the
// Prometheus text exposition format, for users moving off Graphite (as
// Telegraf's prometheus_client output does: the scrape gets the round the
// collectors made last, stamped by the scraper).
//
// The format is written here rather than with client_golang: the exposition
// format is small and stable, and client_golang's registry and collectors
// would add their init cost to every start of PID 1.
package prometheus

import (
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/stewardhq/steward/collectors"
)

// Config is the identity every series is labelled with.
type Config struct {
	App, Version, Host string
}

// Exporter keeps the latest round and serves it, rendered.
//
// A round is rendered when a scrape asks for it, once: rendering every
// round whether or not anyone scrapes made about 100 KB of garbage per
// round (a name and a label set per series), most of what a steward with
// metrics on allocated between scrapes that may never come.
type Exporter struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	round   []collectors.Sample // the latest round, its tags in tags
	tags    []collectors.Tag
	page    []byte // round rendered; nil until a scrape asks
	started bool   // a round has come
}

// New returns an exporter that serves nothing until the first round.
func New(cfg Config, log *slog.Logger) *Exporter {
	return &Exporter{cfg: cfg, log: log}
}

// Ship keeps a round. The exporter keeps no reference to samples: it
// copies them, and their tags, into its own slices, reused round after
// round (strings are immutable, so copying their headers is enough).
func (e *Exporter) Ship(samples []collectors.Sample) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.round, e.tags = e.round[:0], e.tags[:0]
	for _, s := range samples {
		e.tags = append(e.tags, s.Tags...)
	}
	at := 0
	for _, s := range samples {
		s.Tags = e.tags[at : at+len(s.Tags) : at+len(s.Tags)]
		at += len(s.Tags)
		e.round = append(e.round, s)
	}
	e.page, e.started = nil, true
}

// latest returns the latest round rendered, rendering it on the first ask.
func (e *Exporter) latest() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.page == nil && e.started {
		// A new slice each time: a scrape may still be writing the last.
		e.page = Render(e.round, e.cfg)
	}
	return e.page
}

// ServeHTTP answers a scrape with the latest round.
func (e *Exporter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	page := e.latest()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(page)
}

// series is one sample's name, labels and line.
type series struct {
	name, labels string
	kind         collectors.Kind
	value        float64
}

// Render writes samples in the text exposition format: one TYPE line per
// metric, then its series, metrics sorted by name.
func Render(samples []collectors.Sample, id Config) []byte {
	out := make([]series, 0, len(samples))
	for _, s := range samples {
		out = append(out, series{name: MetricName(s.Name), labels: labels(s.Tags, id), kind: s.Kind, value: s.Value})
	}
	slices.SortStableFunc(out, func(a, b series) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.labels, b.labels)
	})
	var b []byte
	for i, s := range out {
		if i == 0 || out[i-1].name != s.name {
			b = append(b, "# TYPE "...)
			b = append(b, s.name...)
			if s.kind == collectors.Counter {
				b = append(b, " counter\n"...)
			} else {
				b = append(b, " gauge\n"...)
			}
		}
		b = append(b, s.name...)
		b = append(b, s.labels...)
		b = append(b, ' ')
		b = appendValue(b, s.value)
		b = append(b, '\n')
	}
	return b
}

// MetricName turns container.cpu.usage_seconds_total into
// container_cpu_usage_seconds_total: [a-zA-Z_:][a-zA-Z0-9_:]*.
func MetricName(name string) string {
	return sanitize(name, true)
}

func sanitize(s string, colon bool) string {
	b := []byte(s)
	for i, c := range b {
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' || colon && c == ':'
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

func labels(tags []collectors.Tag, id Config) string {
	var b strings.Builder
	b.WriteByte('{')
	write := func(k, v string) {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.WriteString(sanitize(k, false))
		b.WriteString(`="`)
		b.WriteString(escape(v))
		b.WriteByte('"')
	}
	write("app", id.App)
	write("version", id.Version)
	write("host", id.Host)
	for _, t := range tags {
		write(t.Key, t.Value)
	}
	b.WriteByte('}')
	return b.String()
}

// escape quotes a label value: backslash, double quote and newline.
func escape(v string) string {
	if !strings.ContainsAny(v, "\\\"\n") {
		return v
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

func appendValue(b []byte, v float64) []byte {
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
