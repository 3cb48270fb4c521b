package graphite

import (
	"bufio"
	"bytes"
	"context"

	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/internal/testutil"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// server is a plaintext line receiver on loopback, as carbon's: it reads
// lines and never answers. Its behaviour per connection is set by the test.
type server struct {
	t    *testing.T
	addr string

	mu    sync.Mutex
	ln    net.Listener
	lines []string
	conns []net.Conn
	// handle, when set, runs on each new connection instead of reading.
	handle func(c net.Conn)
	// closeAfter closes each connection after that many lines.
	closeAfter int
}

func newServer(t *testing.T) *server {
	s := &server{t: t}
	s.listen("127.0.0.1:0")
	t.Cleanup(s.stop)
	return s
}

func (s *server) listen(addr string) {
	s.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.ln, s.addr = ln, ln.Addr().String()
	s.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			handle, closeAfter := s.handle, s.closeAfter
			s.mu.Unlock()
			if handle != nil {
				go handle(c)
				continue
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				n := 0
				for sc.Scan() {
					s.mu.Lock()
					s.lines = append(s.lines, sc.Text())
					s.mu.Unlock()
					if n++; closeAfter > 0 && n == closeAfter {
						return
					}
				}
			}()
		}
	}()
}

// set changes the server's behaviour for new connections.
func (s *server) set(f func(s *server)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// hangUp closes every connection but keeps listening.
func (s *server) hangUp() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// stop closes the listener and every connection: carbon going away.
func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ln.Close()
	for _, c := range s.conns {
		c.Close()
	}
}

func (s *server) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

