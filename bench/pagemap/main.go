// Command pagemap prints how much of each ELF section of a process's
// executable is resident in that process (mapped in its page tables, as
// VmRSS and RssFile count it), from /proc/PID/maps and /proc/PID/pagemap.
// It tells what a steward's file-backed RSS is made of: code (.text),
// read-only data and type descriptors (.rodata), the runtime's function
// tables (.gopclntab, walked to grow and scan goroutine stacks). Pages
// the writable sections (.data, .noptrdata) have written count as
// anonymous in RSS; a page two sections share counts for both here.
//
// Usage (root, for another process's pagemap): pagemap PID
package main

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"

	"github.com/stewardhq/steward/internal/pages"
)

const pageSize = 4096

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: pagemap PID")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "pagemap:", err)
		os.Exit(1)
	}
}

func run(pid string) error {
	if _, err := strconv.Atoi(pid); err != nil {
		return fmt.Errorf("PID %q: %w", pid, err)
	}
	proc := "/proc/" + pid
	exe, err := os.Readlink(proc + "/exe")
	if err != nil {
		return err
	}
	bin, err := elf.Open(proc + "/exe")
	if err != nil {
		return err
	}
	defer bin.Close()
	mf, err := os.Open(proc + "/maps")
	if err != nil {
		return err
	}
	defer mf.Close()
	maps, err := pages.Mappings(mf, exe)
	if err != nil {
		return err
	}
	pm, err := os.Open(proc + "/pagemap")
	if err != nil {
		return err
	}
	defer pm.Close()
	resident := func(addr uintptr) bool {
		var e [8]byte
		if _, err := pm.ReadAt(e[:], int64(addr/pageSize*8)); err != nil {
			return false
		}
		return binary.LittleEndian.Uint64(e[:])&(1<<63) != 0 // bit 63: present
	}
	fmt.Printf("%-20s %10s %10s\n", "section", "rss_kib", "size_kib")
	var total int
	for _, s := range bin.Sections {
		if s.Type == elf.SHT_NOBITS || s.Flags&elf.SHF_ALLOC == 0 || s.Size == 0 {
			continue
		}
		// A section's pages are found through the mapping of its file
		// offset, which works for position-independent binaries too.
		n, size := 0, 0
		for off := s.Offset &^ (pageSize - 1); off < s.Offset+s.Size; off += pageSize {
			size++
			for _, m := range maps {
				if off >= m.Offset && off < m.Offset+uint64(m.End-m.Start) {
					if resident(m.Start + uintptr(off-m.Offset)) {
						n++
					}
					break
				}
			}
		}
		total += n
		fmt.Printf("%-20s %10d %10d\n", s.Name, n*pageSize/1024, size*pageSize/1024)
	}
	fmt.Printf("%-20s %10d\n", "total", total*pageSize/1024)
	return nil
}
