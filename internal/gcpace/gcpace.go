// Package gcpace sets the garbage collector's pace (GOGC) from how often
// it runs: a busy steward (a log burst, thousands of lines a second)
// collects at a relaxed pace that costs less CPU per line, an idle one at
// a tight pace that keeps its heap, and so its resident memory, small.
//
// Go's heap goal is at least 4 MiB × GOGC/100, whatever the live heap: at
// the log path's GOGC of 150, 6 MiB. An idle steward's live heap is well
// under 1 MiB and its garbage a few tens of KB a round, so its heap crept
// up to 6 MiB over the minutes, and the runtime keeps resident what the
// heap grew to up to its goal: most of an idle steward's anonymous memory
// after a while. A time between collections says which case this is (a
// burst collects every few seconds or faster, an idle steward every
// minutes, when the runtime forces one), where the live heap would not: a
// steady stream of lines to a Fluentd that keeps up has a small live heap
// and a high allocation rate.
//
// Nothing here runs between collections: a cleanup armed on a sentinel
// object runs after each collection that freed it.
package gcpace

import (
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Options say the two paces and when each applies.
type Options struct {
	// Busy is GOGC while collections come often; it is also the pace
	// Start sets, until a collection says otherwise.
	Busy int
	// Idle is GOGC once collections come seldom.
	Idle int
	// BusyWithin: a collection this soon after the one before sets Busy.
	BusyWithin time.Duration
	// IdleAfter: a collection this long after the one before sets Idle.
	IdleAfter time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Pacer follows the collections until Stop.
type Pacer struct {
	o       Options
	last    time.Time
	current int
	stopped atomic.Bool
	changes atomic.Int64
	seen    atomic.Int64 // collections followed
}

// Start sets GOGC to o.Busy and adjusts it after each collection.
func Start(o Options) *Pacer {
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Pacer{o: o, last: o.Now(), current: o.Busy}
	debug.SetGCPercent(o.Busy)
	p.arm()
	return p
}

// Stop ends the adjustments; GOGC stays as it is.
func (p *Pacer) Stop() { p.stopped.Store(true) }

// Changes counts the times the pace changed.
func (p *Pacer) Changes() int64 { return p.changes.Load() }

// sentinel is big enough to get an allocation of its own (the tiny
// allocator packs smaller pointer-free objects together, and they are
// freed only together).
type sentinel struct{ _ [32]byte }

// arm sets a cleanup that runs after the next collection.
func (p *Pacer) arm() {
	runtime.AddCleanup(new(sentinel), func(p *Pacer) { p.collected() }, p)
}

// collected runs on the runtime's cleanup goroutine after a collection.
func (p *Pacer) collected() {
	if p.stopped.Load() {
		return
	}
	now := p.o.Now()
	since := now.Sub(p.last)
	p.last = now
	want := p.current
	switch {
	case since < p.o.BusyWithin:
		want = p.o.Busy
	case since >= p.o.IdleAfter:
		want = p.o.Idle
	}
	if want != p.current {
		// SetGCPercent stops the world for a moment: only on a change.
		debug.SetGCPercent(want)
		p.current = want
		p.changes.Add(1)
	}
	p.arm()
	p.seen.Add(1)
}
