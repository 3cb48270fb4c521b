package graphite

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/stewardhq/steward/collectors"
)

// Modes of naming series.
const (
	// ModeTags writes Graphite 1.1 tagged series:
	// container.cpu.usage_seconds_total;app=web;host=h1;version=3074f46
	ModeTags = "tags"
	// ModePath writes dotted paths for carbon before 1.1, from a template.
	ModePath = "path"
)

// DefaultTemplate is the path mode's default layout.
const DefaultTemplate = "{prefix}.{app}.{version}.{host}.{name}"

// part is the role of a string in a plaintext line; each has its own rules.
type part uint8

const (
	partMetric   part = iota // a metric name or prefix in tags mode (dots are levels)
	partTagKey               // a tag's name
	partTagValue             // a tag's value
	partNode                 // one level of a dotted path
)

// maxPart bounds each cleaned part: carbon's line receiver drops the
// connection on a line over 16 KiB (Twisted's LineOnlyReceiver).
const maxPart = 256

// clean makes s valid as part p of a plaintext line — the one place
// Graphite's naming rules live:
//   - no byte outside printable ASCII: carbon splits a line on whitespace,
//     and Graphite recommends ASCII for names and tags;
//   - tag names without ; ! ^ = (carbon's TaggedSeries.validateTagAndValue),
//     and not "name", which Graphite keeps for the series name;
//   - tag values without ; and not starting with ~ (same);
//   - path levels without dots (a dot would add a level) or ; (it would
//     start tags);
//   - a metric name without ; or a leading ~ (carbon strips it to make the
//     name tag);
//   - never empty: carbon refuses empty tags and path levels.
//
// Each offending byte becomes '_'; s is returned as is when it is fine.
func clean(s string, p part) string {
	if s == "" {
		return "_"
	}
	if p == partTagKey && s == "name" {
		return "_name"
	}
	if len(s) > maxPart {
		s = s[:maxPart]
	}
	bad := func(i int) bool {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == ';' {
			return true
		}
		switch p {
		case partTagKey:
			return c == '!' || c == '^' || c == '='
		case partTagValue, partMetric:
			return i == 0 && c == '~'
		case partNode:
			return c == '.'
		}
		return false
	}
	i := 0
	for i < len(s) && !bad(i) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(s); i++ {
		if bad(i) {
			b[i] = '_'
		}
	}
	return string(b)
}

// formatter turns samples into plaintext lines: "<series> <value> <unix
// time>\n".
type formatter struct {
	mode   string
	prefix string // tags mode: cleaned, with its trailing dot

	identity []collectors.Tag // tags mode: app, host, version, cleaned and sorted
	tmpl     []string         // path mode: literals and {placeholders}
	values   map[string]string

	tagCache map[cacheKey]string // cleaned names, tag keys and values
	scratch  []byte
}

func newFormatter(cfg Config) (*formatter, error) {
	f := &formatter{mode: cfg.Mode, tagCache: map[cacheKey]string{}}
	switch cfg.Mode {
	case ModeTags, "":
		f.mode = ModeTags
		if cfg.Prefix != "" {
			f.prefix = clean(strings.Trim(cfg.Prefix, "."), partMetric) + "."
		}
		f.identity = []collectors.Tag{
			{Key: "app", Value: clean(cfg.App, partTagValue)},
			{Key: "host", Value: clean(cfg.Host, partTagValue)},
			{Key: "version", Value: clean(cfg.Version, partTagValue)},
		}
	case ModePath:
		tmpl, err := ParseTemplate(cfg.Template)
		if err != nil {
			return nil, err
		}
		// Literal text and the prefix may have levels of their own; the
		// identity values are one level each, their dots escaped.
		for i, p := range tmpl {
			if !strings.HasPrefix(p, "{") {
				tmpl[i] = cleanLevels(p)
			}
		}
		f.tmpl = tmpl
		f.values = map[string]string{
			"{prefix}":  cleanLevels(cfg.Prefix),
			"{app}":     clean(cfg.App, partNode),
			"{version}": clean(cfg.Version, partNode),
			"{host}":    clean(cfg.Host, partNode),
		}
	default:
		return nil, fmt.Errorf("graphite: unknown mode %q (tags or path)", cfg.Mode)
	}
	return f, nil
}

