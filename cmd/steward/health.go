package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/control"
)

// Exit codes of `steward health`, as Docker's HEALTHCHECK reads them.
const (
	exitHealthy   = 0
	exitUnhealthy = 1
)

// health asks the running steward for its health over the control socket:
// exit 0 when healthy (or ready, with --ready), 1 otherwise, including when
// no steward answers. It prints one line; --json prints the whole report.
func health(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", os.Getenv("STEWARD_CONFIG"), "config file (TOML), to find the socket")
	fs.StringVar(cfgPath, "c", *cfgPath, "config file (short for --config)")
	socket := fs.String("socket", "", "control socket (default: from the config, STEWARD_CONTROL_SOCKET, or the default paths)")
	ready := fs.Bool("ready", false, "exit 0 only when ready (see /readyz), not just healthy")
	asJSON := fs.Bool("json", false, "print the whole report as JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	path := *socket
	if path == "" {
		path = control.FindSocket(control.SocketPaths(configuredSocket(*cfgPath), os.Environ()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var rep checks.HealthReport
	if err := control.Call(ctx, path, "health", nil, &rep); err != nil {
		fmt.Fprintln(stderr, "steward health: unhealthy:", err)
		return exitUnhealthy
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		fmt.Fprintln(stdout, summary(rep, *ready))
	}
	ok := rep.Healthy
	if *ready {
		ok = rep.Ready
	}
	if ok {
		return exitHealthy
	}
	return exitUnhealthy
}

// configuredSocket finds the control socket a config names, with the
// environment's override; "" when none is set.
func configuredSocket(path string) string {
	environ := os.Environ()
	if path == "" {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, "STEWARD_CONTROL_SOCKET="); ok {
				return v
			}
		}
		return ""
	}
	// The running steward's command line is unknown here; any command
	// satisfies a main program that takes it from there.
	cfg, err := configs.Load(configs.Options{Path: path, Environ: environ, Command: []string{"steward-health"}})
	if err != nil {
		return "" // steward would not run with it either; try the defaults
	}
	return cfg.Control.Socket
}

// summary is one line for Docker's health log: the state and what fails.
func summary(rep checks.HealthReport, ready bool) string {
	var failing []string
	for _, c := range rep.Checks {
		if c.Health && (c.Status == "critical" || c.Status == "unknown") {
			failing = append(failing, c.Name+": "+firstLine(c.Output))
		}
	}
	s := rep.Status
	if ready {
		if rep.Ready {
			s += ", ready"
		} else {
			s += ", not ready: " + strings.Join(rep.NotReady, "; ")
		}
	}
	if len(failing) > 0 {
		s += " (" + strings.Join(failing, "; ") + ")"
	}
	return s
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
