package checks

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if r := (&TCP{Addr: addr, Timeout: time.Second}).Probe(context.Background()); r.Status != OK {
		t.Fatalf("listening: %v %s", r.Status, r.Output)
	}
	ln.Close()
	if r := (&TCP{Addr: addr, Timeout: time.Second}).Probe(context.Background()); r.Status != Critical {
		t.Fatalf("closed: %v %s", r.Status, r.Output)
	}
}

func TestHTTP(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(204)
		case "/slow":
			<-release
		default:
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	defer close(release)
	cases := []struct {
		path string
		want Status
	}{{"/ok", OK}, {"/down", Critical}, {"/slow", Critical}}
	for _, c := range cases {
		r := (&HTTP{URL: srv.URL + c.path, Timeout: 200 * time.Millisecond}).Probe(context.Background())
		if r.Status != c.want {
			t.Errorf("%s: %v (%s), want %v", c.path, r.Status, r.Output, c.want)
		}
	}
	if r := (&HTTP{URL: srv.URL + "/down", MinStatus: 500, MaxStatus: 599, Timeout: time.Second}).Probe(context.Background()); r.Status != OK {
		t.Errorf("expected range 5xx: %v %s", r.Status, r.Output)
	}
}

func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ready")
	p := &File{Path: path}
	if r := p.Probe(context.Background()); r.Status != Critical {
		t.Fatalf("missing: %v", r.Status)
	}
	os.WriteFile(path, nil, 0o644)
	if r := p.Probe(context.Background()); r.Status != OK {
		t.Fatalf("present: %v", r.Status)
	}
}

// fakeExecutor answers like a command that exits with code and prints out,
// or one that runs until killed.
type fakeExecutor struct {
	code  int
	out   string
	hangs bool
	got   CommandSpec
}

func (f *fakeExecutor) Exec(ctx context.Context, cmd CommandSpec) (CommandResult, error) {
	f.got = cmd
	if f.hangs {
		<-ctx.Done()
		return CommandResult{ExitCode: 137}, nil
	}
	return CommandResult{ExitCode: f.code, Output: []byte(f.out)}, nil
}

func TestCommandNagiosStatuses(t *testing.T) {
	for code, want := range map[int]Status{0: OK, 1: Warning, 2: Critical, 3: Unknown, 127: Unknown} {
		ex := &fakeExecutor{code: code, out: "plugin says"}
		r := (&Command{Spec: CommandSpec{Argv: []string{"check"}}, Executor: ex}).Probe(context.Background())
		if r.Status != want || r.Output != "plugin says" {
			t.Errorf("exit %d: %v %q, want %v", code, r.Status, r.Output, want)
		}
		if ex.got.OutputLimit != DefaultOutputLimit {
			t.Errorf("output limit %d", ex.got.OutputLimit)
		}
	}
	r := (&Command{Spec: CommandSpec{Argv: []string{"hang"}}, Timeout: 50 * time.Millisecond, Executor: &fakeExecutor{hangs: true}}).Probe(context.Background())
	if r.Status != Critical || !strings.Contains(r.Output, "timed out") {
		t.Fatalf("timeout: %v %q", r.Status, r.Output)
	}
}
