// Command metricscpu measures the CPU share steward uses for metrics: it
// runs steward as PID 1 of a fresh PID and mount namespace (with its own
// /proc, as in a container) supervising three sleeping programs, once
// with metrics off and once sending to a loopback sink every interval,
// and prints each run's CPU time over the same window as a share of one
// core, the difference, and its ratio to the 0.1 % budget. CPU time is
// read from /proc/PID/task/*/schedstat (nanoseconds), not the 10 ms ticks
// of /proc/PID/stat.
//
// Usage (root): metricscpu -steward ./steward [-interval 10s] [-window 60s]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	steward := flag.String("steward", "", "steward binary")
	interval := flag.Duration("interval", 10*time.Second, "metrics interval")
	window := flag.Duration("window", 60*time.Second, "measured time per run")
	warmup := flag.Duration("warmup", 12*time.Second, "time before measuring (start-up, first rounds)")
	flag.Parse()
	if *steward == "" {
		fmt.Fprintln(os.Stderr, "metricscpu: give -steward")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	var lines atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					lines.Add(1)
				}
			}()
		}
	}()
	off := run(*steward, "", *interval, *warmup, *window)
	on := run(*steward, ln.Addr().String(), *interval, *warmup, *window)
	w := window.Seconds()
	share := func(d time.Duration) float64 { return 100 * d.Seconds() / w }
	rounds := w / interval.Seconds()
	fmt.Printf("window %v, interval %v (%.0f collections), %d lines received\n", *window, *interval, rounds, lines.Load())
	fmt.Printf("metrics off: %8.3f ms CPU  %.4f %% of a core\n", ms(off), share(off))
	fmt.Printf("metrics on:  %8.3f ms CPU  %.4f %% of a core\n", ms(on), share(on))
	cost := on - off
	fmt.Printf("metrics:     %8.3f ms CPU  %.4f %% of a core, %.2f ms per collection; budget 0.1 %%: %.2fx of it\n",
		ms(cost), share(cost), ms(cost)/rounds, share(cost)/0.1)
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "metricscpu:", err)
	os.Exit(1)
}

// run starts steward, waits warmup, and returns its CPU time over window.
func run(steward, graphite string, interval, warmup, window time.Duration) time.Duration {
	dir, err := os.MkdirTemp("", "metricscpu-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	conf := fmt.Sprintf("[metrics]\ninterval = %q\n", interval)
	if graphite != "" {
		conf += fmt.Sprintf("[graphite]\naddr = %q\n", graphite)
	}
	for _, name := range []string{"app", "worker", "cache"} {
		main := ""
		if name == "app" {
			main = "main = true\n"
		}
		conf += fmt.Sprintf("[programs.%s]\n%scommand = [\"sleep\", \"100000\"]\n", name, main)
	}
	path := filepath.Join(dir, "steward.toml")
	os.WriteFile(path, []byte(conf), 0o644)
	// A /proc of its own PID namespace, in a mount namespace of its own.
	cmd := exec.Command("sh", "-c", `mount --make-rprivate / && mount -t proc proc /proc && exec "$@"`, "sh", steward, "--config", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	time.Sleep(warmup)
	before := cpuTime(cmd.Process.Pid)
	time.Sleep(window)
	return cpuTime(cmd.Process.Pid) - before
}

// cpuTime sums the time on CPU of every thread of pid.
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
	return time.Duration(total)
}
