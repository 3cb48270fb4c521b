package metricfmt

import (
	"strconv"
	"strings"

	"github.com/stewardhq/steward/collectors"
)

// parseNagiosLine reads the performance data of a Nagios plugin's output:
// whatever follows a '|' on a line is a space-separated list of
// label=value[UOM][;warn;crit;min;max], the label single-quoted when it has
// spaces ('used space'=80%;90;95). As Sensu Go's nagios_perfdata
// transformer, each label becomes a series with the value stripped of its
// unit; thresholds are not metrics. Text without a '|' is the plugin's
// message, not a problem.
func parseNagiosLine(line string, lim Limits, emit func(collectors.Sample)) error {
	_, perf, ok := strings.Cut(line, "|")
	if !ok {
		return nil
	}
	var bad error
	rest := strings.TrimSpace(perf)
	for rest != "" {
		var item string
		item, rest = nextPerfItem(rest)
		if item == "" {
			continue
		}
		if err := parsePerfItem(item, emit); err != nil && bad == nil {
			bad = err
		}
	}
	return bad
}

// nextPerfItem cuts the first item off s, a quoted label keeping its spaces.
func nextPerfItem(s string) (item, rest string) {
	s = strings.TrimLeft(s, " \t")
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'':
			inQuote = !inQuote
		case (c == ' ' || c == '\t') && !inQuote:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func parsePerfItem(item string, emit func(collectors.Sample)) error {
	eq := strings.LastIndexByte(item, '=')
	if eq <= 0 {
		return malformed("perfdata %q is not label=value", item)
	}
	label := item[:eq]
	if len(label) >= 2 && label[0] == '\'' && label[len(label)-1] == '\'' {
		label = strings.ReplaceAll(label[1:len(label)-1], "''", "'")
	}
	label = strings.TrimSpace(label)
	if label == "" {
		return malformed("perfdata %q has an empty label", item)
	}
	value, _, _ := strings.Cut(item[eq+1:], ";")
	if value == "U" {
		return nil // "undetermined": the plugin could not measure it
	}
	num := strings.TrimRightFunc(value, func(r rune) bool {
		return r == '%' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
	})
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return malformed("perfdata %q: value %q is not a number", item, value)
	}
	emit(collectors.Sample{Name: label, Value: v, Kind: collectors.Gauge})
	return nil
}