func (s *server) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// waitLines waits until the server has n lines; the limit only guards a
// hang.
func (s *server) waitLines(n int) []string {
	s.t.Helper()
	deadline := time.Now().Add(testutil.HangGuard)
	for {
		got := s.got()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("server has %d lines, want %d: %q", len(got), n, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// roundAt is a round of n samples stamped with tick i.
func roundAt(i, n int) []collectors.Sample {
	var out []collectors.Sample
	for k := range n {
		out = append(out, collectors.Sample{Name: fmt.Sprintf("m.s%d", k), Value: float64(i), Time: time.Unix(int64(1000+i*10), 0)})
	}
	return out
}

func newShipper(t *testing.T, cfg Config) *Shipper {
	t.Helper()
	cfg.App, cfg.Version, cfg.Host = "web", "v1", "h"
	if cfg.RetryMin == 0 {
		cfg.RetryMin, cfg.RetryMax = 10*time.Millisecond, 50*time.Millisecond
	}
	s, err := New(cfg, discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

// timestamps lists the distinct timestamps of lines, in order of arrival.
func timestamps(lines []string) []string {
	var out []string
	for _, l := range lines {
		f := strings.Fields(l)
		ts := f[len(f)-1]
		if len(out) == 0 || out[len(out)-1] != ts {
			out = append(out, ts)
		}
	}
	return out
}

func stats(s *Shipper) map[string]float64 {
	out := map[string]float64{}
	s.Stats(func(smp collectors.Sample) {
		out[smp.Name+";"+smp.Tags[0].Value] = smp.Value
	})
	return out
}

func TestShipTCP(t *testing.T) {
	srv := newServer(t)
	s := newShipper(t, Config{Servers: []string{srv.addr}})
	s.Ship(roundAt(1, 2))
	got := srv.waitLines(2)
	if got[0] != "m.s0;app=web;host=h;version=v1 1 1010" {
		t.Fatalf("line %q", got[0])
	}
}

// TestReconnectAfterServerCloses: carbon closes the connection (as it
// does on restart, or after a bad line); the next round must go over a new
// connection, not into the closed one where it would be lost. The round
// before is sent again too, since the server may have closed without
// reading it.
func TestReconnectAfterServerCloses(t *testing.T) {
	srv := newServer(t)
	s := newShipper(t, Config{Servers: []string{srv.addr}})
	s.Ship(roundAt(1, 3))
	srv.waitLines(3)
	for i := 2; i <= 4; i++ {
		srv.hangUp()
		s.Ship(roundAt(i, 3))
		srv.waitLines(6 * (i - 1)) // the round before, again, and this one
	}
	perRound := map[string]int{}
	for _, l := range srv.got() {
		f := strings.Fields(l)
		perRound[f[len(f)-1]]++
	}
	if fmt.Sprint(perRound) != "map[1010:6 1020:6 1030:6 1040:3]" {
		t.Fatalf("lines per round %v", perRound)
	}
	if n := srv.connections(); n != 4 {
		t.Fatalf("%d connections, want one per round", n)
	}
}

// TestOutageIsBuffered: rounds shipped while carbon is down arrive, in
// order, once it is back on the same address.
func TestOutageIsBuffered(t *testing.T) {
	srv := newServer(t)
	s := newShipper(t, Config{Servers: []string{srv.addr}})
	s.Ship(roundAt(1, 2))
	srv.waitLines(2)
	srv.stop()
	for i := 2; i <= 5; i++ {
		s.Ship(roundAt(i, 2))
	}
	// Wait until the shipper has noticed the outage (its first error),
	// so the restart below really comes after it.
	testutil.Eventually(t, "the shipper's first error", func() bool {
		return stats(s)["steward.graphite.errors_total;"+srv.addr] > 0
	})
	srv.listen(srv.addr)
	got := srv.waitLines(10)
	if ts := timestamps(got); strings.Join(ts, ",") != "1010,1020,1030,1040,1050" {
		t.Fatalf("rounds %v", ts)
	}
	st := stats(s)
	if st["steward.graphite.sent_samples_total;"+srv.addr] != 10 || st["steward.graphite.dropped_samples_total;"+srv.addr] != 0 {
		t.Fatalf("stats %v", st)
	}
}

// TestBacklogDropsOldest: past BufferRounds, the oldest rounds go, counted.
func TestBacklogDropsOldest(t *testing.T) {
	srv := newServer(t)
	addr := srv.addr
	srv.stop()
	s := newShipper(t, Config{Servers: []string{addr}, BufferRounds: 3})
	for i := 1; i <= 5; i++ {
		s.Ship(roundAt(i, 2))
	}
	srv.listen(addr)
	got := srv.waitLines(6)
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangGuard)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The three newest always arrive, in order. Older ones arrive only if
	// they were being sent when they left the queue; either way every
	// sample is counted once, as sent or as dropped.
	ts := timestamps(got)
	if len(ts) < 3 || strings.Join(ts[len(ts)-3:], ",") != "1030,1040,1050" || !slices.IsSorted(ts) {
		t.Fatalf("rounds %v", ts)
	}
	st := stats(s)
	sent, dropped := st["steward.graphite.sent_samples_total;"+addr], st["steward.graphite.dropped_samples_total;"+addr]
	if sent != float64(len(srv.got())) || sent+dropped != 10 {
		t.Fatalf("sent %v, dropped %v, arrived %d", sent, dropped, len(srv.got()))
	}
}

// TestSendToAll: every server gets every round; a dead one holds up no
// other.
func TestSendToAll(t *testing.T) {
	a, b, dead := newServer(t), newServer(t), newServer(t)
	dead.stop()
	s := newShipper(t, Config{Servers: []string{a.addr, dead.addr, b.addr}})
	for i := 1; i <= 3; i++ {
		s.Ship(roundAt(i, 2))
	}
	a.waitLines(6)
	b.waitLines(6)
	if st := stats(s); st["steward.graphite.queued_samples;"+dead.addr] != 6 {
		t.Fatalf("stats %v", st)
	}
}

// TestFailover: with failover, the first working server gets everything
// and the others nothing.
func TestFailover(t *testing.T) {
	dead, a, b := newServer(t), newServer(t), newServer(t)
	dead.stop()
	s := newShipper(t, Config{Servers: []string{dead.addr, a.addr, b.addr}, Failover: true})
	for i := 1; i <= 3; i++ {
		s.Ship(roundAt(i, 2))
	}
	a.waitLines(6)
	// a fails: the rest goes to b.
	a.stop()
	for i := 4; i <= 5; i++ {
		s.Ship(roundAt(i, 2))
	}
	if ts := timestamps(b.waitLines(4)); strings.Join(ts, ",") != "1040,1050" {
		t.Fatalf("b got rounds %v", ts)
	}
	if n := len(a.got()); n != 6 {
		t.Fatalf("a got %d lines", n)
	}
}

// TestBlackHole: a server that accepts and never reads. Writes time out,
// Ship never blocks, and Close gives up at its deadline, reporting what
// was not sent.
func TestBlackHole(t *testing.T) {
	srv := newServer(t)
	// Accepts one connection and never reads from it, nor accepts more.
	srv.set(func(s *server) {
		s.handle = func(c net.Conn) {
			s.mu.Lock()
			s.ln.Close()
			s.mu.Unlock()
		}
	})
	s := newShipper(t, Config{Servers: []string{srv.addr}, Timeout: 100 * time.Millisecond, BufferRounds: 4})
	big := roundAt(0, 5000) // far more than the socket buffers hold
	for i := range 50 {
		for k := range big {
			big[k].Time = time.Unix(int64(i), 0)
		}
		s.Ship(big)
	}
	testutil.Eventually(t, "the shipper's first error", func() bool {
		return stats(s)["steward.graphite.errors_total;"+srv.addr] > 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := s.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "not sent") {
		t.Fatalf("Close: %v", err)
	}
	st := stats(s)
	sent, dropped := st["steward.graphite.sent_samples_total;"+srv.addr], st["steward.graphite.dropped_samples_total;"+srv.addr]
	if dropped == 0 || sent+dropped != 50*5000 || st["steward.graphite.queued_samples;"+srv.addr] != 0 {
		t.Fatalf("stats %v", st)
	}
}

// TestGarbageServer: a server that talks back is ignored; lines still
// arrive.
func TestGarbageServer(t *testing.T) {
	srv := newServer(t)
	var got testutil.LockedBuffer
	srv.set(func(s *server) {
		s.handle = func(c net.Conn) {
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n\x00\xff garbage"))
			io.Copy(&got, c)
		}
	})
	s := newShipper(t, Config{Servers: []string{srv.addr}})
	for i := 1; i <= 3; i++ {
		s.Ship(roundAt(i, 1))
		testutil.Eventually(t, fmt.Sprintf("round %d", i), func() bool {
			return strings.Count(got.String(), "\n") >= i
		})
	}
	if n := srv.connections(); n != 1 {
		t.Fatalf("%d connections, want the one, kept", n)
	}
}

// TestFlushOnClose: Close sends what is queued before returning.
func TestFlushOnClose(t *testing.T) {
	srv := newServer(t)
	addr := srv.addr
	srv.stop()
	s := newShipper(t, Config{Servers: []string{addr}})
	for i := 1; i <= 3; i++ {
		s.Ship(roundAt(i, 2))
	}
	srv.listen(addr)
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangGuard)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.waitLines(6)); n != 6 {
		t.Fatalf("%d lines", n)
	}
	s.Ship(roundAt(4, 2)) // after Close: ignored, no panic
}

func TestUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s := newShipper(t, Config{Servers: []string{pc.LocalAddr().String()}, Protocol: UDP})
	s.Ship(roundAt(1, 100)) // ~4 KiB: several datagrams
	var all bytes.Buffer
	buf := make([]byte, 65536)
	for strings.Count(all.String(), "\n") < 100 {
		pc.SetReadDeadline(time.Now().Add(testutil.HangGuard))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n > maxDatagram || buf[n-1] != '\n' {
			t.Fatalf("datagram of %d bytes ending %q: lines must not be split", n, buf[n-1])
		}
		all.Write(buf[:n])
	}
}

func TestPrint(t *testing.T) {
	var out testutil.LockedBuffer
	s := newShipper(t, Config{Print: &out, Mode: ModePath})
	s.Ship(roundAt(1, 2))
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangGuard)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "web.v1.h.m.s0 1 1010\nweb.v1.h.m.s1 1 1010\n" {
		t.Fatalf("printed %q", got)
	}
}

func TestNewErrors(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Servers: []string{"no-port"}},
		{Servers: []string{"h:1"}, Protocol: "sctp"},
		{Servers: []string{"h:1"}, Mode: "json"},
		{Servers: []string{"h:1"}, Mode: ModePath, Template: "{app}"},
	} {
		if _, err := New(cfg, discard); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
