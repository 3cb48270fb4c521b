package fluentd

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzSpoolSegment: a segment file found at start-up (left by a steward
// that crashed, or damaged on disk) never crashes the loader or the
// reader: every record handed out passes its checksum, and what cannot be
// read is counted as lost.
func FuzzSpoolSegment(f *testing.F) {
	dir := f.TempDir()
	sp, err := openSpool(dir, 1<<20, quietLog())
	if err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		if err := sp.append(testChunk(i, 2)); err != nil {
			f.Fatal(err)
		}
	}
	seed, err := os.ReadFile(sp.segs[0].path)
	if err != nil {
		f.Fatal(err)
	}
	sp.close()
	f.Add(seed)
	f.Add(seed[:len(seed)-7])        // torn by a crash
	f.Add([]byte(segMagic + "\x00")) // a header cut short
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "0000000000000001"+segSuffix), data, 0o600); err != nil {
			t.Fatal(err)
		}
		sp, err := openSpool(dir, 1<<20, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		defer sp.close()
		lost := 0
		sp.onDrop = func(lines int, _ int64) { lost += lines }
		_, pending, _ := sp.pending()
		got := 0
		for c := sp.next(); c != nil; c = sp.next() {
			got += c.lines
			sp.acked(c)
		}
		if got+lost != pending {
			t.Fatalf("%d lines read and %d lost, of %d pending", got, lost, pending)
		}
	})
}
