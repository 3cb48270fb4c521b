package sensu

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// message is one framed transport message waiting to be sent.
type message struct {
	typ     string
	payload []byte
}

// queue holds the events waiting for the backend. It is bounded: when full,
// the oldest event is dropped, counted, and reported once per burst, so a
// backend that is down never makes steward grow or block.
type queue struct {
	log *slog.Logger
	max int

	mu       sync.Mutex
	items    []message
	ready    chan struct{}
	dropped  atomic.Uint64
	unlogged atomic.Uint64
	logging  atomic.Bool
}

func newQueue(max int, log *slog.Logger) *queue {
	return &queue{log: log, max: max, ready: make(chan struct{}, 1)}
}

func (q *queue) push(m message) {
	q.mu.Lock()
	if len(q.items) >= q.max {
		q.items = q.items[1:]
		q.dropped.Add(1)
		q.unlogged.Add(1)
		if q.logging.CompareAndSwap(false, true) {
			time.AfterFunc(time.Second, q.reportDrops)
		}
	}
	q.items = append(q.items, m)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pushFront puts back messages that could not be sent, ahead of newer ones,
// as far as room allows.
func (q *queue) pushFront(ms []message) {
	q.mu.Lock()
	defer q.mu.Unlock()
	room := q.max - len(q.items)
	if room < len(ms) {
		lost := len(ms) - room
		q.dropped.Add(uint64(lost))
		ms = ms[lost:]
	}
	q.items = append(append([]message(nil), ms...), q.items...)
}

func (q *queue) take() []message {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

func (q *queue) reportDrops() {
	n := q.unlogged.Swap(0)
	q.logging.Store(false)
	q.log.Warn("sensu: queue full, oldest events dropped", "dropped", n, "dropped_total", q.dropped.Load(), "queue_size", q.max)
}
