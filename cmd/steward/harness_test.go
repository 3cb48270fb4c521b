package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/internal/proc"
	"github.com/stewardhq/steward/internal/testutil"
)

// stewardBin is the real binary under test, built once by TestMain (with
// the race detector when the tests run with it).
var stewardBin string

// testStewardVersion is the version the binary under test is stamped with.
const testStewardVersion = "v0.0.0-test.1"

func TestMain(m *testing.M) {
	if mode := os.Getenv("STEWARD_TEST_HELPER"); mode != "" {
		os.Exit(helper(mode, os.Args[1:]))
	}
	// STEWARD_TEST_BIN runs the tests against another build, e.g. the
	// main branch's, to see which tests fail before a fix.
	if bin := os.Getenv("STEWARD_TEST_BIN"); bin != "" {
		stewardBin = bin
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "steward-test-")
	if err != nil {
		panic(err)
	}
	stewardBin = filepath.Join(dir, "steward")
	// Stamped as a release build is (Dockerfile.example), so tests see
	// steward's own version where it is reported.
	args := []string{"build", "-ldflags=-X main.version=" + testStewardVersion, "-o", stewardBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building steward:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// helper runs the test binary as a program under steward, for behaviour a
// shell can't give: "listen" accepts TCP connections on $LISTEN_ADDR and
// "http" answers 200 there, both after $LISTEN_DELAY.
func helper(mode string, args []string) int {
	switch mode {
	case "spawn":
		return spawnHelper(args)
	case "sigexec":
		return sigexecHelper(args)
	}
	if d, err := time.ParseDuration(os.Getenv("LISTEN_DELAY")); err == nil {
		time.Sleep(d)
	}
	ln, err := net.Listen("tcp", os.Getenv("LISTEN_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	switch mode {
	case "listen":
		for {
			c, err := ln.Accept()
			if err != nil {
				return 1
			}
			c.Close()
		}
	case "http":
		http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }))
	}
	return 1
}

// freeAddr reserves a loopback port for a server a test starts later.
func freeAddr(t *testing.T) string { return testutil.FreeAddr(t) }

type runOpts struct {
	config  string   // TOML, written to a file given with --config
	command []string // after --
	env     []string
	// hostPIDNS runs steward without a new PID namespace, as a subreaper.
	hostPIDNS bool
	// stdio, when set, replaces the pipes (a terminal, say).
	stdio *os.File
	// stdout, when set, is steward's stdout.
	stdout *os.File
	// setctty makes stdio the controlling terminal of a new session.
	setctty bool
	// wrap runs steward through this command (steward's path and
	// arguments follow it), e.g. to place it in a cgroup first.
	wrap []string
	// bin replaces the binary under test (default stewardBin).
	bin string
	// discardStdout sends steward's stdout (the programs' copied lines)
	// to /dev/null rather than into the test's memory.
	discardStdout bool
}

type instance struct {
	t   *testing.T
	cmd *exec.Cmd
	dir string
	// socket is the control socket the harness gave steward, "" when the
	// test chose its own.
	socket string
	stdout *testutil.LockedBuffer
	stderr *testutil.LockedBuffer
	done   chan struct{}
	code   int
}

