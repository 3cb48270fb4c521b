// Package graphite ships samples to carbon over its plaintext protocol
// ("<series> <value> <unix time>\n"), as Graphite 1.1 tagged series or as
// dotted paths. Each round of samples is formatted once and queued for
// every destination; a destination that is down keeps a bounded backlog
// (oldest rounds dropped first, counted) and catches up when it is back,
// so an outage leaves no gap in the stored series unless it outlasts the
// buffer. Nothing here ever blocks the caller.
package graphite

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/internal/backoff"
)

// Protocols.
const (
	TCP = "tcp"
	UDP = "udp"
)

// Config is what a Shipper sends where.
type Config struct {
	// Servers are carbon plaintext receivers, host:port.
	Servers []string
	// Protocol is "tcp" (default) or "udp".
	Protocol string
	// Failover sends every sample to the first server that takes it,
	// moving on when one fails; otherwise every server gets every sample.
	Failover bool

	Mode     string // ModeTags (default) or ModePath
	Prefix   string // before every series name
	Template string // path mode layout; DefaultTemplate when empty

	// Identity of the series: the app, its version (a git sha), the host.
	App, Version, Host string

	// Print, when set, also receives every line, as if it were a server:
	// what the demo shows with no Graphite at hand.
	Print io.Writer

	// BufferRounds is how many collection rounds each destination keeps
	// while it cannot send (default 30: five minutes at 10 s).
	BufferRounds int
	// Timeout bounds a connect and a write (default 5 s).
	Timeout time.Duration
	// RetryMin and RetryMax bound the delay between reconnects, which
	// doubles from the one to the other (defaults 500 ms and 30 s).
	RetryMin, RetryMax time.Duration
}

// Defaults.
const (
	DefaultBufferRounds = 30
	DefaultTimeout      = 5 * time.Second
	DefaultRetryMin     = 500 * time.Millisecond
	DefaultRetryMax     = 30 * time.Second

	// maxWrite is how much backlog one write carries.
	maxWrite = 64 << 10
)

// Shipper sends rounds of samples to carbon.
type Shipper struct {
	cfg   Config
	log   *slog.Logger
	dests []*dest

	mu  sync.Mutex // Ship
	fmt *formatter
	buf []byte

	closing chan struct{} // Close was called: send what is left, then stop
	abort   chan struct{} // the flush deadline passed: stop now
	done    sync.WaitGroup
	once    sync.Once
}

// New starts a shipper: one sending goroutine per destination.
func New(cfg Config, log *slog.Logger) (*Shipper, error) {
	if cfg.Protocol == "" {
		cfg.Protocol = TCP
	}
	if cfg.Protocol != TCP && cfg.Protocol != UDP {
		return nil, fmt.Errorf("graphite: unknown protocol %q (tcp or udp)", cfg.Protocol)
	}
	if cfg.BufferRounds <= 0 {
		cfg.BufferRounds = DefaultBufferRounds
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
	}
	for _, addr := range cfg.Servers {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("graphite: server %q: %w", addr, err)
		}
	}
	if len(cfg.Servers) == 0 && cfg.Print == nil {
		return nil, fmt.Errorf("graphite: no server and nothing to print to")
	}
	f, err := newFormatter(cfg)
	if err != nil {
		return nil, err
	}
	s := &Shipper{cfg: cfg, log: log, fmt: f, closing: make(chan struct{}), abort: make(chan struct{})}
	newSender := func(addr string) sender {
		if cfg.Protocol == UDP {
			return &udpSender{addr: addr, timeout: cfg.Timeout}
		}
		return &tcpSender{addr: addr, timeout: cfg.Timeout, log: log}
	}
	switch {
	case len(cfg.Servers) == 0:
	case cfg.Failover:
		fo := &failoverSender{}
		for _, addr := range cfg.Servers {
			fo.servers = append(fo.servers, newSender(addr))
		}
		s.dests = append(s.dests, s.newDest(strings.Join(cfg.Servers, ","), fo))
	default:
		for _, addr := range cfg.Servers {
			s.dests = append(s.dests, s.newDest(addr, newSender(addr)))
		}
	}
	if cfg.Print != nil {
		s.dests = append(s.dests, s.newDest("print", &writerSender{w: cfg.Print}))
	}
	for _, d := range s.dests {
		s.done.Add(1)
		go func() {
			defer s.done.Done()
			d.run()
		}()
	}
	return s, nil
}

