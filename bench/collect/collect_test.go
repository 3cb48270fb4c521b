// Package collect benchmarks one full metrics collection on this machine:
// every collector steward runs, against the real /proc and cgroup
// filesystem, and the formatting of the round for Graphite. Run with
//
//	go test -run XXX -bench . -benchmem ./bench/collect
//
// and compare ns/op with the 200 µs budget of one collection. The kernel's
// side is shown apart: BenchmarkFileRead is one open, read and close of a
// small /proc file, which each collected file costs at least.
package collect

import (
	"context"
	"io"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/shippers/graphite"
	"github.com/stewardhq/steward/supervisor"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// programs stands for a supervisor with three programs; the benchmark's
// own process group is the first one's.
func programs(context.Context) []supervisor.ProgramStatus {
	pgrp := syscall.Getpgrp()
	return []supervisor.ProgramStatus{
		{Name: "app", PID: pgrp, State: supervisor.StateRunning, StartedAt: time.Now(), LastExitCode: -1, Main: true},
		{Name: "worker", State: supervisor.StateBackoff, Restarts: 2, LastExitCode: 1},
		{Name: "cache", State: supervisor.StateWaiting, LastExitCode: -1},
	}
}

func all(b *testing.B) []collectors.Collector {
	var cs []collectors.Collector
	if c, err := collectors.NewCgroup("/", discard); err == nil {
		cs = append(cs, c)
	} else {
		b.Logf("no cgroup collector: %v", err)
	}
	n, err := collectors.NewNetstat(collectors.NetstatConfig{Root: "/", ExcludeInterfaces: []string{"lo"}}, discard)
	if err != nil {
		b.Fatal(err)
	}
	p, err := collectors.NewPrograms(collectors.ProgramsConfig{Root: "/", Status: programs}, discard)
	if err != nil {
		b.Fatal(err)
	}
	s, err := collectors.NewSelf(collectors.SelfConfig{Root: "/"}, discard)
	if err != nil {
		b.Fatal(err)
	}
	return append(cs, n, p, s)
}

// BenchmarkCollection is one round: every collector, then the round
// formatted and queued for a Graphite server (which is not there: the
// round stays queued, as during an outage).
func BenchmarkCollection(b *testing.B) {
	ship, err := graphite.New(graphite.Config{Servers: []string{"127.0.0.1:9"}, App: "web", Version: "3074f46", Host: "h",
		RetryMin: time.Hour, RetryMax: time.Hour}, discard)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // drop the backlog: there is no server
		ship.Close(ctx)
	}()
	sched := collectors.NewScheduler(10*time.Second, all(b), func([]collectors.Sample) {}, discard)
	tick := time.Now().Truncate(10 * time.Second)
	var n int
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		samples := sched.Collect(context.Background(), tick)
		ship.Ship(samples)
		n = len(samples)
	}
	cpu.report(b)
	b.ReportMetric(float64(n), "samples/op")
}

// cpuTimes splits a benchmark's time between steward's code (user) and
// the kernel producing the files (sys), from getrusage.
type cpuTimes struct{ user, sys time.Duration }

func rusage() cpuTimes {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return cpuTimes{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())}
}

func startCPU() cpuTimes { return rusage() }

func (c cpuTimes) report(b *testing.B) {
	now := rusage()
	b.ReportMetric(float64((now.user-c.user).Microseconds())/float64(b.N), "user-µs/op")
	b.ReportMetric(float64((now.sys-c.sys).Microseconds())/float64(b.N), "sys-µs/op")
}

// BenchmarkCollector is each collector alone.
func BenchmarkCollector(b *testing.B) {
	for _, c := range all(b) {
		b.Run(c.Name(), func(b *testing.B) {
			n := 0
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				n = 0
				c.Collect(context.Background(), func(collectors.Sample) { n++ })
			}
			cpu.report(b)
			b.ReportMetric(float64(n), "samples/op")
			if c.Name() == "programs" { // it reads every process in /proc
				entries, _ := os.ReadDir("/proc")
				procs := 0
				for _, e := range entries {
					if e.Name()[0] >= '0' && e.Name()[0] <= '9' {
						procs++
					}
				}
				b.ReportMetric(float64(procs), "procs")
			}
		})
	}
}

// BenchmarkFileRead is the kernel's floor for one collected file.
func BenchmarkFileRead(b *testing.B) {
	buf := make([]byte, 4096)
	for b.Loop() {
		f, err := os.Open("/proc/self/stat")
		if err != nil {
			b.Fatal(err)
		}
		f.Read(buf)
		f.Close()
	}
}
