// Package checkmetrics turns the output of checks with an
// output_metric_format into samples, as sensu-agent extracts a check's
// metrics and a Graphite handler stores them.
package checkmetrics

import (
	"context"
	"log/slog"
	"strings"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/collectors/ingest"
	"github.com/stewardhq/steward/collectors/metricfmt"
)

// MetricOutputs: each sample is tagged check=NAME and with the
// check's output_metric_tags, stamped with its own time or the run's, and
// kept (bounded) for the next collection round. It is the collector
// "checks".
type MetricOutputs struct {
	stats *ingest.Stats
	buf   *ingest.Buffer
	lim   metricfmt.Limits
}

// NewMetricOutputs keeps up to max samples between rounds.
func NewMetricOutputs(max int, log *slog.Logger) *MetricOutputs {
	st := ingest.NewStats("checks", log)
	return &MetricOutputs{stats: st, buf: ingest.NewBuffer(max, st)}
}

// Record parses r's output when its check has a metric format, keeps the
// samples for the next round and returns them as points for the check's
// Sensu event.
func (m *MetricOutputs) Record(r checks.Report) []checks.MetricPoint {
	if r.OutputMetricFormat == "" {
		return nil
	}
	var points []checks.MetricPoint
	extra := []collectors.Tag{{Key: "check", Value: r.Name}}
	for k, v := range r.OutputMetricTags {
		extra = append(extra, collectors.Tag{Key: k, Value: v})
	}
	res, _ := metricfmt.Parse(r.OutputMetricFormat, strings.NewReader(r.Output), m.lim, func(s collectors.Sample) {
		s.Tags = metricfmt.SortTags(append(append([]collectors.Tag(nil), s.Tags...), extra...))
		if s.Time.IsZero() {
			s.Time = r.Executed
		}
		m.buf.Add(s)
		p := checks.MetricPoint{Name: s.Name, Value: s.Value, Timestamp: s.Time.Unix()}
		for _, t := range s.Tags {
			p.Tags = append(p.Tags, checks.MetricTag{Name: t.Key, Value: t.Value})
		}
		points = append(points, p)
	})
	m.stats.Count(res)
	return points
}

// Name implements collectors.Collector.
func (m *MetricOutputs) Name() string { return "checks" }

// Collect emits the samples of the checks run since the last round.
func (m *MetricOutputs) Collect(_ context.Context, emit func(collectors.Sample)) error {
	m.buf.Drain(emit)
	m.stats.Emit(emit)
	return nil
}
