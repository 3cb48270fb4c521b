package supervisor

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Stream fans values out to subscribers without ever blocking the
// publisher: each subscriber has a bounded buffer, and what does not fit is
// dropped and counted for that subscriber. One log line reports each burst
// of drops.
type Stream[T any] struct {
	name string
	log  *slog.Logger

	mu   sync.RWMutex
	subs []*Subscription[T]
	n    atomic.Int32 // len(subs), read without the lock on the hot path
}

// Subscription receives a stream's values on C.
type Subscription[T any] struct {
	C <-chan T

	name      string
	ch        chan T
	dropped   atomic.Uint64
	unlogged  atomic.Uint64
	reporting atomic.Bool
}

// Dropped counts the values this subscriber missed because its buffer was
// full.
func (s *Subscription[T]) Dropped() uint64 { return s.dropped.Load() }

// NewStream returns a stream whose drops are logged under name.
func NewStream[T any](name string, log *slog.Logger) *Stream[T] {
	return &Stream[T]{name: name, log: log}
}

// Subscribe adds a subscriber that may lag behind by up to capacity values.
func (s *Stream[T]) Subscribe(name string, capacity int) *Subscription[T] {
	ch := make(chan T, capacity)
	sub := &Subscription[T]{C: ch, name: name, ch: ch}
	s.mu.Lock()
	s.subs = append(s.subs, sub)
	s.n.Store(int32(len(s.subs)))
	s.mu.Unlock()
	return sub
}

// Unsubscribe removes sub and closes its channel.
func (s *Stream[T]) Unsubscribe(sub *Subscription[T]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.subs {
		if x == sub {
			s.subs = append(s.subs[:i:i], s.subs[i+1:]...)
			s.n.Store(int32(len(s.subs)))
			close(sub.ch)
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
	for _, sub := range s.subs {
		select {
		case sub.ch <- v:
		default:
			sub.dropped.Add(1)
			sub.unlogged.Add(1)
			if sub.reporting.CompareAndSwap(false, true) {
				time.AfterFunc(time.Second, func() { s.reportDrops(sub) })
			}
		}
	}
	s.mu.RUnlock()
}

func (s *Stream[T]) reportDrops(sub *Subscription[T]) {
	n := sub.unlogged.Swap(0)
	sub.reporting.Store(false)
	s.log.Warn("subscriber too slow, values dropped",
		"stream", s.name, "subscriber", sub.name, "dropped", n, "dropped_total", sub.dropped.Load())
}

// Close unsubscribes everyone, closing their channels.
func (s *Stream[T]) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs {
		close(sub.ch)
	}
	s.subs = nil
	s.n.Store(0)
}
