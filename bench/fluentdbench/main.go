// Command fluentdbench measures log forwarding through steward: a real
// program (bench/c/lines.c) writes 100-byte lines to stdout as fast as it
// can; steward, as PID 1 of a fresh PID namespace, copies them to its own
// stdout and forwards them in acknowledged PackedForward batches to a
// Forward Protocol peer (fluentdtest) in this process, which checks every
// line by its sequence number. It runs steward against a fast peer and
// against a slow one (which takes in -slow-rate records/s, like Fluentd
// 1.16 with a file output), and prints for each lines per second, steward's
// CPU seconds per million lines, the duplicates the peer saw and steward's
// peak RSS (VmHWM); with -base, the same for an older steward binary,
// runs interleaved, and the ratios; and the baseline: fluent-logger-golang
// posting one record at a time with RequestAck.
//
// Usage: fluentdbench -steward BIN -lines BIN [-base OLDBIN] [-n 1000000] [-runs 3] [-slow-rate 15000]
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

// stewardBin is one steward binary to measure, labelled.
type stewardBin struct{ label, path string }

// result is one run of steward against a peer.
type result struct {
	rate, cpu   float64 // lines/s, CPU s per million lines
	dups        int
	perMsg      int // records per message at the (last) peer
	hwmKiB      int // steward's VmHWM
	rates, cpus []float64
}

func main() {
	steward := flag.String("steward", "", "steward binary")
	base := flag.String("base", "", "an older steward binary to measure in the same run (before/after)")
	lines := flag.String("lines", "", "the line writer (bench/c/lines.c)")
	n := flag.Int("n", 1000000, "lines per run")
	runs := flag.Int("runs", 3, "runs against the fast peer")
	slowRate := flag.Float64("slow-rate", 15000, "records/s the slow peer takes in, like Fluentd 1.16 with a file output (0: no slow run)")
	slowN := flag.Int("slow-n", 1000000, "lines of the slow run")
	baseline := flag.Duration("baseline", 5*time.Second, "how long the fluent-logger-golang baseline posts (0: none)")
	compress := flag.String("compress", "none", "fluentd.compress for steward")
	trace = flag.Bool("trace", false, "print arrival milestones, timings and steward's log per run")
	cpuprofile := flag.String("cpuprofile", "", "write this process's (the peer's) CPU profile here")
	sweep := flag.String("batch-sweep", "", "batch_bytes values (e.g. 64KiB,128KiB,256KiB,1MiB): for each, a fast run and a run with the peer killed at 30%, and nothing else")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if *steward == "" || *lines == "" {
		fmt.Fprintln(os.Stderr, "usage: fluentdbench -steward BIN -lines BIN [-base OLDBIN]")
		os.Exit(2)
	}
	if *sweep != "" {
		batchSweep(*steward, *lines, *n, *compress, strings.Split(*sweep, ","))
		return
	}
	bins := []stewardBin{{"steward", *steward}}
	if *base != "" {
		bins = append(bins, stewardBin{"base", *base})
	}
	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	fast := map[string]result{}
	slow := map[string]result{}
	// Runs alternate between the binaries, so that both see the same
	// load on a shared machine.
	for i := range *runs {
		for _, b := range bins {
			r, err := runSteward(b.path, *lines, *n, *compress, 0)
			if err != nil {
				fail(fmt.Sprintf("%s run %d", b.label, i+1), err)
			}
			fmt.Printf("%s fast run %d: %s lines/s, CPU %.2f s per million lines, %d duplicates, VmHWM %.1f MiB\n",
				b.label, i+1, group(r.rate), r.cpu, r.dups, float64(r.hwmKiB)/1024)
			fast[b.label] = merge(fast[b.label], r, i)
		}
	}
	if *slowRate > 0 {
		for _, b := range bins {
			r, err := runSteward(b.path, *lines, *slowN, *compress, *slowRate)
			if err != nil {
				fail(b.label+" slow run", err)
			}
			fmt.Printf("%s slow run (peer takes %s records/s): %s lines/s, CPU %.2f s per million lines, %d duplicates, VmHWM %.1f MiB\n",
				b.label, group(*slowRate), group(r.rate), r.cpu, r.dups, float64(r.hwmKiB)/1024)
			slow[b.label] = r
		}
	}
	var baseRate float64
	if *baseline > 0 {
		var err error
		if baseRate, err = runBaseline(*baseline); err != nil {
			fail("baseline", err)
		}
	}
	fmt.Println()
	fmt.Printf("%d lines of 100 bytes, compress=%s; fast: median of %d runs (peak VmHWM of all)\n", *n, *compress, *runs)
	fmt.Printf("%-8s %-6s %12s %18s %11s %10s\n", "binary", "peer", "lines/s", "CPU s/1M lines", "duplicates", "VmHWM MiB")
	for _, b := range bins {
		if r, ok := fast[b.label]; ok {
			fmt.Printf("%-8s %-6s %12s %18.2f %11d %10.1f\n", b.label, "fast", group(r.rate), r.cpu, r.dups, float64(r.hwmKiB)/1024)
		}
		if r, ok := slow[b.label]; ok {
			fmt.Printf("%-8s %-6s %12s %18.2f %11d %10.1f\n", b.label, "slow", group(r.rate), r.cpu, r.dups, float64(r.hwmKiB)/1024)
		}
	}
	fmt.Println("Fluent Bit, same 1M-line burst: VmHWM 70-150 MiB (issue 11's measurement, not re-run here: no Fluent Bit package on Debian 12)")
	if a, ok := fast["steward"]; ok && len(bins) == 2 {
		o := fast["base"]
		fmt.Printf("steward/base, fast peer: throughput %.2fx, CPU per line %.2fx, VmHWM %.2fx\n", a.rate/o.rate, a.cpu/o.cpu, float64(a.hwmKiB)/float64(o.hwmKiB))
		if sa, ok := slow["steward"]; ok {
			so := slow["base"]
			fmt.Printf("steward/base, slow peer: VmHWM %.2fx, CPU per line %.2fx\n", float64(sa.hwmKiB)/float64(so.hwmKiB), sa.cpu/so.cpu)
		}
	}
	if r, ok := fast["steward"]; ok && baseRate > 0 {
		fmt.Printf("fluent-logger-golang, one record per Post, RequestAck: %s records/s; steward %.1fx that\n", group(baseRate), r.rate/baseRate)
	}
	if r, ok := slow["steward"]; ok {
		fmt.Printf("VmHWM against the slow peer: %.1f MiB vs target 24 MiB: %s\n", float64(r.hwmKiB)/1024, verdict(r.hwmKiB <= 24<<10))
	}
}

