// Package fluentdtest is a Fluentd Forward Protocol v1 server for tests: it
// speaks what Fluentd's in_forward and Fluent Bit's forward input speak,
// byte for byte (Message, Forward, PackedForward and
// CompressedPackedForward modes, EventTime, the chunk/ack option, the
// HELO/PING/PONG handshake with shared key and user authentication, and
// the UDP heartbeat), because no real Fluentd can be installed from the
// registries the tests may use. It is linked only into tests and
// benchmarks.
//
// Spec: https://github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1
package fluentdtest

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// Mode is how a message carried its events.
type Mode string

// The four event modes of the spec.
const (
	ModeMessage                 Mode = "Message"
	ModeForward                 Mode = "Forward"
	ModePackedForward           Mode = "PackedForward"
	ModeCompressedPackedForward Mode = "CompressedPackedForward"
)

// Event is one event the peer received. Raw points into the peer's buffer
// and is valid only during the OnEvent call.
type Event struct {
	Tag  string
	Time time.Time
	// EventTime is true when the time came as the EventTime extension
	// (with nanoseconds), false when it was an integer.
	EventTime bool
	Mode      Mode
	Raw       []byte // the msgpack record (a map)
}

// Record decodes the whole record.
func (e Event) Record() (map[string]any, error) {
	v, _, err := msgp.ReadMapStrIntfBytes(e.Raw, nil)
	return v, err
}

// Field returns one field's value without decoding the others: a str or
// bin as a string, other types as msgp decodes them.
func (e Event) Field(key string) (any, bool) {
	n, b, err := msgp.ReadMapHeaderBytes(e.Raw)
	if err != nil {
		return nil, false
	}
	for range n {
		var k []byte
		if k, b, err = msgp.ReadMapKeyZC(b); err != nil {
			return nil, false
		}
		if string(k) != key {
			if b, err = msgp.Skip(b); err != nil {
				return nil, false
			}
			continue
		}
		switch msgp.NextType(b) {
		case msgp.StrType:
			s, _, err := msgp.ReadStringZC(b)
			return string(s), err == nil
		case msgp.BinType:
			s, _, err := msgp.ReadBytesZC(b)
			return string(s), err == nil
		default:
			v, _, err := msgp.ReadIntfBytes(b)
			return v, err == nil
		}
	}
	return nil, false
}

// Message describes one message: its mode, tag, options and event count.
type Message struct {
	Mode    Mode
	Tag     string
	Options map[string]any
	Events  int
}

// Config says how the peer behaves.
type Config struct {
	// SharedKey turns on the handshake: the peer sends HELO on accept and
	// expects a PING whose digest uses this key.
	SharedKey string
	// Users, when set, turns on user authentication inside the handshake.
	Users map[string]string
	// Hostname is the peer's self_hostname in PONG (default "fluentdtest").
	Hostname string
	// DenyKeepalive closes each connection after its first message, as
	// in_forward's deny_keepalive (announced in HELO).
	DenyKeepalive bool
	// TLS, when set, makes the listener speak TLS.
	TLS *tls.Config
	// UDPHeartbeat answers the UDP heartbeat on the same port (TCP only).
	UDPHeartbeat bool

	// OnEvent is called for every event, before the message is
	// acknowledged; calls are serialised.
	OnEvent func(Event)
	// OnMessage is called once per message, after its events.
	OnMessage func(Message)
	// Respond, when set, replaces the ack for a chunk on connection conn
	// (numbered from 1 in the order they were accepted): it returns the
	// bytes to write (nil writes nothing).
	Respond func(conn int, chunk string) []byte

	// AckRate, when positive, makes the peer as slow as a real Fluentd
	// whose output is the bottleneck (in_forward with a file output takes
	// 12-18k records/s on a small machine): it takes in at most this many
	// records per second over all connections, acknowledging each message
	// only when its records' time has come, and reading nothing
	// meanwhile, so TCP pushes back on the sender as it would.
	AckRate float64
}

// Peer is a running server.
type Peer struct {
	cfg     Config
	network string
	ln      net.Listener
	udp     net.PacketConn

	mu     sync.Mutex // serialises callbacks
	connMu sync.Mutex
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup

	statsMu sync.Mutex
	stats   Stats

	// paceMu guards the pacing clock and the rate (AckRate, SetAckRate).
	paceMu   sync.Mutex
	paceNext time.Time
	ackRate  float64
	// hold, when set, makes every connection stop reading until released
	// (a hung server).
	holdMu sync.Mutex
	hold   chan struct{}
}

