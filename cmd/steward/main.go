// Command steward is the PID 1 of an application's container: it supervises
// the app's programs and ships their metrics, logs and health.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/supervisor"
	"github.com/stewardhq/steward/supervisor/control"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `steward: PID 1 for application containers.

Usage:
  steward [--config FILE] [--] [CMD [ARG...]]   supervise (CMD is the main program)
  steward validate [--config FILE] [-- CMD...]  check a configuration, exit 2 if bad
  steward health [--ready] [--json]             ask the running steward: exit 0 healthy, 1 not
  steward status [--json]                       programs: state, pid, uptime, restarts, last exit
  steward start|stop|restart PROGRAM...|all     and wait until done (--timeout)
  steward signal SIGNAL PROGRAM...|all          send a signal to the programs' process groups
  steward logs [-f] [-n N] PROGRAM              a program's recent lines; -f follows
  steward reload                                re-read the config: changed programs restart
  steward version                               print the version
  steward service install|uninstall|start|stop|restart|status --config FILE
                                                run as a host service (systemd)

The config file can also be given as STEWARD_CONFIG. Settings can be
overridden with STEWARD_* variables; see the README.
`

// Exit codes of steward itself, beside the main program's code.
const (
	exitUsage  = 2 // bad flags or configuration
	exitFailed = 1 // steward could not start at all
)

func main() {
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	if supervisor.IsMachineInit("/proc") {
		// The machine's own init (a VM's /init) must never exit: the kernel
		// would panic. Everything has stopped: power off, as init systems do.
		fmt.Fprintf(os.Stderr, "steward: exit code %d; powering off\n", code)
		if err := supervisor.PowerOff(); err != nil {
			fmt.Fprintln(os.Stderr, "steward:", err)
		}
	}
	os.Exit(code)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case supervisor.ChainLoadArg:
			err := supervisor.ChainLoad(args[1:])
			fmt.Fprintln(stderr, "steward:", err)
			return supervisor.ChainLoadExitCode(err)
		case "version":
			fmt.Fprintln(stdout, "steward", versionString())
			return 0
		case "validate":
			return validate(args[1:], stdout, stderr)
		case "service":
			return serviceCommand(args[1:], stdout, stderr)
		case "health":
			return health(args[1:], stdout, stderr)
		case "status", "start", "stop", "restart", "signal", "logs", "reload":
			return ctlCommand(args[0], args[1:], stdout, stderr)
		case "help":
			fmt.Fprint(stdout, usage)
			return 0
		}
	}
	return supervise(args, stderr)
}

func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 7 {
				v += " (" + s.Value[:7] + ")"
			}
		}
	}
	return v
}

// parseArgs reads the flags shared by running and validating; the rest of
// the arguments are the main program's command.
func parseArgs(name string, args []string, stderr io.Writer) (configs.Options, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	path := fs.String("config", os.Getenv("STEWARD_CONFIG"), "config file (TOML)")
	fs.StringVar(path, "c", *path, "config file (short for --config)")
	if err := fs.Parse(args); err != nil {
		return configs.Options{}, err
	}
	return configs.Options{Path: *path, Environ: os.Environ(), Command: fs.Args()}, nil
}

func loadConfig(opts configs.Options, stderr io.Writer) (*configs.Config, bool) {
	if opts.Path == "" && len(opts.Command) == 0 {
		fmt.Fprint(stderr, "steward: nothing to run: give a command after --, or a config with --config or STEWARD_CONFIG\n\n"+usage)
		return nil, false
	}
	cfg, err := configs.Load(opts)
	if err != nil {
		var cerr *configs.Error
		if errors.As(err, &cerr) {
			fmt.Fprintf(stderr, "steward: invalid configuration (%d problems):\n", len(cerr.Problems))
			for _, p := range cerr.Problems {
				fmt.Fprintln(stderr, p.String())
			}
		} else {
			fmt.Fprintln(stderr, "steward:", err)
		}
		return nil, false
	}
	return cfg, true
}

