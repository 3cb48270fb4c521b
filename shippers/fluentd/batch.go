package fluentd

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"sync"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// chunk is one Forward Protocol message: a PackedForward (or
// CompressedPackedForward) batch of one tag's entries, with its chunk id.
// It is the unit that is queued, spooled, sent and acknowledged.
type chunk struct {
	// id is the chunk option the server acknowledges; empty when the
	// message asks for no ack.
	id    string
	lines int    // records in the batch
	msg   []byte // the whole message, ready to write

	// From the spool: the segment and the record's offset in it.
	seg *segment
	off int64

	sends  int       // times written to a connection
	sentAt time.Time // last write

	// buf, when set, is a pooled buffer msg may live in, given back once
	// the chunk is delivered or on disk.
	buf  *[]byte
	bufs *bufPool
}

func (c *chunk) size() int64 { return int64(len(c.msg)) }

// release gives the chunk's buffer back for another batch; the chunk must
// not be used afterwards.
func (c *chunk) release() {
	if c.buf != nil {
		*c.buf = (*c.buf)[:0]
		c.bufs.Put(c.buf)
	}
	c.buf, c.msg = nil, nil
}

// builder collects the entries of one tag until they are sealed into a
// chunk. The entries sit at buf[room:]: the room before them takes the
// message's header at sealing, so a batch becomes its message without
// being copied.
type builder struct {
	tag     string
	buf     *[]byte
	room    int
	entries []byte // buf[room:], unless a huge record made it grow elsewhere
	lines   int
	opened  time.Time
}

// batcher seals builders into chunks.
type batcher struct {
	maxBytes int
	interval time.Duration
	gzip     bool
	ack      bool
	builders map[string]*builder

	idPrefix [8]byte
	idCount  uint64
	gz       *gzip.Writer
	gzBuf    bytes.Buffer
	bufs     bufPool
}

func (b *batcher) builder(tag string) *builder {
	bd := b.builders[tag]
	if bd == nil {
		// Room for fixarray(3), a str32 header and the tag, a bin32 header.
		bd = &builder{tag: tag, room: 1 + 5 + len(tag) + 5}
		b.builders[tag] = bd
	}
	if bd.buf == nil {
		bd.buf = b.getBuf()
		bd.entries = (*bd.buf)[bd.room:bd.room]
	}
	return bd
}

// bufPool recycles message buffers: fresh ones would each be zeroed by
// the allocator and collected. It is a bounded free list, not a
// sync.Pool: the collector empties a sync.Pool at every cycle, and with
// the log path's small heap cycles come often, so nearly every batch
// allocated a new buffer (measured: a third more CPU per line).
type bufPool struct {
	mu   sync.Mutex
	free []*[]byte
}

// maxFreeBufs bounds the buffers kept for reuse.
const maxFreeBufs = 4

// Get returns a free buffer, or nil.
func (p *bufPool) Get() *[]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return b
	}
	return nil
}

// Put keeps b for reuse, unless enough are kept.
func (p *bufPool) Put(b *[]byte) {
	p.mu.Lock()
	if len(p.free) < maxFreeBufs {
		p.free = append(p.free, b)
	}
	p.mu.Unlock()
}

func (b *batcher) getBuf() *[]byte {
	if p := b.bufs.Get(); p != nil {
		return p
	}
	// Room for the batch and the record that crosses its bound, when the
	// record is an ordinary line; a longer one moves the entries out
	// (seal copies them then).
	buf := make([]byte, 0, b.maxBytes+4096)
	return &buf
}

// full reports whether bd must be sealed now.
func (b *batcher) full(bd *builder) bool { return len(bd.entries) >= b.maxBytes }

// due returns the earliest time a builder must be sealed, or zero.
func (b *batcher) due() time.Time {
	var t time.Time
	for _, bd := range b.builders {
		if bd.lines > 0 && (t.IsZero() || bd.opened.Before(t)) {
			t = bd.opened
		}
	}
	if t.IsZero() {
		return t
	}
	return t.Add(b.interval)
}

// newID returns a chunk id: the base64 of 128 bits, unique across steward
// instances by a random prefix drawn at start, as the spec asks.
func (b *batcher) newID() string {
	b.idCount++
	var id [16]byte
	copy(id[:8], b.idPrefix[:])
	binary.BigEndian.PutUint64(id[8:], b.idCount)
	return base64.StdEncoding.EncodeToString(id[:])
}

// inPlace reports whether bd's entries still live in its buffer.
func (bd *builder) inPlace() bool {
	full := (*bd.buf)[:cap(*bd.buf)]
	return len(full) > bd.room && cap(bd.entries) == len(full)-bd.room && &full[bd.room] == &bd.entries[:1][0]
}

// seal turns bd's entries into a chunk and empties bd.
//
// The message is [tag, entries, {"size": n, "chunk": id}] with the entries
// a msgpack stream in a bin (PackedForward), gzip-compressed with
// "compressed": "gzip" in the option (CompressedPackedForward).
func (b *batcher) seal(bd *builder) *chunk {
	c := &chunk{lines: bd.lines, bufs: &b.bufs}
	nopts := uint32(1)
	if b.ack {
		c.id = b.newID()
		nopts++
	}
	if b.gzip {
		nopts++
	}
	var msg []byte
	switch {
	case b.gzip:
		b.gzBuf.Reset()
		if b.gz == nil {
			b.gz = gzip.NewWriter(&b.gzBuf)
		} else {
			b.gz.Reset(&b.gzBuf)
		}
		// Writes to a bytes.Buffer do not fail.
		_, _ = b.gz.Write(bd.entries)
		_ = b.gz.Close()
		c.buf = b.getBuf()
		msg = msgp.AppendArrayHeader((*c.buf)[:0], 3)
		msg = msgp.AppendString(msg, bd.tag)
		msg = msgp.AppendBytes(msg, b.gzBuf.Bytes())
	case bd.inPlace():
		h := msgp.AppendArrayHeader(make([]byte, 0, bd.room), 3)
		h = msgp.AppendString(h, bd.tag)
		h = msgp.AppendBytesHeader(h, uint32(len(bd.entries)))
		start := bd.room - len(h)
		full := (*bd.buf)[:bd.room+len(bd.entries)]
		copy(full[start:], h)
		msg = full[start:]
		c.buf, bd.buf = bd.buf, nil // the builder takes a fresh buffer next time
	default:
		// A record larger than the buffer moved the entries: copy.
		msg = msgp.AppendArrayHeader(make([]byte, 0, len(bd.entries)+len(bd.tag)+128), 3)
		msg = msgp.AppendString(msg, bd.tag)
		msg = msgp.AppendBytes(msg, bd.entries)
	}
	msg = msgp.AppendMapHeader(msg, nopts)
	msg = msgp.AppendInt(msgp.AppendString(msg, "size"), bd.lines)
	if b.ack {
		msg = msgp.AppendString(msgp.AppendString(msg, "chunk"), c.id)
	}
	if b.gzip {
		msg = msgp.AppendString(msgp.AppendString(msg, "compressed"), "gzip")
	}
	c.msg = msg
	if bd.buf != nil {
		bd.entries = (*bd.buf)[bd.room:bd.room]
	} else {
		bd.entries = nil
	}
	bd.lines = 0
	return c
}
