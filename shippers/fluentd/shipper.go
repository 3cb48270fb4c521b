// Package fluentd forwards every line programs write to Fluentd or Fluent
// Bit over the Forward Protocol v1
// (https://github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1):
// PackedForward batches (gzip-compressed as CompressedPackedForward when
// asked), EventTime with nanoseconds, the chunk option with ack
// verification, the HELO/PING/PONG shared-key handshake, over TCP, TLS or
// a Unix socket, with failover between addresses.
//
// Nothing a server does blocks the programs: lines are taken from the
// supervisor's log stream and encoded without waiting for the network, into
// a bounded memory queue; when the server is slow or down, batches spill to
// a disk spool up to a cap, beyond which the oldest records are dropped and
// counted. (A program writing faster than the encoder runs is slowed to
// its pace by a bounded wait in the stream, never stopped.) Batches not
// acknowledged are sent again after a reconnect, so a record is duplicated
// only when its ack was lost.
package fluentd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/stewardhq/steward/configs"
	logstream "github.com/stewardhq/steward/stream"
	"github.com/stewardhq/steward/supervisor"
)

// Stats are the shipper's counters, for metrics.
type Stats struct {
	Received      uint64 // lines (and parts of cut lines) taken from programs
	Missed        uint64 // lines the stream dropped because the shipper lagged
	Records       uint64 // records built from them (a joined multiline record is one)
	Sent          uint64 // records acknowledged by the server
	Dropped       uint64 // records dropped: memory and spool full, or spool unwritable
	Resent        uint64 // records sent again after their ack did not come
	ResentBatches uint64
	Reconnects    uint64
	QueueBytes    int64 // encoded batches waiting in memory
	QueueBatches  int64
	InFlight      int64 // batches written and not yet acknowledged
	SpoolBytes    int64 // size of the disk spool
	Connected     bool
}

// Config is the shipper's own settings, built by cmd/ from the config
// snapshot: the [fluentd] section, the identity records carry, and the
// programs' [programs.NAME.logs].
type Config struct {
	configs.Fluentd
	App, Version, Host string
	// ContainerName is container_name in records; empty: the hostname.
	ContainerName string
	// Programs holds the log settings of the programs that have any.
	Programs map[string]*configs.ProgramLogs
}

