package statsd

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/collectors/metricfmt"
)

// Types of metrics.
const (
	Counter = 'c'
	Gauge   = 'g'
	Timer   = 't' // ms, h (histogram) and d (DogStatsD distribution) alike
	Set     = 's'
)

// Metric is one value of one StatsD line.
type Metric struct {
	Name string
	Tags []collectors.Tag // sorted
	Type byte
	// Value is the number; for a gauge with Delta, the change.
	Value float64
	Delta bool
	// Member is a set's element.
	Member string
	// Rate is the sample rate (|@0.1): a counter increment counts
	// 1/Rate times, a timing value 1/Rate times in the count.
	Rate float64
}

// ParseLine reads one StatsD line, etsy/statsd's format with DogStatsD's
// extensions, as Telegraf's statsd input does:
//
//	name:value|type[|@rate][|#tag:value,tag2]
//	name:value1|type:value2|type        (several values of one name)
//	name;tag=value:value|type           (Graphite 1.1 tags in the name)
//
// Types: c (counter), g (gauge; a leading + or - is a change), ms, h and
// d (timings), s (set). A DogStatsD tag without a value gets "true" (a
// Graphite tag cannot be empty). Unknown |sections are ignored. emit gets
// the line's metrics only when all of them parse. lim bounds names and
// tags.
func ParseLine(line []byte, lim metricfmt.Limits, emit func(Metric)) error {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil
	}
	colon := bytes.IndexByte(line, ':')
	// A Graphite tag value may not hold ':' — the first one ends the name.
	if colon <= 0 {
		return fmt.Errorf("statsd: no \"name:value\" in %q", clip(line))
	}
	name, tags, err := metricfmt.ParseGraphiteName(string(line[:colon]))
	if err != nil {
		return fmt.Errorf("statsd: %w", err)
	}
	var out [4]Metric
	ms := out[:0]
	for rest := line[colon+1:]; len(rest) > 0; {
		// The values are separated by ':', but a DogStatsD tag holds ':'
		// too: a value ends at the ':' after its type section that is
		// not inside the |# section.
		end := valueEnd(rest)
		m, err := parseValue(rest[:end])
		if err != nil {
			return err
		}
		ms = append(ms, m)
		if end == len(rest) {
			break
		}
		rest = rest[end+1:]
	}
	if len(ms) == 0 {
		return fmt.Errorf("statsd: no value in %q", clip(line))
	}
	for i := range ms {
		ms[i].Name = name
		all := append(append([]collectors.Tag(nil), tags...), ms[i].Tags...)
		ms[i].Tags = metricfmt.SortTags(all)
		if len(name) > lim.MaxNameBytes || len(ms[i].Tags) > lim.MaxTags {
			return errTooLong
		}
		for _, t := range ms[i].Tags {
			if len(t.Key) > lim.MaxNameBytes || len(t.Value) > lim.MaxNameBytes {
				return errTooLong
			}
		}
	}
	for _, m := range ms {
		emit(m)
	}
	return nil
}

var errTooLong = fmt.Errorf("statsd: name or tags over the limits")

func valueEnd(b []byte) int {
	inTags := false
	for i, c := range b {
		switch c {
		case '|':
			inTags = i+1 < len(b) && b[i+1] == '#'
		case ':':
			if !inTags {
				return i
			}
		}
	}
	return len(b)
}

// parseValue reads "value|type[|@rate][|#tags]".
func parseValue(b []byte) (Metric, error) {
	parts := strings.Split(string(b), "|")
	if len(parts) < 2 {
		return Metric{}, fmt.Errorf("statsd: no |type in %q", clip(b))
	}
	m := Metric{Rate: 1}
	switch parts[1] {
	case "c":
		m.Type = Counter
	case "g":
		m.Type = Gauge
	case "ms", "h", "d":
		m.Type = Timer
	case "s":
		m.Type = Set
	default:
		return Metric{}, fmt.Errorf("statsd: unknown type %q", clip([]byte(parts[1])))
	}
	v := parts[0]
	if m.Type == Set {
		if v == "" {
			return Metric{}, fmt.Errorf("statsd: empty set member")
		}
		m.Member = v
	} else {
		if m.Type == Gauge && (strings.HasPrefix(v, "+") || strings.HasPrefix(v, "-")) {
			m.Delta = true
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || v == "" {
			return Metric{}, fmt.Errorf("statsd: value %q is not a number", clip([]byte(v)))
		}
		m.Value = f
	}
	for _, p := range parts[2:] {
		switch {
		case strings.HasPrefix(p, "@"):
			r, err := strconv.ParseFloat(p[1:], 64)
			if err != nil || !(r > 0 && r <= 1) {
				return Metric{}, fmt.Errorf("statsd: sample rate %q is not in (0,1]", clip([]byte(p)))
			}
			m.Rate = r
		case strings.HasPrefix(p, "#"):
			for t := range strings.SplitSeq(p[1:], ",") {
				if t == "" {
					continue
				}
				k, v, ok := strings.Cut(t, ":")
				if !ok || v == "" {
					v = "true"
				}
				if k == "" {
					return Metric{}, fmt.Errorf("statsd: tag %q has no name", clip([]byte(t)))
				}
				m.Tags = append(m.Tags, collectors.Tag{Key: k, Value: v})
			}
		}
	}
	return m, nil
}

// clip keeps error messages short whatever the input.
func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}
