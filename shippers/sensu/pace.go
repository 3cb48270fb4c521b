package sensu

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/stewardhq/steward/internal/backoff"
)

// The backend stores events asynchronously: each is a read-modify-write of
// the check's stored event and history, not serialised per check, so two
// results of one check that arrive together overwrite each other and one
// state change is lost (a crash and its restart, milliseconds apart; a
// backlog flushed in one burst). The pacer keeps at most one result of each
// check in flight: the next result of a check goes only once the previous
// one is stored — seen through the events API when an API key is set — or,
// without one, once event_spacing has passed since it was sent. Results of
// different checks are independent and go at once.

// confirmTimeout bounds the wait for the API to show a result stored (an
// event the backend rejected never shows); the next result then goes.
const confirmTimeout = 10 * time.Second

type pacer struct {
	spacing time.Duration
	confirm bool

	mu      sync.Mutex
	flights map[string]*flight
}

// flight is the last result sent of one check.
type flight struct {
	sentAt time.Time
	stored bool
}

func newPacer(spacing time.Duration, confirm bool) *pacer {
	return &pacer{spacing: spacing, confirm: confirm, flights: map[string]*flight{}}
}

// wait is how long a result sent at sentAt holds back the next one of its
// check when it is not seen stored.
func (p *pacer) wait() time.Duration {
	if p.confirm {
		return confirmTimeout
	}
	return p.spacing
}

// ready reports whether the next result of check may be sent now.
func (p *pacer) ready(check string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.flights[check]
	return f == nil || f.stored || now.Sub(f.sentAt) >= p.wait()
}

// sent records a result of check written to the backend.
func (p *pacer) sent(check string, now time.Time) *flight {
	f := &flight{sentAt: now}
	p.mu.Lock()
	p.flights[check] = f
	p.mu.Unlock()
	return f
}

// stored marks f as seen in the backend.
func (p *pacer) stored(f *flight) {
	p.mu.Lock()
	f.stored = true
	p.mu.Unlock()
}

// idle reports whether no result is in flight any more.
func (p *pacer) idle(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.flights {
		if !f.stored && now.Sub(f.sentAt) < p.wait() {
			return false
		}
	}
	return true
}

// nextDue is when the earliest held-back check may go again by time alone
// (zero when none is held back).
func (p *pacer) nextDue() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var due time.Time
	for c, f := range p.flights {
		if f.stored {
			delete(p.flights, c)
			continue
		}
		if t := f.sentAt.Add(p.wait()); due.IsZero() || t.Before(due) {
			due = t
		}
	}
	return due
}

// confirmStored polls the events API until the backend shows m stored (the
// stored event is m: same id, or same sequence and executed time), then
// marks f and wakes the sender. It gives up at confirmTimeout or ctx.
func (a *Agent) confirmStored(ctx context.Context, m message, f *flight) {
	ctx, cancel := context.WithTimeout(ctx, confirmTimeout)
	defer cancel()
	endpoint := strings.TrimRight(a.cfg.APIURL, "/") + "/api/core/v2/namespaces/" + url.PathEscape(a.cfg.Namespace) +
		"/events/" + url.PathEscape(a.cfg.EntityName) + "/" + url.PathEscape(m.check)
	delay := backoff.Backoff{Initial: 5 * time.Millisecond, Max: 250 * time.Millisecond}
	for {
		if a.isStored(ctx, endpoint, m) {
			a.pace.stored(f)
			a.queue.poke()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay.Next()):
		}
	}
}

func (a *Agent) isStored(ctx context.Context, endpoint string, m message) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Key "+a.cfg.APIKey)
	req.Header.Set("User-Agent", a.userAgent())
	resp, err := a.api.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return false
	}
	var got struct {
		ID       string `json:"id"`
		Sequence int64  `json:"sequence"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxReadBytes)).Decode(&got); err != nil {
		return false
	}
	// The backend keeps the agent's id and sequence; either one matching
	// means this result is the one stored.
	return got.ID == m.id || got.Sequence == m.seq
}
