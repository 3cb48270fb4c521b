// Package scrape reads a supervised program's Prometheus endpoint (its
// metrics_url) once per collection round, as Telegraf's prometheus input
// does, and emits its series with the labels as tags and program=NAME. A
// scrape is bounded in time, in bytes and in the series it may add. Each
// program's endpoint is its own collector ("scrape:NAME"), so the
// scheduler reports its duration and success and logs when it starts
// failing and when it recovers.
package scrape

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/collectors/ingest"
	"github.com/stewardhq/steward/collectors/metricfmt"
)

// Config of one program's scrape.
type Config struct {
	Program string
	URL     string
	// Timeout bounds one scrape (default 5 s).
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

// Scraper is the collector of one endpoint.
type Scraper struct {
	cfg    Config
	client *http.Client
	stats  *ingest.Stats
	tag    collectors.Tag
}

// New returns the scraper of one program's endpoint.
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
	tag := collectors.Tag{Key: "program", Value: cfg.Program}
	return &Scraper{cfg: cfg, tag: tag, stats: ingest.NewStats("scrape", log, tag),
		// Its own transport: no proxy from the environment for the app's
		// own endpoint, one connection kept for the next round.
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Name implements collectors.Collector.
func (s *Scraper) Name() string { return "scrape:" + s.cfg.Program }

// Collect scrapes the endpoint once.
func (s *Scraper) Collect(ctx context.Context, emit func(collectors.Sample)) error {
	err := s.scrape(ctx, emit)
	s.stats.Emit(emit)
	return err
}

func (s *Scraper) scrape(ctx context.Context, emit func(collectors.Sample)) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL, nil)
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
		return fmt.Errorf("scrape: %s: %s", s.cfg.URL, resp.Status)
	}
	body := &limitedReader{r: resp.Body, left: s.cfg.MaxBytes}
	n := 0
	res, err := metricfmt.Parse(metricfmt.Prometheus, body, s.cfg.Limits, func(smp collectors.Sample) {
		if n >= s.cfg.MaxSeries {
			s.stats.Drop(ingest.ReasonTooManySeries, 1)
			return
		}
		n++
		// program= wins over a label of that name.
		smp.Tags = metricfmt.SortTags(append(append([]collectors.Tag(nil), smp.Tags...), s.tag))
		emit(smp)
	})
	s.stats.Count(res)
	s.stats.Parsed(n)
	if body.over {
		s.stats.Drop(ingest.ReasonTooLarge, 1)
		return fmt.Errorf("scrape: %s: body over %d bytes, the rest ignored", s.cfg.URL, s.cfg.MaxBytes)
	}
	if err != nil {
		return fmt.Errorf("scrape: %s: %w", s.cfg.URL, err)
	}
	return nil
}

// limitedReader ends the body at a number of bytes and remembers whether
// there was more.
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
