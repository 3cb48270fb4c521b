package collectors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// reader reads kernel files into one buffer reused round after round, so
// a collection allocates next to nothing. Not safe for concurrent use:
// each collector has its own.
type reader struct {
	buf  bytes.Buffer
	dirb []byte
}

// read returns path's content; the buffer is valid until the next read.
//
// It opens and reads with the raw calls rather than os.Open: an *os.File
// is a few hundred bytes of garbage per file (its struct, its poller
// state, a cleanup), and the programs collector reads a stat file per
// process every round (hundreds when steward sees a host's /proc), which
// made most of what an idle steward allocated and so the heap it grew to
// between collections.
func (r *reader) read(path string) (*bytes.Buffer, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	r.buf.Reset()
	for {
		r.buf.Grow(512)
		b := r.buf.AvailableBuffer()
		n, err := unix.Read(fd, b[:cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if n <= 0 {
			return &r.buf, nil
		}
		r.buf.Write(b[:n])
	}
}

// eachEntry calls f with the name of each entry of directory path but "."
// and "..", reading the directory with getdents into a reused buffer
// rather than allocating a string per name (a /proc/PID/fd of thousands
// of sockets, every /proc/PID).
func (r *reader) eachEntry(path string, f func(name []byte)) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if r.dirb == nil {
		r.dirb = make([]byte, 8192)
	}
	for {
		n, err := unix.Getdents(fd, r.dirb)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "getdents", Path: path, Err: err}
		}
		if n <= 0 {
			return nil
		}
		b := r.dirb[:n]
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for len(b) >= 19 {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return fmt.Errorf("getdents %s: bad record", path)
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if string(name) != "." && string(name) != ".." {
				f(name)
			}
			b = b[reclen:]
		}
	}
}

// countEntries counts the entries of directory path ("." and ".." aside).
func (r *reader) countEntries(path string) (int, error) {
	n := 0
	err := r.eachEntry(path, func([]byte) { n++ })
	return n, err
}

// pids lists the processes of a /proc directory into out (reused).
func (r *reader) pids(proc string, out []int) ([]int, error) {
	out = out[:0]
	err := r.eachEntry(proc, func(name []byte) {
		pid := 0
		for _, c := range name {
			if c < '0' || c > '9' {
				return
			}
			pid = pid*10 + int(c-'0')
		}
		out = append(out, pid)
	})
	return out, err
}
