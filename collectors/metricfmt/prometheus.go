package metricfmt

import (
	"strconv"
	"strings"

	"github.com/stewardhq/steward/collectors"
)

// The Prometheus text exposition format (version 0.0.4) is parsed here
// rather than with prometheus/common/expfmt, which the tests use as the
// oracle: linking expfmt into steward measured +2.5 MB of binary (15.8 to
// 18.3 MB) and 22 more package inits (protobuf, client_model) allocating
// about 35 kB before main on every start of PID 1
// (GODEBUG=inittrace=1 steward version), for a line format of a page.

// promParser keeps the TYPE of each metric family seen so far.
type promParser struct {
	types map[string]string
}

// maxTypes bounds the TYPE lines remembered per input.
const maxTypes = 10000

// parseLine reads one line: a sample (name{labels} value [ms]), a TYPE
// comment, or another comment. Labels become tags (le and quantile
// included); counters, and histograms' and summaries' _bucket, _sum and
// _count, are counters; the rest are gauges.
func (p *promParser) parseLine(line string, lim Limits, emit func(collectors.Sample)) error {
	line = strings.TrimLeft(line, " \t")
	if line == "" {
		return nil
	}
	if line[0] == '#' {
		f := strings.Fields(line[1:])
		if len(f) >= 3 && f[0] == "TYPE" {
			if p.types == nil {
				p.types = map[string]string{}
			}
			if len(p.types) < maxTypes {
				p.types[f[1]] = f[2]
			}
		}
		return nil
	}
	i := 0
	for i < len(line) && isNameByte(line[i], i == 0) {
		i++
	}
	if i == 0 {
		return malformed("bad metric name")
	}
	name, rest := line[:i], line[i:]
	var tags []collectors.Tag
	if strings.HasPrefix(rest, "{") {
		var err error
		if tags, rest, err = parseLabels(rest[1:], lim); err != nil {
			return err
		}
	}
	f := strings.Fields(rest)
	if len(f) < 1 || len(f) > 2 || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
		return malformed("want \"name{labels} value [timestamp]\"")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return malformed("value %q is not a number", f[0])
	}
	s := collectors.Sample{Name: name, Value: v, Kind: p.kind(name), Tags: SortTags(tags)}
	if len(f) == 2 {
		ms, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return malformed("timestamp %q is not an integer", f[1])
		}
		if ms > 0 {
			s.Time = unixTime(ms * 1000) // as microseconds: never mistaken for seconds
		}
	}
	emit(s)
	return nil
}

func (p *promParser) kind(name string) collectors.Kind {
	if p.types[name] == "counter" {
		return collectors.Counter
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			switch t := p.types[base]; {
			case t == "histogram", t == "gaugehistogram" && suffix != "_bucket", t == "summary" && suffix != "_bucket":
				return collectors.Counter
			}
		}
	}
	return collectors.Gauge
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

// parseLabels reads k="v",... up to the closing brace and returns the rest
// of the line.
func parseLabels(s string, lim Limits) ([]collectors.Tag, string, error) {
	var tags []collectors.Tag
	for {
		s = strings.TrimLeft(s, " \t")
		if strings.HasPrefix(s, "}") {
			return tags, s[1:], nil
		}
		i := 0
		for i < len(s) && isNameByte(s[i], i == 0) && s[i] != ':' {
			i++
		}
		if i == 0 {
			return nil, "", malformed("bad label name")
		}
		key := s[:i]
		s = strings.TrimLeft(s[i:], " \t")
		if !strings.HasPrefix(s, "=") {
			return nil, "", malformed("label %s has no =", key)
		}
		s = strings.TrimLeft(s[1:], " \t")
		if !strings.HasPrefix(s, `"`) {
			return nil, "", malformed("label %s: value not quoted", key)
		}
		var b strings.Builder
		j := 1
		for ; j < len(s) && s[j] != '"'; j++ {
			if s[j] == '\\' && j+1 < len(s) {
				j++
				switch s[j] {
				case 'n':
					b.WriteByte('\n')
				case '\\', '"':
					b.WriteByte(s[j])
				default:
					return nil, "", malformed("label %s: bad escape \\%c", key, s[j])
				}
				continue
			}
			b.WriteByte(s[j])
		}
		if j >= len(s) {
			return nil, "", malformed("label %s: unterminated value", key)
		}
		if len(tags) >= lim.MaxTags {
			return nil, "", &lineError{ReasonTooManyTags, malformed("more than %d labels", lim.MaxTags)}
		}
		if b.Len() > 0 { // an empty value is the label's absence
			tags = append(tags, collectors.Tag{Key: key, Value: b.String()})
		}
		s = strings.TrimLeft(s[j+1:], " \t")
		if strings.HasPrefix(s, ",") {
			s = s[1:]
		} else if !strings.HasPrefix(s, "}") {
			return nil, "", malformed("labels: want , or }")
		}
	}
}
