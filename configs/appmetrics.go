package configs

import (
	"net"
	"net/url"
	"strings"
	"time"
)

// The app's own metrics: a StatsD server, a Graphite plaintext relay and
// the scrape of the programs' Prometheus endpoints (programs.NAME.
// metrics_url), all shipped with steward's series (README: App metrics).

// StatsD is the [metrics.statsd] table.
type StatsD struct {
	Enabled bool   `toml:"enabled"`
	Addr    string `toml:"addr"` // loopback host:port, UDP and TCP
	UDP     bool   `toml:"udp"`
	TCP     bool   `toml:"tcp"`
	// Percentiles of timings (90 and 99.9 give t.p90 and t.p99_9).
	Percentiles     []float64 `toml:"percentiles"`
	PercentileLimit int       `toml:"percentile_limit"`
	MaxSeries       int       `toml:"max_series"`
	MaxConnections  int       `toml:"max_connections"`
	MaxLineBytes    int       `toml:"max_line_bytes"`
	DeleteCounters  bool      `toml:"delete_counters"`
	DeleteGauges    bool      `toml:"delete_gauges"`
	DeleteTimings   bool      `toml:"delete_timings"`
	DeleteSets      bool      `toml:"delete_sets"`
}

// Relay is the [metrics.relay] table: Graphite plaintext in.
type Relay struct {
	Enabled        bool   `toml:"enabled"`
	Addr           string `toml:"addr"` // loopback host:port, TCP and UDP
	MaxSeries      int    `toml:"max_series"`
	MaxConnections int    `toml:"max_connections"`
	MaxLineBytes   int    `toml:"max_line_bytes"`
}

// Scrape is the [metrics.scrape] table: how the programs' metrics_url are
// read.
type Scrape struct {
	Timeout   Duration `toml:"timeout"`
	MaxBytes  int64    `toml:"max_bytes"`
	MaxSeries int      `toml:"max_series"`
}

// Defaults of the app's metrics.
const (
	DefaultStatsDAddr       = "127.0.0.1:8125"
	DefaultRelayAddr        = "127.0.0.1:2003"
	DefaultAppMaxSeries     = 10000
	DefaultAppMaxConns      = 64
	DefaultAppMaxLineBytes  = 4096
	DefaultPercentileLimit  = 1000
	DefaultScrapeTimeout    = 5 * time.Second
	DefaultScrapeMaxBytes   = 4 << 20
	DefaultCheckMetricLimit = 10000
)

func (s *StatsD) setDefaults() {
	s.Addr = DefaultStatsDAddr
	s.UDP, s.TCP = true, true
	s.Percentiles = []float64{90}
	s.PercentileLimit = DefaultPercentileLimit
	s.MaxSeries = DefaultAppMaxSeries
	s.MaxConnections = DefaultAppMaxConns
	s.MaxLineBytes = DefaultAppMaxLineBytes
	s.DeleteTimings, s.DeleteSets = true, true
}

func (r *Relay) setDefaults() {
	r.Addr = DefaultRelayAddr
	r.MaxSeries = DefaultAppMaxSeries
	r.MaxConnections = DefaultAppMaxConns
	r.MaxLineBytes = DefaultAppMaxLineBytes
}

func (s *Scrape) setDefaults() {
	s.Timeout = Duration(DefaultScrapeTimeout)
	s.MaxBytes = DefaultScrapeMaxBytes
	s.MaxSeries = DefaultAppMaxSeries
}

// MetricFormats are the check output formats (Sensu Go's
// output_metric_format values).
var MetricFormats = []string{"graphite_plaintext", "influxdb_line", "nagios_perfdata", "prometheus_text"}

