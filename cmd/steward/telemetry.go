package main

import (
	"sync"

	"github.com/stewardhq/steward/collectors"
)

// metricSources are the components' own figures (log forwarding, checks,
// Sensu) that the steward collector emits each round. Components add theirs
// while starting, after the collector may already run.
type metricSources struct {
	mu  sync.Mutex
	fns []func(emit func(collectors.Sample))
}

func (m *metricSources) add(fn func(emit func(collectors.Sample))) {
	m.mu.Lock()
	m.fns = append(m.fns, fn)
	m.mu.Unlock()
}

func (m *metricSources) emit(emit func(collectors.Sample)) {
	m.mu.Lock()
	fns := m.fns
	m.mu.Unlock()
	for _, fn := range fns {
		fn(emit)
	}
}