// ParseTemplate splits a path template into literals and placeholders;
// {name} is required, {prefix}, {app}, {version} and {host} are optional.
func ParseTemplate(t string) ([]string, error) {
	if t == "" {
		t = DefaultTemplate
	}
	var out []string
	rest := t
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			out = append(out, rest)
			break
		}
		if i > 0 {
			out = append(out, rest[:i])
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("graphite: template %q: unclosed {", t)
		}
		ph := rest[i : i+j+1]
		switch ph {
		case "{prefix}", "{app}", "{version}", "{host}", "{name}":
		default:
			return nil, fmt.Errorf("graphite: template %q: unknown placeholder %s (use {prefix}, {app}, {version}, {host}, {name})", t, ph)
		}
		out = append(out, ph)
		rest = rest[i+j+1:]
	}
	if !slices.Contains(out, "{name}") {
		return nil, fmt.Errorf("graphite: template %q has no {name}", t)
	}
	return out, nil
}

type cacheKey struct {
	p part
	s string
}

func (f *formatter) cached(s string, p part) string {
	key := cacheKey{p, s}
	if c, ok := f.tagCache[key]; ok {
		return c
	}
	c := clean(s, p)
	if len(f.tagCache) < 4096 { // bounded: tag values come from a small, fixed set
		f.tagCache[key] = c
	}
	return c
}

// appendLine appends s's line to b; a value that is not a number (NaN,
// ±Inf) has no line.
func (f *formatter) appendLine(b []byte, s collectors.Sample) []byte {
	if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
		return b
	}
	if f.mode == ModeTags {
		b = f.appendTagged(b, s)
	} else {
		b = f.appendPath(b, s)
	}
	b = append(b, ' ')
	b = strconv.AppendFloat(b, s.Value, 'f', -1, 64)
	b = append(b, ' ')
	b = strconv.AppendInt(b, s.Time.Unix(), 10)
	return append(b, '\n')
}

// appendTagged writes name;k=v;... with the identity and the sample's tags
// merged in key order, as carbon would normalise them.
func (f *formatter) appendTagged(b []byte, s collectors.Sample) []byte {
	b = append(b, f.prefix...)
	b = append(b, f.cached(s.Name, partMetric)...)
	id, tags := f.identity, s.Tags
	for len(id) > 0 || len(tags) > 0 {
		var k, v string
		if len(tags) == 0 || (len(id) > 0 && id[0].Key <= tags[0].Key) {
			k, v = id[0].Key, id[0].Value
			if len(tags) > 0 && tags[0].Key == k {
				tags = tags[1:] // identity wins over a sample tag of the same name
			}
			id = id[1:]
		} else {
			k, v = f.cached(tags[0].Key, partTagKey), f.cached(tags[0].Value, partTagValue)
			tags = tags[1:]
		}
		b = append(b, ';')
		b = append(b, k...)
		b = append(b, '=')
		b = append(b, v...)
	}
	return b
}

// appendPath expands the template. The sample's tag values become levels
// just before the last level of its name, so program.cpu_seconds_total
// of program web is program.web.cpu_seconds_total. Empty levels (an empty
// prefix) are dropped.
func (f *formatter) appendPath(b []byte, s collectors.Sample) []byte {
	sc := f.scratch[:0]
	for _, p := range f.tmpl {
		if p != "{name}" {
			if v, ok := f.values[p]; ok {
				sc = append(sc, v...)
			} else {
				sc = append(sc, p...)
			}
			continue
		}
		name := f.cached(s.Name, partMetric)
		last := strings.LastIndexByte(name, '.')
		sc = append(sc, name[:last+1]...)
		for _, t := range s.Tags {
			sc = append(sc, f.cached(t.Value, partNode)...)
			sc = append(sc, '.')
		}
		sc = append(sc, name[last+1:]...)
	}
	f.scratch = sc
	// Copy, dropping empty levels.
	start, level := len(b), false
	for _, c := range sc {
		if c != '.' {
			b, level = append(b, c), true
		} else if level {
			b, level = append(b, '.'), false
		}
	}
	if len(b) > start && b[len(b)-1] == '.' {
		b = b[:len(b)-1]
	}
	return b
}

// cleanLevels cleans each level of a dotted string, keeping its dots.
func cleanLevels(s string) string {
	levels := strings.Split(s, ".")
	for i, l := range levels {
		if l != "" {
			levels[i] = clean(l, partNode)
		}
	}
	return strings.Join(levels, ".")
}