// Shipper forwards log records to a Fluentd server.
type Shipper struct {
	log *slog.Logger
	cfg Config
	// subCapacity is how many batches (pipe reads) the subscription holds.
	subCapacity int

	enc   *encoder
	bat   *batcher
	q     *queue
	spool *spool
	snd   *sender
	st    counters
	// records counts records built since the drain last added them to st.
	records uint64

	logs *logstream.Stream[supervisor.LogRecord]
	sub  *logstream.BatchSubscription[supervisor.LogRecord]
	// opened is closed once Start's goroutine has opened the spool.
	opened    chan struct{}
	drainDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// New prepares a shipper and reads its TLS files, so that what the config
// got wrong fails here, before any program starts. What needs the disk or
// /proc (the spool, the container's id) is left to Start's goroutine:
// steward forks its programs in between, and each of those reads would
// delay the first (0.3 ms of a start traced with a spool, issue 14).
func New(cfg Config, log *slog.Logger) (*Shipper, error) {
	f := &cfg.Fluentd
	if len(f.Address) == 0 {
		return nil, errors.New("fluentd: no address configured")
	}
	s := &Shipper{log: log, cfg: cfg, subCapacity: subBatches, opened: make(chan struct{}), drainDone: make(chan struct{})}
	programs := cfg.Programs
	if programs == nil {
		programs = map[string]*configs.ProgramLogs{}
	}
	s.enc = &encoder{
		id: identity{
			app: cfg.App, version: cfg.Version, host: cfg.Host,
			containerName: containerName(cfg.ContainerName), fields: f.Fields,
		},
		tag:      f.Tag,
		programs: programs,
		streams:  map[streamKey]*stream{},
		joiners:  map[streamKey]*joiner{},
	}
	s.bat = &batcher{maxBytes: int(f.BatchBytes), interval: f.FlushInterval.D(), gzip: f.Compress == "gzip",
		ack: f.RequireAck, builders: map[string]*builder{}}
	s.q = newQueue(queueShare(int64(f.QueueBytes), int64(f.BatchBytes)), &s.st, log)

	var tlsConf *tls.Config
	for _, ep := range f.Address {
		if ep.Network == "tls" {
			var err error
			if tlsConf, err = tlsConfig(f.TLS); err != nil {
				return nil, err
			}
			break
		}
	}
	s.snd = &sender{
		eps: f.Address, dialTimeout: f.ConnectTimeout.D(), ackTimeout: f.AckTimeout.D(), tls: tlsConf,
		auth:         auth{sharedKey: f.SharedKey, username: f.Username, password: f.Password, selfHostname: f.SelfHostname},
		retryInitial: f.RetryInitial.D(), retryMax: f.RetryMax.D(), window: window(int64(f.BatchBytes)),
		q: s.q, st: &s.st, log: log,
		closing: make(chan struct{}), inputDone: make(chan struct{}), wake: make(chan struct{}, 1),
		hungry: make(chan struct{}, 1),
		abort:  make(chan struct{}), done: make(chan struct{}),
	}
	if f.Heartbeat == "udp" {
		s.snd.heartbeat = f.HeartbeatInterval.D()
	}
	return s, nil
}

// open does what New leaves to Start's goroutine: the batches' and
// records' id prefixes, the container's id, and the spool (its directory,
// else a temporary one when that is not writable), before the first line
// is encoded or batch sent.
func (s *Shipper) open() {
	defer close(s.opened)
	_, _ = rand.Read(s.bat.idPrefix[:])
	_, _ = rand.Read(s.enc.idPrefix[:])
	s.enc.id.containerID = ContainerID("/")
	f := &s.cfg.Fluentd
	if f.SpoolMaxBytes > 0 {
		s.spool = s.openSpool(f.SpoolDir, int64(f.SpoolMaxBytes))
		if s.spool != nil {
			s.spool.bufs = &s.bat.bufs
			s.q.attach(s.spool)
		}
	}
}

// containerName is the configured name, else the hostname: in Kubernetes
// the pod's name, in Docker the container's short id unless --hostname
// named it (Docker's own name is not visible inside the container; pass
// it in STEWARD_CONTAINER_NAME).
func containerName(configured string) string {
	if configured != "" {
		return configured
	}
	h, _ := os.Hostname()
	return h
}

// openSpool opens dir, or a fresh temporary directory when dir cannot be
// used; nil when neither works (batches that do not fit in memory are then
// dropped and counted).
func (s *Shipper) openSpool(dir string, maxBytes int64) *spool {
	sp, err := openSpool(dir, maxBytes, s.log)
	if err == nil {
		if _, lines, _ := sp.pending(); lines > 0 {
			s.log.Info("fluentd: spool found; sending it first", "dir", dir, "records", lines, "bytes", sp.bytes)
		}
		return sp
	}
	tmp, terr := os.MkdirTemp("", "steward-spool-")
	if terr == nil {
		if sp, terr = openSpool(tmp, maxBytes, s.log); terr == nil {
			sp.temporary = true
			s.log.Warn("fluentd: spool directory unusable; using a temporary one (lost with the container)", "dir", dir, "err", err, "using", tmp)
			return sp
		}
	}
	s.log.Error("fluentd: no spool directory; batches beyond queue_bytes will be dropped", "dir", dir, "err", err, "temp_err", terr)
	return nil
}

// queue_bytes is the shipper's whole memory for log data. A quarter holds
// lines not yet encoded (the stream subscription); the rest, less the
// batch being built, holds sealed batches: those waiting to be sent and
// those written and not yet acknowledged. What does not fit waits in the
// spool. (Measured: with 4 MiB the shipper's live heap peaks near 5 MB in a
// burst of a million lines to a slow server, and steward's peak RSS near 20
// MiB; see the README.)
func subShare(queueBytes int64) int64 { return queueBytes / 4 }

func queueShare(queueBytes, batchBytes int64) int64 {
	return max(queueBytes-subShare(queueBytes)-batchBytes, batchBytes)
}

// window is how many batches may be written and not yet acknowledged:
// at least 4, and enough for about windowBytes, so that small batches
// (cheap to resend when an ack is lost) still keep the connection busy
// while acks travel back.
func window(batchBytes int64) int { return int(max(4, windowBytes/batchBytes)) }

const windowBytes = 1 << 20

// subBatches bounds the subscription in batches (pipe reads) as well:
// the channel's slots cost memory even when empty.
const subBatches = 1024

// recordOverhead is what a LogRecord costs beyond its text.
const recordOverhead = 96

// subscriberWait is how long a program's pipe may wait for the shipper to
// make room when it writes faster than the shipper encodes. The encoder
// does CPU work only (the network never holds it up: full queues spill to
// disk), so it always makes room quickly unless it is stuck; then the
// stream stops waiting for it and counts what it misses.
const subscriberWait = 2 * time.Second

// Start subscribes to logs and starts forwarding.
func (s *Shipper) Start(logs *logstream.Stream[supervisor.LogRecord]) {
	s.logs = logs
	// The subscription's share of queue_bytes bounds the lines not yet
	// encoded, by their bytes and what each record costs beside them.
	s.sub = logs.SubscribeBatches("fluentd", logstream.BatchOptions[supervisor.LogRecord]{
		MaxBatches: s.subCapacity,
		MaxWeight:  subShare(int64(s.cfg.QueueBytes)),
		Weight:     func(r supervisor.LogRecord) int { return len(r.Text) + recordOverhead },
		Wait:       subscriberWait,
	})
	go func() {
		s.open()
		go s.snd.run()
		s.drain()
	}()
}

// drain encodes records into batches as fast as they come. It never waits
// for the network: sealed batches go to the queue, which spills to disk.
func (s *Shipper) drain() {
	defer func() {
		close(s.drainDone)
		close(s.snd.inputDone)
		s.nudge()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case batch, ok := <-s.sub.C:
			if !ok {
				s.flushAll()
				return
			}
			for i := range batch {
				s.add(&batch[i])
			}
			s.sub.Done(batch)
			if len(s.sub.C) == 0 && s.senderIdle() {
				s.sealAll()
			}
			s.st.received.Add(uint64(len(batch)))
			s.st.records.Add(s.records)
			s.records = 0
		case <-s.snd.hungry:
			if len(s.sub.C) == 0 {
				s.sealAll()
			}
		case <-timer.C:
		}
		now := time.Now()
		due := s.flushDue(now)
		s.st.records.Add(s.records)
		s.records = 0
		if due.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(due.Sub(now))
		}
	}
}

