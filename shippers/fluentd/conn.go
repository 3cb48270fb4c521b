package fluentd

import (
	"context"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/stewardhq/steward/configs"
)

// conn is one connection to a server, past the handshake.
type conn struct {
	nc net.Conn
	r  *msgp.Reader
	ep configs.Endpoint
	// keepalive false: the server closes the connection after each
	// message (in_forward's deny_keepalive), as its HELO said.
	keepalive bool
}

// auth holds the handshake's secrets. They are never logged.
type auth struct {
	sharedKey, username, password, selfHostname string
}

func (a auth) enabled() bool { return a.sharedKey != "" }

// dial connects to ep and runs the handshake when a shared key is set.
func dial(ctx context.Context, ep configs.Endpoint, timeout time.Duration, tlsConf *tls.Config, a auth) (*conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}
	var nc net.Conn
	var err error
	switch ep.Network {
	case "tls":
		conf := tlsConf.Clone()
		if conf.ServerName == "" {
			host, _, _ := net.SplitHostPort(ep.Address)
			conf.ServerName = host
		}
		td := &tls.Dialer{NetDialer: d, Config: conf}
		nc, err = td.DialContext(ctx, "tcp", ep.Address)
	case "unix":
		nc, err = d.DialContext(ctx, "unix", ep.Address)
	default:
		nc, err = d.DialContext(ctx, "tcp", ep.Address)
	}
	if err != nil {
		return nil, fmt.Errorf("fluentd: dial %s: %w", ep, err)
	}
	c := &conn{nc: nc, r: msgp.NewReaderSize(nc, 4096), ep: ep, keepalive: true}
	if a.enabled() {
		_ = nc.SetDeadline(time.Now().Add(timeout))
		// The flush deadline (ctx) cuts a slow handshake short too.
		unwatch := context.AfterFunc(ctx, func() { nc.Close() })
		err := c.handshake(a)
		unwatch()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("fluentd: handshake with %s: %w", ep, err)
		}
		_ = nc.SetDeadline(time.Time{})
	}
	return c, nil
}

