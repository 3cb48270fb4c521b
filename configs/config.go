// Package configs holds steward's typed configuration: the TOML schema, its
// loading with STEWARD_* environment overrides, and validation whose every
// error names the file, the line and the key.
package configs

import (
	"time"
)

// Config is the whole, validated configuration.
type Config struct {
	// File is the path the config was read from; empty when steward runs
	// with a command line only.
	File string `toml:"-"`

	Steward  Steward             `toml:"steward"`
	Programs map[string]*Program `toml:"programs"`
	Checks   map[string]*Check   `toml:"checks"`
	Health   Health              `toml:"health"`
	HTTP     HTTP                `toml:"http"`
	Control  Control             `toml:"control"`
	Sensu    Sensu               `toml:"sensu"`
	Metrics  Metrics             `toml:"metrics"`
	Graphite Graphite            `toml:"graphite"`
	Fluentd  *Fluentd            `toml:"fluentd"` // nil: logs are not forwarded

	// Order lists program names in the order they appear in the file, then
	// the command-line main program; it breaks ties in start order.
	Order []string `toml:"-"`

	// Warnings are what Options.DeferUsers turned from problems into
	// remarks: users and groups this host does not know.
	Warnings []Problem `toml:"-"`
}

// Steward holds settings of steward itself.
type Steward struct {
	// App and Version identify the deployment; later they tag metrics,
	// log records and the Sensu entity.
	App     string `toml:"app"`
	Version string `toml:"version"`
	// Host overrides the hostname reported to peers.
	Host string `toml:"host"`
	// ContainerName names the container in log records (Docker's
	// container_name), as the orchestrator knows it: Docker's name, the
	// Kubernetes pod from the downward API. Empty: the hostname.
	ContainerName string `toml:"container_name"`

	LogLevel  string `toml:"log_level"`  // debug, info, warn, error
	LogFormat string `toml:"log_format"` // text, json

	// ShutdownTimeout bounds the whole stop: programs still alive when it
	// runs out are killed.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// SuccessExitCodes are exit codes of the main program that steward
	// reports as 0 (tini -e).
	SuccessExitCodes []int `toml:"success_exit_codes"`
	// ReloadOnSighup makes SIGHUP reload the config instead of being
	// forwarded to the main program.
	ReloadOnSighup bool `toml:"reload_on_sighup"`
	// FlushTimeout bounds the flush of metrics, logs and check results
	// (and the Sensu deregistration) after the programs have stopped.
	FlushTimeout Duration `toml:"flush_timeout"`

	// OutputPrefix puts "[program] " before each line steward copies to its
	// stdout/stderr: auto (when more than one program), always, never.
	OutputPrefix     string `toml:"output_prefix"`
	OutputTimestamps bool   `toml:"output_timestamps"`
	// MaxLineBytes is the longest line kept whole; longer lines are cut
	// into parts marked partial.
	MaxLineBytes int `toml:"max_line_bytes"`
	// PdeathSignal is sent to steward when its parent dies (prctl
	// PR_SET_PDEATHSIG, tini -p), for steward run by another supervisor;
	// unused as PID 1, which has no parent to lose.
	PdeathSignal Signal `toml:"pdeath_signal"`
	// LogBufferLines is how many log records each subscriber (a shipper)
	// may lag behind before records are dropped and counted.
	LogBufferLines int `toml:"log_buffer_lines"`
}

// Program is one supervised program.
type Program struct {
	Name string `toml:"-"`

	Command []string `toml:"command"`
	Kind    string   `toml:"kind"` // service or oneshot
	// Main marks the program whose end ends the container and whose exit
	// code steward exits with.
	Main bool `toml:"main"`
	// Critical programs end the container too when they end for good.
	Critical bool `toml:"critical"`

	DependsOn []Dependency `toml:"depends_on"`
	Ready     *Probe       `toml:"ready"`

	Directory string            `toml:"directory"`
	User      string            `toml:"user"`
	Group     string            `toml:"group"`
	Groups    []string          `toml:"groups"`
	Umask     *Umask            `toml:"umask"`
	Env       map[string]string `toml:"env"`
	// EnvRemove names variables (shell globs allowed) not passed on.
	EnvRemove []string          `toml:"env_remove"`
	Rlimits   map[string]Rlimit `toml:"rlimits"`
	// Stdio is "capture" (pipes, lines logged and shipped) or "inherit"
	// (the program gets steward's own stdin/stdout/stderr). The main
	// program inherits when stdin is a terminal unless set.
	Stdio string `toml:"stdio"`

	Restart        string   `toml:"restart"` // always, on-failure, never
	StartSecs      Duration `toml:"start_secs"`
	StartRetries   int      `toml:"start_retries"`
	BackoffInitial Duration `toml:"backoff_initial"`
	BackoffMax     Duration `toml:"backoff_max"`
	OnFatal        string   `toml:"on_fatal"` // stop or continue

	StopSignal  Signal   `toml:"stop_signal"`
	StopTimeout Duration `toml:"stop_timeout"`
	// ForwardSignals sends the signals steward receives to this program's
	// process group. Default: true for the main program only.
	ForwardSignals *bool `toml:"forward_signals"`
	// Signals rewrites forwarded signals: {HUP = "USR1", WINCH = "drop"}.
	Signals map[string]SignalRewrite `toml:"signals"`
	// SignalGroup sends steward's signals to the program's whole process
	// group (the default); false sends them to its pid only (dumb-init's
	// --single-child). The SIGKILL at the stop timeout always goes to the
	// group.
	SignalGroup *bool `toml:"signal_group"`

	// Logs is how the program's lines are forwarded (shippers/fluentd).
	Logs *ProgramLogs `toml:"logs"`

	// MetricsURL is the program's Prometheus endpoint, scraped every
	// metrics interval (README: App metrics).
	MetricsURL string `toml:"metrics_url"`

	// Resolved by validation.
	Cred *Credential `toml:"-"`
}

