package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/internal/testutil"
)

// sweptSignals are the signals a program records in the tests: every
// signal 1-31 but KILL and STOP (uncatchable) and CHLD (steward's own,
// and the recording shell's), and a few real-time ones.
func sweptSignals() []syscall.Signal {
	var out []syscall.Signal
	for n := 1; n <= 31; n++ {
		switch syscall.Signal(n) {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD:
			continue
		}
		out = append(out, syscall.Signal(n))
	}
	return append(out, 34, 35, 40, 50, 64)
}

// recorder writes a shell script that records every signal it gets as a
// line "WHO N" in $T/got.WHO, and "ready" in $T/ready.WHO once its traps
// are set. It waits on a FIFO read, which a trapped signal interrupts, so
// it leaves no child behind. On exitOn it records it, kills $MEMBER_PID if
// set, and exits 0.
func recorder(t *testing.T, dir string, exitOn syscall.Signal) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("#!/bin/sh\nwho=$1\n")
	for _, sig := range sweptSignals() {
		if sig == exitOn {
			continue
		}
		fmt.Fprintf(&b, "trap 'echo $who %d >> $T/got.$who' %d\n", sig, sig)
	}
	fmt.Fprintf(&b, "trap 'echo $who %d >> $T/got.$who; [ -n \"$MEMBER_PID\" ] && kill -9 $MEMBER_PID; exit 0' %d\n", exitOn, exitOn)
	b.WriteString(`rm -f $T/fifo.$who; mkfifo $T/fifo.$who; exec 3<>$T/fifo.$who
echo ready > $T/ready.$who
while :; do read x <&3; done
`)
	path := filepath.Join(dir, "recorder")
	if err := os.WriteFile(path, []byte(b.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// withMember is the command that runs the recorder as "member" in the
// background and as "main" in the foreground, in one process group: the
// test binary starts the member (a shell would start it with INT and QUIT
// ignored, which a script cannot trap) and execs the main recorder.
func withMember(rec string) string {
	self, _ := os.Executable()
	return fmt.Sprintf(`command = [%q, %q, "member", "--", %q, "main"]
env = { STEWARD_TEST_HELPER = "spawn" }`, self, rec, rec)
}

// spawnHelper starts argv before "--" and execs the rest, with the first
// one's pid in MEMBER_PID.
func spawnHelper(args []string) int {
	i := slices.Index(args, "--")
	member := exec.Command(args[0], args[1:i]...)
	member.Stdout, member.Stderr = os.Stdout, os.Stderr
	if err := member.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env := append(os.Environ(), "MEMBER_PID="+strconv.Itoa(member.Process.Pid))
	err := syscall.Exec(args[i+1], args[i+1:], env)
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// got returns the signals recorded by who so far.
func (in *instance) got(who string) []syscall.Signal {
	b, _ := os.ReadFile(filepath.Join(in.dir, "got."+who))
	var out []syscall.Signal
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			if n, err := strconv.Atoi(f[1]); err == nil {
				out = append(out, syscall.Signal(n))
			}
		}
	}
	return out
}

// waitGot waits until who has recorded sig. While it waits it writes an
// empty line to the recorder's FIFO now and then: the shell runs a trap
// between commands, or when a signal interrupts its blocking read, so a
// signal that lands after one trap has run and before the read blocks
// again would wait for the next signal, which the test never sends
// (TestSignalSweep hung that way once in CI, TSTP 0.4 ms after CONT). The
// line only ends the read; a signal that never reached the shell is still
// never recorded.
func (in *instance) waitGot(who string, sig syscall.Signal) {
	in.t.Helper()
	fifo := filepath.Join(in.dir, "fifo."+who)
	testutil.Eventually(in.t, fmt.Sprintf("%s to record signal %d", who, sig), func() bool {
		in.failIfExited(fmt.Sprintf("%s recorded signal %d", who, sig))
		if slices.Contains(in.got(who), sig) {
			return true
		}
		if fd, err := syscall.Open(fifo, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0); err == nil {
			syscall.Write(fd, []byte("\n"))
			syscall.Close(fd)
		}
		return false
	})
}

func (in *instance) failIfExited(before string) {
	in.t.Helper()
	select {
	case <-in.done:
		in.t.Fatalf("steward exited (code %d) before %s", in.code, before)
	default:
	}
}

func (in *instance) waitReady(who ...string) {
	in.t.Helper()
	for _, w := range who {
		testutil.Eventually(in.t, w+" ready", func() bool {
			in.failIfExited(w + " ready")
			_, err := os.Stat(filepath.Join(in.dir, "ready."+w))
			return err == nil
		})
	}
}

// TestSignalSweep: as PID 1, steward receives every signal in turn, each
// acknowledged by the program before the next is sent; each reaches the
// main program's whole process group (or, with signal_group = false, its
// pid only), and steward survives them all, the fault signals included.
// INT, last, starts the shutdown as the stop signal.
func TestSignalSweep(t *testing.T) {
	for _, group := range []bool{true, false} {
		t.Run(fmt.Sprintf("signal_group=%v", group), func(t *testing.T) {
			dir := t.TempDir()
			rec := recorder(t, dir, syscall.SIGINT)
			cfg := fmt.Sprintf("[programs.app]\nmain = true\n%s\n", withMember(rec))
			if !group {
				cfg += "signal_group = false\n"
			}
			in := start(t, runOpts{config: cfg})
			in.waitReady("member", "main")
			for _, sig := range sweptSignals() {
				if sig == syscall.SIGINT || sig == syscall.SIGTERM {
					continue
				}
				in.signal(sig)
				in.waitGot("main", sig)
				if group {
					in.waitGot("member", sig)
				}
			}
			// The fault signals once more, sent with sigqueue (si_code
			// SI_QUEUE, which the Go runtime alone takes for a real fault:
			// only steward's own handler, amd64's, tells them apart).
			var queued []syscall.Signal
			if runtime.GOARCH == "amd64" {
				queued = []syscall.Signal{syscall.SIGILL, syscall.SIGTRAP, syscall.SIGBUS, syscall.SIGFPE,
					syscall.SIGSEGV, 16 /* STKFLT */, syscall.SIGSYS}
			}
			for _, sig := range queued {
				os.Remove(filepath.Join(in.dir, "got.main"))
				os.Remove(filepath.Join(in.dir, "got.member"))
				sigqueue(t, in.pid(), sig)
				in.waitGot("main", sig)
				if group {
					in.waitGot("member", sig)
				}
			}
			// 32 and 33 belong to the C library and the Go runtime: steward
			// ignores them, and lives on.
			in.signal(32)
			in.signal(33)
			in.signal(syscall.SIGINT)
			if code := in.wait(); code != 0 {
				t.Fatalf("exit code %d, want 0 (the program's, after it recorded INT)", code)
			}
			if !slices.Contains(in.got("main"), syscall.SIGINT) {
				t.Fatal("INT did not reach the main program as its stop signal")
			}
			if !group {
				if got := in.got("member"); len(got) > 0 {
					t.Fatalf("with signal_group = false the group member got %v", got)
				}
			}
		})
	}
}

// TestSignalDrop: a signal the program drops is not forwarded, and TERM or
// INT dropped does not start the shutdown either (dumb-init -r 15:0).
func TestSignalDrop(t *testing.T) {
	dir := t.TempDir()
	rec := recorder(t, dir, syscall.SIGUSR2)
	cfg := fmt.Sprintf(`[programs.app]
main = true
command = [%q, "main"]
signals = { TERM = "drop", INT = "drop", HUP = "drop" }
`, rec)
	in := start(t, runOpts{config: cfg})
	in.waitReady("main")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		in.signal(sig)
		if sig == syscall.SIGHUP {
			continue // dropped as any forwarded signal, logged with the forward
		}
		in.waitLog(func(e event) bool {
			return e.str("msg") == "signal received" && e.str("signal") == configs.SignalName(sig) && e.str("action") == "dropped"
		})
	}
	// USR1 is forwarded, so once it arrives the dropped ones had their chance.
	in.signal(syscall.SIGUSR1)
	in.waitGot("main", syscall.SIGUSR1)
	if got := in.got("main"); !slices.Equal(got, []syscall.Signal{syscall.SIGUSR1}) {
		t.Fatalf("program got %v, want only USR1", got)
	}
	for _, e := range in.logLines() {
		if e.str("msg") == "stopping all programs" {
			t.Fatalf("a dropped signal started the shutdown: %v", e)
		}
	}
	in.signal(syscall.SIGUSR2)
	if code := in.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// waitLog waits for a log line matching cond.
func (in *instance) waitLog(cond func(event) bool) {
	in.t.Helper()
	testutil.Eventually(in.t, "log line", func() bool {
		in.failIfExited("the log line")
		return slices.ContainsFunc(in.logLines(), cond)
	})
}

// TestSignalRewritesApplied: rewrites of signals the old fixed list did not
// catch happen at run time.
func TestSignalRewritesApplied(t *testing.T) {
	dir := t.TempDir()
	rec := recorder(t, dir, syscall.SIGTERM)
	cfg := fmt.Sprintf(`[programs.app]
main = true
command = [%q, "main"]
signals = { TTIN = "USR1", SYS = "USR2", URG = "WINCH", 40 = "35" }
`, rec)
	in := start(t, runOpts{config: cfg})
	in.waitReady("main")
	for _, c := range []struct{ sent, want syscall.Signal }{
		{syscall.SIGTTIN, syscall.SIGUSR1}, {syscall.SIGSYS, syscall.SIGUSR2}, {syscall.SIGURG, syscall.SIGWINCH}, {40, 35},
	} {
		in.signal(c.sent)
		in.waitGot("main", c.want)
		if slices.Contains(in.got("main"), c.sent) {
			t.Fatalf("%v reached the program unrewritten", c.sent)
		}
	}
	in.signal(syscall.SIGTERM)
	if code := in.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// TestRewriteValidation: a rewrite that could never happen, or to a signal
// that does not exist, fails validation with file:line: key.
func TestRewriteValidation(t *testing.T) {
	for _, c := range []struct{ rewrite, key, msg string }{
		{`KILL = "TERM"`, "programs.app.signals.KILL", "SIGKILL cannot be caught"},
		{`STOP = "TSTP"`, "programs.app.signals.STOP", "SIGSTOP cannot be caught"},
		{`CHLD = "USR1"`, "programs.app.signals.CHLD", "never forwarded"},
		{`USR1 = "SIGNOPE"`, "programs.app.signals.USR1", `unknown signal "SIGNOPE"`},
		{`USR1 = 65`, "programs.app.signals.USR1", "out of range"},
	} {
		path := filepath.Join(t.TempDir(), "bad.toml")
		os.WriteFile(path, []byte("[programs.app]\nmain = true\ncommand = [\"true\"]\nsignals = { "+c.rewrite+" }\n"), 0o644)
		var stdout, stderr strings.Builder
		code := run([]string{"validate", "--config", path}, &stdout, &stderr)
		want := path + ":4: " + c.key + ": "
		if code != 2 || !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), c.msg) {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 2 and %q ... %q", c.rewrite, code, stderr.String(), want, c.msg)
		}
	}
}

