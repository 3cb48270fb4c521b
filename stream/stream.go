// Package stream fans values out from the parts of steward that make them
// (the supervisor's log records and program events, the checks' reports)
// to the parts that ship them (Fluentd, Sensu, `steward logs`), through a
// bounded buffer per subscriber.
package stream

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stewardhq/steward/internal/drops"
)

// Stream fans values out to subscribers without letting a stuck subscriber
// hold up the publisher: each subscriber has a bounded buffer, and what
// does not fit is dropped and counted for that subscriber. One log line
// reports each burst of drops.
//
// A subscriber takes values one by one (Subscribe) or in the batches they
// were published in (SubscribeBatches): a log shipper reading a whole pipe
// read at once pays one channel operation per read instead of one per line.
// A batch subscriber may also ask publishers to wait a bounded time for
// room (BatchOptions.Wait) rather than drop.
type Stream[T any] struct {
	name string
	log  *slog.Logger

	mu      sync.RWMutex
	subs    []*Subscription[T]
	batches []*BatchSubscription[T]
	n       atomic.Int32 // subscribers of both kinds, read without the lock on the hot path
}

// Subscription receives a stream's values on C. A value is shared by every
// subscriber: the reader must not modify it.
//
// C carries pointers, not values: a channel's buffer is allocated whole
// when it is made, and a subscriber that may lag by a thousand ~200-byte
// check reports would hold 200 KB from the start although it lags by none
// nearly always. With pointers the buffer is 8 bytes a slot, and a value
// takes memory only while it is queued (the bound in values is the same).
type Subscription[T any] struct {
	C <-chan *T

	ch chan *T
	subscriber
}

// BatchSubscription receives a stream's values on C in the batches they
// were published in. Batches are shared: the reader must not modify them.
// The reader calls Done with each batch it has finished with, which frees
// its share of the subscription's capacity.
type BatchSubscription[T any] struct {
	C <-chan []T

	ch     chan []T
	opts   BatchOptions[T]
	queued atomic.Int64 // weight sent and not yet Done
	closed bool         // under the stream's lock

	roomMu sync.Mutex
	room   chan struct{} // closed by Done, then replaced: wakes waiting publishers
	// weights keeps what each queued batch weighed when it was offered,
	// so Done need not weigh it again: a Weight call per value, done
	// twice, was 6% of the CPU the log path spent per line.
	weightsMu sync.Mutex
	weights   map[batchKey[T]]int64
	// stalled is set when a publisher waited Wait in vain; publishers then
	// drop at once until the subscriber has caught up.
	stalled atomic.Bool
	waiters atomic.Int32 // publishers waiting for room
	subscriber
}

// batchKey names a queued batch: its first value and its length.
type batchKey[T any] struct {
	first *T
	n     int
}

// BatchOptions bound a batch subscription.
type BatchOptions[T any] struct {
	// MaxBatches and MaxWeight bound what the subscriber may lag behind:
	// batches, and the sum of Weight over their values (each value weighs
	// 1 when Weight is nil). A single batch heavier than MaxWeight passes
	// when nothing else is queued.
	MaxBatches int
	MaxWeight  int64
	Weight     func(T) int
	// Wait lets a publisher that finds the buffer full wait up to this
	// long for the subscriber to make room, instead of dropping: a
	// subscriber that keeps up on average (CPU work, no I/O waits) then
	// loses nothing to a burst, while a program writing faster than it
	// can take is slowed to its pace, as a slow terminal would slow it. A
	// subscriber that makes no room within Wait is stalled: from then on
	// its batches are dropped at once, never waited for, until it has
	// caught up. Zero never waits.
	Wait time.Duration
	// DropOldest makes room for a new batch by dropping the oldest
	// queued ones: for a subscriber that keeps only the newest values
	// (the `steward logs` ring), losing old ones in a burst is its design,
	// so they are counted (Dropped) but never logged as a warning.
	DropOldest bool
}

// subscriber counts what a subscriber missed and reports each burst once.
type subscriber struct {
	drops *drops.Counter
}

// Dropped counts the values this subscriber missed because its buffer was
// full.
func (d *subscriber) Dropped() uint64 { return d.drops.Total() }

