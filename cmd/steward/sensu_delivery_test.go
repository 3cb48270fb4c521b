package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/testutil"
	"github.com/stewardhq/steward/shippers/sensu/sensupeer"
)

// incidentStatuses lists what an is_incident handler of entity's check got.
func incidentStatuses(p *sensupeer.Peer, entity, check string) []int {
	var out []int
	for _, r := range p.HandlerRuns() {
		if r.Entity == entity && r.Check == check && r.Incident() {
			out = append(out, r.Status)
		}
	}
	return out
}

// endsWith reports whether the transitions of h end with tail.
func endsWith(h []int, tail ...int) bool {
	c := slices.Compact(slices.Clone(h))
	return len(c) >= len(tail) && slices.Equal(c[len(c)-len(tail):], tail)
}

// crashAndRecovery reports whether the transitions of h end with a crash
// (2) and the recovery (0), through restarting (1) when the program checks
// saw it: a restart 10 ms after the crash is often over before they look
// at a loaded machine, and then the history goes from 2 to 0 directly.
func crashAndRecovery(h []int) bool { return endsWith(h, 2, 1, 0) || endsWith(h, 2, 0) }

// TestSensuCrashRestartHistory: containers whose worker crashes once and is
// restarted at once (CRITICAL then OK milliseconds apart), through steward
// as PID 1 against a backend that stores events asynchronously: every
// history shows the crash and its recovery, and the incident handler gets
// the incident and its resolution. Half the containers have an API key to
// see results stored, half are paced by event_spacing.
func TestSensuCrashRestartHistory(t *testing.T) {
	p := newSensuPeer(t)
	const n = 6
	var wg sync.WaitGroup
	for i := range n {
		name := fmt.Sprintf("crash-bin-%d", i)
		env := append(sensuEnv(p, name), "STEWARD_HTTP_ADDR=off")
		if i%2 == 1 {
			env = append(env, "STEWARD_SENSU_API_KEY=", "STEWARD_SENSU_API_URL=")
		}
		in := start(t, runOpts{env: env, config: `
[control]
socket = "` + filepath.Join(t.TempDir(), "ctl", "c.sock") + `"
[sensu]
handlers = ["incident"]

[programs.app]
main = true
command = ["sleep", "1000"]

[programs.worker]
command = ["sh", "-c", "if [ ! -f \"$T/crashed\" ]; then touch \"$T/crashed\"; exit 1; fi; exec sleep 1000"]
restart = "on-failure"
backoff_initial = "10ms"
backoff_max = "10ms"
`})
		wg.Go(func() {
			defer func() { in.signal(syscall.SIGTERM); in.wait() }()
			// The worker's states: running (0), exited (2), restarting
			// (1) if seen, running again (0).
			deadline := time.Now().Add(testutil.HangGuard)
			for !(p.Settled() && crashAndRecovery(p.History("default", name, "program-worker"))) {
				if time.Now().After(deadline) {
					t.Errorf("%s: history %v, want the crash and the recovery", name, p.History("default", name, "program-worker"))
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			if inc := incidentStatuses(p, name, "program-worker"); !crashAndRecovery(inc) {
				t.Errorf("%s: the incident handler got %v, want the incident then its resolution", name, inc)
			}
		})
	}
	wg.Wait()
}

// TestSensuOutageBacklog: results of a check that changed state while the
// backend was down all reach the history, in order, once it is back.
func TestSensuOutageBacklog(t *testing.T) {
	p := newSensuPeer(t)
	in := start(t, runOpts{env: append(sensuEnv(p, "backlog-1"), "STEWARD_HTTP_ADDR=off"), config: `
[control]
socket = "` + filepath.Join(t.TempDir(), "ctl", "c.sock") + `"
[programs.app]
main = true
command = ["sleep", "1000"]

[checks.flap]
command = ["sh", "-c", "s=$(cat \"$T/status\" 2>/dev/null || echo 0); echo $s >> \"$T/ran\"; exit $s"]
interval = "100ms"
`})
	testutil.Eventually(t, "the first result stored", func() bool { return len(p.History("default", "backlog-1", "flap")) > 0 })
	p.SetDown(true)
	testutil.Eventually(t, "the disconnection", func() bool { return !p.Connected("backlog-1") })
	ran := filepath.Join(in.dir, "ran")
	for _, s := range []string{"2", "0", "1", "0", "2", "0"} {
		os.WriteFile(filepath.Join(in.dir, "status"), []byte(s), 0o644)
		os.Remove(ran)
		// Twice, so the check surely ran with this status.
		testutil.Eventually(t, "the check ran with "+s, func() bool {
			b, _ := os.ReadFile(ran)
			return len(b) >= 4
		})
	}
	p.SetDown(false)
	testutil.Eventually(t, "the backlog stored", func() bool {
		return p.Settled() && endsWith(p.History("default", "backlog-1", "flap"), 0, 2, 0, 1, 0, 2, 0)
	})
	if inc := incidentStatuses(p, "backlog-1", "flap"); len(inc) != 0 {
		t.Logf("incident handler runs: %v", inc)
	}
	in.signal(syscall.SIGTERM)
	in.wait()
}

// TestSensuStopsLeaveNoEvents: graceful stops of steward with a
// deregistration handler leave no event on the deleted entity, though the
// backend stores events asynchronously (the in-process test makes 100).
func TestSensuStopsLeaveNoEvents(t *testing.T) {
	p := newSensuPeer(t)
	const n = 5
	for i := range n {
		name := fmt.Sprintf("stop-bin-%d", i)
		in := start(t, runOpts{env: append(sensuEnv(p, name), "STEWARD_HTTP_ADDR=off"), config: `
[control]
socket = "` + filepath.Join(t.TempDir(), "ctl", "c.sock") + `"
[sensu]
deregistration_handler = "cleanup"
[programs.app]
main = true
command = ["sleep", "1000"]
`})
		testutil.Eventually(t, "registration", registered(p, name))
		testutil.Eventually(t, "the program check stored", func() bool { return len(p.History("default", name, "program-app")) > 0 })
		in.signal(syscall.SIGTERM)
		in.wait()
	}
	testutil.Eventually(t, "every event stored", p.Settled)
	if o := p.Orphans(); len(o) > 0 {
		t.Errorf("events left on deleted entities: %v", o)
	}
	runs := 0
	for _, r := range p.HandlerRuns() {
		if r.Check == "deregistration" && slices.Equal(r.Handlers, []string{"cleanup"}) {
			runs++
		}
	}
	if len(p.Deletions()) != n || runs != n {
		t.Errorf("%d deletions, %d deregistration handler runs; want %d each", len(p.Deletions()), runs, n)
	}
}
