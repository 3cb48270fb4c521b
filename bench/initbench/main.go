// Command initbench measures init programs side by side, each as PID 1 of a
// fresh PID namespace, and prints medians and ratios:
//
//   - startup: exec of the init -> first instruction of the main program
//   - rss: resident memory of the init while it supervises sleep
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
	flag.DurationVar(&budget, "budget", 30*time.Second, "time per measurement and init, after at least 3 runs (supervisord takes about a second to start)")
	flag.Parse()
	var inits []initProg
	for _, arg := range flag.Args() {
		name, cmd, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintln(os.Stderr, "initbench: want name=cmd,arg,...:", arg)
			os.Exit(2)
		}
		inits = append(inits, initProg{name, strings.Split(cmd, ",")})
	}
	type row struct {
		name                     string
		startup, reap, stop, rss float64
	}
	var rows []row
	for _, in := range inits {
		r := row{name: in.name}
		r.startup = median(repeat(*runs, func() float64 { return startup(in, *stamp) }))
		r.rss = median(repeat(*slowRuns, func() float64 { return rss(in) }))
		r.reap = median(repeat(*slowRuns, func() float64 { return reap(in, *orphans, *zombies) }))
		r.stop = median(repeat(*slowRuns, func() float64 { return stop(in) }))
		rows = append(rows, r)
		fmt.Fprintf(os.Stderr, "measured %s\n", in.name)
	}
	var b row
	for _, r := range rows {
		if r.name == *base {
			b = r
		}
	}
	ratio := func(v, base float64) string {
		if base <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", v/base)
	}
	fmt.Printf("%-14s %12s %8s %10s %8s %12s %8s %10s %8s\n", "init", "startup_us", "ratio", "rss_kib", "ratio",
		fmt.Sprintf("reap%dk_ms", *zombies/1000), "ratio", "stop_ms", "ratio")
	for _, r := range rows {
		reap := fmt.Sprintf("%.1f", r.reap)
		if r.reap > float64(reapLimit.Milliseconds()) {
			reap = fmt.Sprintf(">%d", reapLimit.Milliseconds())
		}
		fmt.Printf("%-14s %12.0f %8s %10.0f %8s %12s %8s %10.2f %8s\n", r.name,
			r.startup, ratio(r.startup, b.startup), r.rss, ratio(r.rss, b.rss),
			reap, ratio(r.reap, b.reap), r.stop, ratio(r.stop, b.stop))
	}
	fmt.Printf("(medians; startup over up to %d runs, the rest over up to %d, each within %s; ratios against %s)\n", *runs, *slowRuns, budget, *base)
}

// budget bounds each measurement of each init: slow inits get fewer runs.
var budget time.Duration

// reapLimit is how long an init may take to reap the zombies.
const reapLimit = 30 * time.Second

func repeat(n int, f func() float64) []float64 {
	out := make([]float64, 0, n)
	start := time.Now()
	for i := 0; i < n && (i < 3 || time.Since(start) < budget); i++ {
		if v := f(); v >= 0 {
			out = append(out, v)
		}
	}
	return out
}

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

// command runs the init as PID 1 of a new PID namespace.
func command(in initProg, main ...string) *exec.Cmd {
	argv := append(slices.Clone(in.argv), main...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	cmd.Env = append(os.Environ(), "STEWARD_LOG_LEVEL=warn")
	return cmd
}

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
	t1, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil {
		return -1
	}
	return float64(t1-t0) / 1e3
}

// rss: KiB resident of the init, once it has run sleep for a while.
func rss(in initProg) float64 {
	cmd := command(in, sleepPath(), "1000")
	if err := cmd.Start(); err != nil {
		fail(in, err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	waitChild(cmd.Process.Pid, "sleep")
	time.Sleep(300 * time.Millisecond)
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return float64(n)
		}
	}
	return -1
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
	line, _ := bufio.NewReader(out).ReadString('\n')
	fields := strings.Fields(line)
	if len(fields) != 2 {
		return -1
	}
	t0, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		return -1
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
	for countChildren(pid) > 1 {
		if time.Now().After(deadline) {
			return float64(reapLimit.Milliseconds()) + 1 // printed as "> limit"
		}
	}
	return float64(monotonicNs()-t0) / 1e6
}

// stop: milliseconds from SIGTERM to the init's exit.
func stop(in initProg) float64 {
	cmd := command(in, sleepPath(), "1000")
	if err := cmd.Start(); err != nil {
		fail(in, err)
	}
	waitChild(cmd.Process.Pid, "sleep")
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
