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
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/collectors/checkmetrics"
	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/control"
	"github.com/stewardhq/steward/internal/buildinfo"
	_ "github.com/stewardhq/steward/internal/oneproc" // one P from the start
	"github.com/stewardhq/steward/internal/pages"
	"github.com/stewardhq/steward/internal/suggest"
	"github.com/stewardhq/steward/stream"
	"github.com/stewardhq/steward/supervisor"
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
		if cmd := didYouMean(args[0]); cmd != "" {
			fmt.Fprintf(stderr, "steward: unknown command %q, did you mean %s? (no program %q on PATH to run either; see steward help)\n", args[0], cmd, args[0])
			return exitUsage
		}
	}
	return supervise(args, stderr)
}

// subcommands are steward's own commands, for didYouMean.
var subcommands = []string{"validate", "health", "status", "start", "stop", "restart", "signal", "logs", "reload", "version", "service", "help"}

// didYouMean returns the subcommand word is a typo of ("stauts" for
// status), when word is no program steward could run: a word that names
// one on PATH, or a path, is the main program's command.
func didYouMean(word string) string {
	if word == "" || strings.ContainsAny(word, "/-=") {
		return ""
	}
	if _, err := exec.LookPath(word); err == nil {
		return ""
	}
	best, bestDist := "", 3
	for _, c := range subcommands {
		if d := suggest.Distance(word, c); d < bestDist && d <= len(c)/3+1 {
			best, bestDist = c, d
		}
	}
	return best
}

func versionString() string { return buildinfo.Read(version).String() }

// flagExit is the exit code of a command whose flags did not parse: 0 for
// --help (the usage is printed), 2 for a bad flag.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return exitUsage
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
			fmt.Fprintf(stderr, "steward: invalid configuration (%s):\n", plural(len(cerr.Problems), "problem"))
			for _, p := range cerr.Problems {
				fmt.Fprintln(stderr, p.String())
			}
			printWarnings(cerr.Warnings, stderr)
		} else {
			fmt.Fprintln(stderr, "steward:", err)
		}
		return nil, false
	}
	return cfg, true
}

// printWarnings prints what `steward validate` found but does not count as
// a problem: users and groups unknown on this host.
func printWarnings(warnings []configs.Problem, stderr io.Writer) {
	for _, w := range warnings {
		fmt.Fprintln(stderr, "steward validate: warning:", w.String())
	}
}

// plural is "1 problem", "2 problems".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// validate checks a config as steward would at start, except that users and
// groups unknown here are warnings: the config is often checked on a build
// host or in CI, not in the image it runs in (as supervisord, which looks
// users up only when it starts a program).
func validate(args []string, stdout, stderr io.Writer) int {
	opts, err := parseArgs("validate", args, stderr)
	if err != nil {
		return flagExit(err)
	}
	if opts.Path == "" && len(opts.Command) == 0 {
		fmt.Fprintln(stderr, "steward validate: give --config FILE (or STEWARD_CONFIG)")
		return exitUsage
	}
	opts.DeferUsers = true
	cfg, ok := loadConfig(opts, stderr)
	if !ok {
		return exitUsage
	}
	printWarnings(cfg.Warnings, stderr)
	fmt.Fprintf(stdout, "%s: ok, %s (%s)\n", describe(opts), plural(len(cfg.Programs), "program"), strings.Join(cfg.Order, ", "))
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
	// at once (after the program watcher finished): flush what is
	// buffered, deregister, all within ctx.
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
	results *stream.Stream[checks.Report]
	health  *checks.Health
	// opts are what the config was loaded from, for reloads; reload is set
	// by startCtl.
	opts   configs.Options
	reload func(ctx context.Context) (reloadResult, error)
	// sources are the components' own figures for the metrics.
	sources *metricSources
	// checkMetrics parses the output of checks with an
	// output_metric_format; nil when there is none.
	checkMetrics *checkmetrics.MetricOutputs
	// sensuReports is the Sensu agent's subscription to results, made
	// before the programs start; the agent starts after them.
	sensuReports *stream.Subscription[checks.Report]
	// checkRuns starts the local checks' schedule, set by startChecks and
	// run by startCheckRuns.
	checkRuns func()
}

// starter builds a component. It returns nil when its feature is not
// configured.
type starter func(ctx context.Context, w *wiring) (component, error)

// starters build, in order, what must be in place before the first program
// starts: the subscriptions to its lines and events, and the handlers of
// the endpoint and the control socket. An error stops steward before any
// program starts.
var starters = []starter{startCheckMetrics, startLogs, startChecks, startSensu, startCtl}