// TestAbortNotPID1: not PID 1, steward survives a kill -ABRT (which used
// to crash it with a Go dump and orphan its program): ABRT goes to the
// program's group, which dies of it, and steward exits with its code.
func TestAbortNotPID1(t *testing.T) {
	in := start(t, runOpts{hostPIDNS: true, command: []string{"sh", "-c", `sleep 1000 & echo $! > $T/child; wait`}})
	testutil.Eventually(t, "child pid", func() bool { return len(readIntsIfAny(in.dir+"/child")) == 1 })
	child := readInts(t, in.dir+"/child")[0]
	in.signal(syscall.SIGABRT)
	if code := in.wait(); code != 128+int(syscall.SIGABRT) {
		t.Fatalf("exit code %d, want %d (the program killed by the forwarded ABRT)", code, 128+int(syscall.SIGABRT))
	}
	if alive(child) {
		t.Fatalf("the program's child %d outlived steward", child)
	}
}

// TestSignal32NotPID1: 32 belongs to the C library; its default action
// (terminate) would end steward, which as a subreaper, not PID 1, the
// kernel does not shield. steward catches it, drops it and lives on.
func TestSignal32NotPID1(t *testing.T) {
	in := start(t, runOpts{hostPIDNS: true, command: []string{"sh", "-c", `trap 'exit 3' TERM; echo ready > $T/ready.main; while :; do sleep 0.05; done`}})
	in.waitReady("main")
	in.signal(32)
	in.signal(syscall.SIGTERM)
	if code := in.wait(); code != 3 {
		t.Fatalf("exit code %d, want 3 (the program's, after the TERM that followed 32)", code)
	}
}

