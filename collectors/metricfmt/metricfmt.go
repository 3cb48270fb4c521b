// Package metricfmt parses the metric formats apps and checks write —
// Graphite plaintext, Prometheus text exposition, Nagios perfdata and
// InfluxDB line protocol, the four output_metric_format values of Sensu Go —
// into samples. Every parser reads an io.Reader line by line with a bounded
// line length, emits what it understood and counts what it did not, so a
// malformed or hostile input costs bounded memory and loses only its own bad
// lines.
package metricfmt

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/collectors"
)

// Formats, named as Sensu Go's output_metric_format.
const (
	Graphite   = "graphite_plaintext"
	Prometheus = "prometheus_text"
	Nagios     = "nagios_perfdata"
	Influx     = "influxdb_line"
)

// Formats lists every format known.
var Formats = []string{Graphite, Influx, Nagios, Prometheus}

// Limits bound what one input may cost.
type Limits struct {
	// MaxLineBytes: longer lines are dropped (reason too_long).
	MaxLineBytes int
	// MaxNameBytes: a sample whose name, tag key or tag value is longer is
	// dropped (too_long); Graphite paths and tags are meant to be short.
	MaxNameBytes int
	// MaxTags: a sample with more tags is dropped (too_many_tags).
	MaxTags int
}

// Default limits.
const (
	DefaultMaxLineBytes = 4096
	DefaultMaxNameBytes = 256
	DefaultMaxTags      = 32
)

// WithDefaults fills the limits left at zero.
func (l Limits) WithDefaults() Limits {
	if l.MaxLineBytes <= 0 {
		l.MaxLineBytes = DefaultMaxLineBytes
	}
	if l.MaxNameBytes <= 0 {
		l.MaxNameBytes = DefaultMaxNameBytes
	}
	if l.MaxTags <= 0 {
		l.MaxTags = DefaultMaxTags
	}
	return l
}

// Reasons a line or sample is dropped; they tag the drop counters.
const (
	ReasonMalformed   = "malformed"
	ReasonTooLong     = "too_long"
	ReasonTooManyTags = "too_many_tags"
)

// Result counts what a parse did.
type Result struct {
	Lines   int            // lines read, comments and blank lines included
	Samples int            // samples emitted
	Dropped map[string]int // by reason
	// First is the first problem, for a log line.
	First error
}

func (r *Result) drop(reason string, line int, err error) {
	if r.Dropped == nil {
		r.Dropped = map[string]int{}
	}
	r.Dropped[reason]++
	if r.First == nil {
		r.First = fmt.Errorf("line %d: %s: %w", line, reason, err)
	}
}

// DroppedTotal is the sum of the drops.
func (r *Result) DroppedTotal() int {
	n := 0
	for _, v := range r.Dropped {
		n += v
	}
	return n
}

// lineError is a parse error with its drop reason.
type lineError struct {
	reason string
	err    error
}

func (e *lineError) Error() string { return e.reason + ": " + e.err.Error() }

func malformed(format string, args ...any) error {
	return &lineError{ReasonMalformed, fmt.Errorf(format, args...)}
}

// Parse reads r in format and calls emit for every sample. A sample whose
// line has no time of its own has a zero Time: the collection round's tick
// stamps it. The error is only for an unknown format or a failing reader;
// bad lines are counted in the Result.
func Parse(format string, r io.Reader, lim Limits, emit func(collectors.Sample)) (Result, error) {
	p, err := parserOf(format)
	if err != nil {
		return Result{}, err
	}
	return scan(r, lim.WithDefaults(), p, emit)
}

func parserOf(format string) (lineParser, error) {
	switch format {
	case Graphite:
		return parseGraphiteLine, nil
	case Influx:
		return parseInfluxLine, nil
	case Nagios:
		return parseNagiosLine, nil
	case Prometheus:
		return (&promParser{}).parseLine, nil
	}
	return nil, fmt.Errorf("metricfmt: unknown format %q (known: %s)", format, strings.Join(Formats, ", "))
}

// lineParser parses one line (without its newline) and emits its samples.
type lineParser func(line string, lim Limits, emit func(collectors.Sample)) error

