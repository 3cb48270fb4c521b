package statsd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/collectors/ingest"
)

// Options of the aggregation, named as Telegraf's statsd input.
type Options struct {
	// Percentiles of timings, e.g. 90 and 99.9 (default 90, as etsy/statsd).
	Percentiles []float64
	// PercentileLimit is how many values of one timing per interval the
	// percentiles are computed from (a uniform sample beyond it; count,
	// sum, lower, upper, mean and stddev stay exact). Default 1000.
	PercentileLimit int
	// MaxSeries bounds the distinct series kept; new ones beyond it are
	// dropped (too_many_series) until a flush frees room.
	MaxSeries int
	// MaxSetMembers bounds the distinct members one set counts per
	// interval; more are dropped (set_too_large).
	MaxSetMembers int
	// Delete*: whether a series not updated during an interval is
	// forgotten after the flush (true), or goes on being sent — counters
	// and sets as 0, gauges at their last value, timings as a count of 0.
	// Defaults: counters, gauges kept as etsy/statsd does (so a rate
	// graph shows 0, not a gap); timings and sets deleted.
	DeleteCounters, DeleteGauges, DeleteTimings, DeleteSets bool
}

// Defaults.
const (
	DefaultPercentileLimit = 1000
	DefaultMaxSeries       = 10000
	DefaultMaxSetMembers   = 10000
	// ReasonSetTooLarge tags drops of set members past MaxSetMembers.
	ReasonSetTooLarge = "set_too_large"
)

// DefaultPercentiles are etsy/statsd's.
var DefaultPercentiles = []float64{90}

// Aggregator sums up the metrics of one interval, as etsy/statsd and
// Telegraf do: counters sum, gauges keep the last value, timings keep
// their statistics, sets count distinct members.
type Aggregator struct {
	opts  Options
	stats *ingest.Stats

	mu     sync.Mutex
	series map[string]*series
	key    []byte
	last   time.Time // previous flush, for rates
}

type series struct {
	name string
	tags []collectors.Tag
	typ  byte
	seen bool // updated since the last flush

	value float64 // counter: sum; gauge: value

	members map[string]struct{}

	count         float64 // timings: values, corrected by sample rates
	n             int     // values received
	lower, upper  float64
	sum           float64
	mean, m2      float64 // Welford's running mean and squared deviations
	reservoir     []float64
	reservoirSeen int
}

// NewAggregator returns an empty aggregator.
func NewAggregator(o Options, stats *ingest.Stats) *Aggregator {
	if o.Percentiles == nil {
		o.Percentiles = DefaultPercentiles
	}
	if o.PercentileLimit <= 0 {
		o.PercentileLimit = DefaultPercentileLimit
	}
	if o.MaxSeries <= 0 {
		o.MaxSeries = DefaultMaxSeries
	}
	if o.MaxSetMembers <= 0 {
		o.MaxSetMembers = DefaultMaxSetMembers
	}
	return &Aggregator{opts: o, stats: stats, series: map[string]*series{}, last: time.Now()}
}

// Add counts one metric.
func (a *Aggregator) Add(m Metric) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := a.key[:0]
	k = append(k, m.Type)
	k = append(k, m.Name...)
	for _, t := range m.Tags {
		k = append(k, 0)
		k = append(k, t.Key...)
		k = append(k, 0)
		k = append(k, t.Value...)
	}
	a.key = k
	s := a.series[string(k)]
	if s == nil {
		if len(a.series) >= a.opts.MaxSeries {
			a.stats.Drop(ingest.ReasonTooManySeries, 1)
			return
		}
		s = &series{name: m.Name, tags: m.Tags, typ: m.Type}
		a.series[string(k)] = s
	}
	a.stats.Parsed(1)
	s.seen = true
	switch m.Type {
	case Counter:
		s.value += m.Value / m.Rate
	case Gauge:
		if m.Delta {
			s.value += m.Value
		} else {
			s.value = m.Value
		}
	case Set:
		if s.members == nil {
			s.members = map[string]struct{}{}
		}
		if _, ok := s.members[m.Member]; !ok {
			if len(s.members) >= a.opts.MaxSetMembers {
				a.stats.Drop(ReasonSetTooLarge, 1)
				return
			}
			s.members[strings.Clone(m.Member)] = struct{}{}
		}
	case Timer:
		v := m.Value
		s.count += 1 / m.Rate
		s.n++
		if s.n == 1 || v < s.lower {
			s.lower = v
		}
		if s.n == 1 || v > s.upper {
			s.upper = v
		}
		s.sum += v
		d := v - s.mean
		s.mean += d / float64(s.n)
		s.m2 += d * (v - s.mean)
		// Reservoir sampling (Vitter's algorithm R): a uniform sample of
		// the interval's values, whatever their number.
		s.reservoirSeen++
		if len(s.reservoir) < a.opts.PercentileLimit {
			s.reservoir = append(s.reservoir, v)
		} else if j := rand.IntN(s.reservoirSeen); j < len(s.reservoir) {
			s.reservoir[j] = v
		}
	}
}

