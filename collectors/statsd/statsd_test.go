package statsd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/collectors/ingest"
	"github.com/stewardhq/steward/collectors/metricfmt"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var lim = metricfmt.Limits{MaxNameBytes: 256, MaxTags: 32}

func TestParseLine(t *testing.T) {
	got := func(in string) []Metric {
		var out []Metric
		if err := ParseLine([]byte(in), lim, func(m Metric) { out = append(out, m) }); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		return out
	}
	m := got("hits:3|c|@0.1")
	if len(m) != 1 || m[0].Type != Counter || m[0].Value != 3 || m[0].Rate != 0.1 || m[0].Name != "hits" {
		t.Fatalf("%+v", m)
	}
	m = got("temp:-3|g")
	if m[0].Type != Gauge || !m[0].Delta || m[0].Value != -3 {
		t.Fatalf("%+v", m)
	}
	m = got("temp:+4|g")
	if !m[0].Delta || m[0].Value != 4 {
		t.Fatalf("%+v", m)
	}
	m = got("temp:42|g")
	if m[0].Delta {
		t.Fatalf("%+v", m)
	}
	m = got("lat;dc=eu:320|ms|@0.5|#route:/a/b:c,canary")
	want := []collectors.Tag{{Key: "canary", Value: "true"}, {Key: "dc", Value: "eu"}, {Key: "route", Value: "/a/b:c"}}
	if m[0].Type != Timer || m[0].Rate != 0.5 || !slices.Equal(m[0].Tags, want) {
		t.Fatalf("%+v", m)
	}
	// Several values of one name; DogStatsD tags come last, so a ':'
	// after |# belongs to a tag value.
	m = got("lat:1|h:2|d|#a:b:c")
	if len(m) != 2 || m[0].Value != 1 || m[1].Value != 2 || m[1].Type != Timer || len(m[0].Tags) != 0 || m[1].Tags[0].Value != "b:c" {
		t.Fatalf("%+v", m)
	}
	m = got("users:alice|s")
	if m[0].Type != Set || m[0].Member != "alice" {
		t.Fatalf("%+v", m)
	}
	for _, bad := range []string{"nocolon", ":1|c", "x:1", "x:1|q", "x:abc|c", "x:1|c|@0", "x:1|c|@2", "x;k:1|c", "x:1|c|#:v", "x:|c", "x:|s"} {
		if err := ParseLine([]byte(bad), lim, func(Metric) { t.Errorf("%q emitted", bad) }); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if err := ParseLine([]byte(strings.Repeat("n", 300)+":1|c"), lim, func(Metric) {}); err != errTooLong {
		t.Errorf("long name: %v", err)
	}
}

func flush(a *Aggregator) map[string]float64 {
	out := map[string]float64{}
	a.Flush(func(s collectors.Sample) {
		k := s.Name
		for _, t := range s.Tags {
			k += ";" + t.Key + "=" + t.Value
		}
		out[k] = s.Value
	})
	return out
}

func feed(t *testing.T, a *Aggregator, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if err := ParseLine([]byte(l), lim, a.Add); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
	}
}

// TestAggregate: counters sum (sample rates corrected) and reset, gauges
// keep their value and take changes, timings give their statistics, sets
// count distinct members, as etsy/statsd does.
func TestAggregate(t *testing.T) {
	a := NewAggregator(Options{Percentiles: []float64{90, 99.9}, DeleteTimings: true, DeleteSets: true}, ingest.NewStats("t", quiet))
	feed(t, a, "req:1|c", "req:2|c", "req:1|c|@0.5", "req;code=500:1|c",
		"g:10|g", "g:+5|g", "g:-3|g",
		"u:a|s", "u:b|s", "u:a|s")
	for i := 1; i <= 100; i++ {
		feed(t, a, fmt.Sprintf("lat:%d|ms", i))
	}
	feed(t, a, "lat:1000|ms|@0.1")
	got := flush(a)
	want := map[string]float64{
		"req.count": 5, "req;code=500.count": -1, "g": 12, "u.count": 2,
		"lat.count": 110, "lat.lower": 1, "lat.upper": 1000, "lat.sum": 6050, "lat.p90": 91, "lat.p99_9": 1000, "lat.median": 51,
	}
	delete(want, "req;code=500.count")
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if got["req.count;code=500"] != 1 {
		t.Errorf("tagged counter: %v", got)
	}
	if m := got["lat.mean"]; math.Abs(m-6050.0/101) > 1e-9 {
		t.Errorf("mean %v", m)
	}
	if got["req.rate"] <= 0 {
		t.Errorf("rate %v", got["req.rate"])
	}
	// The next interval: counters at 0, gauges kept, timings and sets gone.
	got = flush(a)
	if v, ok := got["req.count"]; !ok || v != 0 {
		t.Errorf("idle counter: %v %v", v, ok)
	}
	if got["g"] != 12 {
		t.Errorf("gauge not kept: %v", got["g"])
	}
	if _, ok := got["lat.count"]; ok {
		t.Errorf("deleted timing still sent")
	}
	if _, ok := got["u.count"]; ok {
		t.Errorf("deleted set still sent")
	}
}