// New returns a stream whose drops are logged under name.
func New[T any](name string, log *slog.Logger) *Stream[T] {
	return &Stream[T]{name: name, log: log}
}

// Subscribe adds a subscriber that may lag behind by up to capacity values.
func (s *Stream[T]) Subscribe(name string, capacity int) *Subscription[T] {
	ch := make(chan *T, capacity)
	sub := &Subscription[T]{C: ch, ch: ch}
	sub.drops = s.dropCounter(name)
	s.mu.Lock()
	s.subs = append(s.subs, sub)
	s.count()
	s.mu.Unlock()
	return sub
}

// SubscribeBatches adds a batch subscriber bounded by o.
func (s *Stream[T]) SubscribeBatches(name string, o BatchOptions[T]) *BatchSubscription[T] {
	ch := make(chan []T, max(o.MaxBatches, 1))
	sub := &BatchSubscription[T]{C: ch, ch: ch, opts: o, room: make(chan struct{})}
	if o.DropOldest {
		sub.drops = drops.New(nil, "") // counted, never logged: dropping is the design
	} else {
		sub.drops = s.dropCounter(name)
	}
	s.mu.Lock()
	s.batches = append(s.batches, sub)
	s.count()
	s.mu.Unlock()
	return sub
}

func (s *Stream[T]) count() { s.n.Store(int32(len(s.subs) + len(s.batches))) }

// Queued is the weight sent to the subscriber and not yet Done.
func (b *BatchSubscription[T]) Queued() int64 { return b.queued.Load() }

// Done returns the capacity batch took once the reader is finished with it.
func (b *BatchSubscription[T]) Done(batch []T) {
	q := b.queued.Add(-b.weighed(batch))
	if b.stalled.Load() && q <= b.opts.MaxWeight/2 {
		b.stalled.Store(false)
	}
	b.wakeWaiters()
}

// wakeWaiters wakes publishers waiting for room, to try again.
func (b *BatchSubscription[T]) wakeWaiters() {
	b.roomMu.Lock()
	close(b.room)
	b.room = make(chan struct{})
	b.roomMu.Unlock()
}

func (b *BatchSubscription[T]) roomSignal() <-chan struct{} {
	b.roomMu.Lock()
	defer b.roomMu.Unlock()
	return b.room
}

func (b *BatchSubscription[T]) weigh(batch []T) int64 {
	if b.opts.Weight == nil {
		return int64(len(batch))
	}
	var w int64
	for _, v := range batch {
		w += int64(b.opts.Weight(v))
	}
	return w
}

// remember keeps the weight of a batch about to be queued.
func (b *BatchSubscription[T]) remember(batch []T, w int64) {
	if b.opts.Weight == nil || len(batch) == 0 {
		return
	}
	b.weightsMu.Lock()
	if b.weights == nil {
		b.weights = make(map[batchKey[T]]int64)
	}
	b.weights[batchKey[T]{&batch[0], len(batch)}] = w
	b.weightsMu.Unlock()
}

// weighed returns, and forgets, the weight a queued batch was offered
// with; it weighs the batch when none is kept.
func (b *BatchSubscription[T]) weighed(batch []T) int64 {
	if b.opts.Weight == nil || len(batch) == 0 {
		return b.weigh(batch)
	}
	k := batchKey[T]{&batch[0], len(batch)}
	b.weightsMu.Lock()
	w, ok := b.weights[k]
	delete(b.weights, k)
	b.weightsMu.Unlock()
	if !ok {
		w = b.weigh(batch)
	}
	return w
}

// tryOffer queues batch, of weight w, if it fits.
func (b *BatchSubscription[T]) tryOffer(batch []T, w int64) bool {
	for {
		if b.offer(batch, w) {
			return true
		}
		if !b.opts.DropOldest {
			return false
		}
		select {
		case old := <-b.ch:
			b.queued.Add(-b.weighed(old))
			b.drops.Add(len(old))
		default:
			// Nothing queued to drop (the reader holds what it took):
			// the new batch is the one dropped.
			return false
		}
	}
}