func scan(r io.Reader, lim Limits, parse lineParser, emit func(collectors.Sample)) (Result, error) {
	var res Result
	br := bufio.NewReaderSize(r, min(lim.MaxLineBytes+1, 64<<10))
	count := func(s collectors.Sample) {
		if err := checkSample(s, lim); err != nil {
			var le *lineError
			errors.As(err, &le)
			res.drop(le.reason, res.Lines, le.err)
			return
		}
		res.Samples++
		emit(s)
	}
	for {
		line, tooLong, err := readLine(br, lim.MaxLineBytes)
		if len(line) > 0 || tooLong || err == nil {
			res.Lines++
			if tooLong {
				res.drop(ReasonTooLong, res.Lines, fmt.Errorf("longer than %d bytes", lim.MaxLineBytes))
			} else if perr := parse(line, lim, count); perr != nil {
				var le *lineError
				if !errors.As(perr, &le) {
					le = &lineError{ReasonMalformed, perr}
				}
				res.drop(le.reason, res.Lines, le.err)
			}
		}
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("metricfmt: %w", err)
		}
	}
}

// readLine returns the next line without its line ending. A line longer
// than max is skipped to its end and reported, so it never costs more than
// the reader's buffer.
func readLine(br *bufio.Reader, max int) (line string, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > max+1 { // +1: the newline
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if tooLong {
			return "", true, err
		}
		s := string(buf)
		s = strings.TrimSuffix(s, "\n")
		s = strings.TrimSuffix(s, "\r")
		if len(s) > max {
			return "", true, err
		}
		return s, false, err
	}
}

// checkSample applies the limits on names and tags and sorts the tags, as
// collectors.Sample requires.
func checkSample(s collectors.Sample, lim Limits) error {
	if s.Name == "" {
		return malformed("empty name")
	}
	if len(s.Name) > lim.MaxNameBytes {
		return &lineError{ReasonTooLong, fmt.Errorf("name longer than %d bytes", lim.MaxNameBytes)}
	}
	if len(s.Tags) > lim.MaxTags {
		return &lineError{ReasonTooManyTags, fmt.Errorf("%d tags, more than %d", len(s.Tags), lim.MaxTags)}
	}
	for _, t := range s.Tags {
		if len(t.Key) > lim.MaxNameBytes || len(t.Value) > lim.MaxNameBytes {
			return &lineError{ReasonTooLong, fmt.Errorf("tag longer than %d bytes", lim.MaxNameBytes)}
		}
		if t.Key == "" || t.Value == "" {
			return malformed("empty tag")
		}
	}
	return nil
}

// SortTags sorts tags by key, keeping the last of equal keys, as carbon
// does with a series' tags.
func SortTags(tags []collectors.Tag) []collectors.Tag {
	slices.SortStableFunc(tags, func(a, b collectors.Tag) int { return strings.Compare(a.Key, b.Key) })
	out := tags[:0]
	for i, t := range tags {
		if i+1 < len(tags) && tags[i+1].Key == t.Key {
			continue
		}
		out = append(out, t)
	}
	return out
}

// unixTime turns a timestamp of unknown unit into a time: seconds,
// milliseconds, microseconds or nanoseconds, told apart by magnitude (a
// time in seconds is below 1e11 until the year 5138).
func unixTime(v int64) time.Time {
	switch {
	case v <= 0:
		return time.Time{}
	case v < 1e11:
		return time.Unix(v, 0)
	case v < 1e14:
		return time.UnixMilli(v)
	case v < 1e17:
		return time.UnixMicro(v)
	default:
		return time.Unix(0, v)
	}
}

// ParseLine parses one line (without its newline) of a format whose lines
// stand alone (all but prometheus_text, whose TYPE lines matter to the
// lines after them), as a listener receives them. A bad line returns its
// drop reason and what is wrong; its samples are not emitted.
func ParseLine(format, line string, lim Limits, emit func(collectors.Sample)) (reason string, err error) {
	if format == Prometheus {
		return ReasonMalformed, fmt.Errorf("metricfmt: %q is not parsed line by line", format)
	}
	p, err := parserOf(format)
	if err != nil {
		return ReasonMalformed, err
	}
	lim = lim.WithDefaults()
	if len(line) > lim.MaxLineBytes {
		return ReasonTooLong, fmt.Errorf("longer than %d bytes", lim.MaxLineBytes)
	}
	var out [8]collectors.Sample
	ok := out[:0]
	var bad *lineError
	perr := p(line, lim, func(s collectors.Sample) {
		if err := checkSample(s, lim); err != nil {
			if bad == nil {
				errors.As(err, &bad)
			}
			return
		}
		ok = append(ok, s)
	})
	if perr != nil && bad == nil {
		if !errors.As(perr, &bad) {
			bad = &lineError{ReasonMalformed, perr}
		}
	}
	if bad != nil {
		return bad.reason, bad.err
	}
	for _, s := range ok {
		emit(s)
	}
	return "", nil
}