// Stats counts what the peer saw.
type Stats struct {
	Connections   int
	Handshakes    int // successful
	AuthFailures  int
	Messages      map[Mode]int
	Events        int
	Acks          int
	Heartbeats    int // UDP heartbeats answered
	NilHeartbeats int // msgpack nil messages (TCP heartbeat)
	// Errors lists protocol violations seen (a malformed message, a size
	// option that does not match the events).
	Errors []string
}

// Listen starts a peer on network ("tcp" or "unix") and address
// ("127.0.0.1:0", or a socket path).
func Listen(network, address string, cfg Config) (*Peer, error) {
	if cfg.Hostname == "" {
		cfg.Hostname = "fluentdtest"
	}
	if network == "unix" {
		os.Remove(address)
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	p := &Peer{cfg: cfg, network: network, ln: ln, conns: map[net.Conn]bool{}, ackRate: cfg.AckRate}
	p.stats.Messages = map[Mode]int{}
	if cfg.UDPHeartbeat && network == "tcp" {
		if p.udp, err = net.ListenPacket("udp", ln.Addr().String()); err != nil {
			ln.Close()
			return nil, err
		}
		p.wg.Add(1)
		go p.heartbeats()
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the peer's address as steward's config writes it.
func (p *Peer) Addr() string {
	switch {
	case p.network == "unix":
		return "unix://" + p.ln.Addr().String()
	case p.cfg.TLS != nil:
		return "tls://" + p.ln.Addr().String()
	default:
		return "tcp://" + p.ln.Addr().String()
	}
}

// HostPort is the listener's address.
func (p *Peer) HostPort() string { return p.ln.Addr().String() }

// Close stops the peer at once, as a crash would: the listener and every
// connection are closed, nothing more is acknowledged. It may be called
// from OnEvent.
func (p *Peer) Close() {
	p.connMu.Lock()
	if p.closed {
		p.connMu.Unlock()
		return
	}
	p.closed = true
	p.ln.Close()
	if p.udp != nil {
		p.udp.Close()
	}
	for c := range p.conns {
		c.Close()
	}
	p.connMu.Unlock()
	p.Release()
}

// Wait waits for the peer's goroutines after Close (not from OnEvent).
func (p *Peer) Wait() { p.wg.Wait() }

// Stats returns a copy of the counters.
func (p *Peer) Stats() Stats {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	s := p.stats
	s.Messages = make(map[Mode]int, len(p.stats.Messages))
	for k, v := range p.stats.Messages {
		s.Messages[k] = v
	}
	s.Errors = append([]string(nil), p.stats.Errors...)
	return s
}

func (p *Peer) count(f func(s *Stats)) {
	p.statsMu.Lock()
	f(&p.stats)
	p.statsMu.Unlock()
}

func (p *Peer) protocolError(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	p.count(func(s *Stats) { s.Errors = append(s.Errors, err.Error()) })
	return err
}

func (p *Peer) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.connMu.Lock()
		if p.closed {
			p.connMu.Unlock()
			c.Close()
			return
		}
		p.conns[c] = true
		p.connMu.Unlock()
		var n int
		p.count(func(s *Stats) { s.Connections++; n = s.Connections })
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c, n)
			c.Close()
			p.connMu.Lock()
			delete(p.conns, c)
			p.connMu.Unlock()
		}()
	}
}

func (p *Peer) heartbeats() {
	defer p.wg.Done()
	buf := make([]byte, 128)
	for {
		_, addr, err := p.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		p.count(func(s *Stats) { s.Heartbeats++ })
		_, _ = p.udp.WriteTo([]byte{0}, addr)
	}
}

