package checks

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHTTPStatusRangeAndBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			fmt.Fprint(w, `{"status":"up","db":"ok"}`)
		case "/moved":
			w.WriteHeader(http.StatusNoContent)
		case "/head":
			if r.Method != http.MethodHead {
				w.WriteHeader(http.StatusMethodNotAllowed)
			}
		default:
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	cases := []struct {
		name string
		h    HTTP
		want Status
		out  string
	}{
		{"2xx by default", HTTP{URL: srv.URL + "/ok"}, OK, "status 200"},
		{"5xx fails", HTTP{URL: srv.URL + "/down"}, Critical, "status 503, expected 200-299"},
		{"range", HTTP{URL: srv.URL + "/down", MinStatus: 200, MaxStatus: 503}, OK, "status 503"},
		{"single code", HTTP{URL: srv.URL + "/ok", MinStatus: 204, MaxStatus: 204}, Critical, "expected 204"},
		{"body matches", HTTP{URL: srv.URL + "/ok", Body: regexp.MustCompile(`"db":"ok"`)}, OK, ""},
		{"body differs", HTTP{URL: srv.URL + "/ok", Body: regexp.MustCompile(`"db":"down"`)}, Critical, "body does not match"},
		{"method", HTTP{URL: srv.URL + "/head", Method: http.MethodHead}, OK, "HEAD"},
		{"refused", HTTP{URL: "http://" + closedAddr(t) + "/"}, Critical, "refused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.h.Probe(context.Background())
			if r.Status != c.want || !strings.Contains(r.Output, c.out) {
				t.Fatalf("status %s output %q, want %s with %q", r.Status, r.Output, c.want, c.out)
			}
		})
	}
}

func TestHTTPTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	r := (&HTTP{URL: srv.URL, Timeout: 50 * time.Millisecond}).Probe(context.Background())
	if r.Status != Critical || !strings.Contains(r.Output, "deadline") {
		t.Fatalf("%s %q", r.Status, r.Output)
	}
}

func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if r := (&TCP{Addr: ln.Addr().String(), Timeout: time.Second}).Probe(context.Background()); r.Status != OK {
		t.Fatalf("listening: %s %q", r.Status, r.Output)
	}
	if r := (&TCP{Addr: closedAddr(t), Timeout: time.Second}).Probe(context.Background()); r.Status != Critical {
		t.Fatalf("closed: %s %q", r.Status, r.Output)
	}
}

// fakeExec answers like a command with a given exit code and output, or
// blocks until the context ends as a hanging command would.
type fakeExec struct {
	code   int
	out    string
	hang   bool
	killed bool
}

func (f *fakeExec) Exec(ctx context.Context, spec CommandSpec) (CommandResult, error) {
	if f.hang {
		<-ctx.Done()
		f.killed = true
		return CommandResult{ExitCode: 137, Output: []byte("partial")}, nil
	}
	out := []byte(f.out)
	truncated := len(out) > spec.OutputLimit
	if truncated {
		out = out[:spec.OutputLimit]
	}
	return CommandResult{ExitCode: f.code, Output: out, Truncated: truncated}, nil
}

func TestCommandNagiosSemantics(t *testing.T) {
	for code, want := range map[int]Status{0: OK, 1: Warning, 2: Critical, 3: Unknown, 127: Unknown, 255: Unknown} {
		r := (&Command{Spec: CommandSpec{Argv: []string{"x"}}, Executor: &fakeExec{code: code, out: "msg"}}).Probe(context.Background())
		if r.Status != want || r.Output != "msg" {
			t.Errorf("exit %d: %s %q, want %s", code, r.Status, r.Output, want)
		}
	}
	r := (&Command{Spec: CommandSpec{Argv: []string{"x"}, OutputLimit: 4}, Executor: &fakeExec{out: "0123456789"}}).Probe(context.Background())
	if r.Output != "0123\n[output truncated]" {
		t.Errorf("capped output %q", r.Output)
	}
	f := &fakeExec{hang: true}
	r = (&Command{Spec: CommandSpec{Argv: []string{"x"}}, Timeout: 20 * time.Millisecond, Executor: f}).Probe(context.Background())
	if r.Status != Critical || !strings.Contains(r.Output, "timed out") || !f.killed {
		t.Errorf("timeout: %s %q killed %v", r.Status, r.Output, f.killed)
	}
}

