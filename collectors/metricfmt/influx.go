package metricfmt

import (
	"strconv"
	"strings"

	"github.com/stewardhq/steward/collectors"
)

// parseInfluxLine reads InfluxDB line protocol:
//
//	measurement[,tag=value...] field=value[,field=value...] [timestamp]
//
// As Sensu Go's influxdb_line transformer, each numeric field becomes a
// series named measurement.field, tagged with the line's tags. Integers
// (12i, 12u) and booleans (1/0) are numbers; string fields are not metrics
// and are skipped. The timestamp is nanoseconds by the protocol; one in
// seconds, milliseconds or microseconds is recognised by its size, since
// plugins often write those.
func parseInfluxLine(line string, lim Limits, emit func(collectors.Sample)) error {
	line = strings.TrimLeft(line, " \t")
	if line == "" || line[0] == '#' {
		return nil
	}
	sections := splitUnescaped(line, ' ', true)
	if len(sections) < 2 || len(sections) > 3 {
		return malformed("want \"measurement[,tags] fields [timestamp]\"")
	}
	series := splitUnescaped(sections[0], ',', false)
	measurement := unescape(series[0])
	if measurement == "" {
		return malformed("empty measurement")
	}
	var tags []collectors.Tag
	for _, kv := range series[1:] {
		parts := splitUnescaped(kv, '=', false)
		if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
			return malformed("tag %q is not k=v", kv)
		}
		tags = append(tags, collectors.Tag{Key: unescape(parts[0]), Value: unescape(parts[1])})
	}
	tags = SortTags(tags)
	var ts int64
	if len(sections) == 3 {
		var err error
		if ts, err = strconv.ParseInt(sections[2], 10, 64); err != nil {
			return malformed("timestamp %q is not an integer", sections[2])
		}
	}
	fields := splitUnescaped(sections[1], ',', true)
	type field struct {
		name string
		v    float64
	}
	out := make([]field, 0, len(fields))
	for _, kv := range fields {
		k, v, ok := cutUnescaped(kv, '=')
		if !ok || k == "" || v == "" {
			return malformed("field %q is not k=v", kv)
		}
		if v[0] == '"' {
			continue // a string field
		}
		f, ok := influxNumber(v)
		if !ok {
			return malformed("field %q: %q is not a number", k, v)
		}
		out = append(out, field{measurement + "." + unescape(k), f})
	}
	// The whole line or nothing: a bad field makes the line malformed.
	for _, f := range out {
		emit(collectors.Sample{Name: f.name, Value: f.v, Kind: collectors.Gauge, Tags: tags, Time: unixTime(ts)})
	}
	return nil
}

func influxNumber(v string) (float64, bool) {
	switch v {
	case "t", "T", "true", "True", "TRUE":
		return 1, true
	case "f", "F", "false", "False", "FALSE":
		return 0, true
	}
	switch v[len(v)-1] {
	case 'i':
		n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
		return float64(n), err == nil
	case 'u':
		n, err := strconv.ParseUint(v[:len(v)-1], 10, 64)
		return float64(n), err == nil
	}
	f, err := strconv.ParseFloat(v, 64)
	return f, err == nil
}

// splitUnescaped splits s at sep, except where sep is escaped with a
// backslash or, when quotes is set, inside a double-quoted string.
func splitUnescaped(s string, sep byte, quotes bool) []string {
	var out []string
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == '"' && quotes:
			inQuote = !inQuote
		case c == sep && !inQuote:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func cutUnescaped(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// unescape removes the backslashes of \, \= and \space.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == ',' || s[i+1] == '=' || s[i+1] == ' ' || s[i+1] == '\\') {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
