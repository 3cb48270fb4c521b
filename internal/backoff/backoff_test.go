package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	initial, max := 100*time.Millisecond, time.Second
	for n, base := range []time.Duration{1: 100, 2: 200, 3: 400, 4: 800, 5: 1000, 6: 1000, 200: 1000} {
		if n == 0 || base == 0 {
			continue
		}
		base *= time.Millisecond
		for range 200 {
			d := Delay(initial, max, n)
			if d < time.Duration(float64(base)*(1-Spread)) || d > time.Duration(float64(base)*(1+Spread)) || d > max {
				t.Fatalf("attempt %d: delay %v outside %v ±20%% capped at %v", n, d, base, max)
			}
		}
	}
	if d := Delay(0, time.Second, 3); d != 0 {
		t.Fatalf("zero initial delay gave %v", d)
	}
}

func TestBackoffDoublesAndResets(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 4 * time.Second}
	for i, base := range []time.Duration{1, 2, 4, 4, 4} {
		base *= time.Second
		if d := b.Next(); d < time.Duration(float64(base)*(1-Spread)) || d > min(time.Duration(float64(base)*(1+Spread)), b.Max) {
			t.Fatalf("failure %d: %v, want %v ±20%%", i+1, d, base)
		}
	}
	b.Reset()
	if d := b.Next(); d > time.Duration(float64(time.Second)*(1+Spread)) {
		t.Fatalf("after Reset: %v, want about 1s", d)
	}
	// A cap below the initial delay does not make the delay zero.
	low := Backoff{Initial: time.Second}
	if d := low.Next(); d < time.Duration(float64(time.Second)*(1-Spread)) {
		t.Fatalf("Max below Initial: %v", d)
	}
}
