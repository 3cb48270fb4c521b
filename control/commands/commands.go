// Package commands is what a running steward answers on its control
// socket about its programs, as supervisorctl does: status; start, stop,
// restart (each waiting until the program got there) and signal; and logs,
// the recent lines of a program kept in a bounded ring, with followers
// for `steward logs -f`. The control package carries the requests; cmd/
// registers these handlers on it, and the client side prints the answers.
package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/control"
	"github.com/stewardhq/steward/internal/drops"
	"github.com/stewardhq/steward/stream"
	"github.com/stewardhq/steward/supervisor"
)

// ProgramInfo is one program in `steward status`.
type ProgramInfo struct {
	Name          string  `json:"name"`
	State         string  `json:"state"`
	PID           int     `json:"pid,omitempty"`
	Main          bool    `json:"main,omitempty"`
	Ready         bool    `json:"ready"`
	UptimeSeconds float64 `json:"uptime_seconds,omitempty"`
	Restarts      int     `json:"restarts"`
	LastExitCode  *int    `json:"last_exit_code,omitempty"`
}

// ProgramsArgs names the programs a command acts on ("all" for every one).
type ProgramsArgs struct {
	Programs []string      `json:"programs"`
	Signal   string        `json:"signal,omitempty"`
	Timeout  time.Duration `json:"timeout,omitempty"`
}

// ProgramResult is what a command did to one program.
type ProgramResult struct {
	Name  string `json:"name"`
	State string `json:"state,omitempty"`
	Error string `json:"error,omitempty"`
}

// LogsArgs asks for a program's recent lines, and maybe the lines to come.
type LogsArgs struct {
	Program string `json:"program"`
	Lines   int    `json:"lines"`
	Follow  bool   `json:"follow"`
}

// Supervisor is what the commands act on.
type Supervisor interface {
	Status(ctx context.Context) []supervisor.ProgramStatus
	StartProgram(ctx context.Context, name string) error
	StopProgram(ctx context.Context, name string) error
	RestartProgram(ctx context.Context, name string) error
	SignalProgram(ctx context.Context, name string, sig syscall.Signal) error
	ShuttingDown() <-chan struct{}
	Logs() *stream.Stream[supervisor.LogRecord]
}

// Options bound what the commands keep.
type Options struct {
	// LogLines is how many recent lines of each program `steward logs`
	// keeps (control.log_lines); 0 keeps none.
	LogLines int
	// LogBufferLines bounds how far the ring may lag behind the programs'
	// output (steward.log_buffer_lines); the oldest is dropped beyond.
	LogBufferLines int
	// Log gets one line per burst of lines a slow `steward logs -f` lost.
	Log *slog.Logger
}

// Commands serves the program commands of one running steward.
type Commands struct {
	sup  Supervisor
	ring *logRing
	sub  *stream.BatchSubscription[supervisor.LogRecord]
	done chan struct{}
}

// Register adds status, start, stop, restart, signal and logs to srv, and
// starts keeping the programs' recent lines. Close stops that.
func Register(srv *control.Server, sup Supervisor, o Options) *Commands {
	c := &Commands{sup: sup, ring: newLogRing(o.LogLines, o.Log), done: make(chan struct{})}
	// One batch per pipe read, never waited for: keeping the ring must not
	// cost the log pipe a channel send per line, nor ever slow a program.
	c.sub = sup.Logs().SubscribeBatches("steward logs", stream.BatchOptions[supervisor.LogRecord]{
		MaxBatches: 1024, MaxWeight: int64(o.LogBufferLines), DropOldest: true})
	go func() {
		defer close(c.done)
		for batch := range c.sub.C {
			c.ring.add(batch)
			c.sub.Done(batch)
		}
	}()
	srv.Handle("status", func(ctx context.Context, _ json.RawMessage) (any, error) { return c.status(ctx), nil })
	for _, name := range []string{"start", "stop", "restart", "signal"} {
		srv.Handle(name, func(ctx context.Context, raw json.RawMessage) (any, error) {
			var args ProgramsArgs
			if err := json.Unmarshal(raw, &args); err != nil {
				return nil, fmt.Errorf("bad arguments: %w", err)
			}
			return c.act(ctx, name, args)
		})
	}
	srv.HandleStream("logs", func(ctx context.Context, raw json.RawMessage, send func(any) error) error {
		var args LogsArgs
		if err := json.Unmarshal(raw, &args); err != nil {
			return fmt.Errorf("bad arguments: %w", err)
		}
		return c.logs(ctx, args, send)
	})
	return c
}

