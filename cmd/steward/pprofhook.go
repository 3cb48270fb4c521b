//go:build pprofhook

package main

// Built only with -tags pprofhook, for measuring where memory goes (never
// in a release binary): with STEWARD_HEAPPROFILE=FILE, steward writes its
// heap profile to FILE each time the heap in use reaches a new peak, so
// FILE holds the profile at the peak; with STEWARD_CPUPROFILE=FILE it
// writes a CPU profile of its first STEWARD_CPUPROFILE_SECONDS (default 5):
// a profile of a shorter life needs that many seconds set (steward catches
// TERM with its own handler, which os/signal here would not see).

import (
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"
)

func init() {
	if path := os.Getenv("STEWARD_CPUPROFILE"); path != "" {
		secs, err := strconv.ParseFloat(os.Getenv("STEWARD_CPUPROFILE_SECONDS"), 64)
		if err != nil {
			secs = 5
		}
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			time.AfterFunc(time.Duration(secs*float64(time.Second)), func() {
				pprof.StopCPUProfile()
				f.Close()
			})
		}
	}
	path := os.Getenv("STEWARD_HEAPPROFILE")
	if path == "" {
		return
	}
	runtime.MemProfileRate = 64 << 10
	go func() {
		var peak uint64
		var ms runtime.MemStats
		for range time.Tick(100 * time.Millisecond) {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse <= peak+peak/20 {
				continue
			}
			peak = ms.HeapInuse
			if f, err := os.Create(path); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
	}()
}
