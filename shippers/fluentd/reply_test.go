package fluentd

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

// nestedNils is an array of n arrays of n ... (depth levels) of nils: 64
// at each of 4 levels is 17.6 MB that once made steward allocate 298 MB.
func nestedNils(n, depth int) []byte {
	if depth == 0 {
		return []byte{0xc0}
	}
	inner := nestedNils(n, depth-1)
	b := msgp.AppendArrayHeader(nil, uint32(n))
	return append(b, bytes.Repeat(inner, n)...)
}

// TestHostileReplyIsBounded: a reply of nested arrays each within the
// old per-array bound costs a bounded allocation and is refused.
func TestHostileReplyIsBounded(t *testing.T) {
	msg := nestedNils(64, 4)
	t.Logf("reply of %.1f MB", float64(len(msg))/1e6)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := readValue(msgp.NewReader(bytes.NewReader(msg)))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errTooBig) {
		t.Fatalf("err %v, want errTooBig", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Fatalf("reading it allocated %d bytes", alloc)
	}
}

// TestRepliesWithinBounds: what servers really send is read.
func TestRepliesWithinBounds(t *testing.T) {
	for _, msg := range replySeeds() {
		if _, err := readValue(msgp.NewReader(bytes.NewReader(msg))); err != nil {
			t.Errorf("% x: %v", msg[:min(len(msg), 16)], err)
		}
	}
}

// replySeeds are an ack, a HELO with a user-auth salt and a PONG as
// Fluentd sends them.
func replySeeds() [][]byte {
	ack := msgp.AppendString(msgp.AppendString(msgp.AppendMapHeader(nil, 1), "ack"), "p8n9gmxTQVC8/nh2wlKKeQ==")
	helo := msgp.AppendArrayHeader(nil, 2)
	helo = msgp.AppendString(helo, "HELO")
	helo = msgp.AppendMapHeader(helo, 3)
	helo = msgp.AppendBytes(msgp.AppendString(helo, "nonce"), bytes.Repeat([]byte{7}, 16))
	helo = msgp.AppendBytes(msgp.AppendString(helo, "auth"), bytes.Repeat([]byte{9}, 16))
	helo = msgp.AppendBool(msgp.AppendString(helo, "keepalive"), true)
	pong := msgp.AppendArrayHeader(nil, 5)
	pong = msgp.AppendString(pong, "PONG")
	pong = msgp.AppendBool(pong, true)
	pong = msgp.AppendString(pong, "")
	pong = msgp.AppendString(pong, "fluentd.example.com")
	pong = msgp.AppendString(pong, string(bytes.Repeat([]byte{'a'}, 128)))
	return [][]byte{ack, helo, pong}
}

// size counts a value's items and string bytes.
func size(v any) (items, strBytes int) {
	items = 1
	switch x := v.(type) {
	case string:
		strBytes = len(x)
	case []byte:
		strBytes = len(x)
	case []any:
		for _, e := range x {
			i, b := size(e)
			items, strBytes = items+i, strBytes+b
		}
	case map[string]any:
		for k, e := range x {
			i, b := size(e)
			items, strBytes = items+i+1, strBytes+b+len(k)
		}
	}
	return items, strBytes
}

// FuzzReadValue: whatever a server sends, reading it neither panics nor
// returns more than the bounds allow.
func FuzzReadValue(f *testing.F) {
	for _, s := range replySeeds() {
		f.Add(s)
	}
	f.Add(nestedNils(4, 3))
	f.Add([]byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}) // a str32 claiming 4 GiB
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})      // a map32 claiming 4G entries
	f.Add([]byte{0xc1, 0xc1})
	f.Fuzz(func(t *testing.T, msg []byte) {
		r := msgp.NewReader(bytes.NewReader(msg))
		for range 4 { // a few objects in a row, as on a connection
			v, err := readValue(r)
			if err != nil {
				return
			}
			if items, n := size(v); items > maxObjectItems || n > maxObjectBytes {
				t.Fatalf("read %d items, %d string bytes: over the bounds", items, n)
			}
			ackID(v)
		}
	})
}
