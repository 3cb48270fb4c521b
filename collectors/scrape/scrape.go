// Package scrape reads the Prometheus endpoints of the supervised programs
// (each program's metrics_url) once per collection round, as Telegraf's
// prometheus input does, and emits their series with the labels as tags and
// program=NAME. A scrape is bounded in time and in bytes, and in the
// series it may add.
package scrape

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/collectors/ingest"
	"github.com/stewardhq/steward/collectors/metricfmt"
)

// Target is one program's endpoint.
type Target struct {
	Program string
	URL     string
}

// Config of the scraper.
type Config struct {
	Targets []Target
	// Timeout bounds one scrape (default 5 s, and never past the round).
	Timeout time.Duration
	// MaxBytes bounds a response body; the rest is not read (too_large).
	MaxBytes int64
	// MaxSeries bounds the series of one scrape; more are dropped
	// (too_many_series).
	MaxSeries int
	Limits    metricfmt.Limits
}

// Defaults.
const (
	DefaultTimeout   = 5 * time.Second
	DefaultMaxBytes  = 4 << 20
	DefaultMaxSeries = 10000
)

// Scraper is the collector of every target.
type Scraper struct {
	cfg    Config
	client *http.Client
	stats  *ingest.Stats
	log    *slog.Logger
	state  []targetState
}

type targetState struct {
	tags     []collectors.Tag
	ok       bool
	failing  bool
	duration time.Duration
	ran      bool
}

// New returns a scraper of cfg.Targets.
func New(cfg Config, log *slog.Logger) *Scraper {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxSeries <= 0 {
		cfg.MaxSeries = DefaultMaxSeries
	}
	s := &Scraper{cfg: cfg, log: log, stats: ingest.NewStats("scrape", log),
		// Its own transport: no proxy from the environment for a loopback
		// endpoint, and connections kept for the next round.
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: false},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		state: make([]targetState, len(cfg.Targets))}
	for i, t := range cfg.Targets {
		s.state[i].tags = []collectors.Tag{{Key: "program", Value: t.Program}}
	}
	return s
}

// Name implements collectors.Collector.
func (s *Scraper) Name() string { return "scrape" }

// Collect scrapes every target once. A target that fails is logged when
// it starts failing and when it recovers, not every round.
func (s *Scraper) Collect(ctx context.Context, emit func(collectors.Sample)) error {
	var errs []error
	for i, t := range s.cfg.Targets {
		st := &s.state[i]
		start := time.Now()
		err := s.scrape(ctx, t, st.tags, emit)
		st.duration, st.ok, st.ran = time.Since(start), err == nil, true
		if err != nil && !st.failing {
			s.log.Warn("scrape: failing", "program", t.Program, "url", t.URL, "err", err)
		} else if err == nil && st.failing {
			s.log.Info("scrape: recovered", "program", t.Program)
		}
		st.failing = err != nil
		if err != nil {
			errs = append(errs, err)
		}
	}
	s.stats.Emit(emit)
	for _, st := range s.state {
		if !st.ran {
			continue
		}
		ok := 0.0
		if st.ok {
			ok = 1
		}
		emit(collectors.Sample{Name: "steward.scrape.success", Value: ok, Kind: collectors.Gauge, Tags: st.tags})
		emit(collectors.Sample{Name: "steward.scrape.duration_seconds", Value: st.duration.Seconds(), Kind: collectors.Gauge, Tags: st.tags})
	}
	return errors.Join(errs...)
}

func (s *Scraper) scrape(ctx context.Context, t Target, tags []collectors.Tag, emit func(collectors.Sample)) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return fmt.Errorf("scrape: %w", err)
	}
	// The text format only: steward parses no protobuf.
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("scrape: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("scrape: %s: %s", t.URL, resp.Status)
	}
	body := &limitedReader{r: resp.Body, left: s.cfg.MaxBytes}
	n := 0
	res, err := metricfmt.Parse(metricfmt.Prometheus, body, s.cfg.Limits, func(smp collectors.Sample) {
		if n >= s.cfg.MaxSeries {
			s.stats.Drop(ingest.ReasonTooManySeries, 1)
			return
		}
		n++
		smp.Tags = withProgram(smp.Tags, tags[0])
		emit(smp)
	})
	s.stats.Received(res.Lines)
	s.stats.Parsed(n)
	for reason, k := range res.Dropped {
		s.stats.Drop(reason, k)
	}
	if body.over {
		s.stats.Drop(ingest.ReasonTooLarge, 1)
		return fmt.Errorf("scrape: %s: body over %d bytes, the rest ignored", t.URL, s.cfg.MaxBytes)
	}
	if err != nil {
		return fmt.Errorf("scrape: %s: %w", t.URL, err)
	}
	return nil
}

// withProgram adds program= to sorted tags; the program's own label of
// that name gives way to it.
func withProgram(tags []collectors.Tag, p collectors.Tag) []collectors.Tag {
	out := make([]collectors.Tag, 0, len(tags)+1)
	added := false
	for _, t := range tags {
		if t.Key == p.Key {
			continue
		}
		if !added && t.Key > p.Key {
			out = append(out, p)
			added = true
		}
		out = append(out, t)
	}
	if !added {
		out = append(out, p)
	}
	return out
}

// limitedReader ends the body at a number of bytes and remembers that it
// did.
type limitedReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.over = true
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}
