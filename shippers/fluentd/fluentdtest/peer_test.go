package fluentdtest

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/hex"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// The fixtures below are msgpack written by hand, byte by byte, from the
// examples of the Forward Protocol v1 specification, so the peer is checked
// against the spec rather than against the encoder steward uses.

func fixstr(s string) []byte { return append([]byte{0xa0 | byte(len(s))}, s...) }
func fixarray(n int) []byte  { return []byte{0x90 | byte(n)} }
func fixmap(n int) []byte    { return []byte{0x80 | byte(n)} }
func cat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

// uint32 1441588984 (0x55ECE6F8), the spec's example time.
var t1441588984 = []byte{0xce, 0x55, 0xec, 0xe6, 0xf8}

func uint32be(n uint32) []byte {
	return []byte{0xce, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

func record(msg string) []byte { return cat(fixmap(1), fixstr("message"), fixstr(msg)) }

const chunkID = "p8n9gmxTQVC8/nh2wlKKeQ=="

// wantAck is {"ack": "p8n9gmxTQVC8/nh2wlKKeQ=="}: fixmap 1, fixstr "ack",
// str8 of 24 bytes.
var wantAck = cat(fixmap(1), fixstr("ack"), []byte{0xb8}, []byte(chunkID))

type got struct {
	mu     sync.Mutex
	events []Event
	recs   []map[string]any
	msgs   []Message
}

func (g *got) onEvent(e Event) {
	rec, err := e.Record()
	if err != nil {
		panic(err)
	}
	g.mu.Lock()
	e.Raw = nil // only valid during the call
	g.events = append(g.events, e)
	g.recs = append(g.recs, rec)
	g.mu.Unlock()
}

func (g *got) onMessage(m Message) {
	g.mu.Lock()
	g.msgs = append(g.msgs, m)
	g.mu.Unlock()
}

func (g *got) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute) // a hang guard only
	for {
		g.mu.Lock()
		k := len(g.msgs)
		g.mu.Unlock()
		if k >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages, want %d", k, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startPeer(t *testing.T, cfg Config) (*Peer, *got) {
	t.Helper()
	g := &got{}
	cfg.OnEvent, cfg.OnMessage = g.onEvent, g.onMessage
	p, err := Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); p.Wait() })
	return p, g
}

func dial(t *testing.T, p *Peer) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.HostPort())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Minute)) // a hang guard only
	return c
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

func TestMessageMode(t *testing.T) {
	p, g := startPeer(t, Config{})
	c := dial(t, p)
	// ["tag.name", 1441588984, {"message": "bar"}, {"option": "optional"}]
	c.Write(cat(fixarray(4), fixstr("tag.name"), t1441588984, record("bar"), fixmap(1), fixstr("option"), fixstr("optional")))
	// The same with the chunk option: the server MUST answer the ack.
	c.Write(cat(fixarray(4), fixstr("tag.name"), t1441588984, record("baz"), fixmap(1), fixstr("chunk"), fixstr(chunkID)))
	if ack := readN(t, c, len(wantAck)); !bytes.Equal(ack, wantAck) {
		t.Fatalf("ack % x, want % x", ack, wantAck)
	}
	g.wait(t, 2)
	if len(g.events) != 2 || g.events[0].Tag != "tag.name" || g.events[0].Time.Unix() != 1441588984 ||
		g.events[0].EventTime || g.recs[0]["message"] != "bar" || g.msgs[0].Mode != ModeMessage {
		t.Fatalf("events %+v records %v messages %+v", g.events, g.recs, g.msgs)
	}
	if st := p.Stats(); st.Acks != 1 || len(st.Errors) != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestForwardMode(t *testing.T) {
	p, g := startPeer(t, Config{})
	c := dial(t, p)
	// ["tag.name", [[1441588984, {"message": "foo"}], [1441588985, ...], [1441588986, ...]], {"chunk": ...}]
	c.Write(cat(fixarray(3), fixstr("tag.name"), fixarray(3),
		fixarray(2), t1441588984, record("foo"),
		fixarray(2), uint32be(1441588985), record("bar"),
		fixarray(2), uint32be(1441588986), record("baz"),
		fixmap(1), fixstr("chunk"), fixstr(chunkID)))
	if ack := readN(t, c, len(wantAck)); !bytes.Equal(ack, wantAck) {
		t.Fatalf("ack % x", ack)
	}
	g.wait(t, 1)
	if g.msgs[0].Mode != ModeForward || len(g.recs) != 3 || g.recs[2]["message"] != "baz" || g.events[2].Time.Unix() != 1441588986 {
		t.Fatalf("messages %+v records %v", g.msgs, g.recs)
	}
}

// entries is a MessagePackEventStream: [time, record] objects one after
// another.
func entries() []byte {
	return cat(fixarray(2), t1441588984, record("foo"), fixarray(2), uint32be(1441588985), record("bar"))
}

func TestPackedForwardMode(t *testing.T) {
	p, g := startPeer(t, Config{})
	c := dial(t, p)
	es := entries()
	opt := cat(fixmap(2), fixstr("size"), []byte{0x02}, fixstr("chunk"), fixstr(chunkID))
	// The stream as bin 8 (0xc4), then as str 8 (0xd9): the spec allows both.
	c.Write(cat(fixarray(3), fixstr("tag.name"), []byte{0xc4, byte(len(es))}, es, opt))
	c.Write(cat(fixarray(3), fixstr("tag.name"), []byte{0xd9, byte(len(es))}, es, opt))
	readN(t, c, 2*len(wantAck))
	g.wait(t, 2)
	if g.msgs[0].Mode != ModePackedForward || g.msgs[1].Mode != ModePackedForward || len(g.recs) != 4 || g.recs[1]["message"] != "bar" {
		t.Fatalf("messages %+v records %v", g.msgs, g.recs)
	}
	if st := p.Stats(); len(st.Errors) != 0 {
		t.Fatal(st.Errors)
	}
	// A size option that does not match the events is a protocol error.
	bad := cat(fixmap(1), fixstr("size"), []byte{0x03})
	c.Write(cat(fixarray(3), fixstr("tag.name"), []byte{0xc4, byte(len(es))}, es, bad))
	g.wait(t, 3)
	if st := p.Stats(); len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "size") {
		t.Fatalf("errors %v", st.Errors)
	}
}