// TestOwnPipeNotForwarded: when steward's stdout has no reader left, its
// writes raise SIGPIPE in steward itself; steward lives on (it used to die
// of it) and does not pass that PIPE to the program as if it had been sent.
func TestOwnPipeNotForwarded(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	// More than a pipe buffer of output: when the program is done writing,
	// steward has copied most of it to its broken stdout.
	script := `trap 'echo main 13 >> $T/got.main' PIPE; trap 'echo main 15 >> $T/got.main; exit 0' TERM
yes 0123456789012345678901234567890123456789 | head -n 5000
mkfifo $T/fifo; exec 3<>$T/fifo; echo ready > $T/ready.main; while :; do read x <&3; done`
	in := start(t, runOpts{command: []string{"sh", "-c", script}, stdout: w})
	in.waitReady("main")
	in.signal(syscall.SIGTERM)
	if code := in.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if got := in.got("main"); !slices.Equal(got, []syscall.Signal{syscall.SIGTERM}) {
		t.Fatalf("program got %v, want only TERM", got)
	}
}

// TestPdeathSignal: steward run by another process, not as PID 1, gets
// STEWARD_PDEATHSIG when that parent dies, and stops as if sent it.
func TestPdeathSignal(t *testing.T) {
	in := start(t, runOpts{hostPIDNS: true, env: []string{"STEWARD_PDEATHSIG=TERM"},
		wrap: []string{"sh", "-c", `"$@" & echo $! > $T/steward.pid; wait`, "sh"}, command: []string{"sleep", "1000"}})
	testutil.Eventually(t, "steward's pid", func() bool { return len(readIntsIfAny(in.dir+"/steward.pid")) == 1 })
	pid := readInts(t, in.dir+"/steward.pid")[0]
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	in.waitEvent("sleep", "started")
	in.cmd.Process.Kill() // the parent shell
	in.wait()             // steward holds its stderr until it exits
	if !slices.ContainsFunc(in.logLines(), func(e event) bool {
		return e.str("msg") == "stopping all programs" && e.str("reason") == "received SIGTERM"
	}) {
		t.Fatal("steward did not stop on its parent-death signal")
	}
}