// handshake answers the server's HELO with a PING and checks its PONG:
//
//	server: ["HELO", {"nonce": n, "auth": salt, "keepalive": bool}]
//	client: ["PING", self_hostname, shared_key_salt,
//	         sha512_hex(shared_key_salt + self_hostname + nonce + shared_key),
//	         username, sha512_hex(auth_salt + username + password)]
//	server: ["PONG", ok, reason, server_hostname,
//	         sha512_hex(shared_key_salt + server_hostname + nonce + shared_key)]
//
// Username and password digest are empty when the HELO's auth salt is.
func (c *conn) handshake(a auth) error {
	v, err := readValue(c.r)
	if err != nil {
		return fmt.Errorf("reading HELO: %w", err)
	}
	helo, ok := v.([]any)
	if !ok || len(helo) != 2 || str(helo[0]) != "HELO" {
		return fmt.Errorf("expected HELO, got %s", describe(v))
	}
	opts, _ := helo[1].(map[string]any)
	nonce := str(opts["nonce"])
	authSalt := str(opts["auth"])
	if ka, ok := opts["keepalive"].(bool); ok {
		c.keepalive = ka
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	salt := hex.EncodeToString(raw[:])
	user, passDigest := "", ""
	if authSalt != "" {
		user, passDigest = a.username, sha512Hex(authSalt, a.username, a.password)
	}
	ping := msgp.AppendArrayHeader(nil, 6)
	for _, s := range []string{"PING", a.selfHostname, salt, sha512Hex(salt, a.selfHostname, nonce, a.sharedKey), user, passDigest} {
		ping = msgp.AppendString(ping, s)
	}
	if _, err := c.nc.Write(ping); err != nil {
		return fmt.Errorf("sending PING: %w", err)
	}
	v, err = readValue(c.r)
	if err != nil {
		return fmt.Errorf("reading PONG: %w", err)
	}
	pong, ok := v.([]any)
	if !ok || len(pong) != 5 || str(pong[0]) != "PONG" {
		return fmt.Errorf("expected PONG, got %s", describe(v))
	}
	if ok, _ := pong[1].(bool); !ok {
		return fmt.Errorf("authentication failed: %s", str(pong[2]))
	}
	server := str(pong[3])
	if server == a.selfHostname {
		return errors.New("server and client have the same hostname: set fluentd.self_hostname")
	}
	if str(pong[4]) != sha512Hex(salt, server, nonce, a.sharedKey) {
		return errors.New("shared key mismatch: the server's PONG digest is wrong")
	}
	return nil
}

func sha512Hex(parts ...string) string {
	h := sha512.New()
	for _, p := range parts {
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// str reads a msgpack str or bin as a string.
func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

// ackID reads a server's response, {"ack": chunk_id}.
func ackID(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	id, ok := m["ack"]
	if !ok {
		return "", false
	}
	s := str(id)
	return s, s != ""
}

func describe(v any) string {
	s := fmt.Sprintf("%T %v", v, v)
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}

// Bounds on what the server may send. Handshake messages and acks are
// small: the largest, PONG, is five items and about 300 bytes.
const (
	maxObjectBytes = 16 << 10 // every string's bytes, plus one per item
	maxObjectItems = 64       // items in all, at every level
	maxObjectDepth = 4
)

var errTooBig = errors.New("message from the server is too big")

// budget is what is left of one object's bounds while it is read.
type budget struct{ bytes, items int }

func (b *budget) take(bytes, items int) error {
	if bytes > b.bytes || items > b.items {
		return errTooBig
	}
	b.bytes -= bytes
	b.items -= items
	return nil
}

// readValue reads one msgpack object the server sent. It is written on
// msgp's primitives rather than with ReadIntf because that allocates
// whatever a header claims: a confused or hostile peer could make PID 1
// allocate gigabytes, and even with every length checked, a few levels of
// nested arrays multiply (64 items at each of 4 levels is 16 million
// items from 17 MB). Here a header's items and a string's bytes are taken
// from the object's budget before anything is allocated for them.
func readValue(r *msgp.Reader) (any, error) {
	b := budget{bytes: maxObjectBytes, items: maxObjectItems}
	return readBounded(r, &b, 0)
}

func readBounded(r *msgp.Reader, b *budget, depth int) (any, error) {
	if depth > maxObjectDepth {
		return nil, errTooBig
	}
	if err := b.take(1, 1); err != nil {
		return nil, err
	}
	t, err := r.NextType()
	if err != nil {
		return nil, err
	}
	readRaw := func(n uint32) ([]byte, error) {
		if n > uint32(b.bytes) {
			return nil, errTooBig
		}
		b.bytes -= int(n)
		buf := make([]byte, n)
		_, err := r.ReadFull(buf)
		return buf, err
	}
	switch t {
	case msgp.StrType:
		n, err := r.ReadStringHeader()
		if err != nil {
			return nil, err
		}
		buf, err := readRaw(n)
		return string(buf), err
	case msgp.BinType:
		n, err := r.ReadBytesHeader()
		if err != nil {
			return nil, err
		}
		return readRaw(n)
	case msgp.MapType:
		n, err := r.ReadMapHeader()
		if err != nil {
			return nil, err
		}
		// Each entry is two items, taken as they are read; checking the
		// count first keeps make from sizing a map to a lie.
		if n > uint32(b.items)/2 {
			return nil, errTooBig
		}
		m := make(map[string]any, n)
		for range n {
			k, err := readBounded(r, b, depth+1)
			if err != nil {
				return nil, err
			}
			v, err := readBounded(r, b, depth+1)
			if err != nil {
				return nil, err
			}
			m[str(k)] = v
		}
		return m, nil
	case msgp.ArrayType:
		n, err := r.ReadArrayHeader()
		if err != nil {
			return nil, err
		}
		if n > uint32(b.items) {
			return nil, errTooBig
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = readBounded(r, b, depth+1); err != nil {
				return nil, err
			}
		}
		return a, nil
	case msgp.IntType:
		return r.ReadInt64()
	case msgp.UintType:
		return r.ReadUint64()
	case msgp.BoolType:
		return r.ReadBool()
	case msgp.NilType:
		return nil, r.ReadNil()
	case msgp.Float32Type:
		return r.ReadFloat32()
	case msgp.Float64Type:
		return r.ReadFloat64()
	default:
		return nil, fmt.Errorf("unexpected msgpack type %s from the server", t)
	}
}

// tlsConfig builds the client side of tls:// addresses.
func tlsConfig(c configs.FluentdTLS) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify}
	if c.CA != "" {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, fmt.Errorf("fluentd: tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("fluentd: tls ca %s: no PEM certificates", c.CA)
		}
		conf.RootCAs = pool
	}
	if c.Cert != "" {
		cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("fluentd: tls client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}