func TestCompressedPackedForwardMode(t *testing.T) {
	p, g := startPeer(t, Config{})
	c := dial(t, p)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(entries())
	zw.Close()
	opt := cat(fixmap(3), fixstr("size"), []byte{0x02}, fixstr("compressed"), fixstr("gzip"), fixstr("chunk"), fixstr(chunkID))
	c.Write(cat(fixarray(3), fixstr("tag.name"), []byte{0xc4, byte(z.Len())}, z.Bytes(), opt))
	if ack := readN(t, c, len(wantAck)); !bytes.Equal(ack, wantAck) {
		t.Fatalf("ack % x", ack)
	}
	g.wait(t, 1)
	if g.msgs[0].Mode != ModeCompressedPackedForward || len(g.recs) != 2 || g.recs[0]["message"] != "foo" {
		t.Fatalf("messages %+v records %v", g.msgs, g.recs)
	}
}

func TestEventTime(t *testing.T) {
	p, g := startPeer(t, Config{})
	c := dial(t, p)
	// 1441588984 s and 123456789 ns (0x075BCD15), as fixext 8 and as ext 8.
	fixext := []byte{0xd7, 0x00, 0x55, 0xec, 0xe6, 0xf8, 0x07, 0x5b, 0xcd, 0x15}
	ext8 := []byte{0xc7, 0x08, 0x00, 0x55, 0xec, 0xe6, 0xf8, 0x07, 0x5b, 0xcd, 0x15}
	c.Write(cat(fixarray(3), fixstr("t"), fixext, record("a")))
	c.Write(cat(fixarray(3), fixstr("t"), ext8, record("b")))
	g.wait(t, 2)
	for i, e := range g.events {
		if !e.EventTime || e.Time.Unix() != 1441588984 || e.Time.Nanosecond() != 123456789 {
			t.Errorf("event %d: time %v (EventTime %v)", i, e.Time, e.EventTime)
		}
	}
	// An extension of another type is not a time: the message is refused.
	c.Write(cat(fixarray(3), fixstr("t"), []byte{0xd7, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}, record("c")))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection stayed open after a malformed message")
	}
	if st := p.Stats(); len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "not EventTime") {
		t.Fatalf("errors %v", st.Errors)
	}
}

func TestNilHeartbeat(t *testing.T) {
	p, g := startPeer(t, Config{})
	c := dial(t, p)
	c.Write([]byte{0xc0}) // msgpack nil: a heartbeat without events
	c.Write(cat(fixarray(3), fixstr("t"), t1441588984, record("after")))
	g.wait(t, 1)
	if st := p.Stats(); st.NilHeartbeats != 1 || st.Events != 1 || len(st.Errors) != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMalformedMessageClosesConnection(t *testing.T) {
	p, _ := startPeer(t, Config{})
	c := dial(t, p)
	c.Write(cat(fixarray(1), fixstr("tag.only")))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection stayed open")
	}
	if st := p.Stats(); len(st.Errors) != 1 {
		t.Fatalf("errors %v", st.Errors)
	}
}

func TestUDPHeartbeat(t *testing.T) {
	p, _ := startPeer(t, Config{UDPHeartbeat: true})
	c, err := net.Dial("udp", p.HostPort())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute)) // a hang guard only
	c.Write([]byte{0x00})
	if b := readN(t, c, 1); b[0] != 0x00 {
		t.Fatalf("heartbeat reply % x", b)
	}
}