// sigexecHelper execs args with the signals in $BLOCK blocked and those
// in $IGNORE ignored, as a shell's nohup or a parent's sigprocmask would
// start steward.
func sigexecHelper(args []string) int {
	runtime.LockOSThread() // the mask is the thread's, and exec keeps it
	var set unix.Sigset_t
	for _, n := range strings.Fields(os.Getenv("BLOCK")) {
		sig, _ := strconv.Atoi(n)
		set.Val[(sig-1)/64] |= 1 << ((sig - 1) % 64)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, n := range strings.Fields(os.Getenv("IGNORE")) {
		sig, _ := strconv.Atoi(n)
		signal.Ignore(syscall.Signal(sig))
	}
	err := syscall.Exec(args[0], args, os.Environ())
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// statusSignals reads a SigBlk or SigIgn line of /proc/PID/status output.
func statusSignals(t *testing.T, status, field string) []int {
	t.Helper()
	for line := range strings.SplitSeq(status, "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			var out []int
			for n := 1; n <= 64; n++ {
				if mask&(1<<(n-1)) != 0 {
					out = append(out, n)
				}
			}
			return out
		}
	}
	t.Fatalf("no %s in %q", field, status)
	return nil
}

// TestInheritedSignalState: programs start with the signal mask and the
// ignored signals steward was started with (tini restores them too), also
// through the chain loader (umask), and nohup keeps a program alive on HUP.
func TestInheritedSignalState(t *testing.T) {
	self, _ := os.Executable()
	for _, c := range []struct{ name, extra string }{{"direct", ""}, {"chain loader", `umask = "022"`}} {
		t.Run(c.name, func(t *testing.T) {
			cfg := fmt.Sprintf("[programs.app]\nmain = true\ncommand = [\"cat\", \"/proc/self/status\"]\n%s\n", c.extra)
			in := start(t, runOpts{config: cfg, wrap: []string{self},
				env: []string{"STEWARD_TEST_HELPER=sigexec", "BLOCK=10 12 40", "IGNORE=1 2 20"}})
			if code := in.wait(); code != 0 {
				t.Fatalf("exit code %d", code)
			}
			status := in.stdout.String()
			if got := statusSignals(t, status, "SigBlk"); !slices.Equal(got, []int{10, 12, 40}) {
				t.Errorf("program's blocked signals %v, want [10 12 40] (USR1 USR2 RTMIN+6)", got)
			}
			if got := statusSignals(t, status, "SigIgn"); !slices.Equal(got, []int{1, 2, 20}) {
				t.Errorf("program's ignored signals %v, want [1 2 20] (HUP INT TSTP)", got)
			}
		})
	}
	t.Run("nohup", func(t *testing.T) {
		in := start(t, runOpts{wrap: []string{"nohup"}, command: []string{"sh", "-c", "kill -HUP $$; echo survived"}})
		if code := in.wait(); code != 0 {
			t.Fatalf("exit code %d, want 0 (the program immune to HUP, as under nohup)", code)
		}
		if !strings.Contains(in.stdout.String(), "survived") {
			t.Fatalf("stdout %q", in.stdout.String())
		}
	})
}

// TestTTYJobControl: on a terminal with `stty tostop`, steward writes its
// log from a background process group (the main program owns the
// foreground) and TTIN or TTOU never stop it, sent or raised by the
// kernel; the interactive main program works and gets TTIN and TTOU with
// their default action, not ignored as steward has them.
func TestTTYJobControl(t *testing.T) {
	master, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Lflag |= unix.TOSTOP
	if err := unix.IoctlSetTermios(int(tty.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	var screen testutil.LockedBuffer
	go io.Copy(&screen, master)
	in := start(t, runOpts{stdio: tty, setctty: true, command: []string{"sh", "-c",
		`grep SigIgn /proc/self/status; read line; echo "got $line"`}})
	tty.Close()
	testutil.Eventually(t, "the program's report", func() bool { return strings.Contains(screen.String(), "SigIgn:") })
	in.signal(syscall.SIGTTIN)
	in.signal(syscall.SIGTTOU)
	master.Write([]byte("hello\n"))
	if code := in.wait(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	// The last lines may still be on their way from the terminal.
	testutil.Eventually(t, "the program's answer and steward's last log line", func() bool {
		return strings.Contains(screen.String(), "got hello") && strings.Contains(screen.String(), "all programs stopped")
	})
	out := screen.String()
	line := out[strings.Index(out, "SigIgn:"):]
	if got := statusSignals(t, line[:strings.IndexByte(line, '\n')], "SigIgn"); len(got) > 0 {
		t.Fatalf("the program started with signals %v ignored, want none:\n%q", got, out)
	}
}

// sigqueue sends sig to pid as sigqueue(3) does (si_code SI_QUEUE).
func sigqueue(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	var info [128]byte
	binary.NativeEndian.PutUint32(info[0:], uint32(sig))
	binary.NativeEndian.PutUint32(info[8:], uint32(0xffffffff)) // SI_QUEUE, -1
	binary.NativeEndian.PutUint32(info[16:], uint32(os.Getpid()))
	binary.NativeEndian.PutUint32(info[20:], uint32(os.Getuid()))
	if _, _, errno := unix.Syscall(unix.SYS_RT_SIGQUEUEINFO, uintptr(pid), uintptr(sig), uintptr(unsafe.Pointer(&info[0]))); errno != 0 {
		t.Fatalf("sigqueue %v: %v", sig, errno)
	}
}

// TestFaultSignalFromInside: the reproduction. A program sends
// SEGV to PID 1: steward forwards it (dumb-init's behaviour), so the
// program dies of it and steward exits 139 with no Go dump; with SEGV
// dropped, as tini does, the program carries on and its code is steward's.
func TestFaultSignalFromInside(t *testing.T) {
	script := `sleep .1; kill -SEGV 1; sleep .1; echo survived; exit 7`
	in := start(t, runOpts{command: []string{"sh", "-c", script}})
	if code := in.wait(); code != 128+int(syscall.SIGSEGV) {
		t.Fatalf("exit code %d, want 139 (the program killed by the forwarded SEGV)", code)
	}
	if strings.Contains(in.stderr.String(), "goroutine") {
		t.Fatalf("steward crashed:\n%s", in.stderr.String())
	}
	in = start(t, runOpts{config: "[programs.app]\nmain = true\nsignals = { SEGV = \"drop\" }\n", command: []string{"sh", "-c", script}})
	if code := in.wait(); code != 7 {
		t.Fatalf("exit code %d, want 7", code)
	}
	if !strings.Contains(in.stdout.String(), "survived") {
		t.Fatalf("stdout %q", in.stdout.String())
	}
}