// serve runs connection number conn.
func (p *Peer) serve(c net.Conn, conn int) {
	r := msgp.NewReaderSize(c, 64<<10)
	if p.cfg.SharedKey != "" {
		if err := p.handshake(c, r); err != nil {
			return
		}
	}
	var raw bytes.Buffer
	var events []Event
	for {
		raw.Reset()
		if _, err := r.CopyNext(&raw); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				p.protocolError("reading a message: %v", err)
			}
			return
		}
		chunk, nevents, err := p.message(raw.Bytes(), &events)
		if err != nil {
			return // a malformed message closes the connection, as in_forward does
		}
		if !p.pace(nevents) {
			return
		}
		if chunk == "" {
			if p.cfg.DenyKeepalive {
				return
			}
			continue
		}
		resp := msgp.AppendString(msgp.AppendString(msgp.AppendMapHeader(nil, 1), "ack"), chunk)
		if p.cfg.Respond != nil {
			resp = p.cfg.Respond(conn, chunk)
		}
		if len(resp) > 0 {
			// Counted before it is written: a client that has read the
			// ack must find it counted.
			p.count(func(s *Stats) { s.Acks++ })
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
		if p.cfg.DenyKeepalive {
			return
		}
	}
}

// handshake: HELO, then PING checked, then PONG.
func (p *Peer) handshake(c net.Conn, r *msgp.Reader) error {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	var authSalt []byte
	if len(p.cfg.Users) > 0 {
		authSalt = make([]byte, 16)
		_, _ = rand.Read(authSalt)
	}
	helo := msgp.AppendArrayHeader(nil, 2)
	helo = msgp.AppendString(helo, "HELO")
	helo = msgp.AppendMapHeader(helo, 3)
	helo = msgp.AppendBytes(msgp.AppendString(helo, "nonce"), nonce)
	helo = msgp.AppendBytes(msgp.AppendString(helo, "auth"), authSalt)
	helo = msgp.AppendBool(msgp.AppendString(helo, "keepalive"), !p.cfg.DenyKeepalive)
	if _, err := c.Write(helo); err != nil {
		return err
	}
	v, err := r.ReadIntf()
	if err != nil {
		return err
	}
	ping, ok := v.([]any)
	fail := func(reason string) error {
		p.count(func(s *Stats) { s.AuthFailures++ })
		pong := msgp.AppendArrayHeader(nil, 5)
		pong = msgp.AppendString(pong, "PONG")
		pong = msgp.AppendBool(pong, false)
		pong = msgp.AppendString(pong, reason)
		pong = msgp.AppendString(msgp.AppendString(pong, ""), "")
		_, _ = c.Write(pong)
		return errors.New(reason)
	}
	if !ok || len(ping) != 6 || asString(ping[0]) != "PING" {
		p.protocolError("expected PING, got %v", v)
		return fail("invalid ping message")
	}
	hostname, salt, digest := asString(ping[1]), asString(ping[2]), asString(ping[3])
	user, passDigest := asString(ping[4]), asString(ping[5])
	if digest != sha512Hex(salt, hostname, string(nonce), p.cfg.SharedKey) {
		return fail("shared_key mismatch")
	}
	if len(p.cfg.Users) > 0 {
		pass, known := p.cfg.Users[user]
		if !known || passDigest != sha512Hex(string(authSalt), user, pass) {
			return fail("username/password mismatch")
		}
	}
	pong := msgp.AppendArrayHeader(nil, 5)
	pong = msgp.AppendString(pong, "PONG")
	pong = msgp.AppendBool(pong, true)
	pong = msgp.AppendString(pong, "")
	pong = msgp.AppendString(pong, p.cfg.Hostname)
	pong = msgp.AppendString(pong, sha512Hex(salt, p.cfg.Hostname, string(nonce), p.cfg.SharedKey))
	if _, err := c.Write(pong); err != nil {
		return err
	}
	p.count(func(s *Stats) { s.Handshakes++ })
	return nil
}