// Credential is a resolved user, group and supplementary groups.
type Credential struct {
	UID, GID uint32
	Groups   []uint32
	// Home and Username are set for HOME/USER/LOGNAME when the program
	// runs as another user, as gosu and su-exec do.
	Home, Username string
}

// Probe says when a program is ready. Exactly one of TCP, HTTP, Command and
// File is set.
type Probe struct {
	TCP     string   `toml:"tcp"`     // host:port accepting connections
	HTTP    string   `toml:"http"`    // URL answering 2xx
	Command []string `toml:"command"` // exits 0
	File    string   `toml:"file"`    // exists

	// HTTP only: the method (GET), the accepted status range (2xx) and a
	// regexp the body must match.
	Method       string      `toml:"method"`
	ExpectStatus StatusRange `toml:"expect_status"`
	ExpectBody   string      `toml:"expect_body"`

	Interval Duration `toml:"interval"` // between attempts
	Timeout  Duration `toml:"timeout"`  // of one attempt
	// MaxWait is how long the program may take to become ready before the
	// start counts as failed; 0 waits forever.
	MaxWait Duration `toml:"max_wait"`
}

// Kinds, restart policies and fatal actions.
const (
	KindService = "service"
	KindOneshot = "oneshot"

	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
	RestartNever     = "never"

	OnFatalStop     = "stop"
	OnFatalContinue = "continue"

	StdioCapture = "capture"
	StdioInherit = "inherit"
)

// Defaults for settings left out.
const (
	DefaultStopTimeout     = 10 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
	DefaultFlushTimeout    = 8 * time.Second
	DefaultStartSecs       = 1 * time.Second
	DefaultStartRetries    = 3
	DefaultBackoffInitial  = 1 * time.Second
	DefaultBackoffMax      = 30 * time.Second
	DefaultMaxLineBytes    = 64 * 1024
	DefaultLogBufferLines  = 16384
	DefaultProbeInterval   = 250 * time.Millisecond
	DefaultProbeTimeout    = 2 * time.Second
	DefaultProbeMaxWait    = 60 * time.Second
)

func (s *Steward) setDefaults() {
	s.LogLevel = "info"
	s.LogFormat = "text"
	s.ShutdownTimeout = Duration(DefaultShutdownTimeout)
	s.FlushTimeout = Duration(DefaultFlushTimeout)
	s.OutputPrefix = "auto"
	s.MaxLineBytes = DefaultMaxLineBytes
	s.LogBufferLines = DefaultLogBufferLines
}

func (p *Program) setDefaults() {
	p.StartSecs = Duration(DefaultStartSecs)
	p.StartRetries = DefaultStartRetries
	p.BackoffInitial = Duration(DefaultBackoffInitial)
	p.BackoffMax = Duration(DefaultBackoffMax)
	p.StopSignal = Signal(15)
	p.StopTimeout = Duration(DefaultStopTimeout)
}

func (p *Probe) setDefaults() {
	p.Interval = Duration(DefaultProbeInterval)
	p.Timeout = Duration(DefaultProbeTimeout)
	p.MaxWait = Duration(DefaultProbeMaxWait)
}

// MainProgram returns the program marked main, or nil.
func (c *Config) MainProgram() *Program {
	for _, name := range c.Order {
		if p := c.Programs[name]; p.Main {
			return p
		}
	}
	return nil
}

// ProgramList returns the programs in the config's order.
func (c *Config) ProgramList() []*Program {
	list := make([]*Program, 0, len(c.Order))
	for _, name := range c.Order {
		list = append(list, c.Programs[name])
	}
	return list
}

// Forwards reports whether signals steward receives go to p.
func (p *Program) Forwards() bool {
	if p.ForwardSignals != nil {
		return *p.ForwardSignals
	}
	return p.Main
}

// SignalsGroup reports whether signals go to p's process group rather than
// its pid only.
func (p *Program) SignalsGroup() bool { return p.SignalGroup == nil || *p.SignalGroup }
