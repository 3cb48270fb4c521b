package commands

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stewardhq/steward/internal/testutil"
	"github.com/stewardhq/steward/stream"
	"github.com/stewardhq/steward/supervisor"
)

// TestLogRingKeepsTheLastLines: the window holds the last max lines (and
// at most ringBytesPerProgram of text) of each program, in order.
func TestLogRingKeepsTheLastLines(t *testing.T) {
	r := newLogRing(100, nil)
	for i := range 1000 {
		r.add([]supervisor.LogRecord{{Program: "a", Text: strconv.Itoa(i)}, {Program: "b", Text: "b" + strconv.Itoa(i)}})
	}
	recs, _ := r.snapshot("a", -1, false)
	if len(recs) != 100 || recs[0].Text != "900" || recs[99].Text != "999" {
		t.Fatalf("kept %d lines, %q..%q", len(recs), recs[0].Text, recs[len(recs)-1].Text)
	}
	if recs, _ = r.snapshot("b", 3, false); len(recs) != 3 || recs[2].Text != "b999" {
		t.Fatalf("last 3 of b: %+v", recs)
	}
	if recs, _ = r.snapshot("a", 0, false); len(recs) != 0 {
		t.Fatalf("-n 0 gave %d lines", len(recs))
	}
	big := strings.Repeat("x", ringBytesPerProgram/4)
	for range 10 {
		r.add([]supervisor.LogRecord{{Program: "c", Text: big}})
	}
	if recs, _ = r.snapshot("c", -1, false); len(recs) != 4 {
		t.Fatalf("kept %d lines of %d bytes, want the 4 that fit %d bytes", len(recs), len(big), ringBytesPerProgram)
	}
}

// fakeSupervisor moves a program through the states a stop or restart
// takes, one step per status snapshot.
type fakeSupervisor struct {
	mu    sync.Mutex
	steps []supervisor.ProgramStatus // what the next snapshots show, in turn
	shown supervisor.ProgramStatus
	down  chan struct{}
}

func (f *fakeSupervisor) Status(context.Context) []supervisor.ProgramStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.steps) > 0 {
		f.shown, f.steps = f.steps[0], f.steps[1:]
	}
	return []supervisor.ProgramStatus{f.shown}
}

func (f *fakeSupervisor) StartProgram(context.Context, string) error   { return nil }
func (f *fakeSupervisor) StopProgram(context.Context, string) error    { return nil }
func (f *fakeSupervisor) RestartProgram(context.Context, string) error { return nil }
func (f *fakeSupervisor) SignalProgram(context.Context, string, syscall.Signal) error {
	return nil
}
func (f *fakeSupervisor) ShuttingDown() <-chan struct{}              { return f.down }
func (f *fakeSupervisor) Logs() *stream.Stream[supervisor.LogRecord] { return nil }

// TestActWaitsUntilArrived: stop answers once the program is down, restart
// once a new process runs, not at the first snapshot.
func TestActWaitsUntilArrived(t *testing.T) {
	running := supervisor.ProgramStatus{Name: "w", State: supervisor.StateRunning, PID: 7}
	stopping := supervisor.ProgramStatus{Name: "w", State: supervisor.StateStopping, PID: 7}
	stopped := supervisor.ProgramStatus{Name: "w", State: supervisor.StateStopped}
	again := supervisor.ProgramStatus{Name: "w", State: supervisor.StateRunning, PID: 9}
	for _, c := range []struct {
		command string
		steps   []supervisor.ProgramStatus
		want    string
	}{
		{"stop", []supervisor.ProgramStatus{running, running, running, stopping, stopping, stopped}, "stopped"},
		{"restart", []supervisor.ProgramStatus{running, running, running, stopping, stopped, again}, "running"},
	} {
		f := &fakeSupervisor{steps: c.steps, down: make(chan struct{})}
		cmds := &Commands{sup: f}
		res, err := cmds.act(context.Background(), c.command, ProgramsArgs{Programs: []string{"w"}, Timeout: testutil.HangGuard})
		if err != nil || len(res) != 1 || res[0].State != c.want || res[0].Error != "" {
			t.Fatalf("%s: %+v %v, want %s", c.command, res, err, c.want)
		}
		if len(f.steps) != 0 {
			t.Fatalf("%s answered with %d snapshots still to come", c.command, len(f.steps))
		}
	}
}

// TestLogRingMatchesAModel: the circular window keeps exactly what a
// plain list keeping the last max lines, and dropping the oldest while
// over the byte bound (never the newest), keeps; through wraps, byte-bound
// drops before the window is full, and two programs.
func TestLogRingMatchesAModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shared := strings.Repeat("x", 2*ringBytesPerProgram)
	for _, max := range []int{1, 3, 100} {
		r := newLogRing(max, nil)
		model := map[string][]supervisor.LogRecord{}
		seq := 0
		for range 3000 {
			// A batch is one pipe's read: one program.
			prog := []string{"a", "b"}[rng.IntN(2)]
			batch := make([]supervisor.LogRecord, 1+rng.IntN(2*max+2))
			for i := range batch {
				size := 1 + rng.IntN(100)
				if rng.IntN(20) == 0 {
					size = ringBytesPerProgram/3 + rng.IntN(ringBytesPerProgram)
				}
				seq++ // PID tells the lines apart
				batch[i] = supervisor.LogRecord{Program: prog, PID: seq, Text: shared[:size]}
			}
			r.add(batch)
			for _, rec := range batch {
				m := append(model[rec.Program], rec)
				bytes := 0
				for _, x := range m {
					bytes += len(x.Text)
				}
				for len(m) > max || bytes > ringBytesPerProgram && len(m) > 1 {
					bytes -= len(m[0].Text)
					m = m[1:]
				}
				model[rec.Program] = m
			}
			for _, p := range []string{"a", "b"} {
				k := rng.IntN(max+2) - 1
				got, _ := r.snapshot(p, k, false)
				want := model[p]
				if k >= 0 && k < len(want) {
					want = want[len(want)-k:]
				}
				if len(got) != len(want) {
					t.Fatalf("max %d, program %s, last %d: %d lines, want %d", max, p, k, len(got), len(want))
				}
				for i := range got {
					if got[i].PID != want[i].PID {
						t.Fatalf("max %d, program %s: line %d is number %d, want %d", max, p, i, got[i].PID, want[i].PID)
					}
				}
			}
		}
	}
}

// TestSlowFollowerDropsCounted: a `steward logs -f` that does not keep up
// loses lines past its buffer (the ring never waits for it), and each one
// is counted, not silently gone.
func TestSlowFollowerDropsCounted(t *testing.T) {
	r := newLogRing(10, nil)
	_, ch := r.snapshot("a", 0, true)
	for i := range followerBuffer + 25 {
		r.add([]supervisor.LogRecord{{Program: "a", Text: strconv.Itoa(i)}})
	}
	if len(ch) != followerBuffer {
		t.Fatalf("follower holds %d lines, want its buffer of %d", len(ch), followerBuffer)
	}
	if got := r.followerDrops.Total(); got != 25 {
		t.Fatalf("counted %d dropped lines, want 25", got)
	}
}
