package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/stewardhq/steward/control"
	"github.com/stewardhq/steward/control/commands"
	"github.com/stewardhq/steward/supervisor"
)

// Exit codes of the control commands.
const (
	exitNotRunning = 3 // status: some program is not running (LSB's "not running")
)

// ctlFlags are the flags every control command takes.
type ctlFlags struct {
	fs      *flag.FlagSet
	cfgPath *string
	socket  *string
	timeout *time.Duration
}

func newCtlFlags(name, usage string, stderr io.Writer, timeout time.Duration) ctlFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, "Usage: steward %s\n\nFlags:\n", usage); fs.PrintDefaults() }
	f := ctlFlags{fs: fs}
	f.cfgPath = fs.String("config", os.Getenv("STEWARD_CONFIG"), "config file (TOML), to find the socket")
	fs.StringVar(f.cfgPath, "c", *f.cfgPath, "config file (short for --config)")
	f.socket = fs.String("socket", "", "control socket (default: from the config, STEWARD_CONTROL_SOCKET, or the default paths)")
	f.timeout = fs.Duration("timeout", timeout, "give up after this long")
	return f
}

// path is the socket to call; ok is false when the config keeps it from
// being known (the problem is printed: the command exits 2).
func (f ctlFlags) path(stderr io.Writer) (path string, ok bool) {
	return socketPath(f.fs.Name(), *f.socket, *f.cfgPath, stderr)
}

// ctlCommand runs one of the control commands against the running steward.
func ctlCommand(command string, args []string, stdout, stderr io.Writer) int {
	switch command {
	case "status":
		return ctlStatus(args, stdout, stderr)
	case "start", "stop", "restart":
		return ctlAct(command, args, stdout, stderr)
	case "signal":
		return ctlSignal(args, stdout, stderr)
	case "logs":
		return ctlLogs(args, stdout, stderr)
	case "reload":
		return ctlReload(args, stdout, stderr)
	}
	return exitUsage
}

