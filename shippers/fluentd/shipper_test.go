package fluentd

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/testutil"
	"github.com/stewardhq/steward/shippers/fluentd/fluentdtest"
	logstream "github.com/stewardhq/steward/stream"
	"github.com/stewardhq/steward/supervisor"
)

// config writes a [fluentd] section for addrs with a fresh spool, plus
// extra lines.
func config(t *testing.T, addrs []string, extra string) string {
	t.Helper()
	return `
[steward]
app = "shop"
host = "client.example"
[fluentd]
address = ["` + strings.Join(addrs, `", "`) + `"]
spool_dir = "` + filepath.Join(t.TempDir(), "spool") + `"
retry_initial = "20ms"
retry_max = "100ms"
` + extra
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "tcp://" + addr
}

func (c *collector) waitAll(t *testing.T, prefix string, n int) {
	t.Helper()
	testutil.Eventually(t, "all lines", func() bool {
		for i := range n {
			if c.has(prefix+strconv.Itoa(i)) == 0 {
				return false
			}
		}
		return true
	})
}

func TestDeliversEveryLine(t *testing.T) {
	c := newCollector()
	p := listen(t, fluentdtest.Config{OnEvent: c.onEvent(false)})
	h := startShipper(t, testutil.LoadConfig(t, config(t, []string{p.Addr()}, ""), "app"))
	h.publish("web", "stdout", "line ", 0, 10000)
	h.close()
	for i := range 10000 {
		if n := c.has("line " + strconv.Itoa(i)); n != 1 {
			t.Fatalf("line %d received %d times", i, n)
		}
	}
	st := h.s.Stats()
	if st.Sent != 10000 || st.Records != 10000 || st.Received != 10000 || st.Dropped != 0 || st.Resent != 0 {
		t.Fatalf("stats %+v", st)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.modes[fluentdtest.ModePackedForward] != 10000 || c.ext != 10000 {
		t.Fatalf("modes %v, EventTime %d", c.modes, c.ext)
	}
}

func TestHandshakeWithSharedKeyAndUser(t *testing.T) {
	c := newCollector()
	p := listen(t, fluentdtest.Config{OnEvent: c.onEvent(false), SharedKey: "k", Users: map[string]string{"u": "pw"}})
	h := startShipper(t, testutil.LoadConfig(t, config(t, []string{p.Addr()}, "shared_key = \"k\"\nusername = \"u\"\npassword = \"pw\"\n"), "app"))
	h.publish("web", "stdout", "l", 0, 100)
	c.waitAll(t, "l", 100)
	if st := p.Stats(); st.Handshakes != 1 || st.AuthFailures != 0 {
		t.Fatalf("peer %+v", st)
	}
	if strings.Contains(h.out.String(), "pw") || strings.Contains(h.out.String(), "shared_key = ") {
		t.Fatal("a secret reached the log")
	}
}

func TestHandshakeFailuresKeepEverything(t *testing.T) {
	for name, tc := range map[string]struct {
		peer    fluentdtest.Config
		extra   string
		logged  string
		secrets []string
	}{
		"wrong key":      {fluentdtest.Config{SharedKey: "right"}, `shared_key = "wrong-key-123"`, "shared_key mismatch", []string{"wrong-key-123"}},
		"wrong password": {fluentdtest.Config{SharedKey: "k", Users: map[string]string{"u": "pw"}}, "shared_key = \"k\"\nusername = \"u\"\npassword = \"bad-pass-456\"", "username/password mismatch", []string{"bad-pass-456"}},
		"no key set":     {fluentdtest.Config{SharedKey: "k"}, "", "requires the shared-key handshake", nil},
		"same hostname":  {fluentdtest.Config{SharedKey: "k", Hostname: "client.example"}, `shared_key = "k"`, "same hostname", nil},
	} {
		t.Run(name, func(t *testing.T) {
			p := listen(t, tc.peer)
			h := startShipper(t, testutil.LoadConfig(t, config(t, []string{p.Addr()}, tc.extra), "app"))
			h.publish("web", "stdout", "l", 0, 100)
			testutil.Eventually(t, "the failure in the log", func() bool { return h.out.contains(tc.logged) })
			h.close()
			if !h.out.contains("left_in_spool=100") {
				t.Fatalf("lines not kept:\n%s", h.out)
			}
			for _, s := range tc.secrets {
				if h.out.contains(s) {
					t.Fatalf("secret %q in the log", s)
				}
			}
		})
	}
}

func TestTLSAndUnixSocket(t *testing.T) {
	serverTLS, caPEM, err := fluentdtest.SelfSignedTLS()
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, caPEM, 0o644)
	c := newCollector()
	tlsPeer := listen(t, fluentdtest.Config{OnEvent: c.onEvent(false), TLS: serverTLS})
	h := startShipper(t, testutil.LoadConfig(t, config(t, []string{tlsPeer.Addr()}, "[fluentd.tls]\nca = \""+ca+"\"\n"), "app"))
	h.publish("web", "stdout", "tls", 0, 100)
	c.waitAll(t, "tls", 100)

	// Without the CA the server's certificate is refused.
	h = startShipper(t, testutil.LoadConfig(t, config(t, []string{tlsPeer.Addr()}, ""), "app"))
	h.publish("web", "stdout", "x", 0, 1)
	testutil.Eventually(t, "a certificate error", func() bool { return h.out.contains("certificate") })

	sock := filepath.Join(t.TempDir(), "fluentd.sock")
	unixPeer, err := fluentdtest.Listen("unix", sock, fluentdtest.Config{OnEvent: c.onEvent(false)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { unixPeer.Close(); unixPeer.Wait() }()
	h = startShipper(t, testutil.LoadConfig(t, config(t, []string{unixPeer.Addr()}, ""), "app"))
	h.publish("web", "stdout", "unix", 0, 100)
	c.waitAll(t, "unix", 100)
}

func TestFailover(t *testing.T) {
	c := newCollector()
	p := listen(t, fluentdtest.Config{OnEvent: c.onEvent(false)})
	h := startShipper(t, testutil.LoadConfig(t, config(t, []string{closedAddr(t), p.Addr()}, ""), "app"))
	h.publish("web", "stdout", "l", 0, 1000)
	c.waitAll(t, "l", 1000)
}

func TestGzip(t *testing.T) {
	c := newCollector()
	p := listen(t, fluentdtest.Config{OnEvent: c.onEvent(false)})
	h := startShipper(t, testutil.LoadConfig(t, config(t, []string{p.Addr()}, `compress = "gzip"`), "app"))
	h.publish("web", "stdout", "z", 0, 5000)
	c.waitAll(t, "z", 5000)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.modes[fluentdtest.ModeCompressedPackedForward] != 5000 {
		t.Fatalf("modes %v", c.modes)
	}
}

func TestWithoutAcks(t *testing.T) {
	c := newCollector()
	var chunks []any
	p := listen(t, fluentdtest.Config{OnEvent: c.onEvent(false), OnMessage: func(m fluentdtest.Message) {
		c.mu.Lock()
		chunks = append(chunks, m.Options["chunk"])
		c.mu.Unlock()
	}})
	h := startShipper(t, testutil.LoadConfig(t, config(t, []string{p.Addr()}, "require_ack = false"), "app"))
	h.publish("web", "stdout", "l", 0, 100)
	c.waitAll(t, "l", 100)
	h.close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range chunks {
		if id != nil {
			t.Fatalf("chunk option %v sent with require_ack = false", id)
		}
	}
	if st := h.s.Stats(); st.Sent != 100 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAckTimeoutResends: a batch whose ack never comes is sent again on a
// new connection, and counted.
func TestAckTimeoutResends(t *testing.T) {
	c := newCollector()
	var swallowed atomic.Bool
	p := listen(t, fluentdtest.Config{OnEvent: c.onEvent(false), Respond: func(_ int, chunk string) []byte {
		if swallowed.CompareAndSwap(false, true) {
			return nil // no ack for the first batch
		}
		return append([]byte{0x81, 0xa3, 'a', 'c', 'k', 0xd9, byte(len(chunk))}, chunk...)
	}})
	h := startShipper(t, testutil.LoadConfig(t, config(t, []string{p.Addr()}, `ack_timeout = "300ms"`), "app"))
	h.publish("web", "stdout", "l", 0, 100)
	testutil.Eventually(t, "the batch resent", func() bool { return c.has("l0") == 2 })
	h.close()
	if st := h.s.Stats(); st.Resent != 100 || st.ResentBatches != 1 || st.Sent != 100 {
		t.Fatalf("stats %+v", st)
	}
	if !h.out.contains("no ack within ack_timeout") {
		t.Fatal("the timeout was not logged")
	}
}

func TestServerClosingAfterEachMessage(t *testing.T) {
	c := newCollector()
	p := listen(t, fluentdtest.Config{OnEvent: c.onEvent(false), SharedKey: "k", DenyKeepalive: true})
	h := startShipper(t, testutil.LoadConfig(t, config(t, []string{p.Addr()}, "shared_key = \"k\"\nbatch_bytes = \"4KiB\"\n"), "app"))
	h.publish("web", "stdout", "l", 0, 1000)
	c.waitAll(t, "l", 1000)
	h.close()
	if st := h.s.Stats(); st.Resent != 0 {
		t.Fatalf("resent %d to a server announcing keepalive = false", st.Resent)
	}
}

// TestHeartbeatFailover: when the server stops answering UDP heartbeats,
// steward drops the connection and moves to the next address.
func TestHeartbeatFailover(t *testing.T) {
	c1, c2 := newCollector(), newCollector()
	silent := listen(t, fluentdtest.Config{OnEvent: c1.onEvent(false)}) // no UDP answers
	live := listen(t, fluentdtest.Config{OnEvent: c2.onEvent(false), UDPHeartbeat: true})
	h := startShipper(t, testutil.LoadConfig(t, config(t, []string{silent.Addr(), live.Addr()},
		"heartbeat = \"udp\"\nheartbeat_interval = \"100ms\"\n"), "app"))
	testutil.Eventually(t, "a connection to the first address", func() bool { return silent.Stats().Connections == 1 })
	testutil.Eventually(t, "failover", func() bool { return h.out.contains("no UDP heartbeat reply") })
	h.publish("web", "stdout", "b", 0, 10)
	c2.waitAll(t, "b", 10)
	testutil.Eventually(t, "heartbeats to the live server", func() bool { return live.Stats().Heartbeats > 0 })
	if c1.count() != 0 {
		t.Fatal("lines went to the silent server after failover")
	}
}

// TestCloseLeavesTheRestInTheSpool: a server that never acks; at the flush
// deadline everything unacknowledged is kept, and the next shipper on the
// same spool sends it.
func TestCloseLeavesTheRestInTheSpool(t *testing.T) {
	mute := listen(t, fluentdtest.Config{Respond: func(int, string) []byte { return nil }})
	spool := filepath.Join(t.TempDir(), "spool")
	cfg := testutil.LoadConfig(t, config(t, []string{mute.Addr()}, "batch_bytes = \"4KiB\"\n"), "app")
	cfg.Fluentd.SpoolDir = spool
	h := startShipper(t, cfg)
	h.publish("web", "stdout", "l", 0, 2000)
	testutil.Eventually(t, "batches in flight", func() bool { return h.s.Stats().InFlight > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	h.s.Close(ctx)
	cancel()
	if !h.out.contains("left_in_spool=2000") {
		t.Fatalf("summary:\n%s", h.out)
	}

	c := newCollector()
	p := listen(t, fluentdtest.Config{OnEvent: c.onEvent(false)})
	cfg = testutil.LoadConfig(t, config(t, []string{p.Addr()}, ""), "app")
	cfg.Fluentd.SpoolDir = spool
	h = startShipper(t, cfg)
	c.waitAll(t, "l", 2000)
	h.close()
	for i := range 2000 {
		if n := c.has("l" + strconv.Itoa(i)); n != 1 {
			t.Fatalf("line %d arrived %d times", i, n)
		}
	}
}

func TestWithoutSpoolLossIsReported(t *testing.T) {
	h := startShipper(t, testutil.LoadConfig(t, config(t, []string{closedAddr(t)}, "spool_max_bytes = 0\nqueue_bytes = \"64KiB\"\nbatch_bytes = \"4KiB\"\n"), "app"))
	h.publish("web", "stdout", "l", 0, 5000)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := h.s.Close(ctx)
	st := h.s.Stats()
	if err == nil || !strings.Contains(err.Error(), "lost at shutdown") || st.Dropped != 5000 {
		t.Fatalf("err %v, stats %+v", err, st)
	}
}

func TestUnwritableSpoolDirFallsBackToTemp(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	cfg := testutil.LoadConfig(t, config(t, []string{closedAddr(t)}, ""), "app")
	cfg.Fluentd.SpoolDir = filepath.Join(file, "spool") // under a file: cannot be made
	h := startShipper(t, cfg)
	<-h.s.opened // Start opens the spool in its goroutine
	if !h.out.contains("using a temporary one") || h.s.spool == nil || !strings.HasPrefix(h.s.spool.dir, os.TempDir()) {
		t.Fatalf("log:\n%s", h.out)
	}
	os.RemoveAll(h.s.spool.dir)
}

// TestMultiline: stack traces are joined by the start pattern; a record
// is sent when the next starts, when the flush timeout passes, when it is
// too big, and when the program's process changes.
func TestMultiline(t *testing.T) {
	c := newCollector()
	p := listen(t, fluentdtest.Config{OnEvent: c.onEvent(true)})
	h := startShipper(t, testutil.LoadConfig(t, config(t, []string{p.Addr()}, `
[programs.java]
command = ["java"]
[programs.java.logs]
multiline_start = "^\\S"
multiline_timeout = "100ms"
multiline_max_bytes = 2048
`), "app"))
	pub := func(pid int, lines ...string) {
		var b []supervisor.LogRecord
		for _, l := range lines {
			b = append(b, supervisor.LogRecord{Time: time.Now(), Program: "java", PID: pid, Source: "stderr", Text: l})
		}
		h.logs.PublishBatch(b)
	}
	pub(1, "Exception in main", "  at a()", "  at b()", "next record")
	testutil.Eventually(t, "the joined trace", func() bool { return c.has("Exception in main\n  at a()\n  at b()") == 1 })
	testutil.Eventually(t, "the last record after the timeout", func() bool { return c.has("next record") == 1 })
	pub(1, "start", "  cont")
	pub(2, "  from the next process")
	testutil.Eventually(t, "flush on a new process", func() bool { return c.has("start\n  cont") == 1 })
	long := strings.Repeat("y", 1500)
	pub(2, "big", "  "+long, "  "+long)
	testutil.Eventually(t, "flush at max bytes", func() bool { return c.has("big\n  "+long) == 1 })
	// Other programs are not joined.
	h.publish("web", "stdout", "  indented ", 0, 2)
	c.waitAll(t, "  indented ", 2)
}

// TestFlushDeadlineWithAServerThatStopsReading: writes blocked on a full
// socket end at the flush deadline, and everything not acknowledged is
// kept in the spool.
func TestFlushDeadlineWithAServerThatStopsReading(t *testing.T) {
	// A small receive buffer, so steward's writes block soon.
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // never read from
		}
	}()
	h := startShipper(t, testutil.LoadConfig(t, config(t, []string{"tcp://" + ln.Addr().String()}, "ack_timeout = \"1h\"\nbatch_bytes = \"4MiB\"\nqueue_bytes = \"16MiB\"\n"), "app"))
	long := strings.Repeat("x", 1000)
	h.publish("web", "stdout", long, 0, 30000) // 30 MB: more than the socket buffers hold
	testutil.Eventually(t, "a connection and every record encoded", func() bool {
		st := h.s.Stats()
		return st.Connected && st.Records == 30000
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- h.s.Close(ctx) }()
	select {
	case <-closed:
	case <-time.After(testutil.HangGuard):
		t.Fatal("Close did not return after its deadline")
	}
	if !h.out.contains("left_in_spool=30000") {
		t.Fatalf("summary:\n%s", h.out)
	}
	for len(accepted) > 0 {
		(<-accepted).Close()
	}
}

// TestNewLeavesTheDiskToStart: New touches no disk (steward forks its
// programs between New and Start, and the spool's directory, its segments
// and /proc reads delayed the first fork): the spool directory appears
// only once Start has run, and lines published before it opened are sent
// from it as the others.
func TestNewLeavesTheDiskToStart(t *testing.T) {
	c := newCollector()
	p := listen(t, fluentdtest.Config{OnEvent: c.onEvent(true)})
	cfg := testutil.LoadConfig(t, config(t, []string{p.Addr()}, ""), "app")
	cfg.Fluentd.SpoolDir = filepath.Join(t.TempDir(), "spool")
	s, err := New(shipperConfig(cfg), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.Fluentd.SpoolDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("New made the spool directory (stat: %v)", err)
	}
	h := &harness{t: t, s: s, logs: logstream.New[supervisor.LogRecord]("logs", quietLog()), out: &testLog{}}
	s.Start(h.logs)
	h.publish("web", "stdout", "l", 0, 100)
	<-s.opened
	if _, err := os.Stat(cfg.Fluentd.SpoolDir); err != nil {
		t.Fatalf("no spool directory after Start: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Sent != 100 {
		t.Fatalf("sent %d of 100 lines: %+v", st.Sent, st)
	}
}
