package supervisor

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/stewardhq/steward/internal/testutil"
)

// hogFDs lowers the soft limit of open files and opens /dev/null until it
// is reached, so that the next pipe2 fails with EMFILE; release undoes it.
func hogFDs(t *testing.T) (release func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir("/proc/self/fd")
	low := old
	low.Cur = uint64(len(entries) + 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var hog []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		hog = append(hog, f)
	}
	return func() {
		for _, f := range hog {
			f.Close()
		}
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	}
}

// TestFDExhaustionNotFatal: a restart that cannot create the program's
// pipes (EMFILE, as when idle connections took every descriptor) is
// tried again with backoff and never makes the program fatal, whatever its
// start_retries (issue 10, defect 7).
func TestFDExhaustionNotFatal(t *testing.T) {
	cfg := testutil.LoadConfig(t, `
[programs.main]
main = true
command = ["sleep", "1000"]
start_secs = 0

[programs.worker]
command = ["sleep", "1000"]
start_secs = 0
start_retries = 0
backoff_initial = "50ms"
backoff_max = "50ms"
`)
	s, _ := running(t, cfg)
	events := s.Events().Subscribe("test", 4096)
	defer s.Events().Unsubscribe(events)
	first := waitState(t, s, "worker", StateRunning)

	release := hogFDs(t)
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	go s.RestartProgram(context.Background(), "worker")
	// Wait for a start that failed for lack of descriptors, then give
	// them back.
	testutil.Eventually(t, "a start failing with EMFILE", func() bool {
		return s.StartShortages() > 0 || status(t, s, "worker").State == StateFatal
	})
	release()
	released = true
	testutil.Eventually(t, "worker running again", func() bool {
		ps := status(t, s, "worker")
		if ps.State == StateFatal {
			t.Fatal("worker went fatal for lack of descriptors")
		}
		return ps.State == StateRunning && ps.PID != 0 && ps.PID != first.PID
	})
	for {
		select {
		case ev := <-events.C:
			if ev.Program == "worker" && ev.Kind == EventFatal {
				t.Fatalf("worker went fatal: %+v", *ev)
			}
			continue
		default:
		}
		break
	}
}