func ctlStatus(args []string, stdout, stderr io.Writer) int {
	f := newCtlFlags("status", "status [--json]", stderr, 10*time.Second)
	asJSON := f.fs.Bool("json", false, "print JSON")
	if err := f.fs.Parse(args); err != nil {
		return flagExit(err)
	}
	path, ok := f.path(stderr)
	if !ok {
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *f.timeout)
	defer cancel()
	var programs []commands.ProgramInfo
	if err := control.Call(ctx, path, "status", nil, &programs); err != nil {
		fmt.Fprintln(stderr, "steward status:", err)
		return exitFailed
	}
	code := 0
	for _, p := range programs {
		if p.State != supervisor.StateRunning.String() && p.State != supervisor.StateCompleted.String() {
			code = exitNotRunning
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(programs)
		return code
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROGRAM\tSTATE\tPID\tUPTIME\tRESTARTS\tLAST EXIT\tREADY")
	for _, p := range programs {
		name := p.Name
		if p.Main {
			name += " (main)"
		}
		pid, uptime, last := "-", "-", "-"
		if p.PID != 0 {
			pid = strconv.Itoa(p.PID)
			uptime = (time.Duration(p.UptimeSeconds) * time.Second).String()
		}
		if p.LastExitCode != nil {
			last = strconv.Itoa(*p.LastExitCode)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%v\n", name, p.State, pid, uptime, p.Restarts, last, p.Ready)
	}
	tw.Flush()
	return code
}

func ctlAct(command string, args []string, stdout, stderr io.Writer) int {
	f := newCtlFlags(command, command+" [--timeout D] PROGRAM...|all", stderr, commands.DefaultActTimeout)
	if err := f.fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if f.fs.NArg() == 0 {
		f.fs.Usage()
		return exitUsage
	}
	return callPrograms(f, command, commands.ProgramsArgs{Programs: f.fs.Args(), Timeout: *f.timeout}, stdout, stderr)
}

func ctlSignal(args []string, stdout, stderr io.Writer) int {
	f := newCtlFlags("signal", "signal SIGNAL PROGRAM...|all", stderr, 10*time.Second)
	if err := f.fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if f.fs.NArg() < 2 {
		f.fs.Usage()
		return exitUsage
	}
	return callPrograms(f, "signal", commands.ProgramsArgs{Signal: f.fs.Arg(0), Programs: f.fs.Args()[1:]}, stdout, stderr)
}

// callPrograms sends a command on programs and prints "name: state" or
// "name: ERROR (...)" per program, as supervisorctl does.
func callPrograms(f ctlFlags, command string, args commands.ProgramsArgs, stdout, stderr io.Writer) int {
	path, ok := f.path(stderr)
	if !ok {
		return exitUsage
	}
	// The steward side waits up to the timeout; the call gets a margin.
	ctx, cancel := context.WithTimeout(context.Background(), *f.timeout+5*time.Second)
	defer cancel()
	var results []commands.ProgramResult
	if err := control.Call(ctx, path, command, args, &results); err != nil {
		fmt.Fprintf(stderr, "steward %s: %v\n", command, err)
		return exitFailed
	}
	code := 0
	for _, r := range results {
		switch {
		case r.Error != "":
			fmt.Fprintf(stdout, "%s: ERROR (%s)\n", r.Name, r.Error)
			code = exitFailed
		case command == "signal":
			fmt.Fprintf(stdout, "%s: signalled %s\n", r.Name, args.Signal)
		default:
			fmt.Fprintf(stdout, "%s: %s\n", r.Name, r.State)
		}
	}
	return code
}

func ctlLogs(args []string, stdout, stderr io.Writer) int {
	f := newCtlFlags("logs", "logs [-f] [-n N] [--timestamps] PROGRAM", stderr, 10*time.Second)
	follow := f.fs.Bool("f", false, "follow: print new lines as they come, until interrupted")
	lines := f.fs.Int("n", 100, "how many recent lines (0: none, -1: all kept)")
	stamps := f.fs.Bool("timestamps", false, "prefix each line with its time and stream")
	if err := f.fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if f.fs.NArg() != 1 {
		f.fs.Usage()
		return exitUsage
	}
	path, ok := f.path(stderr)
	if !ok {
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *f.timeout)
	if *follow {
		ctx, cancel = signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	}
	defer cancel()
	err := control.Stream(ctx, path, "logs", commands.LogsArgs{Program: f.fs.Arg(0), Lines: *lines, Follow: *follow},
		func(raw json.RawMessage) error {
			var rec supervisor.LogRecord
			if err := json.Unmarshal(raw, &rec); err != nil {
				return err
			}
			var b strings.Builder
			if *stamps {
				b.WriteString(rec.Time.Format(time.RFC3339Nano) + " " + rec.Source + " ")
			}
			b.WriteString(rec.Text)
			if !rec.Partial {
				b.WriteByte('\n')
			}
			_, err := io.WriteString(stdout, b.String())
			return err
		})
	if err != nil && !(*follow && errors.Is(err, context.Canceled)) {
		fmt.Fprintln(stderr, "steward logs:", err)
		return exitFailed
	}
	return 0
}

func ctlReload(args []string, stdout, stderr io.Writer) int {
	f := newCtlFlags("reload", "reload", stderr, commands.DefaultActTimeout)
	if err := f.fs.Parse(args); err != nil {
		return flagExit(err)
	}
	path, ok := f.path(stderr)
	if !ok {
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *f.timeout)
	defer cancel()
	var res reloadResult
	if err := control.Call(ctx, path, "reload", nil, &res); err != nil {
		fmt.Fprintln(stderr, "steward reload:", err)
		return exitFailed
	}
	for _, group := range []struct {
		what  string
		names []string
	}{{"added", res.Added}, {"removed", res.Removed}, {"changed", res.Changed}} {
		for _, n := range group.names {
			fmt.Fprintf(stdout, "%s: %s\n", n, group.what)
		}
	}
	if len(res.Added)+len(res.Removed)+len(res.Changed) == 0 {
		fmt.Fprintln(stdout, "no program changed")
	}
	if len(res.NotApplied) > 0 {
		fmt.Fprintf(stdout, "changed but applied only when steward starts again: %s\n", strings.Join(res.NotApplied, ", "))
	}
	return 0
}
