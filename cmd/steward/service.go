package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kardianos/service"

	"github.com/stewardhq/steward/configs"
)

// systemdUnit is kardianos/service's systemd template with what a
// supervisor needs: systemd must send SIGTERM to steward alone and leave the
// ordered stop of the programs to it (KillMode=mixed; the default
// control-group would signal every process at once), and must wait for
// steward's own shutdown and flush before it kills anything. %s is
// TimeoutStopSec.
const systemdUnit = `[Unit]
Description={{Description}}
ConditionFileIsExecutable={{Path | cmdEscape}}
After=network-online.target
Wants=network-online.target
{{range Dependencies}}{{.}}
{{end}}
[Service]
Type=simple
ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}
{{if WorkingDirectory}}WorkingDirectory={{WorkingDirectory | cmdEscape}}
{{end}}{{if UserName}}User={{UserName}}
{{end}}ExecReload=/bin/kill -HUP "$MAINPID"
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec=%s
{{if LimitNOFILE}}LimitNOFILE={{LimitNOFILE}}
{{end}}Restart={{Restart}}
RestartSec=5
EnvironmentFile=-/etc/default/{{Name}}
{{range EnvVars}}{{.}}
{{end}}
[Install]
WantedBy=multi-user.target
`

// serviceProgram satisfies kardianos/service; steward runs as a plain
// foreground process under the service manager, which stops it with
// SIGTERM like any container runtime would.
type serviceProgram struct{}

func (serviceProgram) Start(service.Service) error { return nil }
func (serviceProgram) Stop(service.Service) error  { return nil }

const serviceUsage = `Usage: steward service install|uninstall|start|stop|restart|status [flags]

Installs steward as a host service (a systemd unit on Linux) running
"steward --config FILE", for machines that are not containers.

Flags:
`

func serviceCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, serviceUsage)
		return exitUsage
	}
	action := args[0]
	fs := flag.NewFlagSet("service", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, serviceUsage); fs.PrintDefaults() }
	path := fs.String("config", os.Getenv("STEWARD_CONFIG"), "config file the service runs")
	name := fs.String("name", "steward", "service name")
	system := fs.String("system", "", "service manager, instead of detecting it (e.g. linux-systemd)")
	if err := fs.Parse(args[1:]); err != nil {
		return flagExit(err)
	}

	cfg := &configs.Config{}
	svcCfg := &service.Config{
		Name:        *name,
		DisplayName: "steward",
		Description: "steward supervises the app's programs and ships their telemetry",
		Option:      service.KeyValue{"Restart": "on-failure"},
	}
	if action == "install" {
		if *path == "" {
			fmt.Fprintln(stderr, "steward service install: give --config FILE")
			return exitUsage
		}
		abs, err := filepath.Abs(*path)
		if err != nil {
			fmt.Fprintln(stderr, "steward service:", err)
			return exitFailed
		}
		var ok bool
		if cfg, ok = loadConfig(configs.Options{Path: abs, Environ: os.Environ()}, stderr); !ok {
			return exitUsage
		}
		svcCfg.Arguments = []string{"--config", abs}
		svcCfg.Description = fmt.Sprintf("steward supervising %s %s", cfg.Steward.App, cfg.Steward.Version)
		// systemd waits for the whole stop and the flush, plus a margin,
		// before it kills anything.
		stopWait := cfg.Steward.ShutdownTimeout.D() + cfg.Steward.FlushTimeout.D() + 5*time.Second
		svcCfg.Option["SystemdScript"] = fmt.Sprintf(systemdUnit, strconv.Itoa(int(stopWait.Seconds())))
	}
	if *system != "" {
		found := false
		for _, sys := range service.AvailableSystems() {
			if sys.String() == *system {
				service.ChooseSystem(forcedSystem{sys})
				found = true
			}
		}
		if !found {
			fmt.Fprintf(stderr, "steward service: unknown service manager %q (known: %v)\n", *system, service.AvailableSystems())
			return exitUsage
		}
	}
	svc, err := service.New(serviceProgram{}, svcCfg)
	if err != nil {
		fmt.Fprintln(stderr, "steward service:", err)
		return exitFailed
	}
	switch action {
	case "status":
		st, err := svc.Status()
		if err != nil {
			fmt.Fprintf(stderr, "steward service status: %v\n", err)
			return exitFailed
		}
		names := map[service.Status]string{service.StatusRunning: "running", service.StatusStopped: "stopped"}
		fmt.Fprintf(stdout, "%s (%s): %s\n", *name, svc.Platform(), valueOr(names[st], "unknown"))
		if st != service.StatusRunning {
			return 3 // as systemctl is-active and LSB status do
		}
		return 0
	case "install", "uninstall", "start", "stop", "restart":
		if err := service.Control(svc, action); err != nil {
			fmt.Fprintf(stderr, "steward service %s: %v\n", action, err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "%s: %s done (%s)\n", *name, action, svc.Platform())
		return 0
	default:
		fmt.Fprint(stderr, serviceUsage)
		return exitUsage
	}
}

// forcedSystem is a service manager chosen by --system, used even where
// detection would not find it running (building an image, say).
type forcedSystem struct{ service.System }

func (forcedSystem) Detect() bool { return true }

func valueOr(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