func sha512Hex(parts ...string) string {
	h := sha512.New()
	for _, s := range parts {
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

// Hold makes the peer hang: from now on no connection reads or acks
// anything (connections stay open, TCP buffers fill) until Release.
func (p *Peer) Hold() {
	p.holdMu.Lock()
	if p.hold == nil {
		p.hold = make(chan struct{})
	}
	p.holdMu.Unlock()
}

// SetAckRate changes AckRate from the next message on (0: as fast as it
// can).
func (p *Peer) SetAckRate(rate float64) {
	p.paceMu.Lock()
	p.ackRate = rate
	p.paceNext = time.Time{}
	p.paceMu.Unlock()
}

// Release ends a Hold.
func (p *Peer) Release() {
	p.holdMu.Lock()
	if p.hold != nil {
		close(p.hold)
		p.hold = nil
	}
	p.holdMu.Unlock()
}

// pace waits while the peer is held, and, with AckRate, until n more
// records fit the rate. It returns false when the peer was closed
// meanwhile.
func (p *Peer) pace(n int) bool {
	p.holdMu.Lock()
	hold := p.hold
	p.holdMu.Unlock()
	if hold != nil {
		<-hold // Release, or Close, which releases
	}
	p.paceMu.Lock()
	if rate := p.ackRate; rate > 0 && n > 0 {
		now := time.Now()
		if p.paceNext.Before(now) {
			p.paceNext = now
		}
		p.paceNext = p.paceNext.Add(time.Duration(float64(n) / rate * float64(time.Second)))
		until := p.paceNext
		p.paceMu.Unlock()
		time.Sleep(time.Until(until))
	} else {
		p.paceMu.Unlock()
	}
	p.connMu.Lock()
	defer p.connMu.Unlock()
	return !p.closed
}

// message handles one message and returns its chunk option ("" for none)
// and how many events it had.
func (p *Peer) message(b []byte, scratch *[]Event) (string, int, error) {
	if msgp.NextType(b) == msgp.NilType {
		p.count(func(s *Stats) { s.NilHeartbeats++ })
		return "", 0, nil
	}
	n, b, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil || n < 2 || n > 4 {
		return "", 0, p.protocolError("message is not an array of 2 to 4 items (%d, %v)", n, err)
	}
	tag, b, err := readStr(b)
	if err != nil {
		return "", 0, p.protocolError("tag: %v", err)
	}
	msg := Message{Tag: tag}
	events := (*scratch)[:0]
	defer func() { clear(events); *scratch = events[:0] }()
	switch msgp.NextType(b) {
	case msgp.ArrayType: // Forward: [tag, [[time, record], ...], option?]
		msg.Mode = ModeForward
		var m uint32
		if m, b, err = msgp.ReadArrayHeaderBytes(b); err != nil {
			return "", 0, p.protocolError("forward entries: %v", err)
		}
		for range m {
			var ev Event
			if ev, b, err = readEntry(b); err != nil {
				return "", 0, p.protocolError("forward entry: %v", err)
			}
			events = append(events, ev)
		}
		n -= 2
	case msgp.StrType, msgp.BinType: // PackedForward: [tag, stream, option?]
		msg.Mode = ModePackedForward
		var stream []byte
		if msgp.NextType(b) == msgp.StrType {
			stream, b, err = msgp.ReadStringZC(b)
		} else {
			stream, b, err = msgp.ReadBytesZC(b)
		}
		if err != nil {
			return "", 0, p.protocolError("packed entries: %v", err)
		}
		n -= 2
		if n > 0 {
			if msg.Options, b, err = readOptions(b); err != nil {
				return "", 0, err
			}
			n--
		}
		if c, ok := msg.Options["compressed"]; ok {
			if asString(c) != "gzip" {
				return "", 0, p.protocolError("unknown compression %v", c)
			}
			msg.Mode = ModeCompressedPackedForward
			zr, err := gzip.NewReader(bytes.NewReader(stream))
			if err != nil {
				return "", 0, p.protocolError("gzip: %v", err)
			}
			if stream, err = io.ReadAll(zr); err != nil {
				return "", 0, p.protocolError("gzip: %v", err)
			}
		}
		for len(stream) > 0 {
			var ev Event
			if ev, stream, err = readEntry(stream); err != nil {
				return "", 0, p.protocolError("packed entry: %v", err)
			}
			events = append(events, ev)
		}
	default: // Message: [tag, time, record, option?]
		msg.Mode = ModeMessage
		if n < 3 {
			return "", 0, p.protocolError("message mode needs time and record")
		}
		var ev Event
		if ev.Time, ev.EventTime, b, err = readTime(b); err != nil {
			return "", 0, p.protocolError("time: %v", err)
		}
		rest, err := msgp.Skip(b)
		if err != nil || msgp.NextType(b) != msgp.MapType {
			return "", 0, p.protocolError("record is not a map")
		}
		ev.Raw, b = b[:len(b)-len(rest)], rest
		events = append(events, ev)
		n -= 3
	}
	if n > 0 && msg.Options == nil {
		if msg.Options, b, err = readOptions(b); err != nil {
			return "", 0, err
		}
		n--
	}
	if n != 0 || len(b) != 0 {
		return "", 0, p.protocolError("trailing items in message")
	}
	msg.Events = len(events)
	if size, ok := msg.Options["size"]; ok && toInt(size) != int64(len(events)) {
		p.protocolError("size option %v, but %d events", size, len(events))
	}
	p.mu.Lock()
	for i := range events {
		events[i].Tag, events[i].Mode = tag, msg.Mode
		if p.cfg.OnEvent != nil {
			p.cfg.OnEvent(events[i])
		}
	}
	if p.cfg.OnMessage != nil {
		p.cfg.OnMessage(msg)
	}
	p.mu.Unlock()
	p.count(func(s *Stats) { s.Messages[msg.Mode]++; s.Events += len(events) })
	chunk, _ := msg.Options["chunk"]
	return asString(chunk), len(events), nil
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case uint64:
		return int64(x)
	}
	return -1
}

func readStr(b []byte) (string, []byte, error) {
	switch msgp.NextType(b) {
	case msgp.StrType:
		s, o, err := msgp.ReadStringZC(b)
		return string(s), o, err
	case msgp.BinType:
		s, o, err := msgp.ReadBytesZC(b)
		return string(s), o, err
	}
	return "", b, fmt.Errorf("expected a string, got %s", msgp.NextType(b))
}

func readOptions(b []byte) (map[string]any, []byte, error) {
	if msgp.NextType(b) == msgp.NilType {
		o, err := msgp.ReadNilBytes(b)
		return nil, o, err
	}
	m, o, err := msgp.ReadMapStrIntfBytes(b, nil)
	if err != nil {
		return nil, b, fmt.Errorf("option is not a map: %w", err)
	}
	return m, o, nil
}

// readEntry reads [time, record].
func readEntry(b []byte) (Event, []byte, error) {
	var ev Event
	n, b, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil || n != 2 {
		return ev, b, fmt.Errorf("entry is not [time, record] (%d items, %v)", n, err)
	}
	if ev.Time, ev.EventTime, b, err = readTime(b); err != nil {
		return ev, b, err
	}
	if msgp.NextType(b) != msgp.MapType {
		return ev, b, fmt.Errorf("record is a %s, not a map", msgp.NextType(b))
	}
	rest, err := msgp.Skip(b)
	if err != nil {
		return ev, b, err
	}
	ev.Raw = b[:len(b)-len(rest)]
	return ev, rest, nil
}

// readTime reads an integer time or an EventTime: ext type 0 with 8 bytes,
// a 32-bit big-endian second and a 32-bit big-endian nanosecond, written
// as fixext 8 (0xd7 0x00) or ext 8 (0xc7 0x08 0x00).
func readTime(b []byte) (time.Time, bool, []byte, error) {
	switch msgp.NextType(b) {
	case msgp.IntType, msgp.UintType:
		sec, o, err := msgp.ReadInt64Bytes(b)
		return time.Unix(sec, 0), false, o, err
	case msgp.ExtensionType:
		var hdr, typ int
		switch {
		case len(b) >= 10 && b[0] == 0xd7:
			hdr, typ = 2, int(int8(b[1]))
		case len(b) >= 11 && b[0] == 0xc7 && b[1] == 8:
			hdr, typ = 3, int(int8(b[2]))
		default:
			return time.Time{}, false, b, errors.New("EventTime must be fixext 8 or ext 8 with 8 bytes")
		}
		if typ != 0 {
			return time.Time{}, false, b, fmt.Errorf("extension type %d is not EventTime (0)", typ)
		}
		d := b[hdr : hdr+8]
		sec := uint32(d[0])<<24 | uint32(d[1])<<16 | uint32(d[2])<<8 | uint32(d[3])
		nsec := uint32(d[4])<<24 | uint32(d[5])<<16 | uint32(d[6])<<8 | uint32(d[7])
		if nsec >= 1e9 {
			return time.Time{}, false, b, fmt.Errorf("EventTime nanoseconds %d out of range", nsec)
		}
		return time.Unix(int64(sec), int64(nsec)), true, b[hdr+8:], nil
	}
	return time.Time{}, false, b, fmt.Errorf("time is a %s", msgp.NextType(b))
}
