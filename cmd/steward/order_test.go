package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestStartOrderReadinessAndStopOrder: web waits for a migration to
// complete and for three services to be ready by TCP, HTTP and command
// probes; at the stop, web goes first.
func TestStartOrderReadinessAndStopOrder(t *testing.T) {
	self, _ := os.Executable()
	dbAddr, searchAddr := freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(`
[programs.web]
main = true
depends_on = ["migrate", "db", "search", "cache"]
command = ["sh", "-c", "test -f $T/migrated && exec sleep 1000; echo not migrated; exit 9"]

[programs.migrate]
kind = "oneshot"
command = ["sh", "-c", "sleep 0.3; touch $T/migrated"]

[programs.db]
command = [%[1]q]
env = { STEWARD_TEST_HELPER = "listen", LISTEN_ADDR = %[2]q, LISTEN_DELAY = "300ms" }
ready = { tcp = %[2]q, interval = "50ms" }

[programs.search]
command = [%[1]q]
env = { STEWARD_TEST_HELPER = "http", LISTEN_ADDR = %[3]q, LISTEN_DELAY = "300ms" }
ready = { http = "http://%[3]s/health", interval = "50ms" }

[programs.cache]
command = ["sh", "-c", "sleep 0.3; touch $T/cache.ready; exec sleep 1000"]
ready = { command = ["test", "-f", "cache.ready"], interval = "50ms" }
`, self, dbAddr, searchAddr)
	in := start(t, runOpts{config: cfg})
	in.waitEvent("web", "started")
	evs := in.events("")
	webStarted := index(evs, "web", "started")
	for _, before := range [][2]string{{"migrate", "completed"}, {"db", "ready"}, {"search", "ready"}, {"cache", "ready"}} {
		if i := index(evs, before[0], before[1]); i < 0 || i > webStarted {
			t.Fatalf("web started (event %d) before %s was %s (event %d)", webStarted, before[0], before[1], i)
		}
	}
	in.signal(syscall.SIGTERM)
	if got := in.wait(); got != 143 {
		t.Fatalf("exit code %d, want 143", got)
	}
	evs = in.events("")
	webGone := index(evs, "web", "exited")
	for _, p := range []string{"db", "search", "cache"} {
		if i := index(evs, p, "stopping"); i < webGone {
			t.Errorf("%s was asked to stop (event %d) before web had exited (event %d)", p, i, webGone)
		}
	}
}

// TestFailingOneshotStopsContainer: a oneshot that fails stops everything
// with its exit code, and what depends on it never starts.
func TestFailingOneshotStopsContainer(t *testing.T) {
	in := start(t, runOpts{config: `
[programs.migrate]
kind = "oneshot"
command = ["sh", "-c", "exit 7"]

[programs.web]
main = true
depends_on = ["migrate"]
command = ["sleep", "1000"]
`})
	if got := in.wait(); got != 7 {
		t.Fatalf("exit code %d, want 7", got)
	}
	if i := index(in.events(""), "web", "started"); i >= 0 {
		t.Fatal("web started although its migration failed")
	}
}

// TestBackoffAndFatal: a program that keeps failing is restarted with
// exponential backoff, then given up; with on_fatal = "continue" the rest
// keeps running, with "stop" steward exits with the program's code.
func TestBackoffAndFatal(t *testing.T) {
	cfg := `
[programs.main]
main = true
command = ["sleep", "1000"]

[programs.flaky]
command = ["sh", "-c", "exit 3"]
start_secs = "1s"
start_retries = 3
backoff_initial = "100ms"
backoff_max = "300ms"
on_fatal = "%s"
`
	t.Run("continue", func(t *testing.T) {
		in := start(t, runOpts{config: fmt.Sprintf(cfg, "continue")})
		fatal := in.waitEvent("flaky", "fatal")
		if fatal.num("code") != 3 {
			t.Errorf("fatal event code %d, want 3", fatal.num("code"))
		}
		var starts int
		var delays []float64
		for _, e := range in.events("flaky") {
			switch e.kind() {
			case "started":
				starts++
			case "restarting":
				delays = append(delays, e["delay"].(float64)/1e6) // ns -> ms
			}
		}
		if starts != 4 {
			t.Errorf("%d starts, want 4 (the first and start_retries = 3 more)", starts)
		}
		// 100, 200, then 400 capped at 300, each ±20% and never above the cap.
		bounds := [][2]float64{{80, 120}, {160, 240}, {240, 300}}
		if len(delays) != len(bounds) {
			t.Fatalf("restart delays %v ms, want %d of them", delays, len(bounds))
		}
		for i, d := range delays {
			if d < bounds[i][0] || d > bounds[i][1] {
				t.Errorf("restart %d after %.0f ms, want %v", i+1, d, bounds[i])
			}
		}
		if index(in.events("main"), "main", "exited") >= 0 {
			t.Fatal("main stopped although on_fatal = continue")
		}
		in.signal(syscall.SIGTERM)
		if got := in.wait(); got != 143 {
			t.Fatalf("exit code %d, want 143", got)
		}
	})
	t.Run("stop", func(t *testing.T) {
		in := start(t, runOpts{config: fmt.Sprintf(cfg, "stop")})
		if got := in.wait(); got != 3 {
			t.Fatalf("exit code %d, want 3", got)
		}
	})
}

// TestCriticalProgramEndsContainer: a critical program that ends for good
// stops everything; steward exits with its code, not the main's.
func TestCriticalProgramEndsContainer(t *testing.T) {
	in := start(t, runOpts{config: `
[programs.main]
main = true
command = ["sleep", "1000"]

[programs.sidecar]
critical = true
restart = "never"
command = ["sh", "-c", "sleep 0.2; exit 5"]
`})
	if got := in.wait(); got != 5 {
		t.Fatalf("exit code %d, want 5", got)
	}
	if index(in.events("main"), "main", "stopping") < 0 {
		t.Fatal("main was not stopped")
	}
}

// TestMainForkedFirst: of the programs that can start at once, the main
// program is forked first, before the programs listed ahead of it and
// before any check's first command, which wait until the programs are
// forked (issue 14: the app's start waits for nothing a PID 1 does not
// need). Process ids in a fresh PID namespace only grow, so the main
// program's is the smallest.
func TestMainForkedFirst(t *testing.T) {
	in := start(t, runOpts{config: `
[programs.a]
command = ["sh", "-c", "echo $$ > $T/a.pid; exec sleep 1000"]

[programs.b]
command = ["sh", "-c", "echo $$ > $T/b.pid; exec sleep 1000"]

[checks.c]
command = ["sh", "-c", "echo $$ >> $T/c.pid"]
interval = "1h"
`, command: []string{"sh", "-c", `echo $$ > $T/main.pid; until [ -s $T/a.pid ] && [ -s $T/b.pid ] && [ -s $T/c.pid ]; do sleep 0.01; done`}})
	if got := in.wait(); got != 0 {
		t.Fatalf("exit code %d, want 0", got)
	}
	mainPID := readInts(t, filepath.Join(in.dir, "main.pid"))[0]
	for _, other := range []string{"a", "b", "c"} {
		if pid := readInts(t, filepath.Join(in.dir, other+".pid"))[0]; pid < mainPID {
			t.Errorf("%s was forked (pid %d) before the main program (pid %d)", other, pid, mainPID)
		}
	}
}
