package fluentd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/internal/backoff"
)

// The sender keeps one connection to the first server that answers and
// pipelines chunks on it: up to window chunks are written before their
// acks arrive, acks are matched by chunk id, and every chunk not
// acknowledged when the connection is lost is written again, first, on the
// next one. fluent-logger-golang's client cannot do this (it writes one
// record and waits for its ack before the next), which caps it at one
// record per round trip; so batching and ack tracking are written here.

var (
	errAckTimeout = errors.New("no ack within ack_timeout")
	errWrongAck   = errors.New("ack for a chunk not in flight")
	errAborted    = errors.New("flush deadline passed")
	errHeartbeat  = errors.New("no UDP heartbeat reply")
	// errNoKeepalive ends a session after its one message when the server
	// said in HELO that it closes connections after each message.
	errNoKeepalive = errors.New("server closes after each message")
)

type sender struct {
	eps          []configs.Endpoint
	dialTimeout  time.Duration
	ackTimeout   time.Duration
	tls          *tls.Config
	auth         auth
	retryInitial time.Duration
	retryMax     time.Duration
	window       int
	heartbeat    time.Duration // 0: none
	q            *queue
	st           *counters
	log          *slog.Logger

	// retry holds chunks written on a lost connection and not
	// acknowledged: they go first on the next one.
	retry []*chunk

	closing   chan struct{} // closed by Close: send what is left, then stop
	inputDone chan struct{} // closed when no more chunks will be pushed
	wake      chan struct{} // nudges the loop after either closes
	// hungry tells the drain that the connection has room and nothing is
	// queued, so partial batches should go now.
	hungry chan struct{}
	abort  chan struct{} // closed when the flush deadline passes
	done   chan struct{}

	// deadline is when the flush must end (zero: none); set before
	// closing is closed. Near it the sender stops writing and waits for
	// the acks of what is in flight, so that a batch the server has is
	// not left for the next steward to send again.
	deadline time.Time
	// ackLatency is how long acks have been taking lately (from the
	// write to the ack): a slow peak at once, a slow decay.
	ackLatency time.Duration
}

// minAckReserve is the least time kept at the end of the flush for acks.
const minAckReserve = 50 * time.Millisecond

// lastCall reports whether the flush deadline is so near that what is
// written now would likely not be acknowledged in time: the sender then
// only waits for the acks of what it has written.
func (s *sender) lastCall() bool {
	// deadline is read only once closing is seen closed: it was set
	// before.
	if !closed(s.closing) || s.deadline.IsZero() {
		return false
	}
	return time.Until(s.deadline) < 2*s.ackLatency+minAckReserve
}

func (s *sender) noteAck(c *chunk) {
	lat := time.Since(c.sentAt)
	s.ackLatency = max(lat, s.ackLatency-s.ackLatency/8)
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// finished reports whether everything was sent and nothing more will come.
func (s *sender) finished() bool {
	return closed(s.inputDone) && len(s.retry) == 0 && s.q.empty()
}

func (s *sender) run() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.abort:
			cancel()
		case <-s.done:
		}
	}()
	defer cancel()
	delay := backoff.Backoff{Initial: s.retryInitial, Max: s.retryMax}
	cur := 0
	var outage time.Time
	attempts, connects := 0, 0
	quiet := false
	for {
		if s.finished() || closed(s.abort) {
			return
		}
		c, idx, err := s.connect(ctx, cur)
		if err != nil {
			attempts++
			if outage.IsZero() {
				outage = time.Now()
				s.log.Warn("fluentd: cannot connect; buffering and retrying", "err", err)
			} else {
				s.log.Debug("fluentd: still cannot connect", "err", err, "attempts", attempts)
			}
			if closed(s.closing) {
				return // shutting down: keep what is left for the next steward
			}
			if !s.sleep(delay.Next()) {
				return
			}
			continue
		}
		cur = idx
		if connects > 0 {
			s.st.reconnects.Add(1)
		}
		connects++
		level := slog.LevelInfo
		if quiet {
			level = slog.LevelDebug // the server closes after each message
		}
		s.log.Log(context.Background(), level, "fluentd: connected", "address", c.ep.String(),
			"attempts", attempts+1, "down_for", durationSince(outage))
		outage, attempts = time.Time{}, 0
		s.st.connected.Store(true)
		progress, err := s.session(c)
		s.st.connected.Store(false)
		c.nc.Close()
		switch {
		case err == nil || errors.Is(err, errAborted):
			return
		case errors.Is(err, errNoKeepalive):
			quiet = true
			continue
		}
		quiet = false
		if progress {
			delay.Reset()
		}
		outage = time.Now()
		s.log.Warn("fluentd: connection lost; unacknowledged batches will be sent again",
			"address", c.ep.String(), "err", err, "unacknowledged", len(s.retry))
		if errors.Is(err, errHeartbeat) && len(s.eps) > 1 {
			cur = (cur + 1) % len(s.eps)
		}
		if !s.sleep(delay.Next()) {
			return
		}
	}
}