// lateStarters start, in order, once the programs that could start at once
// have been forked (supervisor.Started): nothing there is needed before
// their exec, and each of them (collectors reading the cgroup, sockets,
// connections) would delay it. An error stops the programs and steward
// exits 1, as it would have before starting them.
var lateStarters = []starter{startCheckRuns, startMetrics, startSensuAgent, startHTTP, startControl}

// supervisorConfig is the supervisor's part of the config.
func supervisorConfig(cfg *configs.Config) supervisor.Config {
	s := cfg.Steward
	return supervisor.Config{Programs: cfg.ProgramList(), ShutdownTimeout: s.ShutdownTimeout.D(),
		SuccessExitCodes: s.SuccessExitCodes, OutputPrefix: s.OutputPrefix, OutputTimestamps: s.OutputTimestamps,
		MaxLineBytes: s.MaxLineBytes, PdeathSignal: s.PdeathSignal.S()}
}

func supervise(args []string, stderr io.Writer) int {
	opts, err := parseArgs("steward", args, stderr)
	if err != nil {
		return flagExit(err)
	}
	cfg, ok := loadConfig(opts, stderr)
	if !ok {
		return exitUsage
	}
	log := newLogger(cfg, stderr)
	w := &wiring{cfg: cfg, log: log, opts: opts, mux: http.NewServeMux(), control: control.NewServer(log), sources: &metricSources{},
		results: stream.New[checks.Report]("check results", log)}
	var supOpts []supervisor.Option
	if cfg.Steward.ReloadOnSighup {
		supOpts = append(supOpts, supervisor.WithHangup(func() {
			if res, err := w.reload(context.Background()); err == nil {
				log.Info("reloaded on SIGHUP", "added", res.Added, "removed", res.Removed, "changed", res.Changed)
			}
		}))
	}
	sup, err := supervisor.New(supervisorConfig(cfg), log, supOpts...)
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
		// The components between the supervisor and the outputs finish
		// first: the reports of the stop's last events (a fatal give-up)
		// are published before Sensu flushes, the programs' last lines
		// reach `steward logs -f` before its stream ends.
		for _, c := range started {
			if f, ok := c.(interface{ Finish(context.Context) error }); ok {
				if err := f.Finish(flushCtx); err != nil {
					log.Warn("closing", "err", err)
				}
			}
		}
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
	// The late starters run beside the loop; started is read again only
	// once they are done.
	lateDone := make(chan struct{})
	lateFailed := false
	go func() {
		defer close(lateDone)
		select {
		case <-sup.Started():
		case <-ctx.Done():
			return
		}
		for _, start := range lateStarters {
			// steward runs on one P (internal/oneproc): a signal that came
			// meanwhile is handled first, and a stop does not wait for
			// the rest of the start.
			runtime.Gosched()
			select {
			case <-sup.ShuttingDown():
				return // nothing to serve any more: exit the sooner
			default:
			}
			c, err := start(ctx, w)
			if err != nil {
				log.Error("cannot start", "err", err)
				lateFailed = true
				cancel()
				return
			}
			if c != nil {
				started = append(started, c)
			}
		}
		// What only the start ran need not stay mapped: released once the
		// goroutines the start launched (accept loops, pipe readers,
		// first reports) have run their first steps (on one P, those
		// ready now run before this one goes on), and again later, when
		// on a loaded machine some come later. Not when steward is
		// stopping already: the stop would only fault the pages back in,
		// and wait for the release (a container stopped as it starts).
		runtime.Gosched()
		select {
		case <-sup.ShuttingDown():
			return
		default:
		}
		releasePages(log)
		time.AfterFunc(pagesSettle, func() { releasePages(log) })
		time.AfterFunc(pagesRounds, func() { releasePages(log) })
	}()
	code := sup.Run(ctx)
	<-lateDone
	closeAll()
	if lateFailed {
		return exitFailed
	}
	return code
}

// pagesSettle is when the start's pages are released a second time.
const pagesSettle = 2 * time.Second

// pagesRounds is when they are released a last time: by then the parts
// that run periodically (metrics and checks every 10 s, Sensu keepalives
// every 20 s, retries at most every 30 s by default) have run their first
// round, with its one-time work (encoding/json's type caches, the cgroup
// discovery, first connections). What the rounds after it run maps back
// in (about 200 minor faults in all with every shipper on); the rest,
// about 0.7 MiB of RSS with bench/multi.toml, stays out.
const pagesRounds = 30 * time.Second

func releasePages(log *slog.Logger) {
	if n, err := pages.Release(); err != nil {
		log.Debug("start pages kept", "err", err)
	} else {
		log.Debug("start pages released", "bytes", n)
	}
}
