package ingest

import (
	"log/slog"
	"sync/atomic"

	"github.com/stewardhq/steward/collectors"
)

// Input is the part the line-taking inputs (StatsD, the relay) share: a
// listener bound by Start (later than the input is made: after the
// programs started), its counters, and their emission each round.
type Input struct {
	cfg    ListenConfig
	stats  *Stats
	handle func(line []byte)
	log    *slog.Logger
	l      atomic.Pointer[Listener] // set by Start, read by the rounds
}

// NewInput prepares an input named cfg.Name whose lines go to handle.
func NewInput(cfg ListenConfig, handle func(line []byte), log *slog.Logger) *Input {
	return &Input{cfg: cfg, stats: NewStats(cfg.Name, log), handle: handle, log: log}
}

// Stats are the input's counters.
func (in *Input) Stats() *Stats { return in.stats }

// Name is the input's name: its collector's.
func (in *Input) Name() string { return in.cfg.Name }

// Start listens.
func (in *Input) Start() error {
	l, err := Listen(in.cfg, in.stats, in.handle, in.log)
	if err != nil {
		return err
	}
	in.l.Store(l)
	return nil
}

// Addr is the bound address (TCP if on, else UDP), "" before Start.
func (in *Input) Addr() string {
	l := in.l.Load()
	if l == nil {
		return ""
	}
	if a := l.TCPAddr(); a != "" {
		return a
	}
	return l.UDPAddr()
}

// EmitStats counts the socket's drops since the last round and emits the
// input's counters.
func (in *Input) EmitStats(emit func(collectors.Sample)) {
	if l := in.l.Load(); l != nil {
		l.PollDrops()
	}
	in.stats.Emit(emit)
}

// Close stops listening.
func (in *Input) Close() {
	if l := in.l.Load(); l != nil {
		l.Close()
	}
}
