package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stewardhq/steward/internal/testutil"
)

func TestExitCodes(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "not-executable")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	cases := []struct {
		name    string
		command []string
		env     []string
		want    int
	}{
		{"zero", []string{"sh", "-c", "exit 0"}, nil, 0},
		{"one", []string{"sh", "-c", "exit 1"}, nil, 1},
		{"code", []string{"sh", "-c", "exit 42"}, nil, 42},
		{"not found", []string{"/no/such/program"}, nil, 127},
		{"not in PATH", []string{"no-such-program-anywhere"}, nil, 127},
		{"not executable", []string{notExec}, nil, 126},
		{"killed by signal", []string{"sh", "-c", "kill -USR1 $$"}, nil, 128 + int(syscall.SIGUSR1)},
		{"success list", []string{"sh", "-c", "exit 143"}, []string{"STEWARD_SUCCESS_EXIT_CODES=143,3"}, 0},
		{"not in success list", []string{"sh", "-c", "exit 4"}, []string{"STEWARD_SUCCESS_EXIT_CODES=143,3"}, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := start(t, runOpts{command: c.command, env: c.env})
			if got := in.wait(); got != c.want {
				t.Fatalf("exit code %d, want %d", got, c.want)
			}
		})
	}
}

// TestTermStopsMainAsTini: TERM reaches the main program; steward exits
// with its code, 143 when TERM killed it.
func TestTermStopsMainAsTini(t *testing.T) {
	in := start(t, runOpts{command: []string{"sleep", "1000"}})
	in.waitEvent("sleep", "started")
	in.signal(syscall.SIGTERM)
	if got := in.wait(); got != 143 {
		t.Fatalf("exit code %d, want 143", got)
	}
}