type countingProbe struct {
	mu     sync.Mutex
	n      int
	status Status
}

func (p *countingProbe) Probe(ctx context.Context) Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	return Result{Status: p.status, Output: fmt.Sprint(p.n), Executed: time.Now()}
}

func TestSchedulerRunsAtIntervalAndStops(t *testing.T) {
	probe := &countingProbe{}
	reports := make(chan Report, 100)
	s := NewScheduler([]*Check{{Name: "c", Kind: KindCommand, Probe: probe, Interval: 10 * time.Millisecond, Splay: 5 * time.Millisecond, Health: true}},
		func(r Report) { reports <- r }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.Start(context.Background())
	for i := 1; i <= 3; i++ {
		r := <-reports
		if r.Name != "c" || r.Output != fmt.Sprint(i) || !r.Health || r.Interval != 10*time.Millisecond {
			t.Fatalf("report %d: %+v", i, r)
		}
	}
	// Stop returns once every loop has ended, so nothing runs after it.
	s.Stop()
}

func TestHealthJudgement(t *testing.T) {
	now := time.Now()
	h := NewHealth(time.Minute, []*Check{{Name: "api", Health: true}, {Name: "info"}})
	h.now = func() time.Time { return now }
	running := &ProgramState{Name: "web", State: "running", PID: 7, Main: true, HasProbe: true, Ready: true}
	progReport := func(p *ProgramState) Report {
		st := OK
		if p.State == "fatal" {
			st = Critical
		}
		return Report{Name: ProgramCheckName(p.Name), Kind: KindProgram, Health: true, Program: p, Result: Result{Status: st}}
	}

	rep := h.Report()
	if rep.Status != StateStarting || !rep.Healthy || rep.Ready {
		t.Fatalf("before anything ran: %+v", rep)
	}
	h.Record(progReport(running))
	h.Record(Report{Name: "api", Health: true, Result: Result{Status: Critical, Output: "down"}})
	if rep = h.Report(); rep.Status != StateStarting || !rep.Healthy || rep.Ready {
		t.Fatalf("failing in the grace period: %+v", rep)
	}
	h.Record(Report{Name: "api", Health: true, Result: Result{Status: OK}})
	h.Record(Report{Name: "info", Result: Result{Status: Critical}}) // not a health check
	if rep = h.Report(); rep.Status != StateHealthy || !rep.Ready {
		t.Fatalf("all passing: %+v", rep)
	}
	now = now.Add(2 * time.Minute)
	h.Record(Report{Name: "api", Health: true, Result: Result{Status: Unknown}})
	if rep = h.Report(); rep.Status != StateUnhealthy || rep.Healthy || rep.Ready {
		t.Fatalf("unknown after the grace period: %+v", rep)
	}
	h.Record(Report{Name: "api", Health: true, Result: Result{Status: Warning}})
	notReady := *running
	notReady.Ready, notReady.NotReady = false, "main program web is running"
	h.Record(progReport(&notReady))
	if rep = h.Report(); !rep.Healthy || rep.Ready || !strings.Contains(strings.Join(rep.NotReady, ";"), "main program web") {
		t.Fatalf("warning is healthy, an unready main program is not ready: %+v", rep)
	}
	fatal := &ProgramState{Name: "worker", State: "fatal", LastExitCode: 3}
	h.Record(progReport(fatal))
	if rep = h.Report(); rep.Healthy {
		t.Fatalf("a fatal program is unhealthy: %+v", rep)
	}
	// A program a reload removed is forgotten.
	h.Forget(ProgramCheckName("worker"))
	h.Record(progReport(running))
	if rep = h.Report(); !rep.Healthy || !rep.Ready || len(rep.Checks) != 3 {
		t.Fatalf("after forgetting worker: %+v", rep)
	}
}
