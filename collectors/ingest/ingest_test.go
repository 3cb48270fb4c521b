package ingest

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/collectors"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestSocketDrops: datagrams the kernel drops while steward cannot keep
// up (the handler is held here) are counted, so that what was sent is what
// was received plus what was dropped.
func TestSocketDrops(t *testing.T) {
	st := NewStats("t", quiet)
	hold := make(chan struct{})
	var got atomic.Int64
	l, err := Listen(ListenConfig{Name: "t", Addr: "127.0.0.1:0", UDP: true}, st, func([]byte) {
		<-hold
		got.Add(1)
	}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("udp", l.UDPAddr())
	if err != nil {
		t.Fatal(err)
	}
	line := append(bytes.Repeat([]byte("x"), 2000), '\n')
	// Send while the handler is held until the socket's buffer overflows,
	// whatever its size on this machine.
	sent := 0
	deadline := time.Now().Add(time.Minute)
	for st.Dropped(ReasonSocketBuffer) == 0 {
		for range 1000 {
			if _, err := c.Write(line); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		l.PollDrops()
		if time.Now().After(deadline) {
			t.Fatalf("no drop counted after %d datagrams", sent)
		}
	}
	close(hold)
	for {
		l.PollDrops()
		dropped := st.Dropped(ReasonSocketBuffer)
		if int64(dropped)+got.Load() == int64(sent) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sent %d, received %d, dropped %d", sent, got.Load(), dropped)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBuffer: past its size, samples are dropped and counted until the
// round drains it.
func TestBuffer(t *testing.T) {
	st := NewStats("t", quiet)
	b := NewBuffer(3, st)
	for range 5 {
		b.Add(collectors.Sample{Name: "x"})
	}
	n := 0
	b.Drain(func(collectors.Sample) { n++ })
	if n != 3 || st.Dropped(ReasonTooManySeries) != 2 {
		t.Fatalf("drained %d, dropped %d", n, st.Dropped(ReasonTooManySeries))
	}
	b.Add(collectors.Sample{Name: "y"})
	n = 0
	b.Drain(func(collectors.Sample) { n++ })
	if n != 1 {
		t.Fatalf("drained %d after a round", n)
	}
}
