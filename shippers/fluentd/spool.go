package fluentd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The spool keeps chunks on disk, oldest first, in segment files named by
// a sequence number: NNNNNNNNNNNNNNNN.seg. A segment is
//
//	header: "STWSPL01" | u64 offset of its first unacknowledged record
//	records: u32 msg length | u32 CRC-32C of msg | u32 lines | u8 id length | id | msg
//
// all big-endian. The header's offset moves forward as acks arrive, so a
// restart resends only what was not acknowledged. Files are written without
// fsync (the page cache survives a killed container); they are synced at
// shutdown.
const (
	segMagic     = "STWSPL01"
	segHeaderLen = 16
	recHeaderLen = 13
	segSuffix    = ".seg"
)

// crcTable is built on first use: its tables would cost every container
// start a few kilobytes and a fraction of a millisecond otherwise.
var crcTable = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

type segment struct {
	seq  uint64
	path string
	f    *os.File
	size int64 // end of the last whole record

	records, lines         int // in the file from its start offset on
	readOff                int64
	readRecords, readLines int
	ackedLines             int // of the records before ackedOff
	// inflight lists records handed out and not yet acknowledged, in file
	// order, to move the header's offset over the acknowledged prefix.
	inflight []inflightRec
	ackedOff int64
	// headerOff is the offset the header last recorded, headerAt when.
	headerOff int64
	headerAt  time.Time
	dropped   bool
}

type inflightRec struct {
	off, end int64
	lines    int
	done     bool
}

type spool struct {
	dir      string
	maxBytes int64
	segMax   int64
	log      *slog.Logger
	lock     *os.File
	segs     []*segment // oldest first
	bytes    int64
	nextSeq  uint64
	// onDrop is told of the records lost when the oldest segment goes.
	onDrop func(records int, bytes int64)
	// temporary: dir was made because spool_dir was unusable, so what it
	// keeps dies with the container.
	temporary bool
	// bufs, when set, lends the buffers records are read into (the
	// batcher's), so reading the spool back allocates nothing.
	bufs *bufPool
}

// openSpool locks dir and loads the segments found there.
func openSpool(dir string, maxBytes int64, log *slog.Logger) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fluentd: spool: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fluentd: spool: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("fluentd: spool %s is in use by another steward: %w", dir, err)
	}
	s := &spool{dir: dir, maxBytes: maxBytes, log: log, lock: lock, nextSeq: 1}
	s.segMax = min(max(maxBytes/8, 1024), 64<<20)
	names, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		return nil, fmt.Errorf("fluentd: spool: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		seq, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(name), segSuffix), 16, 64)
		if err != nil {
			continue
		}
		seg, err := loadSegment(name, seq)
		if err != nil {
			log.Warn("fluentd: spool segment unreadable, removed", "path", name, "err", err)
			os.Remove(name)
			continue
		}
		if seg.records == 0 {
			seg.f.Close()
			os.Remove(name)
			continue
		}
		s.segs = append(s.segs, seg)
		s.bytes += seg.size
		s.nextSeq = seq + 1
	}
	// The cap is enforced once the owner has set onDrop (newQueue), so
	// what a smaller cap drops at start-up is counted too.
	return s, nil
}

// loadSegment reads a segment's header and walks its record headers,
// cutting off a record torn by a crash.
func loadSegment(path string, seq uint64) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	seg := &segment{seq: seq, path: path, f: f}
	var hdr [segHeaderLen]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil || string(hdr[:8]) != segMagic {
		f.Close()
		return nil, errors.New("not a spool segment")
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	start := int64(binary.BigEndian.Uint64(hdr[8:]))
	if start < segHeaderLen || start > st.Size() {
		start = segHeaderLen
	}
	seg.readOff, seg.ackedOff, seg.headerOff = start, start, start
	off := start
	var rh [recHeaderLen]byte
	for {
		if _, err := f.ReadAt(rh[:], off); err != nil {
			break
		}
		n := int64(binary.BigEndian.Uint32(rh[0:])) + recHeaderLen + int64(rh[12])
		if off+n > st.Size() {
			break // torn by a crash while writing
		}
		seg.records++
		seg.lines += int(binary.BigEndian.Uint32(rh[8:]))
		off += n
	}
	seg.size = off
	if off < st.Size() {
		// Cut the torn record off, so appends continue a clean file.
		_ = f.Truncate(off)
	}
	return seg, nil
}

func (s *spool) tail() *segment {
	if len(s.segs) == 0 {
		return nil
	}
	return s.segs[len(s.segs)-1]
}