func sha512Hexs(parts ...string) string {
	h := sha512.New()
	for _, p := range parts {
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// handshake plays the client's side by hand: read HELO, send PING, read
// PONG. It returns the PONG.
func handshake(t *testing.T, c net.Conn, key, user, pass string) []any {
	t.Helper()
	r := msgp.NewReader(c)
	v, err := r.ReadIntf()
	if err != nil {
		t.Fatal(err)
	}
	helo := v.([]any)
	opts := helo[1].(map[string]any)
	nonce := opts["nonce"].([]byte)
	if helo[0] != "HELO" || len(nonce) != 16 || opts["keepalive"] != true {
		t.Fatalf("HELO %v", helo)
	}
	auth, _ := opts["auth"].([]byte)
	salt := "0123456789abcdef0123456789abcdef"
	passDigest := ""
	if len(auth) > 0 {
		passDigest = sha512Hexs(string(auth), user, pass)
	}
	ping := cat(fixarray(6), fixstr("PING"), fixstr("client.example"), []byte{0xd9, byte(len(salt))}, []byte(salt),
		[]byte{0xd9, 128}, []byte(sha512Hexs(salt, "client.example", string(nonce), key)),
		fixstr(user), []byte{0xd9, byte(len(passDigest))}, []byte(passDigest))
	c.Write(ping)
	v, err = r.ReadIntf()
	if err != nil {
		t.Fatal(err)
	}
	pong := v.([]any)
	if pong[0] != "PONG" || len(pong) != 5 {
		t.Fatalf("PONG %v", pong)
	}
	if pong[1] == true && pong[4] != sha512Hexs(salt, pong[3].(string), string(nonce), key) {
		t.Fatalf("server digest %v is wrong", pong[4])
	}
	return pong
}

func TestHandshake(t *testing.T) {
	p, g := startPeer(t, Config{SharedKey: "k3y", Users: map[string]string{"alice": "pw"}, Hostname: "server.example"})
	c := dial(t, p)
	if pong := handshake(t, c, "k3y", "alice", "pw"); pong[1] != true || pong[3] != "server.example" {
		t.Fatalf("PONG %v", pong)
	}
	c.Write(cat(fixarray(4), fixstr("t"), t1441588984, record("x"), fixmap(1), fixstr("chunk"), fixstr(chunkID)))
	if ack := readN(t, c, len(wantAck)); !bytes.Equal(ack, wantAck) {
		t.Fatalf("ack % x", ack)
	}
	g.wait(t, 1)

	for _, tc := range []struct{ key, user, pass, reason string }{
		{"wrong", "alice", "pw", "shared_key mismatch"},
		{"k3y", "alice", "wrong", "username/password mismatch"},
		{"k3y", "mallory", "pw", "username/password mismatch"},
	} {
		c := dial(t, p)
		pong := handshake(t, c, tc.key, tc.user, tc.pass)
		if pong[1] != false || pong[2] != tc.reason {
			t.Errorf("%+v: PONG %v", tc, pong)
		}
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("%+v: connection stayed open after a failed handshake", tc)
		}
	}
	if st := p.Stats(); st.Handshakes != 1 || st.AuthFailures != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDenyKeepalive(t *testing.T) {
	p, g := startPeer(t, Config{DenyKeepalive: true})
	c := dial(t, p)
	c.Write(cat(fixarray(4), fixstr("t"), t1441588984, record("x"), fixmap(1), fixstr("chunk"), fixstr(chunkID)))
	readN(t, c, len(wantAck))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection stayed open after its message")
	}
	g.wait(t, 1)
}

// packed is a PackedForward message of n copies of an entry with a chunk
// id.
func packed(n int, chunk string) []byte {
	var es []byte
	for range n {
		es = append(es, cat(fixarray(2), t1441588984, record("x"))...)
	}
	opt := cat(fixmap(1), fixstr("chunk"), fixstr(chunk))
	return cat(fixarray(3), fixstr("tag"), []byte{0xc5, byte(len(es) >> 8), byte(len(es))}, es, opt)
}

// TestHoldStopsAcks: a held peer takes in a message but acknowledges
// nothing until released.
func TestHoldStopsAcks(t *testing.T) {
	p, g := startPeer(t, Config{})
	p.Hold()
	c := dial(t, p)
	c.Write(packed(3, chunkID))
	g.wait(t, 1)
	if st := p.Stats(); st.Acks != 0 {
		t.Fatalf("%d acks while held", st.Acks)
	}
	p.Release()
	if ack := readN(t, c, len(wantAck)); !bytes.Equal(ack, wantAck) {
		t.Fatalf("ack % x", ack)
	}
}

// TestAckRatePaces: with AckRate, messages are acknowledged no faster
// than the rate allows (a lower bound: load only makes it slower).
func TestAckRatePaces(t *testing.T) {
	const rate, n, msgs = 1000.0, 50, 6
	p, _ := startPeer(t, Config{AckRate: rate})
	c := dial(t, p)
	start := time.Now()
	for range msgs {
		c.Write(packed(n, chunkID))
	}
	readN(t, c, msgs*len(wantAck))
	// The first message's records are paced too, so all msgs*n are.
	if took, least := time.Since(start), time.Duration(float64(msgs*n)/rate*float64(time.Second)); took < least {
		t.Fatalf("%d records acknowledged in %v, faster than %v allows", msgs*n, took, least)
	}
	p.SetAckRate(0)
	c.Write(packed(n, chunkID))
	readN(t, c, len(wantAck))
}
