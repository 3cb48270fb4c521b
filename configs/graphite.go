package configs

import (
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
)

// Graphite configures where metrics go: carbon's plaintext protocol.
type Graphite struct {
	// Addr lists carbon line receivers, host:port.
	Addr HostPorts `toml:"addr"`
	// Protocol is tcp or udp.
	Protocol string `toml:"protocol"`
	// Failover sends to the first server that works instead of to all.
	Failover bool `toml:"failover"`
	// Mode is "tags" (Graphite 1.1 tagged series) or "path" (dotted paths
	// from Template, for carbon before 1.1).
	Mode     string `toml:"mode"`
	Prefix   string `toml:"prefix"`
	Template string `toml:"template"`
	// Buffer is how much of the samples each server's backlog keeps
	// while it cannot be reached, as time.
	Buffer Duration `toml:"buffer"`
	// Timeout bounds one connect and one write.
	Timeout Duration `toml:"timeout"`
}

// Graphite defaults.
const (
	DefaultGraphiteTemplate = "{prefix}.{app}.{version}.{host}.{name}"
	DefaultGraphiteBuffer   = 5 * time.Minute
	DefaultGraphiteTimeout  = 5 * time.Second
)

func (g *Graphite) setDefaults() {
	g.Protocol = "tcp"
	g.Mode = "tags"
	g.Template = DefaultGraphiteTemplate
	g.Buffer = Duration(DefaultGraphiteBuffer)
	g.Timeout = Duration(DefaultGraphiteTimeout)
}

// BufferRounds is how many collection rounds the buffer holds.
func (g *Graphite) BufferRounds(interval time.Duration) int {
	if interval <= 0 {
		return 1
	}
	return max(1, int(math.Ceil(float64(g.Buffer)/float64(interval))))
}

// HostPorts is a list of host:port addresses, written as a TOML array or
// as one comma-separated string (as environment variables are).
type HostPorts []string

func (h *HostPorts) decodeValue(v any) error {
	var list []string
	switch x := v.(type) {
	case string:
		for part := range strings.SplitSeq(x, ",") {
			if part = strings.TrimSpace(part); part != "" {
				list = append(list, part)
			}
		}
	case []any:
		for _, item := range x {
			s, ok := item.(string)
			if !ok {
				return fmt.Errorf("expected \"host:port\" strings, got %s", typeName(item))
			}
			list = append(list, s)
		}
	default:
		return fmt.Errorf("expected \"host:port\" or a list of them, got %s", typeName(v))
	}
	for _, a := range list {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return fmt.Errorf("bad address %q (want host:port)", a)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("bad port in %q", a)
		}
	}
	*h = list
	return nil
}

func validateGraphite(d *decoder, cfg *Config) {
	g := &cfg.Graphite
	d.oneOf("graphite.protocol", g.Protocol, "tcp", "udp")
	d.oneOf("graphite.mode", g.Mode, "tags", "path")
	if strings.ContainsAny(g.Prefix, " \t;~=") {
		d.add("", "graphite.prefix", "%q: use letters, digits, '.', '_' and '-'", g.Prefix)
	}
	if err := checkTemplate(g.Template); err != nil {
		d.add("", "graphite.template", "%v", err)
	}
	if g.Timeout <= 0 {
		d.add("", "graphite.timeout", "must be positive")
	}
}

// checkTemplate mirrors the shipper's template parser so that a bad
// template is a config error with its line.
func checkTemplate(t string) error {
	if !strings.Contains(t, "{name}") {
		return fmt.Errorf("%q has no {name}", t)
	}
	rest := t
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			return nil
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return fmt.Errorf("%q: unclosed {", t)
		}
		switch ph := rest[i : i+j+1]; ph {
		case "{prefix}", "{app}", "{version}", "{host}", "{name}":
		default:
			return fmt.Errorf("%q: unknown placeholder %s (use {prefix}, {app}, {version}, {host}, {name})", t, ph)
		}
		rest = rest[i+j+1:]
	}
}
