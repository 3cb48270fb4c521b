// Package collectors reads the container's own figures — its cgroup, its
// network namespace, the supervised programs and steward itself — and emits
// them as samples. Every reader takes a filesystem root, so tests run on
// fixture trees copied from real kernels; shippers import Sample and never
// the other way round.
package collectors

import (
	"context"
	"time"
)

// Kind says how a sample's value behaves over time.
type Kind uint8

const (
	// Gauge values go up and down (memory in use, open fds).
	Gauge Kind = iota
	// Counter values only grow, except when their source restarts (CPU
	// seconds, packets); graph them with a derivative.
	Counter
)

func (k Kind) String() string {
	if k == Counter {
		return "counter"
	}
	return "gauge"
}

// Tag is one dimension of a sample besides steward's identity (app,
// version, host), which shippers add: program=web, interface=eth0,
// state=established.
type Tag struct {
	Key, Value string
}

// Sample is one value of one series at one time.
type Sample struct {
	// Name is dotted and snake_case, ending in its unit:
	// container.memory.usage_bytes, program.cpu_seconds_total.
	Name  string
	Value float64
	Kind  Kind
	// Tags are sorted by key. Collectors may share one slice between
	// samples; nobody modifies it.
	Tags []Tag
	// Time is the collection round's tick, aligned to the interval: the
	// scheduler sets it when a collector leaves it zero. Only the app's
	// own samples (relayed lines, checks' output) come with their time.
	Time time.Time
}

// Collector produces samples of one source.
type Collector interface {
	// Name is short and stable: it tags the collector's own duration and
	// success metrics.
	Name() string
	// Collect reads the source once and calls emit for each sample. It
	// emits what it could read even when it returns an error.
	Collect(ctx context.Context, emit func(Sample)) error
}

// Emitter helpers keep the collectors short and the kinds right. The
// exported ones serve the components that report their own figures
// through the steward collector (the shippers' Metrics methods).

// EmitCounter emits a counter sample.
func EmitCounter(emit func(Sample), name string, v float64, tags ...Tag) {
	counter(emit, name, v, tags)
}

// EmitGauge emits a gauge sample.
func EmitGauge(emit func(Sample), name string, v float64, tags ...Tag) { gauge(emit, name, v, tags) }

// Bool is a gauge's value for a condition: 1 or 0.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func gauge(emit func(Sample), name string, v float64, tags []Tag) {
	emit(Sample{Name: name, Value: v, Kind: Gauge, Tags: tags})
}

func counter(emit func(Sample), name string, v float64, tags []Tag) {
	emit(Sample{Name: name, Value: v, Kind: Counter, Tags: tags})
}
