// Package checks runs probes (command, HTTP, TCP, file) with Nagios
// semantics. The supervisor's readiness probes and the health checks use the
// same code.
package checks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/configs"
)

// Status is a check status with Nagios plugin semantics.
type Status int

// Nagios statuses: a command's exit code maps to them directly, anything
// outside 0-2 being Unknown.
const (
	OK       Status = 0
	Warning  Status = 1
	Critical Status = 2
	Unknown  Status = 3
)

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Warning:
		return "warning"
	case Critical:
		return "critical"
	default:
		return "unknown"
	}
}

// StatusFromExitCode maps a plugin's exit code to its status.
func StatusFromExitCode(code int) Status {
	if code >= 0 && code <= 2 {
		return Status(code)
	}
	return Unknown
}

// Result is the outcome of one probe.
type Result struct {
	Status   Status
	Output   string
	Executed time.Time
	Duration time.Duration
}

// Probe is anything that can be checked once.
type Probe interface {
	Probe(ctx context.Context) Result
}

// CommandSpec is a command for an Executor.
type CommandSpec struct {
	Argv []string
	// Env, when nil, is the environment every program gets.
	Env []string
	// ExtraEnv is added to Env (a Sensu check's env_vars).
	ExtraEnv []string
	// Stdin, when set, is written to the command's standard input (Sensu
	// checks with stdin: true read their event there); otherwise stdin is
	// /dev/null.
	Stdin []byte
	Dir   string
	// OutputLimit caps the captured output (stdout and stderr together).
	OutputLimit int
}

// CommandResult is how a command ended.
type CommandResult struct {
	ExitCode  int
	Output    []byte
	Truncated bool
}

// Executor runs commands. In steward the supervisor implements it, because
// only the supervisor's single reaper may wait for child processes. When ctx
// ends, the command's whole process group is killed.
type Executor interface {
	Exec(ctx context.Context, cmd CommandSpec) (CommandResult, error)
}

// DefaultOutputLimit caps a command's captured output.
const DefaultOutputLimit = 8 * 1024

// Command runs a command: exit 0 OK, 1 WARNING, 2 CRITICAL, else UNKNOWN.
type Command struct {
	Spec     CommandSpec
	Timeout  time.Duration
	Executor Executor
}

// Probe runs the command once.
func (c *Command) Probe(ctx context.Context) Result {
	return timed(ctx, c.Timeout, func(ctx context.Context) (Status, string) {
		spec := c.Spec
		if spec.OutputLimit == 0 {
			spec.OutputLimit = DefaultOutputLimit
		}
		res, err := c.Executor.Exec(ctx, spec)
		if err != nil {
			return Unknown, err.Error()
		}
		out := string(res.Output)
		if res.Truncated {
			out += "\n[output truncated]"
		}
		if ctx.Err() != nil {
			return Critical, strings.TrimSpace(out + "\ntimed out, process group killed")
		}
		return StatusFromExitCode(res.ExitCode), out
	})
}

// TCP succeeds when a connection to Addr is accepted.
type TCP struct {
	Addr    string
	Timeout time.Duration
}

// Probe connects once.
func (t *TCP) Probe(ctx context.Context) Result {
	return timed(ctx, t.Timeout, func(ctx context.Context) (Status, string) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", t.Addr)
		if err != nil {
			return Critical, fmt.Sprintf("TCP %s: %v", t.Addr, err)
		}
		conn.Close()
		return OK, fmt.Sprintf("TCP %s: connected", t.Addr)
	})
}

// HTTP succeeds when URL answers with a status in [MinStatus, MaxStatus]
// (2xx by default) and, when Body is set, a body it matches.
type HTTP struct {
	URL                  string
	Method               string
	MinStatus, MaxStatus int
	Body                 *regexp.Regexp
	Timeout              time.Duration
	Client               *http.Client
}

// httpBodyLimit is how much of a response body is read, and matched
// against Body.
const httpBodyLimit = 64 << 10

// probeClient does not keep connections alive, so that every probe proves
// the server still accepts new ones.
var probeClient = &http.Client{Transport: &http.Transport{
	Proxy:             http.ProxyFromEnvironment,
	DisableKeepAlives: true,
}}

