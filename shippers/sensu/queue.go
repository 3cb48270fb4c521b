package sensu

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/stewardhq/steward/internal/drops"
)

// message is one framed transport message waiting to be sent. Events name
// their check, status and identity so that the queue can coalesce and pace
// them per check.
type message struct {
	typ     string
	payload []byte
	check   string
	status  uint32
	id      string
	seq     int64
}

// queue holds the events waiting for the backend. It is bounded: when full,
// the oldest event is dropped, counted, and reported once per burst, so a
// backend that is down never makes steward grow or block.
//
// A result whose check already has a waiting result of the same status
// replaces it (coalesced, counted): a backlog keeps every change of state of
// every check, in order, never the repeats in between.
type queue struct {
	max       int
	dropped   *drops.Counter
	coalesced atomic.Uint64

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
	if m.check != "" {
		for i := len(q.items) - 1; i >= 0; i-- {
			if q.items[i].check != m.check {
				continue
			}
			if q.items[i].status == m.status && q.items[i].typ == m.typ {
				// The newest waiting result of this check says the same:
				// this one replaces it, no transition is lost.
				q.items = append(q.items[:i], q.items[i+1:]...)
				q.coalesced.Add(1)
			}
			break
		}
	}
	if len(q.items) >= q.max {
		q.items = q.items[1:]
		q.dropped.Add(1)
	}
	q.items = append(q.items, m)
	q.mu.Unlock()
	q.poke()
}

// poke wakes the sender.
func (q *queue) poke() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// next removes and returns the oldest message that may go now: for each
// check only its oldest waiting result, and only when ready(check) says
// the previous one had time to be stored.
func (q *queue) next(ready func(check string) bool) (message, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var blocked map[string]bool
	for i, m := range q.items {
		if m.check != "" {
			if blocked[m.check] {
				continue
			}
			if !ready(m.check) {
				if blocked == nil {
					blocked = map[string]bool{}
				}
				blocked[m.check] = true
				continue
			}
		}
		q.items = append(q.items[:i], q.items[i+1:]...)
		return m, true
	}
	return message{}, false
}

// pushFront puts back a message that could not be sent, ahead of newer
// ones, if there is room.
func (q *queue) pushFront(m message) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) >= q.max {
		q.dropped.Add(1)
		return
	}
	q.items = append([]message{m}, q.items...)
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
