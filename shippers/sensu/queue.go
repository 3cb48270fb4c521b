package sensu

import (
	"log/slog"
	"sync"

	"github.com/stewardhq/steward/internal/drops"
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
	max     int
	dropped *drops.Counter

	mu    sync.Mutex
	items []message
	ready chan struct{}
}

func newQueue(max int, log *slog.Logger) *queue {
	return &queue{max: max, ready: make(chan struct{}, 1),
		dropped: drops.New(log, "sensu: queue full, oldest events dropped", "queue_size", max)}
}

func (q *queue) push(m message) {
	q.mu.Lock()
	if len(q.items) >= q.max {
		q.items = q.items[1:]
		q.dropped.Add(1)
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
		q.dropped.Add(lost)
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