// Flush emits the interval's series and starts the next interval. Series
// names: see the README ("App metrics"): counter c gives c.count and
// c.rate; gauge g gives g; set s gives s.count; timing t gives t.count,
// t.rate, t.lower, t.upper, t.mean, t.median, t.stddev, t.sum and t.pNN.
func (a *Aggregator) Flush(emit func(collectors.Sample)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	secs := now.Sub(a.last).Seconds()
	a.last = now
	gauge := func(s *series, suffix string, v float64) {
		name := s.name
		if suffix != "" {
			name += "." + suffix
		}
		emit(collectors.Sample{Name: name, Value: v, Kind: collectors.Gauge, Tags: s.tags})
	}
	rate := func(n float64) float64 {
		if secs <= 0 {
			return 0
		}
		return n / secs
	}
	for k, s := range a.series {
		switch s.typ {
		case Counter:
			if !s.seen && a.opts.DeleteCounters {
				delete(a.series, k)
				continue
			}
			gauge(s, "count", s.value)
			gauge(s, "rate", rate(s.value))
			s.value = 0
		case Gauge:
			if !s.seen && a.opts.DeleteGauges {
				delete(a.series, k)
				continue
			}
			gauge(s, "", s.value)
		case Set:
			if !s.seen && a.opts.DeleteSets {
				delete(a.series, k)
				continue
			}
			gauge(s, "count", float64(len(s.members)))
			s.members = nil
		case Timer:
			if !s.seen {
				if a.opts.DeleteTimings {
					delete(a.series, k)
					continue
				}
				gauge(s, "count", 0)
				gauge(s, "rate", 0)
				continue
			}
			a.flushTimer(s, gauge, rate)
		}
		s.seen = false
	}
}

func (a *Aggregator) flushTimer(s *series, gauge func(*series, string, float64), rate func(float64) float64) {
	gauge(s, "count", s.count)
	gauge(s, "rate", rate(s.count))
	gauge(s, "lower", s.lower)
	gauge(s, "upper", s.upper)
	gauge(s, "mean", s.mean)
	gauge(s, "sum", s.sum)
	gauge(s, "stddev", math.Sqrt(s.m2/float64(s.n))) // of the population, as etsy/statsd
	vals := s.reservoir
	slices.Sort(vals)
	mid := len(vals) / 2
	median := vals[mid]
	if len(vals)%2 == 0 {
		median = (vals[mid-1] + vals[mid]) / 2
	}
	gauge(s, "median", median)
	for _, p := range a.opts.Percentiles {
		// Nearest rank: the smallest value with p% of the values at or
		// below it.
		i := int(math.Ceil(p/100*float64(len(vals)))) - 1
		i = max(0, min(i, len(vals)-1))
		gauge(s, PercentileName(p), vals[i])
	}
	s.count, s.n, s.sum, s.mean, s.m2, s.reservoirSeen = 0, 0, 0, 0, 0, 0
	s.reservoir = s.reservoir[:0]
}

// PercentileName is the suffix of a percentile's series: 90 gives p90,
// 99.9 gives p99_9 (a dot would add a Graphite level).
func PercentileName(p float64) string {
	return "p" + strings.ReplaceAll(strconv.FormatFloat(p, 'f', -1, 64), ".", "_")
}

// Series is the number of series kept.
func (a *Aggregator) Series() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.series)
}

// ValidPercentile reports whether p can be a percentile.
func ValidPercentile(p float64) error {
	if !(p > 0 && p <= 100) {
		return fmt.Errorf("percentile %v is not in (0, 100]", p)
	}
	return nil
}
