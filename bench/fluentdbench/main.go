// Command fluentdbench measures log forwarding through steward: a real
// program (bench/c/lines.c) writes 100-byte lines to stdout as fast as it
// can; steward, as PID 1 of a fresh PID namespace, copies them to its own
// stdout and forwards them in acknowledged PackedForward batches to a
// Forward Protocol peer (fluentdtest) in this process, which checks every
// line by its sequence number. It prints lines per second and steward's
// CPU seconds per million lines, and in the same run the baseline:
// fluent-logger-golang posting one record at a time with RequestAck.
//
// Usage: fluentdbench -steward BIN -lines BIN [-n 1000000] [-runs 3]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/stewardhq/steward/internal/proc"
	"github.com/stewardhq/steward/internal/testutil"
	"github.com/stewardhq/steward/shippers/fluentd/fluentdtest"
)

var trace *bool

func main() {
	steward := flag.String("steward", "", "steward binary")
	lines := flag.String("lines", "", "the line writer (bench/c/lines.c)")
	n := flag.Int("n", 1000000, "lines per run")
	runs := flag.Int("runs", 3, "runs")
	baseline := flag.Duration("baseline", 5*time.Second, "how long the baseline posts")
	compress := flag.String("compress", "none", "fluentd.compress for steward")
	trace = flag.Bool("trace", false, "print arrival milestones, timings and steward's log per run")
	cpuprofile := flag.String("cpuprofile", "", "write this process's (the peer's) CPU profile here")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if *steward == "" || *lines == "" {
		fmt.Fprintln(os.Stderr, "usage: fluentdbench -steward BIN -lines BIN")
		os.Exit(2)
	}
	var rates, cpus []float64
	for i := range *runs {
		rate, cpu, err := runSteward(*steward, *lines, *n, *compress)
		if err != nil {
			fmt.Fprintf(os.Stderr, "run %d: %v\n", i+1, err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
		fmt.Printf("run %d: %s lines/s, steward CPU %.2f s per million lines\n", i+1, group(rate), cpu)
		rates, cpus = append(rates, rate), append(cpus, cpu)
	}
	base, err := runBaseline(*baseline)
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
	rate, cpu := median(rates), median(cpus)
	fmt.Println()
	fmt.Printf("steward -> peer, acked batches (compress=%s): %s lines/s (median of %d), %.2f CPU s per million lines\n",
		*compress, group(rate), *runs, cpu)
	fmt.Printf("fluent-logger-golang, one record per Post, RequestAck: %s records/s\n", group(base))
	fmt.Printf("throughput: %s lines/s vs target 200,000: %s\n", group(rate), verdict(rate >= 200000))
	fmt.Printf("ratio to baseline: %.1fx vs target 30x: %s\n", rate/base, verdict(rate/base >= 30))
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// runSteward returns lines per second (from steward's start to the last
// line at the peer) and steward's CPU seconds per million lines.
func runSteward(steward, lines string, n int, compress string) (float64, float64, error) {
	var mu sync.Mutex
	seen := make([]bool, n)
	unique := 0
	done := make(chan struct{})
	var first, last time.Time
	peer, err := fluentdtest.Listen("tcp", "127.0.0.1:0", fluentdtest.Config{OnEvent: func(e fluentdtest.Event) {
		v, _ := e.Field("log")
		s, _ := v.(string)
		seq, err := strconv.Atoi(strings.TrimSpace(s[:min(len(s), 10)]))
		mu.Lock()
		defer mu.Unlock()
		if err != nil || seq < 0 || seq >= n || seen[seq] {
			return
		}
		seen[seq] = true
		if unique == 0 {
			first = time.Now()
		}
		unique++
		if *trace && unique%100000 == 0 {
			fmt.Fprintf(os.Stderr, "    %d at %v\n", unique, time.Since(first).Round(time.Millisecond))
		}
		if unique == n {
			last = time.Now()
			close(done)
		}
	}})
	if err != nil {
		return 0, 0, err
	}
	defer peer.Close()
	dir, err := os.MkdirTemp("", "fluentdbench-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	conf := filepath.Join(dir, "steward.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`
[steward]
app = "bench"
log_level = "warn"
[fluentd]
address = %q
spool_dir = %q
compress = %q
[programs.writer]
main = true
command = [%q, "%d"]
`, peer.Addr(), filepath.Join(dir, "spool"), compress, lines, n)), 0o644)
	cmd := exec.Command(steward, "--config", conf)
	devNull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devNull.Close()
	var stderr testutil.LockedBuffer
	cmd.Stdout, cmd.Stderr = devNull, &stderr
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	}
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer cmd.Process.Kill()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-done:
	case err := <-exited:
		return 0, 0, fmt.Errorf("steward exited (%v) with %d of %d lines delivered:\n%s", err, unique, n, stderr.String())
	case <-time.After(5 * time.Minute):
		return 0, 0, fmt.Errorf("only %d of %d lines arrived; steward said:\n%s", unique, n, stderr.String())
	}
	cpu := cpuSeconds(cmd.Process.Pid)
	var ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	peerCPU := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	cmd.Process.Signal(syscall.SIGTERM)
	<-exited
	if *trace {
		fmt.Fprint(os.Stderr, stderr.String())
	}
	mu.Lock()
	elapsed := last.Sub(start)
	if *trace {
		fmt.Fprintf(os.Stderr, "  start->first line %v, first->last line %v, peer CPU %v, steward CPU %.2fs\n", first.Sub(start).Round(time.Millisecond), last.Sub(first).Round(time.Millisecond), peerCPU.Round(time.Millisecond), cpu)
	}
	mu.Unlock()
	return float64(n) / elapsed.Seconds(), cpu / (float64(n) / 1e6), nil
}

// cpuSeconds reads utime+stime of pid from /proc (clock ticks of 1/100 s).
func cpuSeconds(pid int) float64 {
	st, err := proc.ReadStat("/proc", pid)
	if err != nil {
		return 0
	}
	return float64(st.Utime+st.Stime) / 100
}

// runBaseline posts records like steward's, one at a time, each waiting
// for its ack, and returns records per second.
func runBaseline(d time.Duration) (float64, error) {
	var count int
	peer, err := fluentdtest.Listen("tcp", "127.0.0.1:0", fluentdtest.Config{})
	if err != nil {
		return 0, err
	}
	defer peer.Close()
	host, port, _ := strings.Cut(peer.HostPort(), ":")
	p, _ := strconv.Atoi(port)
	logger, err := fluent.New(fluent.Config{FluentHost: host, FluentPort: p, RequestAck: true, SubSecondPrecision: true})
	if err != nil {
		return 0, err
	}
	defer logger.Close()
	line := strings.Repeat("x", 99)
	start := time.Now()
	for time.Since(start) < d {
		rec := map[string]any{"log": line, "source": "stdout", "program": "writer", "app": "bench",
			"version": "unknown", "host": "bench", "pid": 2}
		if err := logger.Post("bench.writer", rec); err != nil {
			return 0, err
		}
		count++
	}
	return float64(count) / time.Since(start).Seconds(), nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// group writes 1234567 as 1,234,567.
func group(f float64) string {
	s := strconv.FormatInt(int64(f), 10)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