// batchSweep prints throughput, CPU and the duplicates of a peer crash for
// each batch size: what one lost ack costs against what a batch costs.
func batchSweep(steward, lines string, n int, compress string, sizes []string) {
	fmt.Printf("%d lines of 100 bytes; the peer killed (as kill -9, inside a message) at 30%% and restarted\n", n)
	fmt.Printf("%-10s %12s %16s %16s %16s\n", "batch", "lines/s", "CPU s/1M lines", "records/message", "dups at a kill")
	for _, size := range sizes {
		env := []string{"STEWARD_FLUENTD_BATCH_BYTES=" + size}
		fast, err := run(runOpts{steward: steward, lines: lines, n: n, compress: compress, env: env})
		if err != nil {
			fmt.Fprintln(os.Stderr, size, err)
			os.Exit(1)
		}
		kill, err := run(runOpts{steward: steward, lines: lines, n: n, compress: compress, killAt: 0.3,
			env: append(env, "STEWARD_FLUENTD_RETRY_INITIAL=50ms", "STEWARD_FLUENTD_RETRY_MAX=200ms")})
		if err != nil {
			fmt.Fprintln(os.Stderr, size, "kill:", err)
			os.Exit(1)
		}
		fmt.Printf("%-10s %12s %16.2f %16d %9d (%.3f%%)\n", size, group(fast.rate), fast.cpu, fast.perMsg, kill.dups, 100*float64(kill.dups)/float64(n))
	}
}