func validate(args []string, stdout, stderr io.Writer) int {
	opts, err := parseArgs("validate", args, stderr)
	if err != nil {
		return exitUsage
	}
	if opts.Path == "" && len(opts.Command) == 0 {
		fmt.Fprintln(stderr, "steward validate: give --config FILE (or STEWARD_CONFIG)")
		return exitUsage
	}
	cfg, ok := loadConfig(opts, stderr)
	if !ok {
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s: ok, %d programs (%s)\n", describe(opts), len(cfg.Programs), strings.Join(cfg.Order, ", "))
	return 0
}

func describe(opts configs.Options) string {
	if opts.Path != "" {
		return opts.Path
	}
	return "command line"
}

func newLogger(cfg *configs.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Steward.LogLevel))
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, hopts)
	if cfg.Steward.LogFormat == "json" {
		h = slog.NewJSONHandler(w, hopts)
	}
	return slog.New(h).With("app", cfg.Steward.App)
}

// component runs beside the supervisor: a collector loop, a shipper, an
// endpoint.
type component interface {
	// Close is called once every program has stopped, for every component
	// at once: flush what is buffered, deregister, all within ctx.
	Close(ctx context.Context) error
}

// wiring is what components are built from.
type wiring struct {
	cfg *configs.Config
	log *slog.Logger
	sup *supervisor.Supervisor
	// mux is the local HTTP endpoint's; components add their paths to it
	// before startHTTP serves it.
	mux *http.ServeMux
	// control is the control socket's server; components register their
	// commands before startControl listens.
	control *control.Server
	// results carries every check report (local checks, program checks)
	// to the components that ship them; health keeps the latest of each.
	results *supervisor.Stream[checks.Report]
	health  *checks.Health
	// opts are what the config was loaded from, for reloads; reload is set
	// by startCtl.
	opts   configs.Options
	reload func(ctx context.Context) (reloadResult, error)
	// sources are the components' own figures for the metrics.
	sources *metricSources
}

// starters build the components in order. Each returns nil when its feature
// is not configured; an error stops steward before any program starts.
var starters = []func(ctx context.Context, w *wiring) (component, error){
	startMetrics, startLogs, startChecks, startSensu, startCtl, startHTTP, startControl,
}

func supervise(args []string, stderr io.Writer) int {
	opts, err := parseArgs("steward", args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitUsage
	}
	cfg, ok := loadConfig(opts, stderr)
	if !ok {
		return exitUsage
	}
	log := newLogger(cfg, stderr)
	w := &wiring{cfg: cfg, log: log, opts: opts, mux: http.NewServeMux(), control: control.NewServer(log), sources: &metricSources{},
		results: supervisor.NewStream[checks.Report]("check results", log)}
	var supOpts []supervisor.Option
	if cfg.Steward.ReloadOnSighup {
		supOpts = append(supOpts, supervisor.WithHangup(func() {
			if res, err := w.reload(context.Background()); err == nil {
				log.Info("reloaded on SIGHUP", "added", res.Added, "removed", res.Removed, "changed", res.Changed)
			}
		}))
	}
	sup, err := supervisor.New(cfg, log, supOpts...)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFailed
	}
	w.sup = sup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var started []component
	// The components close side by side, each with the whole flush
	// deadline: a Fluentd that is down must not eat the time the Sensu
	// deregistration needs.
	closeAll := func() {
		flushCtx, done := context.WithTimeout(context.Background(), cfg.Steward.FlushTimeout.D())
		defer done()
		var wg sync.WaitGroup
		for _, c := range started {
			wg.Go(func() {
				if err := c.Close(flushCtx); err != nil {
					log.Warn("closing", "err", err)
				}
			})
		}
		wg.Wait()
	}
	for _, start := range starters {
		c, err := start(ctx, w)
		if err != nil {
			log.Error("cannot start", "err", err)
			closeAll()
			return exitFailed
		}
		if c != nil {
			started = append(started, c)
		}
	}
	code := sup.Run(ctx)
	closeAll()
	return code
}
