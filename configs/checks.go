package configs

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Check is one local health check, run by steward on a schedule. Exactly
// one of TCP, HTTP, Command and File is set, as for readiness probes.
type Check struct {
	Name string `toml:"-"`

	TCP     string   `toml:"tcp"`     // host:port accepting connections
	HTTP    string   `toml:"http"`    // URL answering with ExpectStatus
	Command []string `toml:"command"` // Nagios plugin: exit 0 OK, 1 WARNING, 2 CRITICAL
	File    string   `toml:"file"`    // exists

	Method       string      `toml:"method"`        // HTTP method, GET
	ExpectStatus StatusRange `toml:"expect_status"` // HTTP status range, 200-299
	ExpectBody   string      `toml:"expect_body"`   // regexp the HTTP body must match

	Interval Duration `toml:"interval"`
	Timeout  Duration `toml:"timeout"`
	// Splay delays each run by a random duration up to Splay, so checks of
	// many containers do not hit a shared dependency in step.
	Splay Duration `toml:"splay"`
	// Health marks the check as part of the container's health.
	Health bool `toml:"health"`
	// Handlers are the Sensu handlers of the check's events.
	Handlers []string `toml:"handlers"`
	// OutputMetricFormat makes the check's output metrics, shipped with
	// steward's (Sensu Go's output_metric_format: graphite_plaintext,
	// influxdb_line, nagios_perfdata, prometheus_text); OutputMetricTags
	// are added to each of them.
	OutputMetricFormat string            `toml:"output_metric_format"`
	OutputMetricTags   map[string]string `toml:"output_metric_tags"`
}

// StatusRange is an inclusive range of HTTP status codes, written as a code
// (200) or "low-high" ("200-399").
type StatusRange struct {
	Min, Max int
}

func (r *StatusRange) decodeValue(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 100 || x > 599 {
			return fmt.Errorf("HTTP status %d is outside 100-599", x)
		}
		*r = StatusRange{int(x), int(x)}
		return nil
	case string:
		lo, hi, isRange := strings.Cut(strings.TrimSpace(x), "-")
		if !isRange {
			hi = lo
		}
		a, errA := strconv.Atoi(strings.TrimSpace(lo))
		b, errB := strconv.Atoi(strings.TrimSpace(hi))
		if errA != nil || errB != nil || a < 100 || b > 599 || a > b {
			return fmt.Errorf("bad HTTP status range %q (a code such as 200, or \"200-399\")", x)
		}
		*r = StatusRange{a, b}
		return nil
	default:
		return fmt.Errorf("expected an HTTP status or \"low-high\", got %s", typeName(v))
	}
}

// Defaults of checks.
const (
	DefaultCheckInterval = 10 * time.Second
	DefaultCheckTimeout  = 5 * time.Second
)

func (c *Check) setDefaults() {
	c.Interval = Duration(DefaultCheckInterval)
	c.Timeout = Duration(DefaultCheckTimeout)
}

// Probe returns the check's target as a probe, the type readiness probes
// use, so both are built and validated by the same code.
func (c *Check) Probe() *Probe {
	return &Probe{TCP: c.TCP, HTTP: c.HTTP, Command: c.Command, File: c.File,
		Method: c.Method, ExpectStatus: c.ExpectStatus, ExpectBody: c.ExpectBody,
		Interval: c.Interval, Timeout: c.Timeout}
}

// ProgramCheckPrefix starts the names of the implicit checks steward keeps
// for its programs ("program-web"); local checks cannot use it.
const ProgramCheckPrefix = "program-"

func deriveChecks(cfg *Config) {
	for name, c := range cfg.Checks {
		c.Name = name
	}
}

func validateChecks(d *decoder, cfg *Config) {
	for name, c := range cfg.Checks {
		key := join("checks", name)
		if !validCheckName(name) {
			d.add("", key, "check names use letters, digits, '_', '.', '-' and ':'")
		}
		if strings.HasPrefix(name, ProgramCheckPrefix) {
			d.add("", key, "names starting with %q are steward's own program checks", ProgramCheckPrefix)
		}
		d.validateProbe(key, c.Probe())
		if c.Splay >= c.Interval && c.Splay > 0 {
			d.add("", key+".splay", "%s must be shorter than the interval %s", c.Splay.D(), c.Interval.D())
		}
		for _, h := range c.Handlers {
			if !validCheckName(h) {
				d.add("", key+".handlers", "bad handler name %q", h)
			}
		}
	}
}

// validCheckName follows Sensu's name rule (core/v2 NameRegex:
// letters, digits, '_', '.', '-', ':'), so a check's results are accepted by
// the backend as they are.
func validCheckName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '_' || r == '.' || r == '-' || r == ':':
		default:
			return false
		}
	}
	return true
}

// validateHTTPExtras checks the HTTP-only settings of a probe or check.
func (d *decoder) validateHTTPExtras(key string, pr *Probe) {
	if pr.HTTP == "" {
		if pr.Method != "" || pr.ExpectBody != "" || pr.ExpectStatus != (StatusRange{}) {
			d.add("", key, "method, expect_status and expect_body apply to http only")
		}
		return
	}
	if pr.Method != "" && strings.ToUpper(pr.Method) != pr.Method {
		d.add("", key+".method", "%q: write the method in capitals", pr.Method)
	}
	if pr.ExpectBody != "" {
		if _, err := regexp.Compile(pr.ExpectBody); err != nil {
			d.add("", key+".expect_body", "bad regexp: %v", err)
		}
	}
}