// append writes c at the spool's end, then drops the oldest segments while
// the spool is over its cap.
func (s *spool) append(c *chunk) error {
	seg := s.tail()
	if seg == nil || seg.size >= s.segMax {
		var err error
		if seg, err = s.newSegment(); err != nil {
			return err
		}
	}
	// Header, id and message in one pwritev: the message is not copied
	// into a record buffer (a batch-sized allocation per spilled batch).
	var hdr [recHeaderLen + 255]byte
	binary.BigEndian.PutUint32(hdr[0:], uint32(len(c.msg)))
	binary.BigEndian.PutUint32(hdr[4:], crc32.Checksum(c.msg, crcTable()))
	binary.BigEndian.PutUint32(hdr[8:], uint32(c.lines))
	hdr[12] = byte(len(c.id))
	n := recHeaderLen + copy(hdr[recHeaderLen:], c.id)
	total := n + len(c.msg)
	if err := pwriteAll(seg.f, [][]byte{hdr[:n], c.msg}, seg.size, total); err != nil {
		return fmt.Errorf("fluentd: spool: %w", err)
	}
	seg.size += int64(total)
	seg.records++
	seg.lines += c.lines
	s.bytes += int64(total)
	s.enforceCap()
	return nil
}

// pwriteAll writes bufs at off, total bytes in all.
func pwriteAll(f *os.File, bufs [][]byte, off int64, total int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	for total > 0 {
		var n int
		var werr error
		if err := rc.Write(func(fd uintptr) bool {
			n, werr = unix.Pwritev(int(fd), bufs, off)
			return werr != unix.EAGAIN
		}); err != nil {
			return err
		}
		if werr == unix.EINTR {
			continue
		}
		if werr != nil {
			return werr
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		total -= n
		off += int64(n)
		for n > 0 {
			k := min(n, len(bufs[0]))
			bufs[0] = bufs[0][k:]
			n -= k
			if len(bufs[0]) == 0 {
				bufs = bufs[1:]
			}
		}
	}
	return nil
}

func (s *spool) newSegment() (*segment, error) {
	seq := s.nextSeq
	path := filepath.Join(s.dir, fmt.Sprintf("%016x%s", seq, segSuffix))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fluentd: spool: %w", err)
	}
	var hdr [segHeaderLen]byte
	copy(hdr[:], segMagic)
	binary.BigEndian.PutUint64(hdr[8:], segHeaderLen)
	if _, err := f.WriteAt(hdr[:], 0); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("fluentd: spool: %w", err)
	}
	s.nextSeq++
	seg := &segment{seq: seq, path: path, f: f, size: segHeaderLen, readOff: segHeaderLen, ackedOff: segHeaderLen, headerOff: segHeaderLen}
	s.segs = append(s.segs, seg)
	s.bytes += segHeaderLen
	return seg, nil
}

// enforceCap drops the oldest segments while the spool is over its cap.
// The records of a dropped segment not yet handed out are lost and
// reported; those in flight live on in memory.
func (s *spool) enforceCap() {
	for s.bytes > s.maxBytes && len(s.segs) > 0 {
		seg := s.segs[0]
		lost := seg.records - seg.readRecords
		lines := seg.lines - seg.readLines
		s.remove(seg)
		if lost > 0 && s.onDrop != nil {
			s.onDrop(lines, seg.size)
		}
	}
}

func (s *spool) remove(seg *segment) {
	for i, x := range s.segs {
		if x == seg {
			s.segs = append(s.segs[:i:i], s.segs[i+1:]...)
			break
		}
	}
	seg.dropped = true
	s.bytes -= seg.size
	seg.f.Close()
	os.Remove(seg.path)
}

// next returns the oldest chunk not yet handed out, or nil. A record whose
// checksum fails ends its segment's reading: the rest is reported lost.
func (s *spool) next() *chunk {
	for _, seg := range s.segs {
		if seg.readOff >= seg.size {
			continue
		}
		c, err := seg.read(s.bufs)
		if err != nil {
			lost := seg.lines - seg.readLines
			s.log.Warn("fluentd: spool segment damaged, rest of it skipped", "path", seg.path, "offset", seg.readOff, "records_lost", lost, "err", err)
			if s.onDrop != nil {
				s.onDrop(lost, seg.size-seg.readOff)
			}
			seg.readOff, seg.readRecords, seg.readLines = seg.size, seg.records, seg.lines
			s.maybeRemove(seg)
			continue
		}
		return c
	}
	return nil
}

