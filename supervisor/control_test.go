package supervisor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/internal/testutil"
)

// configOf is the supervisor's part of cfg, as cmd/steward builds it.
func configOf(cfg *configs.Config) Config {
	return Config{Programs: cfg.ProgramList(), ShutdownTimeout: cfg.Steward.ShutdownTimeout.D(),
		SuccessExitCodes: cfg.Steward.SuccessExitCodes, MaxLineBytes: cfg.Steward.MaxLineBytes}
}

// running starts a supervisor in this process and returns it with a
// channel that gets Run's exit code.
func running(t *testing.T, cfg *configs.Config) (*Supervisor, chan int) {
	t.Helper()
	s, err := New(configOf(cfg), slog.New(slog.NewTextHandler(io.Discard, nil)), WithOutput(io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(testutil.HangGuard):
			t.Error("supervisor did not stop")
		}
	})
	return s, done
}

func status(t *testing.T, s *Supervisor, name string) ProgramStatus {
	t.Helper()
	for _, ps := range s.Status(context.Background()) {
		if ps.Name == name {
			return ps
		}
	}
	return ProgramStatus{Name: name, State: -1}
}

func waitState(t *testing.T, s *Supervisor, name string, want State) ProgramStatus {
	t.Helper()
	deadline := time.Now().Add(testutil.HangGuard)
	for {
		ps := status(t, s, name)
		if ps.State == want && (want != StateRunning || ps.PID != 0) {
			return ps
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v, want %v", name, ps.State, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const controlConfig = `
[programs.main]
main = true
command = ["sleep", "1000"]
start_secs = 0

[programs.a]
command = ["sh", "-c", "trap 'echo USR1 >> %[1]s/a.signals' USR1; echo $$ > %[1]s/a.trapped; while :; do sleep 0.05; done"]
start_secs = 0

[programs.b]
depends_on = ["a"]
command = ["sleep", "1000"]
start_secs = 0
`

func TestStopStartRestartSignal(t *testing.T) {
	dir := t.TempDir()
	s, done := running(t, testutil.LoadConfig(t, strings.ReplaceAll(controlConfig, "%[1]s", dir)))
	ctx := context.Background()
	a := waitState(t, s, "a", StateRunning)
	b := waitState(t, s, "b", StateRunning)

	if err := s.StopProgram(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "b", StateStopped)
	time.Sleep(100 * time.Millisecond) // a stopped program must not come back by itself
	if ps := status(t, s, "b"); ps.State != StateStopped || ps.PID != 0 {
		t.Fatalf("b after stop: %+v", ps)
	}
	if err := s.StartProgram(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if nb := waitState(t, s, "b", StateRunning); nb.PID == b.PID {
		t.Fatal("b not started anew")
	}
	if err := s.StartProgram(ctx, "b"); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("starting a running program: %v", err)
	}

	if err := s.RestartProgram(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	eventually := time.Now().Add(testutil.HangGuard)
	for status(t, s, "a").PID == a.PID || status(t, s, "a").State != StateRunning {
		if time.Now().After(eventually) {
			t.Fatal("a not restarted")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Signal only once the new shell has its trap set.
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "a.trapped"))
		if strings.TrimSpace(string(b)) == strconv.Itoa(status(t, s, "a").PID) {
			break
		}
		if time.Now().After(eventually) {
			t.Fatal("a never set its trap")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.SignalProgram(ctx, "a", syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	for {
		if b, _ := os.ReadFile(filepath.Join(dir, "a.signals")); strings.Contains(string(b), "USR1") {
			break
		}
		if time.Now().After(eventually) {
			t.Fatal("a did not get USR1")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.SignalProgram(ctx, "nope", syscall.SIGUSR1); !errors.Is(err, ErrUnknownProgram) {
		t.Fatalf("unknown program: %v", err)
	}

	// Restarting the main program does not end the container.
	m := waitState(t, s, "main", StateRunning)
	if err := s.RestartProgram(ctx, "main"); err != nil {
		t.Fatal(err)
	}
	for status(t, s, "main").PID == m.PID || status(t, s, "main").State != StateRunning {
		if time.Now().After(eventually) {
			t.Fatal("main not restarted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case code := <-done:
		t.Fatalf("steward ended (%d) on a restart of main", code)
	default:
	}
	// Stopping it does, with its code.
	if err := s.StopProgram(ctx, "main"); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 143 {
			t.Fatalf("exit code %d, want 143", code)
		}
		done <- code
	case <-time.After(testutil.HangGuard):
		t.Fatal("steward did not end when main was stopped")
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	s, _ := running(t, testutil.LoadConfig(t, strings.ReplaceAll(controlConfig, "%[1]s", dir)+`
[programs.gone]
command = ["sleep", "1000"]
start_secs = 0
`))
	main := waitState(t, s, "main", StateRunning)
	a := waitState(t, s, "a", StateRunning)
	b := waitState(t, s, "b", StateRunning)
	gone := waitState(t, s, "gone", StateRunning)

	next := testutil.LoadConfig(t, strings.ReplaceAll(controlConfig, "%[1]s", dir)+`
[programs.c]
depends_on = ["b"]
command = ["sleep", "999"]
start_secs = 0
`)
	next.Programs["b"].Command = []string{"sleep", "998"}
	res, err := s.Reload(context.Background(), next.ProgramList())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.Unchanged)
	if !slices.Equal(res.Added, []string{"c"}) || !slices.Equal(res.Removed, []string{"gone"}) ||
		!slices.Equal(res.Changed, []string{"b"}) || !slices.Equal(res.Unchanged, []string{"a", "main"}) {
		t.Fatalf("reload result %+v", res)
	}
	waitState(t, s, "c", StateRunning)
	if nb := waitState(t, s, "b", StateRunning); nb.PID == b.PID {
		t.Fatal("changed program b was not restarted")
	}
	for _, ps := range []ProgramStatus{main, a} {
		if now := status(t, s, ps.Name); now.PID != ps.PID {
			t.Fatalf("unchanged program %s was restarted", ps.Name)
		}
	}
	deadline := time.Now().Add(testutil.HangGuard)
	for status(t, s, "gone").State != -1 {
		if time.Now().After(deadline) {
			t.Fatal("removed program still listed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if syscall.Kill(gone.PID, 0) == nil {
		t.Fatalf("removed program's process %d still alive", gone.PID)
	}
}