// TestOrphanStorm: 1,000 double-forked children whose parent is gone are
// reaped by steward as PID 1, while the main program itself never reaps.
func TestOrphanStorm(t *testing.T) {
	const n = 1000
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do (: &); i=$((i+1)); done; echo storm done > $T/done; exec sleep 1000`, n)
	in := start(t, runOpts{command: []string{"sh", "-c", script}})
	testutil.Eventually(t, "the storm", func() bool { _, err := os.Stat(filepath.Join(in.dir, "done")); return err == nil })
	testutil.Eventually(t, "no zombies and only steward and sleep left", func() bool {
		procs := in.nsProcs()
		return len(zombies(procs)) == 0 && len(procs) == 2
	})
	in.signal(syscall.SIGTERM)
	if got := in.wait(); got != 143 {
		t.Fatalf("exit code %d, want 143", got)
	}
	last := in.logLines()
	reaped := last[len(last)-1].num("orphans_reaped")
	if reaped < n {
		t.Fatalf("steward reports %d orphans reaped, want at least %d", reaped, n)
	}
}

// TestNoStatusLost: 10 programs exit 100 times each, as fast as they can
// be restarted, each time with a code that depends on the run; every
// status must arrive, in order.
func TestNoStatusLost(t *testing.T) {
	const programs, runs = 10, 100
	var cfg strings.Builder
	cfg.WriteString("[programs.main]\ncommand = [\"sleep\", \"1000\"]\nmain = true\n")
	for i := range programs {
		fmt.Fprintf(&cfg, `
[programs.p%d]
command = ["sh", "-c", "f=$T/count.p%d; n=$(cat $f 2>/dev/null || echo 0); n=$((n+1)); echo $n > $f; if [ $n -ge %d ]; then exec sleep 1000; fi; exit $((n %% 50 + 1))"]
restart = "always"
start_secs = 0
backoff_initial = 0
`, i, i, runs)
	}
	in := start(t, runOpts{config: cfg.String()})
	for i := range programs {
		testutil.Eventually(t, "all runs", func() bool {
			b, _ := os.ReadFile(filepath.Join(in.dir, "count.p"+strconv.Itoa(i)))
			return strings.TrimSpace(string(b)) == strconv.Itoa(runs)
		})
	}
	in.signal(syscall.SIGTERM)
	in.wait()
	for i := range programs {
		name := "p" + strconv.Itoa(i)
		var codes []int
		for _, e := range in.events(name) {
			if e.kind() == "exited" && e.num("code") != 143 {
				codes = append(codes, e.num("code"))
			}
		}
		var want []int
		for n := 1; n < runs; n++ {
			want = append(want, n%50+1)
		}
		if !slices.Equal(codes, want) {
			t.Fatalf("%s: exit codes %v\nwant %v", name, codes, want)
		}
	}
}

// TestSignalsForwarded: signals steward receives reach every process of
// the main program's group; per program they can be rewritten or dropped.
func TestSignalsForwarded(t *testing.T) {
	worker := filepath.Join(t.TempDir(), "worker")
	os.WriteFile(worker, []byte(`#!/bin/sh
for s in HUP USR1 USR2 WINCH; do trap "echo $s >> $T/got.$1" $s; done
echo $$ > $T/ready.$1
while :; do sleep 0.05; done
`), 0o755)
	cfg := fmt.Sprintf(`
[programs.app]
main = true
command = ["sh", "-c", "%[1]s 1 & %[1]s 2 & exec %[1]s 0"]
signals = { USR1 = "USR2", WINCH = "drop" }

[programs.side]
command = ["%[1]s", "side"]
`, worker)
	in := start(t, runOpts{config: cfg})
	for _, w := range []string{"0", "1", "2", "side"} {
		testutil.Eventually(t, "worker "+w, func() bool { _, err := os.Stat(filepath.Join(in.dir, "ready."+w)); return err == nil })
	}
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGWINCH} {
		in.signal(sig)
	}
	for _, w := range []string{"0", "1", "2"} {
		testutil.Eventually(t, "signals at worker "+w, func() bool {
			b, _ := os.ReadFile(filepath.Join(in.dir, "got."+w))
			return strings.Contains(string(b), "HUP") && strings.Contains(string(b), "USR2")
		})
	}
	in.signal(syscall.SIGTERM)
	in.wait()
	for _, w := range []string{"0", "1", "2"} {
		b, _ := os.ReadFile(filepath.Join(in.dir, "got."+w))
		if strings.Contains(string(b), "USR1") || strings.Contains(string(b), "WINCH") {
			t.Errorf("worker %s got %q: USR1 should be rewritten to USR2 and WINCH dropped", w, b)
		}
	}
	if b, err := os.ReadFile(filepath.Join(in.dir, "got.side")); err == nil {
		t.Errorf("a program that does not take forwarded signals got %q", b)
	}
}

// TestStopTimeoutKillsGroup: a program that ignores TERM is killed with
// its grandchildren after its stop timeout, before the program it depends
// on is asked to stop.
func TestStopTimeoutKillsGroup(t *testing.T) {
	cfg := `
[programs.base]
command = ["sh", "-c", 'trap "for p in $(cat $T/grandchildren); do kill -0 $p 2>/dev/null && echo alive $p; done > $T/at-base-stop; exit 0" TERM; while :; do sleep 0.05; done']

[programs.stubborn]
main = true
depends_on = ["base"]
stop_timeout = "500ms"
command = ["sh", "-c", 'trap "" TERM; sleep 1000 & a=$!; sleep 1000 & b=$!; echo $a $b > $T/grandchildren; wait']
`
	in := start(t, runOpts{config: cfg, hostPIDNS: true})
	testutil.Eventually(t, "grandchildren", func() bool { return len(readIntsIfAny(in.dir+"/grandchildren")) == 2 })
	kids := readInts(t, in.dir+"/grandchildren")
	in.signal(syscall.SIGTERM)
	if got := in.wait(); got != 128+int(syscall.SIGKILL) {
		t.Fatalf("exit code %d, want 137 (main killed)", got)
	}
	if index(in.events("stubborn"), "stubborn", "killed") < 0 {
		t.Fatal("no killed event for stubborn")
	}
	b, err := os.ReadFile(in.dir + "/at-base-stop")
	if err != nil {
		t.Fatal("base was not stopped with TERM:", err)
	}
	if len(b) > 0 {
		t.Fatalf("when base was asked to stop, stubborn's grandchildren were still alive: %s", b)
	}
	for _, pid := range kids {
		if alive(pid) {
			t.Errorf("grandchild %d still alive", pid)
		}
	}
}

func readIntsIfAny(path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Fields(string(b))
}

// TestSubreaper: not PID 1, steward becomes the child subreaper: an orphan
// of the main program is reparented to steward and reaped by it.
func TestSubreaper(t *testing.T) {
	in := start(t, runOpts{hostPIDNS: true, command: []string{"sh", "-c", `sh -c 'sleep 2 & echo $! > $T/orphan'; sleep 1000`}})
	testutil.Eventually(t, "orphan pid", func() bool { return len(readIntsIfAny(in.dir+"/orphan")) == 1 })
	orphan := readInts(t, in.dir+"/orphan")[0]
	// Once its parent shell has exited, the orphan belongs to steward.
	testutil.Eventually(t, "orphan reparented to steward", func() bool {
		p, ok := readProc(orphan)
		return ok && p.PPID == in.pid()
	})
	testutil.Eventually(t, "orphan reaped", func() bool { _, ok := readProc(orphan); return !ok })
	in.signal(syscall.SIGTERM)
	if got := in.wait(); got != 143 {
		t.Fatalf("exit code %d, want 143", got)
	}
}
