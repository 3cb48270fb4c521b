package main

import (
	"context"
	"encoding/json"
	"errors"
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
	path, ok := socketPath("health", *socket, *cfgPath, stderr)
	if !ok {
		return exitUsage
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
	good := rep.Healthy
	if *ready {
		good = rep.Ready
	}
	if good {
		return exitHealthy
	}
	return exitUnhealthy
}

// socketPath is the control socket a command calls: the --socket flag, or
// the one the config names (only control.socket and STEWARD_CONTROL_SOCKET
// are read, so a problem elsewhere in the config does not matter), or the
// first default path where a socket exists in a directory only this user or
// root controls. When the config keeps the socket from being known, or the
// only socket found is in a directory another user controls, it says so and
// ok is false: falling back could reach another steward, or a fake one.
func socketPath(command, flagSocket, cfgPath string, stderr io.Writer) (path string, ok bool) {
	if flagSocket != "" {
		return flagSocket, true
	}
	configured, err := configs.ControlSocket(cfgPath, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "steward %s: cannot tell which control socket to use (give --socket to choose):\n", command)
		var cerr *configs.Error
		if errors.As(err, &cerr) {
			for _, p := range cerr.Problems {
				fmt.Fprintln(stderr, p.String())
			}
		} else {
			fmt.Fprintln(stderr, err)
		}
		return "", false
	}
	path, refused := control.FindSocket(control.SocketPaths(configured, os.Environ()))
	if refused != nil {
		if _, err := os.Stat(path); err != nil {
			fmt.Fprintf(stderr, "steward %s: refusing the control socket found (give --socket to choose):\n%v\n", command, refused)
			return "", false
		}
	}
	return path, true
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