// Finish waits until the ring holds every line published so far, and its
// followers have them: steward calls it once the programs have stopped,
// before the control socket ends the `steward logs -f` streams, so they
// end after the programs' last lines. It polls: the subscription has no
// wakeup for "caught up", and this runs once per stop.
func (c *Commands) Finish(ctx context.Context) error {
	for c.sub.Queued() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("control: the logs ring did not catch up: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// Metrics emits what the followers of `steward logs -f` lost.
func (c *Commands) Metrics(emit func(collectors.Sample)) {
	collectors.EmitCounter(emit, "steward.logs_follow.dropped_total", float64(c.ring.followerDrops.Total()))
}

// Close stops keeping lines.
func (c *Commands) Close(context.Context) error {
	c.sup.Logs().UnsubscribeBatches(c.sub)
	<-c.done
	return nil
}

func (c *Commands) status(ctx context.Context) []ProgramInfo {
	var out []ProgramInfo
	for _, st := range c.sup.Status(ctx) {
		pi := ProgramInfo{Name: st.Name, State: st.State.String(), PID: st.PID, Main: st.Main,
			Ready: st.Ready, Restarts: st.Restarts}
		if !st.StartedAt.IsZero() {
			pi.UptimeSeconds = time.Since(st.StartedAt).Round(time.Second).Seconds()
		}
		if st.LastExitCode >= 0 {
			code := st.LastExitCode
			pi.LastExitCode = &code
		}
		out = append(out, pi)
	}
	return out
}

// Command timeouts when the client sets none: long enough for a stop
// timeout and a slow start.
const DefaultActTimeout = time.Minute

// act starts, stops, restarts or signals programs and, except for signal,
// waits until each has got there (or the timeout ends).
func (c *Commands) act(ctx context.Context, command string, args ProgramsArgs) ([]ProgramResult, error) {
	names, err := c.expand(ctx, args.Programs)
	if err != nil {
		return nil, err
	}
	timeout := args.Timeout
	if timeout <= 0 {
		timeout = DefaultActTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var sig syscall.Signal
	if command == "signal" {
		if sig, err = configs.ParseSignal(args.Signal); err != nil {
			return nil, err
		}
	}
	before := map[string]int{}
	for _, st := range c.sup.Status(ctx) {
		before[st.Name] = st.PID
	}
	results := make([]ProgramResult, len(names))
	for i, name := range names {
		results[i].Name = name
		switch command {
		case "start":
			err = c.sup.StartProgram(ctx, name)
		case "stop":
			err = c.sup.StopProgram(ctx, name)
		case "restart":
			err = c.sup.RestartProgram(ctx, name)
		case "signal":
			err = c.sup.SignalProgram(ctx, name, sig)
		}
		if err != nil {
			results[i].Error = strings.TrimPrefix(err.Error(), "supervisor: ")
		}
	}
	if command == "signal" {
		return results, nil
	}
	c.await(ctx, command, results, before)
	return results, nil
}

// await polls until every program acted on has reached where the command
// takes it, then fills in its state.
func (c *Commands) await(ctx context.Context, command string, results []ProgramResult, before map[string]int) {
	arrived := func(st supervisor.ProgramStatus) bool {
		switch command {
		case "stop":
			return st.PID == 0 && st.State != supervisor.StateStopping
		default: // start, restart: a new process that has started, or failed for good
			switch st.State {
			case supervisor.StateRunning, supervisor.StateCompleted, supervisor.StateFatal, supervisor.StateExited:
				return command == "start" || st.PID != before[st.Name] || st.State != supervisor.StateRunning
			}
			return false
		}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		statuses := map[string]supervisor.ProgramStatus{}
		for _, st := range c.sup.Status(ctx) {
			statuses[st.Name] = st
		}
		pending := false
		for i := range results {
			r := &results[i]
			st, ok := statuses[r.Name]
			if !ok {
				r.State = "removed"
				continue
			}
			r.State = st.State.String()
			if r.Error == "" && !arrived(st) {
				pending = true
			}
		}
		if !pending {
			return
		}
		select {
		case <-c.sup.ShuttingDown():
			// Stopping the main program stops steward: answer before the
			// socket goes away with it.
			for i := range results {
				if results[i].Error == "" {
					results[i].State = "stopping (steward is shutting down)"
				}
			}
			return
		case <-ctx.Done():
			for i := range results {
				if results[i].Error == "" && !arrived(statuses[results[i].Name]) {
					results[i].Error = "still " + results[i].State + " when the command's time ran out"
				}
			}
			return
		case <-tick.C:
		}
	}
}

// expand resolves "all" and checks the names.
func (c *Commands) expand(ctx context.Context, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, errors.New("name one or more programs, or all")
	}
	var known []string
	for _, st := range c.sup.Status(ctx) {
		known = append(known, st.Name)
	}
	if slices.Contains(names, "all") {
		return known, nil
	}
	for _, n := range names {
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("no program %q (programs: %s)", n, strings.Join(known, ", "))
		}
	}
	return names, nil
}

func (c *Commands) logs(ctx context.Context, args LogsArgs, send func(any) error) error {
	names, err := c.expand(ctx, []string{args.Program})
	if err != nil {
		return err
	}
	recent, live := c.ring.snapshot(names[0], args.Lines, args.Follow)
	if live != nil {
		defer c.ring.unfollow(names[0], live)
	}
	for _, rec := range recent {
		if err := send(rec); err != nil {
			return err
		}
	}
	if !args.Follow {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			// steward stops: the lines already here go out first (the
			// select would pick the end or a ready line at random).
			for {
				select {
				case rec := <-live:
					if err := send(rec); err != nil {
						return err
					}
				default:
					return ctx.Err()
				}
			}
		case rec := <-live:
			if err := send(rec); err != nil {
				return err
			}
		}
	}
}

