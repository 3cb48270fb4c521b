package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/internal/hostservice"
)

const serviceUsage = `Usage: steward service install|uninstall|start|stop|restart|status [flags]

Installs steward as a host service (a systemd unit) running
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
	system := fs.String("system", "", "service manager, instead of detecting it ("+hostservice.Systemd+")")
	if err := fs.Parse(args[1:]); err != nil {
		return flagExit(err)
	}
	switch action {
	case "install", "uninstall", "start", "stop", "restart", "status":
	default:
		fmt.Fprint(stderr, serviceUsage)
		return exitUsage
	}
	var unit hostservice.Unit
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
		cfg, ok := loadConfig(configs.Options{Path: abs, Environ: os.Environ()}, stderr)
		if !ok {
			return exitUsage
		}
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(stderr, "steward service:", err)
			return exitFailed
		}
		// systemd waits for the whole stop and the flush, plus a margin,
		// before it kills anything.
		unit = hostservice.Unit{Name: *name, Exec: self, Args: []string{"--config", abs},
			Description: fmt.Sprintf("steward supervising %s %s", cfg.Steward.App, cfg.Steward.Version),
			StopTimeout: cfg.Steward.ShutdownTimeout.D() + cfg.Steward.FlushTimeout.D() + 5*time.Second}
	}
	m, err := hostservice.Open(*system)
	if err != nil {
		fmt.Fprintln(stderr, "steward service:", err)
		return exitUsage
	}
	switch action {
	case "status":
		state, running, err := m.Status(*name)
		if err != nil {
			fmt.Fprintf(stderr, "steward service status: %v\n", err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "%s (%s): %s\n", *name, m.Platform(), state)
		if !running {
			return 3 // as systemctl is-active and LSB status do
		}
		return 0
	case "install":
		err = m.Install(unit)
	case "uninstall":
		err = m.Uninstall(*name)
	default:
		err = m.Control(*name, action)
	}
	if err != nil {
		fmt.Fprintf(stderr, "steward service %s: %v\n", action, err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "%s: %s done (%s)\n", *name, action, m.Platform())
	return 0
}