// Ship formats one round of samples and queues it for every destination.
// It never blocks on the network; when a destination's backlog is full,
// its oldest round is dropped and counted.
func (s *Shipper) Ship(samples []collectors.Sample) {
	if len(samples) == 0 {
		return
	}
	select {
	case <-s.closing:
		return
	default:
	}
	s.mu.Lock()
	b := s.buf[:0]
	n := 0
	for _, smp := range samples {
		before := len(b)
		b = s.fmt.appendLine(b, smp)
		if len(b) > before {
			n++
		}
	}
	s.buf = b
	// The round is shared, read-only, by every destination's queue.
	r := round{data: append([]byte(nil), b...), samples: n}
	s.mu.Unlock()
	for _, d := range s.dests {
		d.push(r)
	}
}

// Close sends what is queued and stops. When ctx ends first, what is left
// is dropped, counted and reported in the error.
func (s *Shipper) Close(ctx context.Context) error {
	s.once.Do(func() { close(s.closing) })
	for _, d := range s.dests {
		d.wakeUp()
	}
	finished := make(chan struct{})
	go func() { s.done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
		// Senders notice the abort at once, except one blocked writing
		// to a stuck stdout, which cannot be interrupted: do not wait.
		close(s.abort)
		for _, d := range s.dests {
			d.sender.interrupt()
		}
	}
	var left int
	var where []string
	for _, d := range s.dests {
		d.sender.close()
		if n := d.dropRest(); n > 0 {
			left += n
			where = append(where, d.name)
		}
	}
	if left > 0 {
		return fmt.Errorf("graphite: %d samples not sent to %s before the flush deadline", left, strings.Join(where, ", "))
	}
	return nil
}

// Stats emits each destination's backlog and counts: what steward reports
// about itself.
func (s *Shipper) Stats(emit func(collectors.Sample)) {
	for _, d := range s.dests {
		q, _ := d.depth()
		emit(collectors.Sample{Name: "steward.graphite.queued_samples", Value: float64(q), Kind: collectors.Gauge, Tags: d.tags})
		emit(collectors.Sample{Name: "steward.graphite.sent_samples_total", Value: float64(d.sent.Load()), Kind: collectors.Counter, Tags: d.tags})
		emit(collectors.Sample{Name: "steward.graphite.dropped_samples_total", Value: float64(d.dropped.Load()), Kind: collectors.Counter, Tags: d.tags})
		emit(collectors.Sample{Name: "steward.graphite.errors_total", Value: float64(d.errors.Load()), Kind: collectors.Counter, Tags: d.tags})
	}
}

// round is one collection round's lines.
type round struct {
	data    []byte
	samples int
	seq     uint64 // per destination, for matching sends to the queue
}

// dest is one destination: a backlog and the goroutine draining it.
type dest struct {
	s      *Shipper
	name   string
	tags   []collectors.Tag
	sender sender
	wake   chan struct{}

	mu     sync.Mutex
	queue  []round
	seq    uint64
	closed bool
	queued int // samples in queue
	// The rounds being sent (seq from..to) may be dropped from the queue
	// meanwhile; whether they count as sent or dropped is known only when
	// the send ends.
	sending          bool
	sendFrom, sendTo uint64
	sendDropped      int
	burst            int // samples dropped since the last successful send, for the log

	sent, dropped, errors atomic.Uint64
}

func (s *Shipper) newDest(name string, snd sender) *dest {
	return &dest{s: s, name: name, sender: snd, wake: make(chan struct{}, 1),
		tags: []collectors.Tag{{Key: "server", Value: name}}}
}

