package stream

import (
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func testStream() *Stream[int] {
	return New[int]("test", slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// TestBatchSubscriberThatKeepsUpLosesNothing: a publisher that finds the
// buffer full waits for the subscriber to make room instead of dropping.
func TestBatchSubscriberThatKeepsUpLosesNothing(t *testing.T) {
	s := testStream()
	sub := s.SubscribeBatches("slow", BatchOptions[int]{MaxBatches: 2, MaxWeight: 10, Wait: time.Minute})
	release := make(chan struct{})
	var got []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range sub.C {
			<-release // the test decides when the subscriber makes progress
			got = append(got, b...)
			sub.Done(b)
		}
	}()
	published := make(chan struct{})
	go func() {
		for i := range 100 {
			s.PublishBatch([]int{i})
		}
		close(published)
	}()
	for range 100 {
		release <- struct{}{}
	}
	<-published
	s.UnsubscribeBatches(sub)
	<-done
	if len(got) != 100 || sub.Dropped() != 0 {
		t.Fatalf("got %d values, dropped %d", len(got), sub.Dropped())
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("value %d is %d: order lost", i, v)
		}
	}
}

// TestStuckBatchSubscriberIsSkipped: a subscriber that makes no room costs
// the publisher one Wait; after that its batches are dropped at once (a
// wait per batch would make this test hang) until it has caught up.
func TestStuckBatchSubscriberIsSkipped(t *testing.T) {
	s := testStream()
	sub := s.SubscribeBatches("stuck", BatchOptions[int]{MaxBatches: 4, MaxWeight: 4, Wait: 200 * time.Millisecond})
	for i := range 4 {
		s.PublishBatch([]int{i}) // fills the buffer
	}
	for i := range 10000 {
		s.PublishBatch([]int{i})
	}
	if sub.Dropped() != 10000 {
		t.Fatalf("dropped %d, want 10000", sub.Dropped())
	}
	// Caught up: values flow again.
	for range 4 {
		sub.Done(<-sub.C)
	}
	s.PublishBatch([]int{7})
	if b := <-sub.C; b[0] != 7 || sub.Dropped() != 10000 {
		t.Fatalf("after catching up: %v, dropped %d", b, sub.Dropped())
	}
}

func TestUnsubscribeReleasesWaitingPublisher(t *testing.T) {
	s := testStream()
	sub := s.SubscribeBatches("gone", BatchOptions[int]{MaxBatches: 1, MaxWeight: 1, Wait: time.Hour})
	s.PublishBatch([]int{1})
	returned := make(chan struct{})
	go func() { s.PublishBatch([]int{2}); close(returned) }()
	for sub.waiters.Load() == 0 {
		runtime.Gosched()
	}
	// The publisher is waiting: unsubscribing must free it (an hour's
	// wait would hang the test).
	s.UnsubscribeBatches(sub)
	<-returned
	if sub.Dropped() != 0 {
		t.Fatalf("a batch for a gone subscriber counted as dropped")
	}
}

func TestBatchWeight(t *testing.T) {
	s := New[string]("test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	sub := s.SubscribeBatches("w", BatchOptions[string]{MaxBatches: 100, MaxWeight: 10,
		Weight: func(v string) int { return len(v) }})
	s.PublishBatch([]string{strings.Repeat("x", 50)}) // heavier than the cap: passes, nothing queued
	s.PublishBatch([]string{"y"})                     // over the cap now: dropped (no Wait)
	if sub.Dropped() != 1 {
		t.Fatalf("dropped %d, want 1", sub.Dropped())
	}
	sub.Done(<-sub.C)
	s.PublishBatch([]string{"z"})
	if b := <-sub.C; b[0] != "z" {
		t.Fatal(b)
	}
}

// TestItemSubscribersGetBatchesValueByValue: the one-by-one subscribers
// see every value of a batch, and never make the publisher wait.
func TestItemSubscribersGetBatchesValueByValue(t *testing.T) {
	s := testStream()
	sub := s.Subscribe("items", 3)
	s.PublishBatch([]int{1, 2, 3, 4, 5})
	if sub.Dropped() != 2 {
		t.Fatalf("dropped %d, want 2", sub.Dropped())
	}
	for want := 1; want <= 3; want++ {
		if v := <-sub.C; *v != want {
			t.Fatalf("got %d, want %d", *v, want)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Close() }()
	wg.Wait()
}

// TestDropOldestKeepsTheNewestQuietly: a ring-like subscriber that falls
// behind loses its oldest queued batches, not the newest, and that is
// counted but not logged as a warning (it is the subscriber's design).
func TestDropOldestKeepsTheNewestQuietly(t *testing.T) {
	var log strings.Builder
	s := New[int]("logs", slog.New(slog.NewTextHandler(&log, nil)))
	sub := s.SubscribeBatches("ring", BatchOptions[int]{MaxBatches: 2, MaxWeight: 100, DropOldest: true})
	for i := range 5 {
		s.PublishBatch([]int{2 * i, 2*i + 1})
	}
	s.UnsubscribeBatches(sub)
	var got []int
	for b := range sub.C {
		got = append(got, b...)
		sub.Done(b)
	}
	if len(got) != 4 || got[0] != 6 || got[3] != 9 {
		t.Fatalf("kept %v, want the newest two batches [6 7 8 9]", got)
	}
	if sub.Dropped() != 6 {
		t.Fatalf("dropped %d, want 6", sub.Dropped())
	}
	sub.drops.Flush() // the report a timer would make
	if strings.Contains(log.String(), "too slow") {
		t.Fatalf("a drop by design was logged as a warning: %s", log.String())
	}
}

// A batch is weighed once: Done frees the weight it was offered with
// (weighing every value again was a measurable share of the log path).
func TestBatchWeighedOnce(t *testing.T) {
	s := testStream()
	var calls atomic.Int64
	// The second batch does not fit until the first is done: its
	// publisher waits and tries again.
	sub := s.SubscribeBatches("w", BatchOptions[int]{MaxBatches: 8, MaxWeight: 3, Wait: 5 * time.Minute,
		Weight: func(v int) int { calls.Add(1); return v }})
	s.PublishBatch([]int{1, 2, 3})
	go s.PublishBatch([]int{4, 5})
	for sub.waiters.Load() == 0 {
		runtime.Gosched()
	}
	for range 2 {
		sub.Done(<-sub.C)
	}
	if n := calls.Load(); n != 5 {
		t.Errorf("Weight called %d times for 5 values", n)
	}
	if q := sub.queued.Load(); q != 0 {
		t.Errorf("%d weight still queued after every batch was done", q)
	}
}