// start runs steward, by default as PID 1 of a fresh PID namespace, with
// JSON logs so the test can read its events.
func start(t *testing.T, o runOpts) *instance {
	t.Helper()
	in := &instance{t: t, dir: t.TempDir(), stdout: &testutil.LockedBuffer{}, stderr: &testutil.LockedBuffer{}, done: make(chan struct{})}
	var args []string
	if o.config != "" {
		path := filepath.Join(in.dir, "steward.toml")
		if err := os.WriteFile(path, []byte(o.config), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", path)
	}
	if len(o.command) > 0 {
		args = append(append(args, "--"), o.command...)
	}
	bin := stewardBin
	if o.bin != "" {
		bin = o.bin
	}
	in.cmd = exec.Command(bin, args...)
	if len(o.wrap) > 0 {
		in.cmd = exec.Command(o.wrap[0], append(append(o.wrap[1:], bin), args...)...)
	}
	in.cmd.Env = append(os.Environ(), "STEWARD_LOG_FORMAT=json", "STEWARD_LOG_LEVEL=debug", "T="+in.dir)
	in.cmd.Env = append(in.cmd.Env, o.env...)
	var own []string
	own, in.socket = ownSurfaces(o.config, o.env, in.dir)
	in.cmd.Env = append(in.cmd.Env, own...)
	in.cmd.Dir = in.dir
	in.cmd.SysProcAttr = &syscall.SysProcAttr{}
	if !o.hostPIDNS {
		in.cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID
	}
	if o.stdio != nil {
		in.cmd.Stdin, in.cmd.Stdout, in.cmd.Stderr = o.stdio, o.stdio, o.stdio
	} else {
		in.cmd.Stdout, in.cmd.Stderr = in.stdout, in.stderr
		if o.discardStdout {
			in.cmd.Stdout = nil // exec opens /dev/null
		}
	}
	if o.stdout != nil {
		in.cmd.Stdout = o.stdout
	}
	if o.setctty {
		in.cmd.SysProcAttr.Setsid = true
		in.cmd.SysProcAttr.Setctty = true
	}
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		in.cmd.Wait()
		in.code = in.cmd.ProcessState.ExitCode()
		if ws, ok := in.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			in.code = 128 + int(ws.Signal())
		}
		close(in.done)
	}()
	t.Cleanup(func() {
		select {
		case <-in.done:
		default:
			in.cmd.Process.Kill()
			<-in.done
		}
		in.checkSurfaces()
		if t.Failed() {
			t.Logf("steward stderr:\n%s", in.stderr.String())
			t.Logf("steward stdout:\n%s", in.stdout.String())
		}
	})
	return in
}

// ownSurfaces keeps a test's steward off the host's defaults (the control
// socket /run/steward/control.sock, the HTTP port 9779), which a steward of
// the host or a parallel test run may hold: unless the test sets them (in
// its config or env), steward gets a socket in the test's directory and an
// HTTP port the kernel picks. It returns the env to add and the socket.
func ownSurfaces(config string, env []string, dir string) ([]string, string) {
	var httpSet, socketSet bool
	for _, kv := range env {
		httpSet = httpSet || strings.HasPrefix(kv, "STEWARD_HTTP_ADDR=")
		socketSet = socketSet || strings.HasPrefix(kv, "STEWARD_CONTROL_SOCKET=")
	}
	// A config the test meant to be broken names neither (as far as steward
	// gets): the env's valid values add no problem to its report.
	var tree map[string]any
	if toml.Unmarshal([]byte(config), &tree) == nil {
		if h, ok := tree["http"].(map[string]any); ok {
			_, set := h["addr"]
			httpSet = httpSet || set
		}
		if c, ok := tree["control"].(map[string]any); ok {
			_, set := c["socket"]
			socketSet = socketSet || set
		}
	}
	var own []string
	if !httpSet {
		own = append(own, "STEWARD_HTTP_ADDR=127.0.0.1:0")
	}
	socket := ""
	if !socketSet {
		socket = filepath.Join(dir, "control.sock")
		own = append(own, "STEWARD_CONTROL_SOCKET="+socket)
	}
	return own, socket
}

// checkSurfaces fails the test if its steward listened on a host default,
// whoever chose it: no test may take what a real steward of the host uses.
func (in *instance) checkSurfaces() {
	_, defaultPort, _ := net.SplitHostPort(configs.DefaultHTTPAddr)
	for _, e := range in.logLines() {
		switch e.str("msg") {
		case "control socket listening":
			if p := e.str("path"); filepath.Dir(p) == filepath.Dir(configs.DefaultControlSocket) {
				in.t.Errorf("steward listened on the host's control socket %s", p)
			}
		case "http endpoint listening":
			if _, port, _ := net.SplitHostPort(e.str("addr")); port == defaultPort {
				in.t.Errorf("steward listened on the host's HTTP port %s", e.str("addr"))
			}
		}
	}
}