func (s *Shipper) nudge() {
	select {
	case s.snd.wake <- struct{}{}:
	default:
	}
}

func (s *Shipper) add(r *supervisor.LogRecord) {
	str := s.enc.stream(r)
	j := str.joiner
	if j == nil {
		s.emit(str, r.Time, r.Text, r.Partial)
		return
	}
	if j.pending && (j.stream != str || j.startsRecord(r.Text)) {
		s.emit(j.take())
	}
	j.add(str, r.Time, r.Text, r.Partial)
	if j.full() {
		s.emit(j.take())
	}
}

func (s *Shipper) emit(str *stream, t time.Time, text string, partial bool) {
	bd := str.builder
	if bd == nil {
		bd = s.bat.builder(str.tag)
		str.builder = bd
	} else if bd.buf == nil {
		s.bat.builder(str.tag) // gives bd a buffer again after sealing
	}
	if bd.lines == 0 {
		bd.opened = time.Now()
	}
	bd.entries = s.enc.entry(bd.entries, str, t, text, partial)
	bd.lines++
	s.records++
	if s.bat.full(bd) {
		s.q.push(s.bat.seal(bd))
	}
}

// flushDue sends joined records and batches whose time has come, and
// returns when the next one is due (zero: nothing pending).
func (s *Shipper) flushDue(now time.Time) time.Time {
	var next time.Time
	for _, j := range s.enc.joiners {
		if !j.pending {
			continue
		}
		if d := j.deadline(); !d.After(now) {
			s.emit(j.take())
		} else if next.IsZero() || d.Before(next) {
			next = d
		}
	}
	for _, bd := range s.bat.builders {
		if bd.lines > 0 && !bd.opened.Add(s.bat.interval).After(now) {
			s.q.push(s.bat.seal(bd))
		}
	}
	if d := s.bat.due(); !d.IsZero() && (next.IsZero() || d.Before(next)) {
		next = d
	}
	return next
}

