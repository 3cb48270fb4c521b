package supervisor

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"github.com/stewardhq/steward/stream"
)

// LogRecord is one line (or one part of a cut line) a program wrote.
type LogRecord struct {
	Time    time.Time
	Program string
	PID     int
	Source  string // "stdout" or "stderr"
	// Text is the line without its newline, byte for byte: invalid UTF-8
	// and NUL bytes are kept.
	Text string
	// Partial marks every part of a cut line except the last.
	Partial bool
}

// piece is a line, or a part of one, inside the splitter's buffer:
// buf[start:end].
type piece struct {
	start, end int
	partial    bool // more of this line follows
	cont       bool // continues a partial piece
	nl         bool // buf[end] is the line's newline
}

// splitLines reads r to the end and hands flush the lines of each read,
// without their newlines, as pieces of buf. A line longer than max is
// handed over in parts of max bytes, all but the last marked partial, so
// memory stays at max bytes whatever the line length. buf is reused after
// flush returns.
//
// The buffer starts at minReadBuffer and doubles, up to max, each time a
// read fills it: a program writing a burst, or a line longer than the
// buffer, gets the whole max at once, while the pipes of programs that
// write a line now and then (most of them, and stderr nearly always) keep
// 4 KiB instead of max (64 KiB by default: 384 KiB for three programs).
func splitLines(r io.Reader, max int, flush func(buf []byte, pieces []piece)) error {
	buf := make([]byte, min(minReadBuffer, max))
	var pieces []piece
	end := 0
	cont := false
	for {
		n, err := r.Read(buf[end:])
		end += n
		if end == len(buf) && len(buf) < max {
			// Grown before splitting, so a line is cut only at max bytes.
			grown := make([]byte, min(2*len(buf), max))
			copy(grown, buf[:end])
			buf = grown
		}
		pieces = pieces[:0]
		start := 0
		for start < end {
			i := bytes.IndexByte(buf[start:end], '\n')
			if i >= 0 {
				pieces = append(pieces, piece{start: start, end: start + i, cont: cont, nl: true})
				cont = false
				start += i + 1
				continue
			}
			if start == 0 && end == len(buf) {
				pieces = append(pieces, piece{start: 0, end: end, partial: true, cont: cont})
				cont = true
				start = end
			}
			break
		}
		if err != nil && start < end {
			// The last line had no newline.
			pieces = append(pieces, piece{start: start, end: end, cont: cont})
			start = end
		}
		if len(pieces) > 0 {
			flush(buf, pieces)
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return err
		}
		end = copy(buf, buf[start:end])
	}
}

// minReadBuffer is what a pipe's read buffer starts at.
const minReadBuffer = 4 << 10

// output serialises writes of all programs to steward's stdout and stderr,
// so lines of different programs never interleave inside a line.
type output struct {
	mu             sync.Mutex
	stdout, stderr io.Writer
	timestamps     bool
}

func (o *output) write(w io.Writer, b []byte) {
	o.mu.Lock()
	// A failed write to our own stdout must not stop the program's pipe
	// from being drained, so the error is dropped.
	_, _ = w.Write(b)
	o.mu.Unlock()
}

// capture copies one pipe of one program incarnation to steward's output
// and the log stream.
type capture struct {
	program string
	pid     int
	source  string
	prefix  []byte
	dst     io.Writer
	out     *output
	records *stream.Stream[LogRecord]
	scratch []byte
	// last is the time of the last record: records of one pipe get
	// strictly increasing times, so systems that sort by time (Fluentd,
	// Elasticsearch, Loki) keep their order even when a read holds many
	// lines.
	last time.Time
}

func (c *capture) run(r io.Reader, max int) error {
	return splitLines(r, max, c.flush)
}

// flush writes a read's lines with one write, then publishes them as one
// batch. The texts of a batch share one string, so a read of many short
// lines costs one allocation, not one per line.
func (c *capture) flush(buf []byte, pieces []piece) {
	now := time.Now()
	if last := pieces[len(pieces)-1]; len(c.prefix) == 0 && !c.out.timestamps && (last.partial || last.nl) {
		// Nothing to add to the lines: what the program wrote is written
		// as it is, from the read buffer, without a copy.
		end := last.end
		if last.nl {
			end++
		}
		c.out.write(c.dst, buf[pieces[0].start:end])
	} else {
		c.writeOut(now, buf, pieces)
	}
	if !c.records.Active() {
		return
	}
	first := pieces[0].start
	text := string(buf[first:pieces[len(pieces)-1].end])
	batch := make([]LogRecord, len(pieces))
	t := now
	for i, p := range pieces {
		if !t.After(c.last) {
			t = c.last.Add(time.Nanosecond)
		}
		c.last = t
		batch[i] = LogRecord{
			Time: t, Program: c.program, PID: c.pid, Source: c.source,
			Text: text[p.start-first : p.end-first], Partial: p.partial,
		}
	}
	c.records.PublishBatch(batch)
}

// writeOut writes the pieces to steward's output with what each line
// gets in front (timestamp, program name).
func (c *capture) writeOut(now time.Time, buf []byte, pieces []piece) {
	b := c.scratch[:0]
	for _, p := range pieces {
		if !p.cont {
			if c.out.timestamps {
				b = now.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00 ")
			}
			b = append(b, c.prefix...)
		}
		b = append(b, buf[p.start:p.end]...)
		if !p.partial {
			b = append(b, '\n')
		}
	}
	c.out.write(c.dst, b)
	c.scratch = b[:0]
}
