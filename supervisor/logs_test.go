package supervisor

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stewardhq/steward/stream"
)

type splitPiece struct {
	text          string
	partial, cont bool
}

func split(t *testing.T, r io.Reader, max int) []splitPiece {
	t.Helper()
	var out []splitPiece
	err := splitLines(r, max, func(buf []byte, pieces []piece) {
		for _, p := range pieces {
			out = append(out, splitPiece{string(buf[p.start:p.end]), p.partial, p.cont})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSplitLines(t *testing.T) {
	long := strings.Repeat("x", 150)
	in := "a\n\nbb\n" + long + "\nlast"
	want := []splitPiece{
		{"a", false, false}, {"", false, false}, {"bb", false, false},
		{long[:64], true, false}, {long[64:128], true, true}, {long[128:], false, true},
		{"last", false, false},
	}
	for name, r := range map[string]io.Reader{
		"whole":      strings.NewReader(in),
		"byte-wise":  iotest.OneByteReader(strings.NewReader(in)),
		"half-reads": iotest.HalfReader(strings.NewReader(in)),
	} {
		got := split(t, r, 64)
		if len(got) != len(want) {
			t.Fatalf("%s: %d pieces %+v, want %d", name, len(got), got, len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: piece %d = %+v, want %+v", name, i, got[i], want[i])
			}
		}
	}
}

// TestCapturePublishesOneBatchPerRead: a read's lines are written with one
// write and published as one batch, bytes kept as they were.
func TestCapturePublishesOneBatchPerRead(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	records := stream.New[LogRecord]("logs", log)
	sub := records.SubscribeBatches("test", stream.BatchOptions[LogRecord]{MaxBatches: 10, MaxWeight: 1 << 20})
	var out strings.Builder
	c := &capture{program: "p", pid: 9, source: "stderr", prefix: []byte("[p] "), dst: &out, out: &output{}, records: records}
	if err := c.run(strings.NewReader("one\ntwo \xff\x00\nthree"), 1024); err != nil {
		t.Fatal(err)
	}
	if out.String() != "[p] one\n[p] two \xff\x00\n[p] three\n" {
		t.Fatalf("output %q", out.String())
	}
	// The first read brings two whole lines; the last line ends at EOF.
	b := <-sub.C
	if len(b) != 2 || b[0].Text != "one" || b[1].Text != "two \xff\x00" ||
		b[1].PID != 9 || b[1].Source != "stderr" || b[1].Program != "p" || b[0].Partial {
		t.Fatalf("batch %+v", b)
	}
	if b = <-sub.C; len(b) != 1 || b[0].Text != "three" {
		t.Fatalf("last batch %+v", b)
	}
}

// TestCaptureTimesStrictlyIncrease: the lines of one pipe get strictly
// increasing times, within a read (which once gave 655 lines one time)
// and across reads, so that a system sorting by time keeps their order.
func TestCaptureTimesStrictlyIncrease(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	records := stream.New[LogRecord]("logs", log)
	sub := records.SubscribeBatches("test", stream.BatchOptions[LogRecord]{MaxBatches: 1000, MaxWeight: 1 << 30})
	c := &capture{program: "p", pid: 9, source: "stdout", dst: io.Discard, out: &output{}, records: records}
	text := strings.Repeat("a line of text\n", 20000)
	// Reads of 4 KiB: many lines per read, many reads.
	if err := c.run(iotest.HalfReader(strings.NewReader(text)), 8192); err != nil {
		t.Fatal(err)
	}
	records.UnsubscribeBatches(sub)
	var prev LogRecord
	n := 0
	for b := range sub.C {
		for _, r := range b {
			if n > 0 && !r.Time.After(prev.Time) {
				t.Fatalf("line %d has time %v, not after line %d's %v", n, r.Time, n-1, prev.Time)
			}
			prev = r
			n++
		}
	}
	if n != 20000 {
		t.Fatalf("%d lines", n)
	}
}

// TestCaptureOutputWithoutPrefixIsTheInput: without a prefix or
// timestamps the output is written from the read buffer as it is; it must
// be what the copying path writes: cut lines, reads of many lines, a last
// line without newline (which gets one), empty lines.
func TestCaptureOutputWithoutPrefixIsTheInput(t *testing.T) {
	inputs := []string{
		"one\ntwo\n\nthree",
		strings.Repeat("a line of text\n", 300) + strings.Repeat("x", 100) + "\n" + "tail",
		strings.Repeat("y", 250) + "\nshort\n" + strings.Repeat("z", 64),
		"\n\n\n",
	}
	for _, in := range inputs {
		for _, max := range []int{64, 1024} {
			var fast, slow strings.Builder
			c := &capture{program: "p", dst: &fast, out: &output{}, records: stream.New[LogRecord]("logs", nil)}
			if err := splitLines(iotest.HalfReader(strings.NewReader(in)), max, c.flush); err != nil {
				t.Fatal(err)
			}
			ref := &capture{program: "p", dst: &slow, out: &output{}}
			if err := splitLines(iotest.HalfReader(strings.NewReader(in)), max, func(buf []byte, pieces []piece) {
				ref.writeOut(time.Now(), buf, pieces)
			}); err != nil {
				t.Fatal(err)
			}
			if fast.String() != slow.String() {
				t.Errorf("max %d, input %q:\nwritten %q\nwant    %q", max, in, fast.String(), slow.String())
			}
		}
	}
}
