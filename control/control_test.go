package control

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/testutil"
)

func newServer(t *testing.T) (*Server, string) {
	t.Helper()
	s := NewServer(slog.New(slog.DiscardHandler))
	s.Handle("echo", func(ctx context.Context, args json.RawMessage) (any, error) {
		var in map[string]string
		if err := json.Unmarshal(args, &in); err != nil {
			return nil, err
		}
		return map[string]string{"got": in["say"]}, nil
	})
	s.Handle("fail", func(context.Context, json.RawMessage) (any, error) { return nil, errors.New("no such program") })
	s.HandleStream("count", func(ctx context.Context, args json.RawMessage, send func(any) error) error {
		for i := range 3 {
			if err := send(i); err != nil {
				return err
			}
		}
		return nil
	})
	s.HandleStream("follow", func(ctx context.Context, args json.RawMessage, send func(any) error) error {
		if err := send("first"); err != nil {
			return err
		}
		<-ctx.Done() // waits for more, as logs -f does
		followEnded <- struct{}{}
		return ctx.Err()
	})
	path := filepath.Join(t.TempDir(), "run", "steward", "control.sock")
	if err := s.Listen(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, path
}

func TestRoundTripAndMode(t *testing.T) {
	_, path := newServer(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v, want 0700", di.Mode().Perm())
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangGuard)
	defer cancel()
	var out map[string]string
	if err := Call(ctx, path, "echo", map[string]string{"say": "hi"}, &out); err != nil || out["got"] != "hi" {
		t.Fatalf("echo: %v %v", out, err)
	}
	var re *RemoteError
	if err := Call(ctx, path, "fail", nil, nil); !errors.As(err, &re) || re.Message != "no such program" {
		t.Fatalf("fail: %v", err)
	}
	if err := Call(ctx, path, "nope", nil, nil); err == nil || !strings.Contains(err.Error(), `unknown command "nope" (known: count, echo, fail, follow)`) {
		t.Fatalf("unknown: %v", err)
	}
}

func TestSeveralRequestsOnOneConnection(t *testing.T) {
	_, path := newServer(t)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(`{"command":"echo","args":{"say":"a"}}` + "\n" + "not json\n" + `{"command":"echo","args":{"say":"b"}}` + "\n"))
	dec := json.NewDecoder(c)
	var answers []Response
	for range 3 {
		var r Response
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		answers = append(answers, r)
	}
	if !answers[0].OK || answers[1].OK || !strings.Contains(answers[1].Error, "bad request") || string(answers[2].Result) != `{"got":"b"}` {
		t.Fatalf("%+v", answers)
	}
}

func TestStaleSocketReplacedLiveOneKept(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.sock")
	// A socket nobody listens on, as a killed steward leaves it.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	s := NewServer(slog.New(slog.DiscardHandler))
	if err := s.Listen(path); err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer s.Close(context.Background())
	other := NewServer(slog.New(slog.DiscardHandler))
	if err := other.ListenFirst([]string{path, filepath.Join(dir, "fallback.sock")}); !errors.Is(err, ErrInUse) {
		t.Fatalf("second server on a live socket: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "fallback.sock")); err == nil {
		t.Fatal("fell back beside a live steward")
	}
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, []byte("x"), 0o600)
	if err := NewServer(slog.New(slog.DiscardHandler)).Listen(regular); err == nil {
		t.Fatal("a regular file was replaced by the socket")
	}
}

var followEnded = make(chan struct{}, 1)

func TestStreams(t *testing.T) {
	_, path := newServer(t)
	var got []int
	err := Stream(context.Background(), path, "count", nil, func(r json.RawMessage) error {
		var n int
		json.Unmarshal(r, &n)
		got = append(got, n)
		return nil
	})
	if err != nil || len(got) != 3 || got[2] != 2 {
		t.Fatalf("count: %v %v", got, err)
	}
	// A client that goes away ends a stream that was waiting.
	ctx, cancel := context.WithCancel(context.Background())
	err = Stream(ctx, path, "follow", nil, func(json.RawMessage) error { cancel(); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("follow: %v", err)
	}
	select {
	case <-followEnded:
	case <-time.After(testutil.HangGuard):
		t.Fatal("the stream handler did not notice the client leaving")
	}
	// A plain command still answers on a stream-capable server.
	var echo map[string]string
	if err := Call(context.Background(), path, "echo", map[string]string{"say": "hi"}, &echo); err != nil || echo["got"] != "hi" {
		t.Fatalf("echo: %v %v", echo, err)
	}
}

func TestSocketPaths(t *testing.T) {
	if p := SocketPaths("/x/y.sock", nil); len(p) != 1 || p[0] != "/x/y.sock" {
		t.Fatalf("%v", p)
	}
	p := SocketPaths("", []string{"XDG_RUNTIME_DIR=/run/user/1000", "TMPDIR=/var/tmp"})
	want := []string{"/run/steward/control.sock", "/run/user/1000/steward/control.sock", "/var/tmp/steward-" + itoa(os.Getuid()) + "/control.sock"}
	if strings.Join(p, " ") != strings.Join(want, " ") {
		t.Fatalf("%v, want %v", p, want)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
