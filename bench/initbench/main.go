// Command initbench measures init programs side by side, each as PID 1 of a
// fresh PID namespace, and prints medians and ratios:
//
//   - startup: exec of the init -> first instruction of the main program
//   - rss: resident memory of the init while it supervises sleep, all of
//     it and its anonymous part; with -hold, also after that long
//   - reap: time for the init to reap 10,000 orphaned zombies
//   - stop: SIGTERM to the init -> the init has exited, sleep stopping at once
//
// Usage: initbench -stamp STAMP -orphans ORPHANS name=cmd,arg,... ...
// where each init's command is followed by the main program's argv.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type initProg struct {
	name string
	argv []string // the main program's argv is appended
}

func main() {
	stamp := flag.String("stamp", "", "path of the stamp program")
	orphans := flag.String("orphans", "", "path of the orphans program")
	runs := flag.Int("runs", 200, "startup runs per init")
	slowRuns := flag.Int("slow-runs", 15, "runs of the rss, reap and stop measurements")
	zombies := flag.Int("zombies", 10000, "zombies to reap")
	base := flag.String("base", "minigo", "the init other figures are compared with")
	hold := flag.Duration("hold", 0, "also read every init's RSS after it has run this long (all at once, side by side); 0: not")
	flag.DurationVar(&stopSettle, "stop-settle", 0, "how long each init runs its program before the SIGTERM of the stop measurement")
	flag.DurationVar(&budget, "budget", 30*time.Second, "time per measurement and init, after at least 3 runs (supervisord takes about a second to start)")
	flag.Parse()
	// A shell starts background commands with INT and QUIT ignored, and an
	// ignored signal is inherited through exec: steward would then start
	// its programs through its chain loader to pass that on (issue 9), a
	// second Go start. Caught here, they are at their defaults in the inits.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGTERM)
	go func() { <-sigs; os.Exit(130) }()
	var inits []initProg
	for _, arg := range flag.Args() {
		name, cmd, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintln(os.Stderr, "initbench: want name=cmd,arg,...:", arg)
			os.Exit(2)
		}
		inits = append(inits, initProg{name, strings.Split(cmd, ",")})
	}
	var err error
	if scratch, err = os.MkdirTemp("", "initbench"); err != nil {
		fmt.Fprintln(os.Stderr, "initbench:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(scratch)
	// The inits take turns run by run, so the machine's changing load hits
	// them alike and the ratios of one run compare like with like.
	startups := alternate(inits, *runs, func(in initProg) float64 { return startup(in, *stamp) })
	fmt.Fprintln(os.Stderr, "measured startup")
	// One run gives both figures; anons[i] pairs with rsses[i] run by run.
	anons := make([][]float64, len(inits))
	rsses := alternate(inits, *slowRuns, func(in initProg) float64 {
		m := rss(in, 300*time.Millisecond)
		for i := range inits {
			if inits[i].name == in.name {
				anons[i] = append(anons[i], m.anon)
			}
		}
		return m.total
	})
	fmt.Fprintln(os.Stderr, "measured rss")
	reaps := alternate(inits, *slowRuns, func(in initProg) float64 { return reap(in, *orphans, *zombies) })
	fmt.Fprintln(os.Stderr, "measured reap")
	stops := alternate(inits, *slowRuns, stop)
	fmt.Fprintln(os.Stderr, "measured stop")
	type row struct {
		name                           string
		startup, reap, stop, rss, anon float64
	}
	var rows []row
	for i, in := range inits {
		rows = append(rows, row{in.name, median(startups[i]), median(reaps[i]), median(stops[i]), median(rsses[i]), median(anons[i])})
	}
	var b row
	for _, r := range rows {
		if r.name == *base {
			b = r
		}
	}
	ratio := func(v, base float64) string {
		if base <= 0 || v < 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", v/base)
	}
	fmt.Printf("%-14s %12s %8s %10s %8s %9s %12s %8s %10s %8s\n", "init", "startup_us", "ratio", "rss_kib", "ratio", "anon_kib",
		fmt.Sprintf("reap%dk_ms", *zombies/1000), "ratio", "stop_ms", "ratio")
	for _, r := range rows {
		reap := fmt.Sprintf("%.1f", r.reap)
		if r.reap > float64(reapLimit.Milliseconds()) {
			reap = fmt.Sprintf(">%d", reapLimit.Milliseconds())
		}
		fmt.Printf("%-14s %12.0f %8s %10.0f %8s %9.0f %12s %8s %10.2f %8s\n", r.name,
			r.startup, ratio(r.startup, b.startup), r.rss, ratio(r.rss, b.rss), r.anon,
			reap, ratio(r.reap, b.reap), r.stop, ratio(r.stop, b.stop))
	}
	fmt.Printf("(medians; runs alternate between the inits; startup over up to %d runs, the rest over up to %d, each within %s; ratios against %s)\n", *runs, *slowRuns, budget, *base)
	if *hold > 0 {
		held := holdRSS(inits, *hold)
		fmt.Printf("\n%-14s %10s %8s %9s   (RSS after %s, all inits side by side)\n", "init", "rss_kib", "ratio", "anon_kib", *hold)
		var bh memory
		for i, in := range inits {
			if in.name == *base {
				bh = held[i]
			}
		}
		for i, in := range inits {
			fmt.Printf("%-14s %10.0f %8s %9.0f\n", in.name, held[i].total, ratio(held[i].total, bh.total), held[i].anon)
		}
	}
}

// scratch holds each run's control socket.
var scratch string

// alternate runs f for each init in turn, n rounds, each init within its
// own time budget (slow inits drop out of later rounds after 3 runs).
func alternate(inits []initProg, n int, f func(initProg) float64) [][]float64 {
	out := make([][]float64, len(inits))
	spent := make([]time.Duration, len(inits))
	for i := 0; i < n; i++ {
		for j, in := range inits {
			if i >= 3 && spent[j] > budget {
				continue
			}
			t := time.Now()
			if v := f(in); v >= 0 {
				out[j] = append(out[j], v)
			}
			spent[j] += time.Since(t)
		}
	}
	return out
}

// budget bounds each measurement of each init: slow inits get fewer runs.
var budget time.Duration

// reapLimit is how long an init may take to reap the zombies.
const reapLimit = 30 * time.Second

func median(v []float64) float64 {
	if len(v) == 0 {
		return -1
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func monotonicNs() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// command runs the init as PID 1 of a new PID namespace. steward's HTTP
// endpoint and control socket are on, as by default, but on a port and
// path of their own, as is the Fluentd spool, so runs do not share them.
func command(in initProg, main ...string) *exec.Cmd {
	argv := append(slices.Clone(in.argv), main...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	runN++
	cmd.Env = append(os.Environ(), "STEWARD_LOG_LEVEL=warn", "STEWARD_HTTP_ADDR=127.0.0.1:0",
		fmt.Sprintf("STEWARD_CONTROL_SOCKET=%s/%d.sock", scratch, runN))
	if slices.Contains(in.argv, "--config") {
		// A config with [fluentd] (setting the variable without one would
		// configure Fluentd): each run gets a fresh spool, as a new
		// container would.
		cmd.Env = append(cmd.Env, fmt.Sprintf("STEWARD_FLUENTD_SPOOL_DIR=%s/spool-%d", scratch, runN))
	}
	return cmd
}

var runN int

// startup: microseconds from just before the init's fork+exec to the
// stamp's first instruction.
func startup(in initProg, stamp string) float64 {
	cmd := command(in, stamp)
	out, _ := cmd.StdoutPipe()
	t0 := monotonicNs()
	if err := cmd.Start(); err != nil {
		fail(in, err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	// supervisord stays up after its program ends; the figure is taken.
	cmd.Process.Kill()
	cmd.Wait()
	// The last field: steward prefixes lines with the program's name when
	// it runs several.
	f := strings.Fields(line)
	if len(f) == 0 {
		return -1
	}
	t1, err := strconv.ParseInt(f[len(f)-1], 10, 64)
	if err != nil {
		return -1
	}
	return float64(t1-t0) / 1e3
}

// memory is what an init has resident, in KiB: all of it (VmRSS) and its
// anonymous part (RssAnon: heap, stacks, not the pages of its binary).
type memory struct{ total, anon float64 }

// rss: the init's memory once it has run sleep for wait.
func rss(in initProg, wait time.Duration) memory {
	cmd := command(in, sleepPath(), "100000")
	if err := cmd.Start(); err != nil {
		fail(in, err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	waitChild(cmd.Process.Pid, "sleep")
	time.Sleep(wait)
	return readMemory(cmd.Process.Pid)
}

// holdRSS starts every init at once and reads their memory after wait.
func holdRSS(inits []initProg, wait time.Duration) []memory {
	cmds := make([]*exec.Cmd, len(inits))
	for i, in := range inits {
		cmds[i] = command(in, sleepPath(), "100000")
		if err := cmds[i].Start(); err != nil {
			fail(in, err)
		}
		defer func() { cmds[i].Process.Kill(); cmds[i].Wait() }()
	}
	for _, c := range cmds {
		waitChild(c.Process.Pid, "sleep")
	}
	time.Sleep(wait)
	out := make([]memory, len(inits))
	for i, c := range cmds {
		out[i] = readMemory(c.Process.Pid)
	}
	return out
}

func readMemory(pid int) memory {
	m := memory{-1, -1}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.Atoi(f[0])
		switch k {
		case "VmRSS":
			m.total = float64(n)
		case "RssAnon":
			m.anon = float64(n)
		}
	}
	return m
}

// reap: milliseconds from the zombies' parent exiting to the init having
// no children left but the main program.
func reap(in initProg, orphans string, n int) float64 {
	cmd := command(in, orphans, strconv.Itoa(n))
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		fail(in, err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	waitChild(cmd.Process.Pid, "orphans")
	line, _ := bufio.NewReader(out).ReadString('\n')
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return -1
	}
	fields = fields[len(fields)-2:]
	t0, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		return -1
	}
	// The init's children that are not zombies are its programs (a
	// multi-program config has several, forked in any order around the
	// main program): the orphans' zombies come only once their parent
	// exits, and it forks them for far longer than an init takes to fork
	// its programs.
	programs := 0
	for _, c := range children(cmd.Process.Pid) {
		if b, err := os.ReadFile("/proc/" + c + "/stat"); err == nil && !strings.Contains(string(b), ") Z ") {
			programs++
		}
	}
	// The zombies are the init's only once their parent has exited (it is
	// then a zombie itself, or reaped, in the main program's hands).
	parent := "/proc/" + hostPID(cmd.Process.Pid, fields[1]) + "/stat"
	for {
		b, err := os.ReadFile(parent)
		if err != nil || strings.Contains(string(b), ") Z ") {
			break
		}
	}
	pid := cmd.Process.Pid
	deadline := time.Now().Add(reapLimit)
	for countChildren(pid) > programs {
		if time.Now().After(deadline) {
			return float64(reapLimit.Milliseconds()) + 1 // printed as "> limit"
		}
	}
	return float64(monotonicNs()-t0) / 1e6
}

// stop: milliseconds from SIGTERM to the init's exit.
var stopSettle time.Duration

func stop(in initProg) float64 {
	cmd := command(in, sleepPath(), "100000")
	if err := cmd.Start(); err != nil {
		fail(in, err)
	}
	waitChild(cmd.Process.Pid, "sleep")
	time.Sleep(stopSettle)
	t0 := monotonicNs()
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	return float64(monotonicNs()-t0) / 1e6
}

// children of pid, over all its threads (orphans are reparented to any).
func children(pid int) []string {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []string
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		out = append(out, strings.Fields(string(b))...)
	}
	return out
}

func countChildren(pid int) int { return len(children(pid)) }

// hostPID finds the host pid of the process whose pid is nsPID in the
// namespace of init, by searching init's grandchildren.
func hostPID(init int, nsPID string) string {
	for _, c := range children(init) {
		for _, g := range children(atoi(c)) {
			b, _ := os.ReadFile("/proc/" + g + "/status")
			for line := range strings.SplitSeq(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
					f := strings.Fields(v)
					if f[len(f)-1] == nsPID {
						return g
					}
				}
			}
		}
	}
	return "0" // already gone
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// waitChild waits until the init has a child running comm.
func waitChild(pid int, comm string) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		for _, c := range children(pid) {
			if b, _ := os.ReadFile("/proc/" + c + "/comm"); strings.TrimSpace(string(b)) == comm {
				return
			}
		}
	}
}

// sleepPath is absolute: minigo, like any minimal init, does no PATH lookup.
func sleepPath() string {
	p, err := exec.LookPath("sleep")
	if err != nil {
		fmt.Fprintln(os.Stderr, "initbench: no sleep:", err)
		os.Exit(1)
	}
	return p
}

func fail(in initProg, err error) {
	fmt.Fprintf(os.Stderr, "initbench: %s: %v\n", in.name, err)
	os.Exit(1)
}