// senderIdle reports whether the connection has room and nothing waits:
// then a partial batch goes at once rather than after flush_interval. Under
// load the sender is busy and batches fill up, as Nagle's algorithm
// batches small writes while an ack is outstanding.
func (s *Shipper) senderIdle() bool {
	return s.st.connected.Load() && s.st.inFlight.Load() < int64(s.snd.window) &&
		s.st.queueChunks.Load() == 0 && s.st.spoolBytes.Load() == 0
}

func (s *Shipper) sealAll() {
	for _, bd := range s.bat.builders {
		if bd.lines > 0 {
			s.q.push(s.bat.seal(bd))
		}
	}
}

func (s *Shipper) flushAll() {
	defer func() { s.st.records.Add(s.records); s.records = 0 }()
	for _, j := range s.enc.joiners {
		if j.pending {
			s.emit(j.take())
		}
	}
	s.sealAll()
}

// Close takes the last lines, sends what it can before ctx ends, and
// leaves the rest in the spool for the next steward.
func (s *Shipper) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.close(ctx) })
	return s.closeErr
}

func (s *Shipper) close(ctx context.Context) error {
	if s.sub != nil {
		select {
		case <-s.opened:
		case <-ctx.Done():
			// Still opening the spool (a hung disk): the queue is not
			// the shipper's to persist yet; the lines stay with the
			// subscription and are lost.
			s.logs.UnsubscribeBatches(s.sub)
			return fmt.Errorf("fluentd: spool not open by the flush deadline: %w", ctx.Err())
		}
		s.logs.UnsubscribeBatches(s.sub)
		select {
		case <-s.drainDone:
		case <-ctx.Done():
		}
	} else {
		close(s.snd.inputDone)
		go s.snd.run()
	}
	if d, ok := ctx.Deadline(); ok {
		s.snd.deadline = d
	}
	close(s.snd.closing)
	s.nudge()
	select {
	case <-s.snd.done:
	case <-ctx.Done():
		close(s.snd.abort)
		<-s.snd.done
	}
	lost := s.q.persist(s.snd.retry)
	s.snd.retry = nil
	left, spoolBytes := s.q.left()
	var err error
	if s.spool != nil {
		err = s.spool.close()
	}
	s.st.dropped.Flush()
	st := s.Stats()
	// The last word on the logs: what was delivered, and exactly what
	// waits in the spool for the next steward, and where.
	attrs := []any{"records", st.Records, "sent", st.Sent, "dropped", st.Dropped,
		"missed", st.Missed, "resent", st.Resent, "reconnects", st.Reconnects,
		"left_in_spool", left, "spool_bytes", spoolBytes}
	level := slog.LevelInfo
	if s.spool != nil {
		attrs = append(attrs, "spool_dir", s.spool.dir)
		if left > 0 {
			level = slog.LevelWarn
			if s.spool.temporary {
				attrs = append(attrs, "note", "the spool is a temporary directory: these records are lost with the container; mount a volume on spool_dir")
			} else {
				attrs = append(attrs, "note", "sent first by the next steward started on spool_dir")
			}
		}
	}
	s.log.Log(context.Background(), level, "fluentd: closed", attrs...)
	if lost > 0 {
		err = errors.Join(err, fmt.Errorf("fluentd: %d records lost at shutdown (no spool, or spool full)", lost))
	}
	return err
}

// Stats returns the current counters.
func (s *Shipper) Stats() Stats {
	st := Stats{
		Received:      s.st.received.Load(),
		Records:       s.st.records.Load(),
		Sent:          s.st.sent.Load(),
		Dropped:       s.st.dropped.Total(),
		Resent:        s.st.resent.Load(),
		ResentBatches: s.st.resentMsgs.Load(),
		Reconnects:    s.st.reconnects.Load(),
		QueueBytes:    s.st.queueBytes.Load(),
		QueueBatches:  s.st.queueChunks.Load(),
		InFlight:      s.st.inFlight.Load(),
		SpoolBytes:    s.st.spoolBytes.Load(),
		Connected:     s.st.connected.Load(),
	}
	if s.sub != nil {
		st.Missed = s.sub.Dropped()
	}
	return st
}
