package configs

import (
	"path"
	"slices"
	"strings"
	"time"
)

// Metrics configures the collectors: what they read and how often. They
// run when Graphite has an address or Print is set.
type Metrics struct {
	// Interval is the time between collections; samples are stamped with
	// multiples of it.
	Interval Duration `toml:"interval"`
	// Print writes every line that would be sent to Graphite to steward's
	// stdout (the demo shows them this way).
	Print bool `toml:"print"`
	// Prometheus serves the latest round at /metrics on the HTTP endpoint,
	// in the Prometheus text format.
	Prometheus bool `toml:"prometheus"`
	// Collectors lists the collectors that run.
	Collectors []string `toml:"collectors"`
	// ExcludeInterfaces are shell globs of network interfaces not reported.
	ExcludeInterfaces []string `toml:"exclude_interfaces"`
	// Root is the filesystem root /proc and /sys/fs/cgroup are read
	// under; "/" in a container, e.g. "/host" for a sidecar that mounts
	// the host's.
	Root string `toml:"root"`

	// The app's own metrics (configs/appmetrics.go).
	StatsD StatsD `toml:"statsd"`
	Relay  Relay  `toml:"relay"`
	Scrape Scrape `toml:"scrape"`
}

// Metrics defaults and the collectors known.
const (
	DefaultMetricsInterval = 10 * time.Second
	MinMetricsInterval     = time.Second
)

// MetricsCollectors names every collector, in the order they run.
var MetricsCollectors = []string{"cgroup", "netstat", "programs", "steward"}

func (m *Metrics) setDefaults() {
	m.Interval = Duration(DefaultMetricsInterval)
	m.Collectors = slices.Clone(MetricsCollectors)
	m.ExcludeInterfaces = []string{"lo"}
	m.Root = "/"
	m.StatsD.setDefaults()
	m.Relay.setDefaults()
	m.Scrape.setDefaults()
}

// MetricsEnabled reports whether metrics are collected at all.
func (c *Config) MetricsEnabled() bool {
	return len(c.Graphite.Addr) > 0 || c.Metrics.Print || c.Metrics.Prometheus
}

func deriveMetrics(cfg *Config) {
	if cfg.Metrics.Root == "" {
		cfg.Metrics.Root = "/"
	}
}

func validateMetrics(d *decoder, cfg *Config) {
	m := &cfg.Metrics
	if m.Interval.D() < MinMetricsInterval {
		d.add("", "metrics.interval", "%s is below the minimum of %s", m.Interval.D(), MinMetricsInterval)
	}
	seen := map[string]bool{}
	for _, c := range m.Collectors {
		if !slices.Contains(MetricsCollectors, c) {
			d.add("", "metrics.collectors", "unknown collector %q (known: cgroup, netstat, programs, steward)", c)
		} else if seen[c] {
			d.add("", "metrics.collectors", "collector %q is listed twice", c)
		}
		seen[c] = true
	}
	for _, g := range m.ExcludeInterfaces {
		if _, err := path.Match(g, ""); err != nil {
			d.add("", "metrics.exclude_interfaces", "bad pattern %q", g)
		}
	}
	if m.Prometheus && strings.EqualFold(cfg.HTTP.Addr, HTTPOff) {
		d.add("", "metrics.prometheus", "/metrics is served on the HTTP endpoint, which http.addr turns off")
	}
}
