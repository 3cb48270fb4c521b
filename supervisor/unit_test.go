package supervisor

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/stream"
)

// lines runs splitLines over input read in chunks of chunk bytes.
// piecebytes is a piece with its bytes.
type piecebytes struct {
	text          []byte
	partial, cont bool
}

func lines(t *testing.T, input string, max, chunk int) []piecebytes {
	t.Helper()
	var got []piecebytes
	r := io.Reader(strings.NewReader(input))
	if chunk > 0 {
		r = iotest.OneByteReader(r)
		if chunk > 1 {
			r = &chunkReader{strings.NewReader(input), chunk}
		}
	}
	err := splitLines(r, max, func(buf []byte, ps []piece) {
		for _, p := range ps {
			got = append(got, piecebytes{text: bytes.Clone(buf[p.start:p.end]), partial: p.partial, cont: p.cont})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

func TestSplitLinesInChunks(t *testing.T) {
	for _, chunk := range []int{0, 1, 3, 7} {
		got := lines(t, "one\ntwo\n\nbad \xff\x00 bytes\nlast", 16, chunk)
		want := []string{"one", "two", "", "bad \xff\x00 bytes", "last"}
		if len(got) != len(want) {
			t.Fatalf("chunk %d: %d pieces %+v, want %d", chunk, len(got), got, len(want))
		}
		for i, p := range got {
			if string(p.text) != want[i] || p.partial || p.cont {
				t.Errorf("chunk %d: piece %d = %+v, want whole %q", chunk, i, p, want[i])
			}
		}
	}
}

// TestSplitLinesCutsLongLines: a line over max comes out in parts of max
// bytes, all but the last partial, and nothing is lost.
func TestSplitLinesCutsLongLines(t *testing.T) {
	long := strings.Repeat("abcdefghij", 10) // 100 bytes
	for _, chunk := range []int{0, 1, 13} {
		got := lines(t, "short\n"+long+"\nafter\n", 32, chunk)
		var rebuilt []string
		var cur strings.Builder
		for i, p := range got {
			if len(p.text) > 32 {
				t.Fatalf("chunk %d: piece %d has %d bytes, over max", chunk, i, len(p.text))
			}
			cur.Write(p.text)
			if !p.partial {
				rebuilt = append(rebuilt, cur.String())
				cur.Reset()
			}
		}
		if want := []string{"short", long, "after"}; !slices.Equal(rebuilt, want) {
			t.Fatalf("chunk %d: rebuilt %q", chunk, rebuilt)
		}
		// 100 bytes at 32 a piece: 32, 32, 32 partial, then 4 bytes.
		parts := got[1:5]
		for i, p := range parts {
			if p.partial != (i < 3) || p.cont != (i > 0) {
				t.Errorf("chunk %d: part %d partial=%v cont=%v", chunk, i, p.partial, p.cont)
			}
		}
	}
}

// TestSplitLinesBufferGrowsOnlyWhenFilled: the read buffer starts small
// and grows only as far as what is read needs, up to max; lines are cut
// at max bytes exactly, as with a buffer of max from the start, and
// nothing is lost whatever the reads' sizes.
func TestSplitLinesBufferGrowsOnlyWhenFilled(t *testing.T) {
	const max = 10000 // not a power of two times the first size
	small := 0
	if err := splitLines(strings.NewReader("a\nb\n"), max, func(buf []byte, _ []piece) { small = len(buf) }); err != nil {
		t.Fatal(err)
	}
	if small != minReadBuffer {
		t.Fatalf("buffer of %d bytes for two short lines, want %d", small, minReadBuffer)
	}
	mk := func(n int) string { return strings.Repeat(string(rune('a'+n%26)), n) }
	var in strings.Builder
	var want []string
	for _, n := range []int{10, 5000, 9000, max - 1, max, max + 1, 3 * max, 25000, 1, 0, 4095, 4096, 4097} {
		want = append(want, mk(n))
		in.WriteString(mk(n) + "\n")
	}
	for i := range 3000 { // many short lines: reads that fill the buffer
		want = append(want, strconv.Itoa(i))
		in.WriteString(strconv.Itoa(i) + "\n")
	}
	for _, chunk := range []int{0, 1, 999, 4096, 70000} {
		got := lines(t, in.String(), max, chunk)
		var rebuilt []string
		var cur strings.Builder
		for i, p := range got {
			if len(p.text) > max || (p.partial && len(p.text) != max) {
				t.Fatalf("chunk %d: piece %d: %d bytes, partial %v", chunk, i, len(p.text), p.partial)
			}
			cur.Write(p.text)
			if !p.partial {
				rebuilt = append(rebuilt, cur.String())
				cur.Reset()
			}
		}
		if !slices.Equal(rebuilt, want) {
			t.Fatalf("chunk %d: %d lines rebuilt, want %d", chunk, len(rebuilt), len(want))
		}
	}
}

// TestCaptureRecordsAndOutput: what a pipe delivers reaches the output with
// prefixes at line starts only, and the stream with partial flags.
func TestCaptureRecordsAndOutput(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	records := stream.New[LogRecord]("logs", log)
	sub := records.Subscribe("test", 100)
	var out bytes.Buffer
	c := &capture{program: "web", pid: 42, source: "stderr", prefix: []byte("[web] "), dst: &out,
		out: &output{stdout: &out, stderr: &out}, records: records}
	if err := c.run(strings.NewReader("0123456789ABCDEF\nok\n"), 8); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "[web] 0123456789ABCDEF\n[web] ok\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
	var got []LogRecord
	for len(sub.C) > 0 {
		got = append(got, *<-sub.C)
	}
	want := []struct {
		text    string
		partial bool
	}{{"01234567", true}, {"89ABCDEF", true}, {"", false}, {"ok", false}}
	if len(got) != len(want) {
		t.Fatalf("records %+v", got)
	}
	for i, w := range want {
		r := got[i]
		if r.Text != w.text || r.Partial != w.partial || r.Program != "web" || r.PID != 42 || r.Source != "stderr" {
			t.Errorf("record %d = %+v, want %q partial=%v", i, r, w.text, w.partial)
		}
	}
}

// TestStreamNeverBlocks: a subscriber that does not read loses what does
// not fit its buffer, counted, while another subscriber gets everything.
func TestStreamNeverBlocks(t *testing.T) {
	s := stream.New[int]("test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	slow := s.Subscribe("slow", 10)
	fast := s.Subscribe("fast", 1000)
	for i := range 1000 {
		s.Publish(i)
	}
	if slow.Dropped() != 990 || len(slow.C) != 10 {
		t.Fatalf("slow: dropped %d, buffered %d", slow.Dropped(), len(slow.C))
	}
	if fast.Dropped() != 0 || len(fast.C) != 1000 {
		t.Fatalf("fast: dropped %d, buffered %d", fast.Dropped(), len(fast.C))
	}
	s.Unsubscribe(slow)
	if _, open := <-slow.C; !open {
		t.Fatal("buffered values lost on unsubscribe")
	}
	s.Close()
	if s.Active() {
		t.Fatal("still active after close")
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "runme"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "noexec"), []byte("#!/bin/sh\n"), 0o644)
	os.Mkdir(filepath.Join(dir, "adir"), 0o755)
	env := []string{"PATH=/nonexistent:" + dir}
	cases := []struct {
		file, dir string
		code      int
	}{
		{"runme", "", 0},
		{filepath.Join(dir, "runme"), "", 0},
		{"./runme", dir, 0},
		{"missing", "", ExitNotFound},
		{"/no/such/file", "", ExitNotFound},
		{"noexec", "", ExitCannotExecute},
		{filepath.Join(dir, "noexec"), "", ExitCannotExecute},
		{filepath.Join(dir, "adir"), "", ExitCannotExecute},
		{filepath.Join(dir, "runme", "x"), "", ExitNotFound},
	}
	for _, c := range cases {
		_, err := lookPath(c.file, env, c.dir)
		code := 0
		if se, ok := err.(*startError); ok {
			code = se.code
		} else if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if code != c.code {
			t.Errorf("%s: code %d (%v), want %d", c.file, code, err, c.code)
		}
	}
}

func TestProgramEnv(t *testing.T) {
	base := baseEnv([]string{"PATH=/bin", "AWS_KEY=x", "AWS_SECRET=y", "KEEP=1", "STEWARD_APP=a"})
	p := &configs.Program{
		Name:      "web",
		Env:       map[string]string{"KEEP": "2", "NEW": "3"},
		EnvRemove: []string{"AWS_*"},
		Cred:      &configs.Credential{Username: "app", Home: "/home/app"},
	}
	got := programEnv(base, p)
	want := []string{"PATH=/bin", "KEEP=2", "STEWARD_APP=a", "HOME=/home/app", "USER=app", "LOGNAME=app", "STEWARD_PROGRAM=web", "NEW=3"}
	if !slices.Equal(got, want) {
		t.Fatalf("env %q\nwant %q", got, want)
	}
}

func TestStartOrder(t *testing.T) {
	specs := map[string]*configs.Program{
		"web":     {DependsOn: []configs.Dependency{{Name: "migrate"}, {Name: "db"}}},
		"db":      {},
		"migrate": {DependsOn: []configs.Dependency{{Name: "db"}}},
		"worker":  {},
	}
	order := []string{"web", "db", "migrate", "worker"}
	if got := startOrder(order, func(name string) *configs.Program { return specs[name] }); !slices.Equal(got, []string{"db", "migrate", "web", "worker"}) {
		t.Fatalf("order %v", got)
	}
}
