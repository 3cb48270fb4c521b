package fluentd

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stewardhq/steward/internal/drops"
)

// queue holds sealed chunks until the sender takes them: the newest in
// memory up to a byte bound, older ones spilled to the spool. Order is
// kept: the spool holds what is older than anything in memory, and the
// sender reads the spool first. When the spool is over its cap, its oldest
// segment goes; without a spool, the oldest chunk in memory goes.
//
// The bound covers the chunks the sender holds too (written and not yet
// acknowledged, or waiting to be written again), so memory holds one
// bounded window of batches whatever the server does: a slow server
// makes the queue spill sooner, never grow.
type queue struct {
	mu       sync.Mutex
	mem      []*chunk // oldest first
	memBytes int64
	memCap   int64
	// held is the size of the chunks popped and not yet released
	// (delivered, or persisted at shutdown).
	held     int64
	spool    *spool // nil: no disk
	spoolErr bool   // a spool write failed; reported once

	// ready is signalled when a chunk is pushed.
	ready chan struct{}
	// room is signalled when a delivered chunk frees memory. push waits
	// for it up to spillWait before spilling, while the server keeps up
	// (see push); stalled is set when a wait ran out, and push spills at
	// once from then on, until memory has room again.
	room      chan struct{}
	spillWait time.Duration
	stalled   bool
	connected func() bool
	st        *counters
	log       *slog.Logger
}

func newQueue(memCap int64, st *counters, log *slog.Logger) *queue {
	q := &queue{memCap: memCap, ready: make(chan struct{}, 1), st: st, log: log,
		room: make(chan struct{}, 1), spillWait: spillWait, connected: st.connected.Load}
	st.dropped = drops.New(log, "fluentd: buffer full, oldest records dropped")
	q.updateGauges()
	return q
}

// attach gives the queue its spool, before anything is pushed or popped.
func (q *queue) attach(sp *spool) {
	q.spool = sp
	sp.onDrop = func(lines int, _ int64) { q.dropped(lines) }
	sp.enforceCap()
	q.updateGauges()
}

func (q *queue) dropped(lines int) { q.st.dropped.Add(lines) }

// spillWait is how long push waits for a connected server to free memory
// before it spills. A fast server acknowledges a batch in well under a
// millisecond, so a burst then waits for it instead of going through the
// spool: writing every batch to disk and reading it back was a third of
// the CPU steward spent per line with a fast server (profile, issue 11).
// The program writing the burst is paced by such a server meanwhile, as
// the stream paces it by the encoder. A server that does not free a batch
// (128 KiB, ~690 lines of 100 bytes) within spillWait, slower than about
// 70,000 lines/s (Fluentd 1.16 with a file output takes 12,000-18,000),
// or a dead one, stalls the queue: it spills at once, as before, until
// memory has room again. So a slower server costs a program at most
// spillWait per burst, never its pace.
const spillWait = 10 * time.Millisecond

// push adds a chunk at the end, spilling the oldest chunks in memory to
// the spool while memory is over its bound.
func (q *queue) push(c *chunk) {
	q.waitRoom(c.size())
	q.mu.Lock()
	q.mem = append(q.mem, c)
	q.memBytes += c.size()
	for q.memBytes+q.held > q.memCap && len(q.mem) > 0 {
		q.spill(q.shift())
	}
	q.updateGauges()
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// waitRoom waits, up to spillWait, until size more bytes fit in memory,
// while the server is connected and the queue is not stalled.
func (q *queue) waitRoom(size int64) {
	fits := func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		ok := q.memBytes+q.held+size <= q.memCap
		if ok {
			q.stalled = false
		}
		return ok
	}
	if fits() || q.spillWait <= 0 || size > q.memCap || !q.connected() {
		return
	}
	q.mu.Lock()
	stalled := q.stalled
	q.mu.Unlock()
	if stalled {
		return
	}
	timer := time.NewTimer(q.spillWait)
	defer timer.Stop()
	for {
		select {
		case <-q.room:
			if fits() {
				return
			}
		case <-timer.C:
			q.mu.Lock()
			q.stalled = true
			q.mu.Unlock()
			return
		}
	}
}