func durationSince(t time.Time) string {
	if t.IsZero() {
		return "0s"
	}
	return time.Since(t).Round(time.Millisecond).String()
}

// sleep waits d; it returns false when the flush deadline passed.
func (s *sender) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.closing:
		return !closed(s.abort)
	case <-s.abort:
		return false
	}
}

// connect tries every address once, starting at eps[first].
func (s *sender) connect(ctx context.Context, first int) (*conn, int, error) {
	var errs []error
	for i := range s.eps {
		idx := (first + i) % len(s.eps)
		c, err := dial(ctx, s.eps[idx], s.dialTimeout, s.tls, s.auth)
		if err == nil {
			return c, idx, nil
		}
		errs = append(errs, err)
	}
	return nil, first, errors.Join(errs...)
}

// next returns the next chunk to write: one to resend, else the queue's
// oldest.
func (s *sender) next() *chunk {
	if len(s.retry) > 0 {
		c := s.retry[0]
		s.retry[0] = nil
		s.retry = s.retry[1:]
		return c
	}
	return s.q.pop()
}

func (s *sender) delivered(c *chunk) {
	s.st.sent.Add(uint64(c.lines))
	s.q.delivered(c)
}

// session sends on c until it fails or everything is sent at shutdown.
// progress reports whether anything was delivered.
func (s *sender) session(c *conn) (progress bool, err error) {
	acks := make(chan string, s.window+16)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	go readAcks(c, acks, readErr, stop)
	go func() {
		// At the flush deadline a write blocked on a server that stopped
		// reading must end too.
		select {
		case <-s.abort:
			c.nc.Close()
		case <-stop:
		}
	}()
	var hbDown <-chan struct{}
	if s.heartbeat > 0 && c.ep.Network != "unix" {
		down := make(chan struct{})
		go udpHeartbeat(c.ep.Address, s.heartbeat, stop, down, s.log)
		hbDown = down
	}
	window := s.window
	if !c.keepalive {
		window = 1
	}
	var inflight []*chunk
	defer func() {
		close(stop)
		s.retry = append(inflight, s.retry...)
		s.st.inFlight.Store(0)
	}()
	ackTimer := time.NewTimer(time.Hour)
	defer ackTimer.Stop()
	// take handles one ack; false when it names no chunk in flight.
	take := func(id string) bool {
		i := slices.IndexFunc(inflight, func(ch *chunk) bool { return ch.id == id })
		if i < 0 {
			return false
		}
		ch := inflight[i]
		inflight = slices.Delete(inflight, i, i+1)
		s.noteAck(ch)
		s.delivered(ch)
		progress = true
		return true
	}
	for {
		for len(inflight) < window && !s.lastCall() {
			ch := s.next()
			if ch == nil {
				select {
				case s.hungry <- struct{}{}:
				default:
				}
				break
			}
			if err := s.write(c, ch); err != nil {
				s.retry = append([]*chunk{ch}, s.retry...)
				// The server may have acknowledged batches just before
				// the connection broke: take those acks before anything
				// is marked for sending again.
				s.lastAcks(acks, readErr, take)
				return progress, err
			}
			if ch.id == "" {
				s.delivered(ch)
				progress = true
				continue
			}
			inflight = append(inflight, ch)
		}
		s.st.inFlight.Store(int64(len(inflight)))
		if len(inflight) == 0 && s.finished() {
			return progress, nil
		}
		if len(inflight) == 0 && s.lastCall() {
			return progress, errAborted // every ack is in; the rest stays in the spool
		}
		var timeout <-chan time.Time
		if len(inflight) > 0 {
			ackTimer.Reset(time.Until(inflight[0].sentAt.Add(s.ackTimeout)))
			timeout = ackTimer.C
		}
		select {
		case id := <-acks:
			if !take(id) {
				return progress, fmt.Errorf("%w: %q", errWrongAck, truncate(id, 40))
			}
			if !c.keepalive && len(inflight) == 0 {
				return progress, errNoKeepalive
			}
		case err := <-readErr:
			// Acks read before the error count: a server that closes
			// after acking (keepalive false) must not cause a resend.
			drainAcks(acks, take)
			if !c.keepalive && len(inflight) == 0 {
				return progress, errNoKeepalive
			}
			return progress, err
		case <-timeout:
			return progress, errAckTimeout
		case <-hbDown:
			return progress, errHeartbeat
		case <-s.q.ready:
		case <-s.wake:
		case <-s.abort:
			return progress, errAborted
		}
		if closed(s.abort) {
			return progress, errAborted
		}
	}
}

