package supervisor

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// ExitStatus is how a process ended, as wait4 reported it.
type ExitStatus struct {
	PID    int
	Status unix.WaitStatus
	Rusage unix.Rusage
	// StartErr is set when the process could not be started at all; then
	// PID is 0 and Code is 127 (not found) or 126 (cannot execute).
	StartErr error
	code     int // for StartErr
}

// Code is the exit code as a shell reports it: the code, or 128+N when
// killed by signal N.
func (e ExitStatus) Code() int {
	switch {
	case e.StartErr != nil:
		return e.code
	case e.Status.Signaled():
		return 128 + int(e.Status.Signal())
	default:
		return e.Status.ExitStatus()
	}
}

// Signal returns the signal that killed the process, or 0.
func (e ExitStatus) Signal() syscall.Signal {
	if e.StartErr == nil && e.Status.Signaled() {
		return e.Status.Signal()
	}
	return 0
}

// processReaper is the process's one reaper, shared by every Supervisor:
// two waiters would steal each other's exit statuses.
var processReaper = sync.OnceValues(newReaper)

// reaper is the one and only waiter for child processes. Starting a process
// and registering its pid happen under the same lock as each wait4 and its
// lookup, so a child that exits at once is never reaped before its pid is
// known, and a reaped orphan's pid can't be mistaken for a new child's.
type reaper struct {
	mu      sync.Mutex
	waiting map[int]func(ExitStatus)
	orphans atomic.Uint64
	sigc    chan os.Signal
}

func newReaper() (*reaper, error) {
	r := &reaper{
		waiting: map[int]func(ExitStatus){},
		sigc:    make(chan os.Signal, 1),
	}
	if err := notify(r.sigc, syscall.SIGCHLD); err != nil {
		return nil, err
	}
	go r.run()
	return r, nil
}

// start runs fork with the lock held and registers onExit for the pid it
// returns. onExit is called from the reaper goroutine and must not block.
func (r *reaper) start(fork func() (int, error), onExit func(ExitStatus)) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := fork()
	if err != nil {
		return 0, err
	}
	r.waiting[pid] = onExit
	return pid, nil
}

func (r *reaper) run() {
	for range r.sigc {
		r.reapAll()
	}
}

// reapAll waits for every child that has exited. SIGCHLD notifications
// coalesce, so one wakeup must drain them all.
func (r *reaper) reapAll() {
	for {
		var st ExitStatus
		r.mu.Lock()
		pid, err := unix.Wait4(-1, &st.Status, unix.WNOHANG, &st.Rusage)
		var onExit func(ExitStatus)
		if pid > 0 {
			onExit = r.waiting[pid]
			delete(r.waiting, pid)
		}
		r.mu.Unlock()
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if pid <= 0 {
			return // 0: children left, none exited; ECHILD: none left
		}
		st.PID = pid
		if onExit != nil {
			onExit(st)
		} else {
			r.orphans.Add(1)
		}
	}
}