// merge adds run i to acc: the median rate and CPU, the peak memory and
// the total duplicates.
func merge(acc, r result, i int) result {
	acc.rates = append(acc.rates, r.rate)
	acc.cpus = append(acc.cpus, r.cpu)
	acc.rate, acc.cpu = median(acc.rates), median(acc.cpus)
	acc.dups += r.dups
	acc.hwmKiB = max(acc.hwmKiB, r.hwmKiB)
	_ = i
	return acc
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// runSteward runs steward with a writer of n lines against a peer that
// takes in ackRate records/s (0: as fast as it can), and returns lines per
// second (from steward's start to the last line at the peer), steward's
// CPU seconds per million lines, the duplicates the peer saw, and
// steward's peak RSS.
func runSteward(steward, lines string, n int, compress string, ackRate float64) (result, error) {
	return run(runOpts{steward: steward, lines: lines, n: n, compress: compress, ackRate: ackRate})
}

// runOpts describe one run of steward.
type runOpts struct {
	steward, lines string
	n              int
	compress       string
	ackRate        float64
	// killAt, when positive, crashes the peer (inside a message, before
	// its ack) when this share of the lines has arrived, and starts a new
	// one on the same address.
	killAt float64
	env    []string // added to steward's environment
}

func run(o runOpts) (result, error) {
	steward, lines, n, compress, ackRate := o.steward, o.lines, o.n, o.compress, o.ackRate
	var mu sync.Mutex
	seen := make([]bool, n)
	unique, dups := 0, 0
	done := make(chan struct{})
	var first, last time.Time
	var peer *fluentdtest.Peer
	var peerCfg fluentdtest.Config
	killed := false
	peerCfg = fluentdtest.Config{AckRate: ackRate, OnEvent: func(e fluentdtest.Event) {
		v, _ := e.Field("log")
		s, _ := v.(string)
		seq, err := strconv.Atoi(strings.TrimSpace(s[:min(len(s), 10)]))
		mu.Lock()
		defer mu.Unlock()
		if err != nil || seq < 0 || seq >= n {
			return
		}
		if seen[seq] {
			dups++
			return
		}
		seen[seq] = true
		if unique == 0 {
			first = time.Now()
		}
		unique++
		if o.killAt > 0 && !killed && unique == int(o.killAt*float64(n)) {
			killed = true
			old := peer
			old.Close() // as kill -9: this message is never acknowledged
			go func() {
				for {
					p, err := fluentdtest.Listen("tcp", old.HostPort(), peerCfg)
					if err == nil {
						mu.Lock()
						peer = p
						mu.Unlock()
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
		}
		if *trace && unique%100000 == 0 {
			fmt.Fprintf(os.Stderr, "    %d at %v\n", unique, time.Since(first).Round(time.Millisecond))
		}
		if unique == n {
			last = time.Now()
			close(done)
		}
	}}
	mu.Lock()
	var err error
	peer, err = fluentdtest.Listen("tcp", "127.0.0.1:0", peerCfg)
	mu.Unlock()
	if err != nil {
		return result{}, err
	}
	defer func() { mu.Lock(); p := peer; mu.Unlock(); p.Close() }()
	dir, err := os.MkdirTemp("", "fluentdbench-")
	if err != nil {
		return result{}, err
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
	cmd.Env = append(os.Environ(), o.env...)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	}
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer cmd.Process.Kill()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-done:
	case err := <-exited:
		return result{}, fmt.Errorf("steward exited (%v) with %d of %d lines delivered:\n%s", err, unique, n, stderr.String())
	case <-time.After(30 * time.Minute):
		return result{}, fmt.Errorf("only %d of %d lines arrived; steward said:\n%s", unique, n, stderr.String())
	}
	cpu := cpuSeconds(cmd.Process.Pid)
	hwm := statusKiB(cmd.Process.Pid, "VmHWM")
	mu.Lock()
	lastPeer := peer
	mu.Unlock()
	if *trace {
		st := lastPeer.Stats()
		msgs := 0
		for _, m := range st.Messages {
			msgs += m
		}
		fmt.Fprintf(os.Stderr, "  peer: %d messages, %d records per message on average\n", msgs, st.Events/max(msgs, 1))
		fmt.Fprintf(os.Stderr, "  steward VmHWM %d KiB, now VmRSS %d KiB = RssAnon %d + RssFile %d KiB\n", hwm,
			statusKiB(cmd.Process.Pid, "VmRSS"), statusKiB(cmd.Process.Pid, "RssAnon"), statusKiB(cmd.Process.Pid, "RssFile"))
	}
	var ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	peerCPU := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	cmd.Process.Signal(syscall.SIGTERM)
	<-exited
	if *trace {
		fmt.Fprint(os.Stderr, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	elapsed := last.Sub(start)
	if *trace {
		fmt.Fprintf(os.Stderr, "  start->first line %v, first->last line %v, peer CPU %v, steward CPU %.2fs\n", first.Sub(start).Round(time.Millisecond), last.Sub(first).Round(time.Millisecond), peerCPU.Round(time.Millisecond), cpu)
	}
	st := lastPeer.Stats()
	msgs := 0
	for _, m := range st.Messages {
		msgs += m
	}
	return result{rate: float64(n) / elapsed.Seconds(), cpu: cpu / (float64(n) / 1e6), dups: dups, hwmKiB: hwm,
		perMsg: st.Events / max(msgs, 1)}, nil
}

// statusKiB reads a field (VmHWM, VmRSS) of /proc/PID/status in KiB.
func statusKiB(pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			v, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return v
		}
	}
	return 0
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