// Bounds of the ring: lines per program (configurable) and bytes per
// program, so long lines cannot make it large.
const (
	ringBytesPerProgram = 1 << 20
	followerBuffer      = 1024
)

// logRing keeps the recent lines of every program, and hands new ones to
// followers. A follower too slow to keep up misses lines rather than
// holding anything up.
type logRing struct {
	max int
	// followerDrops counts the lines a follower lost because it did not
	// keep up: the ring never waits for one.
	followerDrops *drops.Counter

	mu        sync.Mutex
	programs  map[string]*programLines
	followers map[string][]chan supervisor.LogRecord
}

// programLines is one program's window of lines: a circular buffer of at
// most max records, recs[head] the oldest of n. It grows by append until
// it holds max; from then on a new line takes the oldest one's slot, so a
// line costs one copy of its record (the earlier slice, compacted once
// half of it was dropped, copied and cleared each record twice more: half
// of the ring's CPU in a burst).
type programLines struct {
	recs  []supervisor.LogRecord
	head  int
	n     int
	bytes int
}

// push keeps rec, dropping the oldest lines beyond max and beyond the
// byte bound (the newest line is always kept).
func (pl *programLines) push(rec *supervisor.LogRecord, max int) {
	switch {
	case pl.n < len(pl.recs):
		pl.recs[(pl.head+pl.n)%len(pl.recs)] = *rec
		pl.n++
	case len(pl.recs) < max:
		if pl.head != 0 {
			// The byte bound dropped lines before the window grew to
			// max: unwrap it first (rare).
			pl.recs = slices.Concat(pl.recs[pl.head:], pl.recs[:pl.head])
			pl.head = 0
		}
		pl.recs = append(pl.recs, *rec)
		pl.n++
	default: // full: the new line takes the oldest one's slot
		pl.bytes -= len(pl.recs[pl.head].Text)
		pl.recs[pl.head] = *rec
		pl.head = (pl.head + 1) % len(pl.recs)
	}
	pl.bytes += len(rec.Text)
	for pl.bytes > ringBytesPerProgram && pl.n > 1 {
		pl.bytes -= len(pl.recs[pl.head].Text)
		pl.recs[pl.head] = supervisor.LogRecord{} // its text may go
		pl.head = (pl.head + 1) % len(pl.recs)
		pl.n--
	}
}