func (seg *segment) read(bufs *bufPool) (*chunk, error) {
	var rh [recHeaderLen]byte
	if _, err := seg.f.ReadAt(rh[:], seg.readOff); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(rh[0:]))
	idLen := int(rh[12])
	end := seg.readOff + recHeaderLen + int64(idLen) + int64(n)
	if end > seg.size {
		return nil, io.ErrUnexpectedEOF
	}
	c := &chunk{seg: seg, off: seg.readOff, lines: int(binary.BigEndian.Uint32(rh[8:]))}
	var buf []byte
	if bufs != nil {
		if p := bufs.Get(); p != nil && cap(*p) >= idLen+n {
			c.buf, c.bufs = p, bufs
			buf = (*p)[:idLen+n]
		} else if p != nil {
			bufs.Put(p)
		}
	}
	if buf == nil {
		buf = make([]byte, idLen+n)
	}
	if _, err := seg.f.ReadAt(buf, seg.readOff+recHeaderLen); err != nil {
		c.release()
		return nil, err
	}
	c.id, c.msg = string(buf[:idLen]), buf[idLen:]
	if crc32.Checksum(c.msg, crcTable()) != binary.BigEndian.Uint32(rh[4:]) {
		c.release()
		return nil, errors.New("checksum mismatch")
	}
	seg.inflight = append(seg.inflight, inflightRec{off: seg.readOff, end: end, lines: c.lines})
	seg.readOff = end
	seg.readRecords++
	seg.readLines += c.lines
	return c, nil
}

// acked records that the server has c, a chunk read from the spool.
func (s *spool) acked(c *chunk) {
	seg := c.seg
	if seg == nil || seg.dropped {
		return
	}
	for i := range seg.inflight {
		if seg.inflight[i].off == c.off {
			seg.inflight[i].done = true
			break
		}
	}
	moved := false
	for len(seg.inflight) > 0 && seg.inflight[0].done {
		seg.ackedOff = seg.inflight[0].end
		seg.ackedLines += seg.inflight[0].lines
		seg.inflight = seg.inflight[1:]
		moved = true
	}
	if s.maybeRemove(seg) || !moved {
		return
	}
	// The header is written at most every headerEvery (and at close): a
	// write per ack costs a syscall per batch, and a header that lags
	// costs only the duplicates of that moment's acks if steward is
	// killed.
	if now := time.Now(); now.Sub(seg.headerAt) >= headerEvery {
		seg.headerAt = now
		seg.writeHeader()
	}
}

const headerEvery = 100 * time.Millisecond

// writeHeader records the acknowledged offset in the segment's header. A
// failed write costs only duplicates after a restart.
func (seg *segment) writeHeader() {
	if seg.headerOff == seg.ackedOff {
		return
	}
	var off [8]byte
	binary.BigEndian.PutUint64(off[:], uint64(seg.ackedOff))
	if _, err := seg.f.WriteAt(off[:], 8); err == nil {
		seg.headerOff = seg.ackedOff
	}
}

// maybeRemove deletes a segment once every record in it was handed out
// and acknowledged (or lost). A tail removed this way is replaced by a new
// segment at the next append.
func (s *spool) maybeRemove(seg *segment) bool {
	if seg.readOff < seg.size || len(seg.inflight) > 0 {
		return false
	}
	s.remove(seg)
	return true
}

// pending returns the records and bytes not yet handed out.
func (s *spool) pending() (records, lines int, bytes int64) {
	for _, seg := range s.segs {
		records += seg.records - seg.readRecords
		lines += seg.lines - seg.readLines
		bytes += seg.size - seg.readOff
	}
	return records, lines, bytes
}

// unacked returns the records a next steward on this spool would send:
// everything after each segment's acknowledged prefix.
func (s *spool) unacked() (lines int) {
	for _, seg := range s.segs {
		lines += seg.lines - seg.ackedLines
	}
	return lines
}

// close syncs and closes every segment and releases the lock. Records
// handed out and not acknowledged stay in the files, after the header's
// offset, and are sent again by the next steward.
func (s *spool) close() error {
	var errs []error
	for _, seg := range s.segs {
		seg.writeHeader()
		if err := seg.f.Sync(); err != nil {
			errs = append(errs, err)
		}
		seg.f.Close()
	}
	s.segs = nil
	if d, err := os.Open(s.dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	s.lock.Close()
	if len(errs) > 0 {
		return fmt.Errorf("fluentd: spool: %w", errors.Join(errs...))
	}
	return nil
}
