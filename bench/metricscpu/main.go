// Command metricscpu measures the CPU share steward uses for metrics: it
// runs steward as PID 1 of a fresh PID and mount namespace (with its own
// /proc, as in a container) supervising three sleeping programs, once
// with metrics off and once sending to a loopback sink every interval,
// and prints each run's CPU time over the same window as a share of one
// core, the difference, and its ratio to the 0.1 % budget. CPU time is
// read from /proc/PID/task/*/schedstat (nanoseconds), not the 10 ms ticks
// of /proc/PID/stat.
//
// With -vs NAME and a command after the flags, it compares steward with
// metrics on against that other collector (Telegraf, in bench/telegraf.sh)
// instead: the command runs as PID 1 of the same kind of namespace, with
// the same three sleeps as its children (`sleep 100001`, `100002`,
// `100003`, the programs app, worker and cache of steward's config) and
// GRAPHITE_ADDR (the loopback sink, host:port) and METRICS_INTERVAL (e.g.
// 10s) in its environment. The two take turns run by run (steward, other,
// other, steward, ...), and each run's window starts half an interval
// after a burst of lines reached the sink, so that every window holds the
// same number of whole collections. It prints both CPU figures, the lines
// the sink received per interval and the distinct series, CPU per series,
// and the ratios steward/other.
//
// Usage (root): metricscpu -steward ./steward [-interval 10s] [-window 60s]
//
//	metricscpu -steward ./steward -vs telegraf [-runs 2] [-series DIR] -- telegraf --config F
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stewardhq/steward/internal/proc"
	"github.com/stewardhq/steward/internal/testutil"
)

// The sleeps' arguments tell the programs apart for a collector that
// finds processes by their command line.
var programs = []struct{ name, arg string }{{"app", "100001"}, {"worker", "100002"}, {"cache", "100003"}}

// tmp holds steward's configs; removed at exit.
var tmp string

func main() {
	steward := flag.String("steward", "", "steward binary")
	interval := flag.Duration("interval", 10*time.Second, "metrics interval")
	window := flag.Duration("window", 60*time.Second, "measured time per run")
	warmup := flag.Duration("warmup", 12*time.Second, "time before measuring (start-up, first rounds)")
	vs := flag.String("vs", "", "name of another collector to compare with, given as the command after the flags")
	runs := flag.Int("runs", 2, "with -vs: runs of each, taking turns")
	seriesDir := flag.String("series", "", "with -vs: write each one's series names (one round) to DIR/NAME.series")
	flag.Parse()
	if *steward == "" {
		fmt.Fprintln(os.Stderr, "metricscpu: give -steward")
		os.Exit(2)
	}
	if (*vs == "") != (flag.NArg() == 0) {
		fmt.Fprintln(os.Stderr, "metricscpu: -vs NAME goes with a command after the flags")
		os.Exit(2)
	}
	var err error
	if tmp, err = os.MkdirTemp("", "metricscpu-"); err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)
	if *vs != "" {
		compare(*steward, *vs, flag.Args(), *interval, *warmup, *window, *runs, *seriesDir)
		return
	}
	sink := newSink()
	off := run("steward", stewardCmd(*steward, "", *interval), nil, *interval, *warmup, *window)
	on := run("steward", stewardCmd(*steward, sink.addr(), *interval), sink, *interval, *warmup, *window)
	w := window.Seconds()
	share := func(d time.Duration) float64 { return 100 * d.Seconds() / w }
	rounds := w / interval.Seconds()
	fmt.Printf("window %v, interval %v (%.0f collections), %d lines received\n", *window, *interval, rounds, on.lines)
	fmt.Printf("metrics off: %8.3f ms CPU  %.4f %% of a core\n", ms(off.cpu), share(off.cpu))
	fmt.Printf("metrics on:  %8.3f ms CPU  %.4f %% of a core\n", ms(on.cpu), share(on.cpu))
	cost := on.cpu - off.cpu
	fmt.Printf("metrics:     %8.3f ms CPU  %.4f %% of a core, %.2f ms per collection; budget 0.1 %%: %.2fx of it\n",
		ms(cost), share(cost), ms(cost)/rounds, share(cost)/0.1)
}