// last returns a copy of the newest k lines kept (all when k < 0), oldest
// first.
func (pl *programLines) last(k int) []supervisor.LogRecord {
	if k < 0 || k > pl.n {
		k = pl.n
	}
	out := make([]supervisor.LogRecord, 0, k)
	for i := pl.n - k; i < pl.n; i++ {
		out = append(out, pl.recs[(pl.head+i)%len(pl.recs)])
	}
	return out
}

func newLogRing(max int, log *slog.Logger) *logRing {
	return &logRing{max: max, followerDrops: drops.New(log, "steward logs -f too slow, lines dropped"), programs: map[string]*programLines{}, followers: map[string][]chan supervisor.LogRecord{}}
}

// add keeps a batch of records, under one lock. The records of a pipe
// read share the read's string, and the window keeps them as they are:
// copying every kept line took a fifth of steward's CPU in a burst, and
// doubled what the log path allocates. A kept line holds its read's
// string, so the window's memory is its byte bound, plus the lines'
// newlines, plus at most the evicted part of its oldest read (under
// max_line_bytes).
func (r *logRing) add(batch []supervisor.LogRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	from := 0
	if r.max > 0 && len(batch) > r.max {
		from = len(batch) - r.max // the earlier ones would be dropped at once
	}
	var pl *programLines
	var followers []chan supervisor.LogRecord
	for i := range batch {
		rec := &batch[i]
		// A batch is one pipe's read: one program, looked up once.
		if i == 0 || rec.Program != batch[i-1].Program {
			followers = r.followers[rec.Program]
			pl = nil
		}
		if r.max > 0 && i >= from {
			if pl == nil {
				if pl = r.programs[rec.Program]; pl == nil {
					pl = &programLines{}
					r.programs[rec.Program] = pl
				}
			}
			pl.push(rec, r.max)
		}
		for _, ch := range followers {
			select {
			case ch <- *rec:
			default:
				r.followerDrops.Add(1)
			}
		}
	}
}

// snapshot returns up to n of the program's last lines (none when n is 0,
// all kept when n is negative) and, to follow, a channel of the lines after those: both under
// one lock, so no line is lost or repeated between them.
func (r *logRing) snapshot(program string, n int, follow bool) ([]supervisor.LogRecord, chan supervisor.LogRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var recs []supervisor.LogRecord
	if pl := r.programs[program]; pl != nil {
		recs = pl.last(n)
	}
	if !follow {
		return recs, nil
	}
	ch := make(chan supervisor.LogRecord, followerBuffer)
	r.followers[program] = append(r.followers[program], ch)
	return recs, ch
}

func (r *logRing) unfollow(program string, ch chan supervisor.LogRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.followers[program] = slices.DeleteFunc(r.followers[program], func(c chan supervisor.LogRecord) bool { return c == ch })
}
