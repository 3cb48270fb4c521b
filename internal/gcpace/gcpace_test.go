package gcpace

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/testutil"
)

func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestPaceFollowsCollections: collections far apart set the idle pace,
// collections close together the busy one, and in between it stays; after
// Stop nothing changes. The clock is the test's, the collections real
// (paces high enough that the test's own allocations start none).
func TestPaceFollowsCollections(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	const busy, idle = 1000, 800
	c := &clock{t: time.Unix(1e9, 0)}
	p := Start(Options{Busy: busy, Idle: idle, BusyWithin: 10 * time.Second, IdleAfter: time.Minute, Now: c.now})
	if gogc() != busy {
		t.Fatalf("GOGC %d at start, want the busy %d", gogc(), busy)
	}
	// collect moves the clock by d, then collects once and waits for the
	// pacer to have followed that collection.
	collect := func(d time.Duration, want int) {
		t.Helper()
		c.add(d)
		seen := p.seen.Load()
		runtime.GC()
		testutil.Eventually(t, "the pacer follows the collection", func() bool { return p.seen.Load() > seen })
		if got := gogc(); got != want {
			t.Fatalf("after a collection %v after the last: GOGC %d, want %d", d, got, want)
		}
	}
	collect(2*time.Minute, idle)
	collect(5*time.Second, busy)
	collect(30*time.Second, busy) // between: unchanged
	collect(61*time.Second, idle)
	collect(30*time.Second, idle)
	if p.Changes() != 3 {
		t.Fatalf("%d changes, want 3", p.Changes())
	}
	p.Stop()
	c.add(time.Second)
	runtime.GC()
	runtime.GC()
	if gogc() != idle || p.Changes() != 3 {
		t.Fatalf("after Stop: GOGC %d, %d changes", gogc(), p.Changes())
	}
}