// compare runs steward with metrics on and the other collector in turns,
// each in a namespace of its own, and prints their figures side by side.
func compare(steward, name string, command []string, interval, warmup, window time.Duration, runs int, seriesDir string) {
	rounds := window.Seconds() / interval.Seconds()
	type tool struct {
		name    string
		start   func(graphite string) *exec.Cmd
		results []result
		series  []string
	}
	tools := []*tool{
		{name: "steward", start: func(g string) *exec.Cmd { return stewardCmd(steward, g, interval) }},
		{name: name, start: func(g string) *exec.Cmd { return collectorCmd(command, g, interval) }},
	}
	fmt.Printf("window %v, interval %v (%.0f collections) per run, %d runs each, taking turns\n", window, interval, rounds, runs)
	for i := 0; i < 2*runs; i++ {
		// steward, other, other, steward, ...: a drift in the machine's
		// load weighs on both alike.
		t := tools[(i+i/2)%2]
		sink := newSink()
		r := run(t.name, t.start(sink.addr()), sink, interval, warmup, window)
		sink.close()
		t.results = append(t.results, r)
		t.series = sink.names()
		fmt.Printf("run %d %-9s %8.3f ms CPU, %5d lines (%.1f per interval), %d series, RSS %.1f MiB\n",
			i/2+1, t.name+":", ms(r.cpu), r.lines, float64(r.lines)/rounds, len(t.series), float64(r.rss)/(1<<20))
	}
	type figure struct {
		cpu          time.Duration
		perInterval  float64
		series       int
		perSeries    time.Duration // CPU per line sent
		rss          int64
		share, perCo float64
	}
	figs := make([]figure, 2)
	for k, t := range tools {
		var cpus, lines, rss []float64
		for _, r := range t.results {
			cpus = append(cpus, float64(r.cpu))
			lines = append(lines, float64(r.lines))
			rss = append(rss, float64(r.rss))
		}
		f := figure{cpu: time.Duration(median(cpus)), perInterval: median(lines) / rounds, series: len(t.series), rss: int64(median(rss))}
		if f.perInterval > 0 {
			f.perSeries = time.Duration(float64(f.cpu) / rounds / f.perInterval)
		}
		f.share = 100 * f.cpu.Seconds() / window.Seconds()
		f.perCo = ms(f.cpu) / rounds
		figs[k] = f
		if seriesDir != "" {
			if err := os.WriteFile(filepath.Join(seriesDir, t.name+".series"), []byte(strings.Join(t.series, "\n")+"\n"), 0o644); err != nil {
				fail(err)
			}
		}
	}
	fmt.Printf("\nmedians over %d runs each:\n", runs)
	fmt.Printf("%-10s %14s %14s %16s %16s %14s %9s\n", "", "CPU per window", "share of core", "per collection", "series/interval", "CPU per series", "RSS")
	for k, t := range tools {
		f := figs[k]
		fmt.Printf("%-10s %11.3f ms %12.4f %% %13.3f ms %16.1f %11.1f µs %5.1f MiB\n",
			t.name, ms(f.cpu), f.share, f.perCo, f.perInterval, float64(f.perSeries)/1e3, float64(f.rss)/(1<<20))
	}
	s, o := figs[0], figs[1]
	if o.cpu <= 0 || o.perSeries <= 0 {
		fail(fmt.Errorf("%s used no CPU or sent nothing: no ratio", name))
	}
	ratio := float64(s.cpu) / float64(o.cpu)
	verdict := "met"
	if ratio > 0.25 {
		verdict = "NOT met"
	}
	fmt.Printf("steward/%s: CPU %.3fx (issue 14's target ≤ 0.25x: %s), CPU per series %.3fx, series per interval %.2fx, RSS %.2fx\n",
		name, ratio, verdict, float64(s.perSeries)/float64(o.perSeries), s.perInterval/o.perInterval, float64(s.rss)/float64(o.rss))
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func fail(err error) {
	os.RemoveAll(tmp)
	fmt.Fprintln(os.Stderr, "metricscpu:", err)
	os.Exit(1)
}

// sink is a loopback Graphite plaintext receiver that counts lines and
// keeps the series names of the latest burst.
type sink struct {
	ln    net.Listener
	mu    sync.Mutex
	lines int64
	last  time.Time           // when the latest line came
	seen  map[string]struct{} // names since start
	conns []net.Conn
}

func newSink() *sink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	s := &sink{ln: ln, seen: map[string]struct{}{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			go s.read(c)
		}
	}()
	return s
}

func (s *sink) addr() string { return s.ln.Addr().String() }

func (s *sink) read(c net.Conn) {
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		name, _, _ := bytes.Cut(sc.Bytes(), []byte(" "))
		s.mu.Lock()
		s.lines++
		s.last = time.Now()
		if _, ok := s.seen[string(name)]; !ok {
			s.seen[string(name)] = struct{}{}
		}
		s.mu.Unlock()
	}
}

