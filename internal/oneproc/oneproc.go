// Package oneproc gives steward one P (GOMAXPROCS=1) unless GOMAXPROCS is
// set, from its init: the earliest a Go program can (packages initialise
// in import order, and this one needs only the runtime and syscall).
//
// One P because a PID 1's work (waiting on pipes, signals, sockets and
// timers) never needs two cores at once, and every hand-off between
// goroutines then stays on one thread instead of waking another (issue 14,
// on the 2-core development VM: SIGTERM to exit 1.63x -> 1.36x of
// bench/minigo; a million-line log burst 1.02x the throughput at 0.85x
// the CPU per line, the writer and the peer having the other core). From
// an init, not main: by main the runtime's background goroutines have run
// on the second P, and taking it away then left 0.5 MiB of its memory
// resident in about half the starts (anonymous RSS 1.0 or 1.5 MiB, where
// GOMAXPROCS=1 in the environment gives 0.97 MiB every time).
package oneproc

import (
	"runtime"
	"syscall"
)

func init() {
	if _, set := syscall.Getenv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(1)
	}
}
