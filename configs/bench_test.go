package configs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// bigConfig is a config of n programs with a handful of keys each (and an
// array and an inline table, whose elements are indexed too).
func bigConfig(n int) []byte {
	var b strings.Builder
	b.WriteString("[steward]\napp = \"big\"\n")
	for i := range n {
		fmt.Fprintf(&b, "\n[programs.p%d]\ncommand = [\"sleep\", \"%d\"]\nstop_timeout = \"5s\"\nenv = { A = \"1\", B = \"2\" }\n", i, i)
		if i == 0 {
			b.WriteString("main = true\n")
		}
	}
	return []byte(b.String())
}

// TestLineIndexScansOnce keeps loading linear in the size of the file:
// finding the lines of every key of a config examines each byte once, at
// any number of keys. (Counting lines from the start for every key, as
// go-toml's Parser.Shape does, examined 8k keys' worth of file 8k times.)
func TestLineIndexScansOnce(t *testing.T) {
	for _, n := range []int{10, 1000, 8000} {
		data := bigConfig(n)
		x, err := parseDocument(data)
		if err != nil {
			t.Fatal(err)
		}
		if x.counter.scanned > len(data) {
			t.Errorf("%d programs: %d bytes examined for a %d-byte file", n, x.counter.scanned, len(data))
		}
		last := fmt.Sprintf("programs.p%d.env.B", n-1)
		if want := strings.Count(string(data), "\n"); x.lines[last] != want {
			t.Errorf("%d programs: %s at line %d, want %d", n, last, x.lines[last], want)
		}
	}
}

// BenchmarkLoad loads configs of growing size; the time per key should
// stay flat (go test -run X -bench Load ./configs). cpu-ns/key is the
// process's CPU time (user+system, GC included) per key, less disturbed
// than wall time by other load on the machine.
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{1000, 2000, 8000, 64000} {
		data := bigConfig(n)
		path := filepath.Join(b.TempDir(), "big.toml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			b.Fatal(err)
		}
		keys := 4*n + 1
		b.Run(fmt.Sprintf("keys=%d/bytes=%d", keys, len(data)), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := Load(Options{Path: path}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(keys), "ns/key")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/float64(keys), "cpu-ns/key")
		})
	}
}

func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