// Probe requests once.
func (h *HTTP) Probe(ctx context.Context) Result {
	return timed(ctx, h.Timeout, func(ctx context.Context) (Status, string) {
		method := h.Method
		if method == "" {
			method = http.MethodGet
		}
		shown := configs.RedactURL(h.URL)
		req, err := http.NewRequestWithContext(ctx, method, h.URL, nil)
		if err != nil {
			return Unknown, fmt.Sprintf("HTTP %s %s: bad request", method, shown)
		}
		req.Header.Set("User-Agent", "steward")
		client := h.Client
		if client == nil {
			client = probeClient
		}
		resp, err := client.Do(req)
		if err != nil {
			// The client's error repeats the URL (its password as ***):
			// only the cause is kept.
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err
			}
			return Critical, fmt.Sprintf("HTTP %s %s: %v", method, shown, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, httpBodyLimit))
		if err != nil && h.Body != nil {
			return Critical, fmt.Sprintf("HTTP %s %s: status %d, reading the body: %v", method, shown, resp.StatusCode, err)
		}
		lo, hi := h.MinStatus, h.MaxStatus
		if lo == 0 && hi == 0 {
			lo, hi = 200, 299
		}
		if resp.StatusCode < lo || resp.StatusCode > hi {
			return Critical, fmt.Sprintf("HTTP %s %s: status %d, expected %s", method, shown, resp.StatusCode, statusRange(lo, hi))
		}
		if h.Body != nil && !h.Body.Match(body) {
			return Critical, fmt.Sprintf("HTTP %s %s: status %d, body does not match %q", method, shown, resp.StatusCode, h.Body.String())
		}
		return OK, fmt.Sprintf("HTTP %s %s: status %d", method, shown, resp.StatusCode)
	})
}

// File succeeds when Path exists.
type File struct {
	Path string
}

// Probe looks once.
func (f *File) Probe(ctx context.Context) Result {
	return timed(ctx, 0, func(context.Context) (Status, string) {
		if _, err := os.Stat(f.Path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return Critical, fmt.Sprintf("file %s: does not exist", f.Path)
			}
			return Critical, fmt.Sprintf("file %s: %v", f.Path, err)
		}
		return OK, fmt.Sprintf("file %s: exists", f.Path)
	})
}

func timed(ctx context.Context, timeout time.Duration, probe func(context.Context) (Status, string)) Result {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	start := time.Now()
	status, out := probe(ctx)
	return Result{Status: status, Output: out, Executed: start, Duration: time.Since(start)}
}

func statusRange(lo, hi int) string {
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

// FromConfig builds the probe a config describes, for readiness or for a
// check. Commands run through ex. The config was validated, so a body
// pattern compiles.
func FromConfig(p *configs.Probe, ex Executor) Probe {
	timeout := p.Timeout.D()
	switch {
	case p.TCP != "":
		return &TCP{Addr: p.TCP, Timeout: timeout}
	case p.HTTP != "":
		h := &HTTP{URL: p.HTTP, Method: p.Method, Timeout: timeout,
			MinStatus: p.ExpectStatus.Min, MaxStatus: p.ExpectStatus.Max}
		if p.ExpectBody != "" {
			h.Body = regexp.MustCompile(p.ExpectBody)
		}
		return h
	case len(p.Command) > 0:
		return &Command{Spec: CommandSpec{Argv: p.Command}, Timeout: timeout, Executor: ex}
	default:
		return &File{Path: p.File}
	}
}

// Describe says what a configured probe does, in a few words ("GET
// http://...", "tcp 127.0.0.1:5432", the command line): a check's command
// as Sensu shows it.
func Describe(p *configs.Probe) string {
	switch {
	case p.TCP != "":
		return "tcp " + p.TCP
	case p.HTTP != "":
		method := p.Method
		if method == "" {
			method = http.MethodGet
		}
		return method + " " + configs.RedactURL(p.HTTP)
	case len(p.Command) > 0:
		return strings.Join(p.Command, " ")
	default:
		return "file " + p.File
	}
}