// TestAggregateBounds: series past MaxSeries and set members past the
// limit are dropped and counted; a timing's flood keeps a bounded
// reservoir.
func TestAggregateBounds(t *testing.T) {
	st := ingest.NewStats("t", quiet)
	a := NewAggregator(Options{MaxSeries: 10, MaxSetMembers: 5, PercentileLimit: 50}, st)
	for i := range 20 {
		feed(t, a, fmt.Sprintf("s%d:1|c", i))
	}
	if st.Dropped(ingest.ReasonTooManySeries) != 10 || a.Series() != 10 {
		t.Fatalf("dropped %d, series %d", st.Dropped(ingest.ReasonTooManySeries), a.Series())
	}
	a = NewAggregator(Options{MaxSetMembers: 5, PercentileLimit: 50}, st)
	for i := range 8 {
		feed(t, a, fmt.Sprintf("set:%d|s", i))
	}
	if st.Dropped(ReasonSetTooLarge) != 3 {
		t.Fatalf("set drops %d", st.Dropped(ReasonSetTooLarge))
	}
	for i := range 10000 {
		feed(t, a, fmt.Sprintf("lat:%d|ms", i))
	}
	for _, s := range a.series {
		if s.typ == Timer && len(s.reservoir) != 50 {
			t.Fatalf("reservoir %d", len(s.reservoir))
		}
	}
	got := flush(a)
	if got["lat.count"] != 10000 || got["lat.upper"] != 9999 {
		t.Fatalf("%v", got)
	}
}

// TestServer: lines over UDP and TCP reach the aggregate; a line over the
// limit, garbage and a connection past the limit are counted.
func TestServer(t *testing.T) {
	s := New(Config{Addr: "127.0.0.1:0", TCP: true, UDP: true, MaxConns: 1, Limits: metricfmt.Limits{MaxLineBytes: 100}}, quiet)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("udp:1|c\nudp:2|c\ngarbage\n"))
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "tcp:5|g\n%s:1|c\ntcp2:1|c\n", strings.Repeat("x", 5000))
	// A second connection is one too many: closed at once, counted.
	c2, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c2.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("second connection not closed")
	}
	var got map[string]float64
	deadline := time.Now().Add(time.Minute)
	for {
		if s.stats.Dropped(ingest.ReasonTooManyConns) == 1 && s.stats.Dropped(metricfmt.ReasonTooLong) == 1 &&
			s.stats.Dropped(metricfmt.ReasonMalformed) == 1 && a(s).Series() == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drops: conns %d long %d malformed %d, series %d", s.stats.Dropped(ingest.ReasonTooManyConns),
				s.stats.Dropped(metricfmt.ReasonTooLong), s.stats.Dropped(metricfmt.ReasonMalformed), a(s).Series())
		}
		time.Sleep(10 * time.Millisecond)
	}
	got = map[string]float64{}
	s.Collect(context.Background(), func(smp collectors.Sample) {
		k := smp.Name
		for _, t := range smp.Tags {
			k += ";" + t.Key + "=" + t.Value
		}
		got[k] = smp.Value
	})
	if got["udp.count"] != 3 || got["tcp"] != 5 || got["tcp2.count"] != 1 {
		t.Fatalf("%v", got)
	}
	if got["steward.appmetrics.dropped_total;input=statsd;reason=too_long"] != 1 || got["steward.appmetrics.received_total;input=statsd"] != 6 {
		t.Fatalf("%v", got)
	}
}

func a(s *Server) *Aggregator { return s.agg }

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"a:1|c", "a;k=v:1|ms|@0.5|#x:y,z", "g:-1|g:+2|g", "s:x|s", "a:1|c|#a:b:2|d", "::|#:|@"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		a := NewAggregator(Options{MaxSeries: 100}, ingest.NewStats("f", quiet))
		err := ParseLine(line, metricfmt.Limits{MaxNameBytes: 40, MaxTags: 4}, func(m Metric) {
			if m.Name == "" || len(m.Name) > 40 || len(m.Tags) > 4 {
				t.Fatalf("bad metric %+v", m)
			}
			if m.Type != Set && m.Rate <= 0 {
				t.Fatalf("rate %v", m.Rate)
			}
			a.Add(m)
		})
		_ = err
		a.Flush(func(collectors.Sample) {})
	})
}
