// Package backoff is the one retry delay of steward: exponential from an
// initial delay up to a cap, each delay spread by ±20% so that programs
// failing together, or many containers losing the same server, do not retry
// in step. The supervisor's restarts and every shipper's reconnects use it.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Spread is the jitter: each delay is within ±Spread of its base.
const Spread = 0.2

// Delay is the delay before attempt number n (1 for the first retry):
// initial·2^(n-1), capped at max, jittered, never above max.
func Delay(initial, max time.Duration, n int) time.Duration {
	d := initial
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return Jitter(min(d, max), max)
}

// Jitter spreads d by ±Spread, never above max.
func Jitter(d, max time.Duration) time.Duration {
	return min(time.Duration(float64(d)*(1+Spread*(2*rand.Float64()-1))), max)
}

// Backoff is the state of one retry loop: Next after each failure, Reset
// after a success. The zero Backoff waits zero.
type Backoff struct {
	Initial, Max time.Duration
	n            int
}

// Next is the delay to wait after one more failure.
func (b *Backoff) Next() time.Duration {
	if b.n < 64 {
		b.n++
	}
	return Delay(b.Initial, max(b.Max, b.Initial), b.n)
}

// Reset starts again from Initial.
func (b *Backoff) Reset() { b.n = 0 }
