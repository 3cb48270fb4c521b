// Package drops counts what a bounded buffer had to drop and says so in
// the log once per burst: the first drop of a burst schedules one line a
// second later that sums up everything dropped meanwhile, so a peer that is
// down for an hour costs a line a second at most, never one per record.
// Every bounded queue in steward (the streams' subscribers, the Fluentd
// buffer, the Sensu event queue) counts its drops here.
package drops

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// Window is how long a burst lasts: drops within it share one log line.
const Window = time.Second

// Counter counts drops and logs them once per burst. The zero value is not
// usable; make one with New.
type Counter struct {
	log   *slog.Logger
	msg   string
	attrs []any

	total     atomic.Uint64
	unlogged  atomic.Uint64
	reporting atomic.Bool
}

// New returns a counter that logs msg at Warn level with attrs, and the
// drops of the burst ("dropped") and of all time ("dropped_total").
func New(log *slog.Logger, msg string, attrs ...any) *Counter {
	return &Counter{log: log, msg: msg, attrs: attrs}
}

// Add counts n drops. It never blocks: the log line comes from a timer.
func (c *Counter) Add(n int) {
	if n <= 0 {
		return
	}
	c.total.Add(uint64(n))
	c.unlogged.Add(uint64(n))
	if c.reporting.CompareAndSwap(false, true) {
		time.AfterFunc(Window, c.report)
	}
}

// Total is every drop counted so far.
func (c *Counter) Total() uint64 { return c.total.Load() }

// Flush logs what the current burst has dropped at once, e.g. at shutdown
// when no timer may fire any more.
func (c *Counter) Flush() { c.report() }

func (c *Counter) report() {
	// Clear the flag first: a drop racing with this report then schedules
	// a report of its own rather than waiting for the next burst.
	c.reporting.Store(false)
	n := c.unlogged.Swap(0)
	if n == 0 || c.log == nil {
		return
	}
	args := append(append(make([]any, 0, len(c.attrs)+4), c.attrs...), "dropped", n, "dropped_total", c.total.Load())
	c.log.Warn(c.msg, args...)
}
