// Package pages gives back the pages of steward's own binary that only its
// start touched.
//
// Go runs every linked package's init at every start, and the kernel maps
// each page of the binary a start touches, with the pages around it
// (fault-around, 64 KiB), into the process: 7 to 8 MiB of a 10 MiB binary
// stay counted in steward's RSS (VmRSS, RssFile) for as long as it runs,
// though an idle steward runs a small part of that code. Release drops
// those mappings from steward's page tables once the programs and
// components have started: the pages stay in the page cache, shared with
// every other process running the binary, and what steward runs again is
// mapped again on its first touch (a minor fault, no disk read).
package pages

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Release drops the mappings of the executable's read-only segments
// (code, read-only data) from the page tables. Its writable segments
// (data, bss) are left alone: their private copies would be lost. It
// returns the bytes of address space released.
func Release() (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("pages: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("pages: %w", err)
	}
	defer f.Close()
	ranges, err := readOnlyRanges(f, exe)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, r := range ranges {
		// The raw call: the range is not Go memory, and unix.Madvise wants
		// it as a slice.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, unix.MADV_DONTNEED); errno != 0 {
			return total, fmt.Errorf("pages: madvise %#x-%#x: %w", r.start, r.end, errno)
		}
		total += int(r.end - r.start)
	}
	return total, nil
}

type addrRange struct{ start, end uintptr }

// readOnlyRanges parses /proc/PID/maps for the private, read-only
// mappings of path.
func readOnlyRanges(r io.Reader, path string) ([]addrRange, error) {
	maps, err := Mappings(r, path)
	if err != nil {
		return nil, err
	}
	var out []addrRange
	for _, m := range maps {
		if len(m.Perms) != 4 || m.Perms[1] != '-' || m.Perms[3] != 'p' {
			continue // writable, or shared
		}
		out = append(out, addrRange{m.Start, m.End})
	}
	return out, nil
}

// Mapping is a line of /proc/PID/maps: an address range, its permissions
// (r-xp) and the offset in the file it maps.
type Mapping struct {
	Start, End uintptr
	Perms      string
	Offset     uint64
}

// Mappings parses /proc/PID/maps for the mappings of the file path.
func Mappings(r io.Reader, path string) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// 00400000-008ca000 r-xp 00000000 fe:00 9995691   /path
		f := strings.Fields(sc.Text())
		if len(f) < 6 || strings.Join(f[5:], " ") != path {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		off, err3 := strconv.ParseUint(f[2], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil || end <= start {
			continue
		}
		out = append(out, Mapping{Start: uintptr(start), End: uintptr(end), Perms: f[1], Offset: off})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("pages: maps: %w", err)
	}
	return out, nil
}