// lastAckWait bounds the wait for acks still on their way when a write
// failed: the reader soon fails too on a connection that broke.
const lastAckWait = time.Second

// lastAcks takes the acks the reader still delivers after a write failed,
// until it fails too (or lastAckWait, or the flush deadline).
func (s *sender) lastAcks(acks <-chan string, readErr <-chan error, take func(string) bool) {
	t := time.NewTimer(lastAckWait)
	defer t.Stop()
	for {
		select {
		case id := <-acks:
			take(id)
		case <-readErr:
			drainAcks(acks, take)
			return
		case <-t.C:
			return
		case <-s.abort:
			return
		}
	}
}

// drainAcks takes the acks already read, up to one that names no chunk in
// flight.
func drainAcks(acks <-chan string, take func(string) bool) {
	for {
		select {
		case id := <-acks:
			if !take(id) {
				return
			}
		default:
			return
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func (s *sender) write(c *conn, ch *chunk) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(s.ackTimeout))
	if _, err := c.nc.Write(ch.msg); err != nil {
		return fmt.Errorf("fluentd: write to %s: %w", c.ep, err)
	}
	ch.sends++
	ch.sentAt = time.Now()
	if ch.sends > 1 {
		s.st.resent.Add(uint64(ch.lines))
		s.st.resentMsgs.Add(1)
	}
	return nil
}

// readAcks reads the server's responses until the connection fails.
// Anything that is not an ack is a protocol error: the connection is
// dropped and unacknowledged chunks are sent again.
func readAcks(c *conn, acks chan<- string, errs chan<- error, stop <-chan struct{}) {
	for {
		v, err := readValue(c.r)
		if err != nil {
			errs <- fmt.Errorf("fluentd: reading from %s: %w", c.ep, err)
			return
		}
		id, ok := ackID(v)
		if !ok {
			if a, isArr := v.([]any); isArr && len(a) > 0 && str(a[0]) == "HELO" {
				errs <- fmt.Errorf("fluentd: %s requires the shared-key handshake: set fluentd.shared_key", c.ep)
			} else {
				errs <- fmt.Errorf("fluentd: unexpected message from %s: %s", c.ep, describe(v))
			}
			return
		}
		select {
		case acks <- id:
		case <-stop:
			return
		}
	}
}