func (d *dest) wakeUp() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dest) push(r round) {
	d.mu.Lock()
	d.seq++
	r.seq = d.seq
	d.queue = append(d.queue, r)
	d.queued += r.samples
	var lost int
	for len(d.queue) > d.s.cfg.BufferRounds {
		old := d.queue[0]
		d.queued -= old.samples
		if d.sending && old.seq >= d.sendFrom && old.seq <= d.sendTo {
			d.sendDropped += old.samples
		} else {
			lost += old.samples
		}
		d.queue[0] = round{}
		d.queue = d.queue[1:]
	}
	first := lost > 0 && d.burst == 0
	d.burst += lost
	d.mu.Unlock()
	if lost > 0 {
		d.dropped.Add(uint64(lost))
		if first { // one line per burst; the recovery line has the total
			d.s.log.Warn("graphite: backlog full, dropping oldest samples", "server", d.name, "rounds", d.s.cfg.BufferRounds)
		}
	}
	d.wakeUp()
}

func (d *dest) depth() (samples, rounds int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queued, len(d.queue)
}

// head marks the oldest rounds, up to maxWrite bytes (at least one), as
// being sent and returns their lines and number of samples.
func (d *dest) head() (net.Buffers, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var bufs net.Buffers
	var size, samples int
	for _, r := range d.queue {
		if len(bufs) > 0 && size+len(r.data) > maxWrite {
			break
		}
		bufs = append(bufs, r.data)
		size += len(r.data)
		samples += r.samples
		d.sendTo = r.seq
	}
	if len(bufs) > 0 {
		d.sending, d.sendFrom, d.sendDropped = true, d.queue[0].seq, 0
	}
	return bufs, samples
}

// sendDone settles the rounds being sent: on success they leave the queue
// and count as sent, else they stay (unless dropped meanwhile, which then
// counts).
func (d *dest) sendDone(ok bool, samples int) (burst int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sending = false
	if d.closed {
		return 0 // Close gave up on them and counted them dropped
	}
	if !ok {
		d.dropped.Add(uint64(d.sendDropped))
		d.burst += d.sendDropped
		return 0
	}
	d.sent.Add(uint64(samples))
	for len(d.queue) > 0 && d.queue[0].seq <= d.sendTo {
		d.queued -= d.queue[0].samples
		d.queue[0] = round{}
		d.queue = d.queue[1:]
	}
	burst, d.burst = d.burst, 0
	return burst
}

func (d *dest) dropRest() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.queued
	if d.sending {
		n += d.sendDropped
	}
	d.queue, d.queued, d.closed = nil, 0, true
	d.dropped.Add(uint64(n))
	return n
}

// run sends the backlog, oldest first, until Close. A failed write keeps
// its rounds at the head of the queue: they go again after reconnecting,
// and a duplicate point is harmless (carbon keeps the last value per
// timestamp).
func (d *dest) run() {
	cfg := d.s.cfg
	delay := backoff.Backoff{Initial: cfg.RetryMin, Max: cfg.RetryMax}
	var downSince time.Time
	for {
		bufs, samples := d.head()
		if len(bufs) == 0 {
			select {
			case <-d.s.closing:
				return
			case <-d.s.abort:
				return
			case <-d.wake:
			}
			continue
		}
		err := d.sender.send(bufs)
		lost := d.sendDone(err == nil, samples)
		if err == nil {
			if !downSince.IsZero() {
				d.s.log.Info("graphite: sending again", "server", d.name, "after", time.Since(downSince).Round(time.Millisecond).String(), "dropped", lost)
				downSince = time.Time{}
			}
			delay.Reset()
			continue
		}
		d.errors.Add(1)
		if downSince.IsZero() {
			downSince = time.Now()
			d.s.log.Warn("graphite: cannot send, keeping samples until it works", "server", d.name, "err", err)
		}
		t := time.NewTimer(delay.Next())
		select {
		case <-t.C:
		case <-d.s.abort:
			t.Stop()
			return
		}
	}
}
