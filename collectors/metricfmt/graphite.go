package metricfmt

import (
	"strconv"
	"strings"

	"github.com/stewardhq/steward/collectors"
)

// parseGraphiteLine reads carbon's plaintext protocol: "name value
// [timestamp]", the name optionally with Graphite 1.1 tags
// ("name;k=v;k2=v2"). A missing or negative timestamp means now, as carbon
// takes it.
func parseGraphiteLine(line string, lim Limits, emit func(collectors.Sample)) error {
	f := strings.Fields(line)
	if len(f) == 0 {
		return nil
	}
	if len(f) < 2 || len(f) > 3 {
		return malformed("want \"name value [timestamp]\", got %d fields", len(f))
	}
	name, tags, err := ParseGraphiteName(f[0])
	if err != nil {
		return err
	}
	v, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		return malformed("value %q is not a number", f[1])
	}
	s := collectors.Sample{Name: name, Value: v, Kind: collectors.Gauge, Tags: tags}
	if len(f) == 3 {
		ts, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			return malformed("timestamp %q is not a number", f[2])
		}
		s.Time = unixTime(int64(ts))
	}
	emit(s)
	return nil
}

// ParseGraphiteName splits a Graphite 1.1 tagged name, "name;k=v;k2=v2",
// into its name and tags (sorted).
func ParseGraphiteName(s string) (string, []collectors.Tag, error) {
	name, rest, ok := strings.Cut(s, ";")
	if name == "" {
		return "", nil, malformed("empty name")
	}
	if !ok {
		return name, nil, nil
	}
	var tags []collectors.Tag
	for part := range strings.SplitSeq(rest, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" || v == "" {
			return "", nil, malformed("tag %q is not k=v", part)
		}
		tags = append(tags, collectors.Tag{Key: k, Value: v})
	}
	return name, SortTags(tags), nil
}