// offer queues batch, of weight w, if it fits.
func (b *BatchSubscription[T]) offer(batch []T, w int64) bool {
	if q := b.queued.Add(w); q-w > 0 && q > b.opts.MaxWeight {
		b.queued.Add(-w)
		return false
	}
	b.remember(batch, w) // before the reader can get it
	select {
	case b.ch <- batch:
		return true
	default:
		b.weighed(batch)
		b.queued.Add(-w)
		return false
	}
}

// Unsubscribe removes sub and closes its channel.
func (s *Stream[T]) Unsubscribe(sub *Subscription[T]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.subs {
		if x == sub {
			s.subs = append(s.subs[:i:i], s.subs[i+1:]...)
			s.count()
			close(sub.ch)
			return
		}
	}
}

// UnsubscribeBatches removes sub and closes its channel; batches already
// queued can still be read.
func (s *Stream[T]) UnsubscribeBatches(sub *BatchSubscription[T]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.batches {
		if x == sub {
			s.batches = append(s.batches[:i:i], s.batches[i+1:]...)
			s.count()
			sub.closed = true
			close(sub.ch)
			sub.wakeWaiters()
			return
		}
	}
}

// Active reports whether anyone subscribes, so publishers can skip building
// values nobody reads.
func (s *Stream[T]) Active() bool { return s.n.Load() > 0 }

// Publish offers v to every subscriber; it never blocks.
func (s *Stream[T]) Publish(v T) {
	if !s.Active() {
		return
	}
	s.mu.RLock()
	if len(s.subs) > 0 {
		p := &v
		for _, sub := range s.subs {
			s.offer(sub, p)
		}
	}
	if len(s.batches) > 0 {
		batch := []T{v}
		for _, sub := range s.batches {
			if !sub.tryOffer(batch, sub.weigh(batch)) {
				sub.drops.Add(1)
			}
		}
	}
	s.mu.RUnlock()
}

// PublishBatch offers vs to every subscriber. Batch subscribers share vs,
// so the caller must not modify it afterwards. It waits only for batch
// subscribers with a Wait, and only as BatchOptions.Wait says.
func (s *Stream[T]) PublishBatch(vs []T) {
	if !s.Active() || len(vs) == 0 {
		return
	}
	var waiting []*BatchSubscription[T]
	var weights []int64
	s.mu.RLock()
	for _, sub := range s.subs {
		for i := range vs {
			s.offer(sub, &vs[i]) // vs is the publisher's no more
		}
	}
	for _, sub := range s.batches {
		w := sub.weigh(vs)
		switch {
		case sub.tryOffer(vs, w):
		case sub.opts.Wait > 0 && !sub.stalled.Load():
			waiting = append(waiting, sub)
			weights = append(weights, w)
		default:
			sub.drops.Add(len(vs))
		}
	}
	s.mu.RUnlock()
	for i, sub := range waiting {
		s.waitOffer(sub, vs, weights[i])
	}
}

// waitOffer retries batch each time sub makes room, up to its Wait.
func (s *Stream[T]) waitOffer(sub *BatchSubscription[T], batch []T, w int64) {
	timer := time.NewTimer(sub.opts.Wait)
	defer timer.Stop()
	sub.waiters.Add(1)
	defer sub.waiters.Add(-1)
	for {
		room := sub.roomSignal()
		s.mu.RLock()
		gone := sub.closed
		ok := !gone && sub.tryOffer(batch, w)
		s.mu.RUnlock()
		if ok || gone {
			return
		}
		select {
		case <-room:
		case <-timer.C:
			sub.stalled.Store(true)
			sub.drops.Add(len(batch))
			return
		}
	}
}

func (s *Stream[T]) offer(sub *Subscription[T], v *T) {
	select {
	case sub.ch <- v:
	default:
		sub.drops.Add(1)
	}
}

func (s *Stream[T]) dropCounter(subscriber string) *drops.Counter {
	return drops.New(s.log, "subscriber too slow, values dropped", "stream", s.name, "subscriber", subscriber)
}

// Close unsubscribes everyone, closing their channels.
func (s *Stream[T]) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs {
		close(sub.ch)
	}
	for _, sub := range s.batches {
		sub.closed = true
		close(sub.ch)
		sub.wakeWaiters()
	}
	s.subs, s.batches = nil, nil
	s.count()
}