// freed tells a push waiting for room that some was made.
func (q *queue) freed() {
	select {
	case q.room <- struct{}{}:
	default:
	}
}

func (q *queue) shift() *chunk {
	c := q.mem[0]
	q.mem[0] = nil
	q.mem = q.mem[1:]
	q.memBytes -= c.size()
	if len(q.mem) == 0 {
		q.mem = nil // let the backing array go
	}
	return c
}

// spill writes c to the spool, or drops it when there is no spool or the
// write fails (disk full).
func (q *queue) spill(c *chunk) {
	defer c.release()
	if q.spool != nil {
		err := q.spool.append(c)
		if err == nil {
			q.spoolErr = false
			return
		}
		if !q.spoolErr {
			q.log.Error("fluentd: cannot write to the spool; records are dropped while it fails", "err", err)
			q.spoolErr = true
		}
	}
	q.dropped(c.lines)
}

// pop returns the oldest chunk, or nil when there is none.
func (q *queue) pop() *chunk {
	q.mu.Lock()
	defer q.mu.Unlock()
	var c *chunk
	if q.spool != nil {
		c = q.spool.next()
	}
	if c == nil && len(q.mem) > 0 {
		c = q.shift()
	}
	if c != nil {
		q.held += c.size()
	}
	q.updateGauges()
	return c
}

// empty reports whether nothing waits to be sent.
func (q *queue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.mem) > 0 {
		return false
	}
	if q.spool != nil {
		if n, _, _ := q.spool.pending(); n > 0 {
			return false
		}
	}
	return true
}

// delivered tells the spool that a chunk read from it was delivered, and
// frees the chunk.
func (q *queue) delivered(c *chunk) {
	q.mu.Lock()
	if c.seg != nil {
		q.spool.acked(c)
	}
	q.held -= c.size()
	q.updateGauges()
	q.mu.Unlock()
	q.freed()
	c.release()
}

// persist writes chunks the sender still held (unacknowledged) and what is
// in memory to the spool, for the next steward. Chunks read from a spool
// segment that still exists are there already. It returns the records
// that could not be kept.
func (q *queue) persist(held []*chunk) (lost int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, c := range held {
		q.held -= c.size()
	}
	all := append(held, q.mem...)
	q.mem, q.memBytes = nil, 0
	before := q.st.dropped.Total()
	for _, c := range all {
		if c.seg == nil || c.seg.dropped {
			q.spill(c)
		}
	}
	q.updateGauges()
	return int(q.st.dropped.Total() - before)
}

// left returns the records and bytes the spool will send again: those
// never handed out, and those handed out whose ack did not come.
func (q *queue) left() (lines int, bytes int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.spool == nil {
		return 0, 0
	}
	return q.spool.unacked(), q.spool.bytes
}

func (q *queue) updateGauges() {
	q.st.queueBytes.Store(q.memBytes)
	q.st.queueChunks.Store(int64(len(q.mem)))
	if q.spool != nil {
		q.st.spoolBytes.Store(q.spool.bytes)
	}
}

// counters are the shipper's statistics, updated without locks.
type counters struct {
	received    atomic.Uint64  // lines (and parts of cut lines) from programs
	records     atomic.Uint64  // records built (joined multiline records count once)
	sent        atomic.Uint64  // records the server acknowledged (or took, without acks)
	dropped     *drops.Counter // records dropped: buffer and spool full, or lost
	resent      atomic.Uint64  // records sent again after an ack did not come
	resentMsgs  atomic.Uint64
	reconnects  atomic.Uint64
	queueBytes  atomic.Int64
	queueChunks atomic.Int64
	spoolBytes  atomic.Int64
	inFlight    atomic.Int64
	connected   atomic.Bool
}
