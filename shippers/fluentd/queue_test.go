package fluentd

import (
	"testing"
	"testing/synctest"
	"time"
)

// fullQueue returns a connected queue over a spool whose memory is taken
// by four chunks the sender holds (popped, not yet acknowledged).
func fullQueue(t *testing.T, st *counters) (*queue, []*chunk) {
	sp := openTestSpool(t, t.TempDir(), 1<<20)
	t.Cleanup(func() { sp.close() })
	st.connected.Store(true)
	q := newQueue(5000, st, quietLog())
	q.attach(sp)
	var held []*chunk
	for i := range 4 {
		q.push(testChunk(i, 1))
		held = append(held, q.pop())
	}
	if st.spoolBytes.Load() != 0 {
		t.Fatalf("spilled %d bytes before memory was full", st.spoolBytes.Load())
	}
	return q, held
}

// With a server that keeps up, a full queue waits for the next ack instead
// of writing the batch to the spool and reading it back.
func TestQueueWaitsForAServerThatKeepsUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var st counters
		q, held := fullQueue(t, &st)
		done := make(chan struct{})
		go func() {
			q.push(testChunk(4, 1))
			close(done)
		}()
		synctest.Wait() // the push waits for room
		select {
		case <-done:
			t.Fatal("push did not wait for room")
		default:
		}
		time.Sleep(spillWait / 2)
		q.delivered(held[0])
		<-done
		if st.spoolBytes.Load() != 0 {
			t.Fatalf("spilled %d bytes although the server made room in time", st.spoolBytes.Load())
		}
		if c := q.pop(); c == nil || c.id != "id-4" {
			t.Fatalf("popped %v, want id-4", c)
		}
	})
}

// A server that makes no room in time (slow, or hung) gets one wait, then
// the queue spills at once until memory has room again.
func TestQueueStallsOnASlowServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var st counters
		q, held := fullQueue(t, &st)
		start := time.Now()
		q.push(testChunk(4, 1))
		if waited := time.Since(start); waited != spillWait || st.spoolBytes.Load() == 0 {
			t.Fatalf("waited %v (want %v), spilled %d bytes", waited, spillWait, st.spoolBytes.Load())
		}
		start = time.Now()
		q.push(testChunk(5, 1))
		if waited := time.Since(start); waited != 0 {
			t.Fatalf("a stalled queue waited %v", waited)
		}
		for _, c := range held {
			q.delivered(c)
		}
		// Room again (the spool is read first): the stall is over.
		for c := q.pop(); c != nil; c = q.pop() {
			q.delivered(c)
		}
		q.push(testChunk(6, 1))
		q.pop()
		for i := 7; i < 10; i++ {
			q.push(testChunk(i, 1))
		}
		start = time.Now()
		spilled := st.spoolBytes.Load()
		q.push(testChunk(11, 1))
		if waited := time.Since(start); waited != spillWait || st.spoolBytes.Load() == spilled {
			t.Fatalf("after the stall: waited %v (want %v), spool %d -> %d bytes", waited, spillWait, spilled, st.spoolBytes.Load())
		}
	})
}

// Nothing waits for a server that is not connected.
func TestQueueDoesNotWaitWhileDisconnected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var st counters
		q, _ := fullQueue(t, &st)
		st.connected.Store(false)
		start := time.Now()
		q.push(testChunk(4, 1))
		if waited := time.Since(start); waited != 0 || st.spoolBytes.Load() == 0 {
			t.Fatalf("waited %v, spilled %d bytes", waited, st.spoolBytes.Load())
		}
	})
}