func validateAppMetrics(d *decoder, cfg *Config) {
	m := &cfg.Metrics
	noDest := "the app's metrics go where steward's go: set graphite.addr, metrics.print or metrics.prometheus"
	if s := &m.StatsD; s.Enabled {
		if !cfg.MetricsEnabled() {
			d.add("", "metrics.statsd.enabled", "%s", noDest)
		}
		d.loopback("metrics.statsd.addr", s.Addr)
		if !s.UDP && !s.TCP {
			d.add("", "metrics.statsd.udp", "udp and tcp are both off")
		}
		for _, p := range s.Percentiles {
			if !(p > 0 && p <= 100) {
				d.add("", "metrics.statsd.percentiles", "%v is not in (0, 100]", p)
			}
		}
		d.positive("metrics.statsd.percentile_limit", s.PercentileLimit)
		d.positive("metrics.statsd.max_series", s.MaxSeries)
		d.positive("metrics.statsd.max_connections", s.MaxConnections)
		d.lineLimit("metrics.statsd.max_line_bytes", s.MaxLineBytes)
	}
	if r := &m.Relay; r.Enabled {
		if !cfg.MetricsEnabled() {
			d.add("", "metrics.relay.enabled", "%s", noDest)
		}
		d.loopback("metrics.relay.addr", r.Addr)
		d.positive("metrics.relay.max_series", r.MaxSeries)
		d.positive("metrics.relay.max_connections", r.MaxConnections)
		d.lineLimit("metrics.relay.max_line_bytes", r.MaxLineBytes)
		if m.StatsD.Enabled && r.Addr == m.StatsD.Addr {
			d.add("", "metrics.relay.addr", "%s is metrics.statsd.addr too", r.Addr)
		}
	}
	if m.Scrape.Timeout <= 0 {
		d.add("", "metrics.scrape.timeout", "must be positive")
	}
	if m.Scrape.MaxBytes < 1024 {
		d.add("", "metrics.scrape.max_bytes", "%d is below 1024", m.Scrape.MaxBytes)
	}
	d.positive("metrics.scrape.max_series", m.Scrape.MaxSeries)
	for _, name := range cfg.Order {
		p := cfg.Programs[name]
		if p.MetricsURL == "" {
			continue
		}
		key := join(join("programs", name), "metrics_url")
		u, err := url.Parse(p.MetricsURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.add("", key, "%q is not an http:// or https:// URL", p.MetricsURL)
		} else if !cfg.MetricsEnabled() {
			d.add("", key, "%s", noDest)
		}
	}
	for name, c := range cfg.Checks {
		key := join("checks", name)
		if c.OutputMetricFormat == "" {
			if len(c.OutputMetricTags) > 0 {
				d.add("", key+".output_metric_tags", "needs output_metric_format")
			}
			continue
		}
		d.oneOf(key+".output_metric_format", c.OutputMetricFormat, MetricFormats...)
		if len(c.Command) == 0 && c.HTTP == "" {
			d.add("", key+".output_metric_format", "only command and http checks have an output to parse")
		}
		if !cfg.MetricsEnabled() {
			d.add("", key+".output_metric_format", "%s", noDest)
		}
		for k, v := range c.OutputMetricTags {
			if k == "" || v == "" || strings.ContainsAny(k, ";!^= \t") || strings.ContainsAny(v, "; \t") {
				d.add("", key+".output_metric_tags", "tag %q = %q: Graphite tags need a name without ;!^= and a value without ;", k, v)
			}
		}
	}
}

// loopback requires host:port on a loopback address: these ports take
// whatever is sent to them, so only the container's own programs may.
func (d *decoder) loopback(key, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		d.add("", key, "%q is not host:port", addr)
		return
	}
	if host == "localhost" {
		return
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		d.add("", key, "%q: listen on a loopback address (127.0.0.1, ::1): only the container's programs may send", addr)
	}
}

func (d *decoder) positive(key string, n int) {
	if n < 1 {
		d.add("", key, "must be at least 1")
	}
}

func (d *decoder) lineLimit(key string, n int) {
	if n < 64 || n > 1<<20 {
		d.add("", key, "%d is outside 64 to 1048576", n)
	}
}
