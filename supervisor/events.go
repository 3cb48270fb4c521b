package supervisor

import (
	"context"
	"log/slog"
	"syscall"
	"time"
)

// EventKind names what happened to a program.
type EventKind string

// Program events, in the order a program's life produces them.
const (
	EventStarted    EventKind = "started"    // process spawned
	EventRunning    EventKind = "running"    // alive for start_secs
	EventReady      EventKind = "ready"      // readiness probe passed
	EventExited     EventKind = "exited"     // process ended (or failed to start)
	EventCompleted  EventKind = "completed"  // oneshot exited successfully
	EventRestarting EventKind = "restarting" // restart scheduled after Delay
	EventFatal      EventKind = "fatal"      // gave up after too many failed starts
	EventStopping   EventKind = "stopping"   // stop signal sent
	EventKilled     EventKind = "killed"     // stop timeout ran out: SIGKILL to the group
	EventStopped    EventKind = "stopped"    // stopped on request or shutdown
	EventRemoved    EventKind = "removed"    // a reload removed it, and it is down

	// EventShutdown (no program) marks, in stream order, where steward
	// began to stop everything; Message says why.
	EventShutdown EventKind = "shutdown"
)

// Event is published on the supervisor's event stream and logged.
type Event struct {
	Time    time.Time
	Program string
	Kind    EventKind
	PID     int
	// ExitCode and Signal describe an exit (EventExited, EventFatal).
	ExitCode int
	Signal   syscall.Signal
	// Delay is the wait before a restart (EventRestarting).
	Delay time.Duration
	// Restarts counts restarts of the program so far.
	Restarts int
	// Message explains, e.g. why a start failed.
	Message string
}

func (e Event) attrs() []slog.Attr {
	attrs := []slog.Attr{slog.String("program", e.Program)}
	if e.PID > 0 {
		attrs = append(attrs, slog.Int("pid", e.PID))
	}
	switch e.Kind {
	case EventExited, EventFatal, EventCompleted:
		attrs = append(attrs, slog.Int("code", e.ExitCode))
		if e.Signal != 0 {
			attrs = append(attrs, slog.String("signal", signalName(e.Signal)))
		}
	case EventRestarting:
		attrs = append(attrs, slog.Duration("delay", e.Delay), slog.Int("restarts", e.Restarts))
	}
	if e.Message != "" {
		attrs = append(attrs, slog.String("reason", e.Message))
	}
	return attrs
}

func (e Event) level() slog.Level {
	switch e.Kind {
	case EventFatal:
		return slog.LevelError
	case EventKilled:
		return slog.LevelWarn
	case EventExited:
		if e.Message != "" {
			return slog.LevelError
		}
	}
	return slog.LevelInfo
}

// emit logs an event and publishes it.
func (s *Supervisor) emit(e Event) {
	e.Time = time.Now()
	s.log.LogAttrs(context.Background(), e.level(), "program "+string(e.Kind), e.attrs()...)
	s.events.Publish(e)
}