// isolatedEnv is the env for a steward a test runs without start (a short
// run to its exit): its own control socket in dir, no HTTP endpoint.
func isolatedEnv(dir string) []string {
	return append(os.Environ(), "STEWARD_HTTP_ADDR=off", "STEWARD_CONTROL_SOCKET="+filepath.Join(dir, "control.sock"))
}

func (in *instance) pid() int { return in.cmd.Process.Pid }

func (in *instance) signal(sig syscall.Signal) {
	in.t.Helper()
	if err := in.cmd.Process.Signal(sig); err != nil {
		in.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait returns steward's exit code; the limit only guards against a hang.
func (in *instance) wait() int {
	in.t.Helper()
	select {
	case <-in.done:
		return in.code
	case <-time.After(testutil.HangGuard):
		in.t.Fatal("steward did not exit")
		return -1
	}
}

// event is one line of steward's JSON log.
type event map[string]any

func (e event) str(k string) string {
	if v, ok := e[k].(string); ok {
		return v
	}
	return ""
}

func (e event) num(k string) int {
	if v, ok := e[k].(float64); ok {
		return int(v)
	}
	return -1
}

// logLines parses steward's log so far.
func (in *instance) logLines() []event {
	var out []event
	sc := bufio.NewScanner(strings.NewReader(in.stderr.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) == nil && e["msg"] != nil {
			out = append(out, e)
		}
	}
	return out
}

// events lists the program events, optionally of one program.
func (in *instance) events(program string) []event {
	var out []event
	for _, e := range in.logLines() {
		if strings.HasPrefix(e.str("msg"), "program ") && (program == "" || e.str("program") == program) {
			out = append(out, e)
		}
	}
	return out
}

func (e event) kind() string { return strings.TrimPrefix(e.str("msg"), "program ") }

// index returns the position of the first event of program with kind, or -1.
func index(events []event, program, kind string) int {
	for i, e := range events {
		if e.str("program") == program && e.kind() == kind {
			return i
		}
	}
	return -1
}

// waitHTTP waits until steward's HTTP endpoint listens: it starts once
// the programs are forked (a late starter), so a program's "started"
// event does not mean it answers yet.
func (in *instance) waitHTTP() {
	in.t.Helper()
	testutil.Eventually(in.t, "the http endpoint listening", func() bool {
		in.failIfExited("the http endpoint listened")
		return slices.ContainsFunc(in.logLines(), func(e event) bool { return e.str("msg") == "http endpoint listening" })
	})
}

// waitEvent waits for the first event of program with kind.
func (in *instance) waitEvent(program, kind string) event {
	in.t.Helper()
	var found event
	testutil.Eventually(in.t, program+" "+kind, func() bool {
		evs := in.events(program)
		if i := index(evs, program, kind); i >= 0 {
			found = evs[i]
			return true
		}
		select {
		case <-in.done:
			in.t.Fatalf("steward exited (code %d) before %s %s", in.code, program, kind)
		default:
		}
		return false
	})
	return found
}

func readProc(pid int) (proc.Stat, bool) {
	st, err := proc.ReadStat("/proc", pid)
	return st, err == nil
}

func (in *instance) nsProcs() []proc.Stat {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", in.pid()))
	if err != nil {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var out []proc.Stat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err != nil || l != ns {
			continue
		}
		if p, ok := readProc(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// hostPID translates a pid as steward logs it (in its namespace) to the
// host's, through NSpid; 0 when no such process is left.
func (in *instance) hostPID(nsPID int) int {
	for _, p := range in.nsProcs() {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				f := strings.Fields(v)
				if f[len(f)-1] == strconv.Itoa(nsPID) {
					return p.PID
				}
			}
		}
	}
	return 0
}

func zombies(procs []proc.Stat) []proc.Stat {
	var z []proc.Stat
	for _, p := range procs {
		if p.State == 'Z' {
			z = append(z, p)
		}
	}
	return z
}

// readInts reads a file of whitespace-separated integers.
func readInts(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, n)
	}
	return out
}

func alive(pid int) bool {
	p, ok := readProc(pid)
	return ok && p.State != 'Z'
}

// exitCode of a finished command's error.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
