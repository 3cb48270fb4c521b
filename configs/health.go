package configs

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"
)

// Health is the [health] section: how the container's health is judged.
type Health struct {
	// GracePeriod after start during which failing health checks report
	// "starting" rather than unhealthy (Docker's start period).
	GracePeriod Duration `toml:"grace_period"`
	// ProgramInterval is how often the implicit program checks are
	// reported again when nothing changed.
	ProgramInterval Duration `toml:"program_interval"`
}

// HTTP is the [http] section: the local HTTP endpoint (/healthz, /readyz).
type HTTP struct {
	// Addr is host:port to listen on, or "off". Set explicitly, a failure
	// to listen stops steward; the default only logs a warning.
	Addr string `toml:"addr"`
	// AddrSet records that Addr came from the file or the environment.
	AddrSet bool `toml:"-"`
}

// Control is the [control] section: the local Unix socket that `steward
// health`, `status`, `start`, `stop`, `restart`, `signal`, `logs` and
// `reload` talk to.
type Control struct {
	// Socket is the socket's path; empty picks DefaultControlSocket, or a
	// fallback when its directory cannot be created.
	Socket string `toml:"socket"`
	// LogLines is how many recent lines of each program `steward logs`
	// can show; 0 keeps none.
	LogLines int `toml:"log_lines"`
}

// Defaults of the local surfaces.
const (
	DefaultHTTPAddr        = "127.0.0.1:9779"
	DefaultGracePeriod     = 30 * time.Second
	DefaultProgramInterval = 60 * time.Second
	DefaultControlSocket   = "/run/steward/control.sock"
	DefaultLogLines        = 1000
	HTTPOff                = "off"
)

func (h *Health) setDefaults() {
	h.GracePeriod = Duration(DefaultGracePeriod)
	h.ProgramInterval = Duration(DefaultProgramInterval)
}

func (c *Control) setDefaults() {
	c.LogLines = DefaultLogLines
}

func deriveLocalSurfaces(cfg *Config) {
	h := &cfg.HTTP
	if h.Addr == "" {
		h.Addr = DefaultHTTPAddr
	} else {
		h.AddrSet = true
	}
}

func validateLocalSurfaces(d *decoder, cfg *Config) {
	if n := cfg.Control.LogLines; n < 0 || n > 1_000_000 {
		d.add("", "control.log_lines", "%d is outside 0 to 1000000", n)
	}
	if cfg.Health.ProgramInterval < Duration(time.Second) {
		d.add("", "health.program_interval", "must be at least 1s")
	}
	h := &cfg.HTTP
	if !strings.EqualFold(h.Addr, HTTPOff) {
		if _, _, err := net.SplitHostPort(h.Addr); err != nil {
			d.add("", "http.addr", "%q is not host:port (or \"off\")", h.Addr)
		}
	}
	checkSocketPath(d, cfg.Control.Socket)
}

func checkSocketPath(d *decoder, s string) {
	if s != "" && !filepath.IsAbs(s) {
		d.add("", "control.socket", "%q is not an absolute path", s)
	}
}

// ControlSocket finds the control socket a config names for a control
// command (`steward status`...), reading only what names it:
// STEWARD_CONTROL_SOCKET, else control.socket in the file. "" means neither
// sets one: the default paths apply. A problem that keeps the socket from
// being known (the file unreadable or not TOML, the key of the wrong type
// or not absolute) is an *Error; the rest of the config is not the
// command's business, and steward reports it where it runs.
func ControlSocket(path string, environ []string) (string, error) {
	var env []string
	for _, kv := range environ {
		if strings.HasPrefix(kv, "STEWARD_CONTROL_SOCKET=") {
			env = []string{kv}
		}
	}
	d := &decoder{source: "command line", undecoded: map[string]bool{}}
	tree := map[string]any{}
	if path != "" && (len(env) == 0 || env[0] == "STEWARD_CONTROL_SOCKET=") {
		d.source = path
		data, err := os.ReadFile(path)
		if err != nil {
			return "", &Error{Problems: []Problem{{Source: path, Message: fmt.Sprintf("cannot read: %v", errors.Unwrap(err))}}}
		}
		doc, err := parseDocument(data)
		if err != nil {
			return "", &Error{Problems: []Problem{syntaxProblem(path, err)}}
		}
		tree, d.lines = doc.tree, doc.lines
	}
	_, d.fromEnv = applyEnv(tree, env)
	var socket string
	switch c := tree["control"].(type) {
	case nil:
	case map[string]any:
		if v, ok := c["socket"]; ok {
			d.decode("control.socket", v, reflect.ValueOf(&socket).Elem())
		}
	default:
		d.add("", "control", "expected a table, got %s", typeName(c))
	}
	d.validating = true
	checkSocketPath(d, socket)
	if len(d.problems) > 0 {
		return "", &Error{Problems: d.problems}
	}
	return socket, nil
}
