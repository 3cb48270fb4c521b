package metricfmt

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/stewardhq/steward/collectors"
)

func parseAll(t *testing.T, format, in string) ([]collectors.Sample, Result) {
	t.Helper()
	var out []collectors.Sample
	res, err := Parse(format, strings.NewReader(in), Limits{}, func(s collectors.Sample) { out = append(out, s) })
	if err != nil {
		t.Fatal(err)
	}
	return out, res
}

// key is a sample as a comparable string: name;k=v... value
func key(s collectors.Sample) string {
	var b strings.Builder
	b.WriteString(s.Name)
	for _, t := range s.Tags {
		fmt.Fprintf(&b, ";%s=%s", t.Key, t.Value)
	}
	v := fmt.Sprint(s.Value)
	if math.IsNaN(s.Value) {
		v = "NaN"
	}
	fmt.Fprintf(&b, " %s", v)
	if !s.Time.IsZero() {
		fmt.Fprintf(&b, " @%d", s.Time.Unix())
	}
	return b.String()
}

func keys(ss []collectors.Sample) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = key(s)
	}
	return out
}

func TestGraphite(t *testing.T) {
	in := "a.b 1.5 1700000000\n" +
		"tagged;dc=eu;app=x  2\t1700000001\n" +
		"no.time 3\n" +
		"\n" +
		"bad line\n" +
		"x notanumber 1\n" +
		"x 1 2 3\n" +
		"t;novalue 1\n" +
		"neg.time 4 -1\r\n"
	got, res := parseAll(t, Graphite, in)
	want := []string{"a.b 1.5 @1700000000", "tagged;app=x;dc=eu 2 @1700000001", "no.time 3", "neg.time 4"}
	if !slices.Equal(keys(got), want) {
		t.Fatalf("got %q\nwant %q", keys(got), want)
	}
	if res.Dropped[ReasonMalformed] != 4 || res.Lines != 9 {
		t.Fatalf("result %+v", res)
	}
}

func TestNagios(t *testing.T) {
	in := "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968 'used space'=80%;90;95 time=0.01s;;; load=U\n" +
		"second line of text\n" +
		"more | bad=x;1\n"
	got, res := parseAll(t, Nagios, in)
	want := []string{"/ 2643", "used space 80", "time 0.01"}
	if !slices.Equal(keys(got), want) {
		t.Fatalf("got %q\nwant %q", keys(got), want)
	}
	if res.Dropped[ReasonMalformed] != 1 {
		t.Fatalf("result %+v", res)
	}
}

func TestInflux(t *testing.T) {
	in := "cpu,host=a,region=eu\\ west usage=0.5,idle=99i,up=true,msg=\"hi there, you\" 1700000000000000000\n" +
		"mem free=10u\n" +
		"# comment\n" +
		"bad\n" +
		"cpu,host usage=1\n" +
		"cpu usage=abc\n" +
		"secs v=1 1700000002\n"
	got, res := parseAll(t, Influx, in)
	want := []string{"cpu.usage;host=a;region=eu west 0.5 @1700000000", "cpu.idle;host=a;region=eu west 99 @1700000000",
		"cpu.up;host=a;region=eu west 1 @1700000000", "mem.free 10", "secs.v 1 @1700000002"}
	if !slices.Equal(keys(got), want) {
		t.Fatalf("got %q\nwant %q", keys(got), want)
	}
	if res.Dropped[ReasonMalformed] != 3 {
		t.Fatalf("result %+v", res)
	}
}