func (s *sink) state() (int64, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lines, s.last
}

func (s *sink) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n []string
	for k := range s.seen {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func (s *sink) close() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// stewardCmd runs steward as PID 1 of a fresh PID and mount namespace
// supervising the three sleeps, sending to graphite if it is not empty.
func stewardCmd(steward, graphite string, interval time.Duration) *exec.Cmd {
	conf := fmt.Sprintf("[metrics]\ninterval = %q\n", interval)
	if graphite != "" {
		conf += fmt.Sprintf("[graphite]\naddr = %q\n", graphite)
	}
	for _, p := range programs {
		main := ""
		if p.name == "app" {
			main = "main = true\n"
		}
		conf += fmt.Sprintf("[programs.%s]\n%scommand = [\"sleep\", %q]\n", p.name, main, p.arg)
	}
	path := filepath.Join(tmp, fmt.Sprintf("steward-%d.toml", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		fail(err)
	}
	// A /proc of its own PID namespace, in a mount namespace of its own.
	return nsCmd(`exec "$@"`, steward, "--config", path)
}

// collectorCmd runs command as PID 1 of a fresh PID and mount namespace,
// with the same three sleeps as its children.
func collectorCmd(command []string, graphite string, interval time.Duration) *exec.Cmd {
	var sleeps string
	for _, p := range programs {
		sleeps += "sleep " + p.arg + " & "
	}
	cmd := nsCmd(sleeps+`exec "$@"`, command...)
	cmd.Env = append(os.Environ(), "GRAPHITE_ADDR="+graphite, "METRICS_INTERVAL="+interval.String())
	return cmd
}

func nsCmd(script string, args ...string) *exec.Cmd {
	cmd := exec.Command("sh", append([]string{"-c", `mount --make-rprivate / && mount -t proc proc /proc || exit 1; ` + script, "sh"}, args...)...)
	// Pdeathsig: a namespace whose init dies goes with it, so nothing
	// outlives a metricscpu that failed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	return cmd
}

type result struct {
	cpu   time.Duration
	lines int64 // received during the window
	rss   int64 // bytes, at the window's end
}

// problems are the lines of a run's stderr that report an error or a
// warning: a quiet run prints nothing of it.
func problems(stderr string) []string {
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		low := strings.ToLower(line)
		if strings.Contains(low, "error") || strings.Contains(low, "warn") || strings.Contains(line, " E! ") || strings.Contains(line, " W! ") {
			out = append(out, line)
		}
	}
	return out
}

// run starts cmd, waits warmup, and returns its CPU time over window.
// With a sink, the window starts half an interval after a burst of lines
// (a collection sent), so it holds whole collections, as many for every
// collector whatever its phase.
func run(name string, cmd *exec.Cmd, sink *sink, interval, warmup, window time.Duration) result {
	stderr := &testutil.LockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	pid := cmd.Process.Pid
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second): // a hang guard
			cmd.Process.Kill()
			<-done
		}
		for _, line := range problems(stderr.String()) {
			fmt.Fprintf(os.Stderr, "%s: %s\n", name, line)
		}
	}()
	time.Sleep(warmup)
	if sink != nil {
		deadline := time.Now().Add(warmup + 3*interval)
		for {
			n, last := sink.state()
			if n > 0 && time.Since(last) > 500*time.Millisecond {
				start := last.Add(interval / 2)
				for time.Until(start) < 0 {
					start = start.Add(interval)
				}
				time.Sleep(time.Until(start))
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				fail(fmt.Errorf("%s: no line reached the sink; its stderr:\n%s", name, stderr))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var r result
	before := cpuTime(pid)
	n0, _ := sinkLines(sink)
	time.Sleep(window)
	r.cpu = cpuTime(pid) - before
	n1, _ := sinkLines(sink)
	r.lines = n1 - n0
	r.rss = rss(pid)
	return r
}

func sinkLines(s *sink) (int64, time.Time) {
	if s == nil {
		return 0, time.Time{}
	}
	return s.state()
}

// cpuTime sums the time on CPU of every thread of pid, and of the
// children it reaped (to 10 ms ticks), so that a collector that runs
// helper commands is charged for them.
func cpuTime(pid int) time.Duration {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		fail(err)
	}
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			total += n
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if st, err := proc.ParseStat(bytes.NewBuffer(b)); err == nil {
			total += int64(st.Cutime+st.Cstime) * int64(time.Second) / 100 // USER_HZ
		}
	}
	return time.Duration(total)
}

// rss is pid's resident memory in bytes.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