// TestPrometheusOracle: what the parser reads from an exposition is what
// prometheus/common/expfmt reads from it.
func TestPrometheusOracle(t *testing.T) {
	data, err := os.ReadFile("testdata/app.prom")
	if err != nil {
		t.Fatal(err)
	}
	got, res := parseAll(t, Prometheus, string(data))
	if res.DroppedTotal() != 0 {
		t.Fatalf("drops: %+v", res)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	kinds := map[string]collectors.Kind{}
	for _, fam := range fams {
		name := fam.GetName()
		for _, m := range fam.Metric {
			var tags []collectors.Tag
			for _, l := range m.Label {
				if l.GetValue() == "" {
					continue // Prometheus: an empty value is no label; Graphite refuses empty tags
				}
				tags = append(tags, collectors.Tag{Key: l.GetName(), Value: l.GetValue()})
			}
			add := func(n string, v float64, k collectors.Kind, extra ...collectors.Tag) {
				s := collectors.Sample{Name: n, Value: v, Tags: SortTags(append(slices.Clone(tags), extra...))}
				if m.TimestampMs != nil {
					s.Time = unixTime(m.GetTimestampMs() * 1000)
				}
				want = append(want, key(s))
				kinds[key(s)] = k
			}
			switch {
			case m.Counter != nil:
				add(name, m.Counter.GetValue(), collectors.Counter)
			case m.Gauge != nil:
				add(name, m.Gauge.GetValue(), collectors.Gauge)
			case m.Untyped != nil:
				add(name, m.Untyped.GetValue(), collectors.Gauge)
			case m.Histogram != nil:
				for _, b := range m.Histogram.Bucket {
					add(name+"_bucket", float64(b.GetCumulativeCount()), collectors.Counter, collectors.Tag{Key: "le", Value: model.FloatString(b.GetUpperBound()).String()})
				}
				add(name+"_sum", m.Histogram.GetSampleSum(), collectors.Counter)
				add(name+"_count", float64(m.Histogram.GetSampleCount()), collectors.Counter)
			case m.Summary != nil:
				for _, q := range m.Summary.Quantile {
					add(name, q.GetValue(), collectors.Gauge, collectors.Tag{Key: "quantile", Value: model.FloatString(q.GetQuantile()).String()})
				}
				add(name+"_sum", m.Summary.GetSampleSum(), collectors.Counter)
				add(name+"_count", float64(m.Summary.GetSampleCount()), collectors.Counter)
			}
		}
	}
	gotKeys := keys(got)
	slices.Sort(gotKeys)
	slices.Sort(want)
	if !slices.Equal(gotKeys, want) {
		t.Fatalf("parser:\n%s\nexpfmt:\n%s", strings.Join(gotKeys, "\n"), strings.Join(want, "\n"))
	}
	for _, s := range got {
		if s.Kind != kinds[key(s)] {
			t.Errorf("%s: kind %v, expfmt says %v", key(s), s.Kind, kinds[key(s)])
		}
	}
}

func TestPrometheusMalformed(t *testing.T) {
	in := "ok 1\n" +
		"1bad 1\n" +
		"x{a=\"1\" 2\n" +
		"x{a=1} 2\n" +
		"x{a=\"\\q\"} 2\n" +
		"x 1 notms\n" +
		"x{a=\"1\"}2\n" +
		"x\n"
	got, res := parseAll(t, Prometheus, in)
	if len(got) != 1 || res.Dropped[ReasonMalformed] != 7 {
		t.Fatalf("got %q, %+v", keys(got), res)
	}
}

// TestLimits: a line over the limit, a name over the limit and too many
// tags are dropped and counted, and the lines around them survive.
func TestLimits(t *testing.T) {
	lim := Limits{MaxLineBytes: 100, MaxNameBytes: 20, MaxTags: 2}
	in := "a 1\n" + strings.Repeat("x", 5000) + " 1\n" + strings.Repeat("n", 21) + " 1\n" +
		"t;a=1;b=2;c=3 1\n" + "b 2"
	var got []collectors.Sample
	res, err := Parse(Graphite, strings.NewReader(in), lim, func(s collectors.Sample) { got = append(got, s) })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys(got), []string{"a 1", "b 2"}) {
		t.Fatalf("got %q", keys(got))
	}
	if res.Dropped[ReasonTooLong] != 2 || res.Dropped[ReasonTooManyTags] != 1 {
		t.Fatalf("result %+v", res)
	}
}

func fuzzParse(f *testing.F, format string, seeds ...string) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		lim := Limits{MaxLineBytes: 200, MaxNameBytes: 50, MaxTags: 4}
		n := 0
		res, err := Parse(format, strings.NewReader(in), lim, func(s collectors.Sample) {
			n++
			if err := checkSample(s, lim); err != nil {
				t.Fatalf("emitted a sample breaking the limits: %v", err)
			}
			if !slices.IsSortedFunc(s.Tags, func(a, b collectors.Tag) int { return strings.Compare(a.Key, b.Key) }) {
				t.Fatalf("tags not sorted: %v", s.Tags)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if n != res.Samples || res.Lines > strings.Count(in, "\n")+1 {
			t.Fatalf("result %+v for %d samples", res, n)
		}
	})
}

func FuzzGraphite(f *testing.F) {
	fuzzParse(f, Graphite, "a.b 1 1700000000\n", "t;k=v;a=b 2\n", "x y z w\n", ";=; 1")
}

func FuzzNagios(f *testing.F) {
	fuzzParse(f, Nagios, "OK | a=1ms;2;3;0;9 'b c'=5%\n", "x|y", "| '=1 =2 ''=3")
}

func FuzzInflux(f *testing.F) {
	fuzzParse(f, Influx, "cpu,h=a u=1,i=2i,s=\"x y\" 1700000000000000000\n", "a\\ b,c\\,d=e\\=f g=1\n", "m f=\"\\\"\"")
}

func FuzzPrometheus(f *testing.F) {
	data, _ := os.ReadFile("testdata/app.prom")
	fuzzParse(f, Prometheus, string(data), "x{a=\"\\\\\\n\"} 1 2\n", "# TYPE x histogram\nx_bucket{le=\"+Inf\"} 1\n")
}
