package fluentd

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(&testLog{}, nil)) }

func testChunk(i, lines int) *chunk {
	return &chunk{id: fmt.Sprintf("id-%d", i), lines: lines, msg: bytes.Repeat([]byte{byte(i)}, 1000+i)}
}

func openTestSpool(t *testing.T, dir string, max int64) *spool {
	t.Helper()
	sp, err := openSpool(dir, max, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func TestSpoolKeepsOrderAndResumesAfterAcks(t *testing.T) {
	dir := t.TempDir()
	sp := openTestSpool(t, dir, 1<<20)
	for i := range 20 {
		if err := sp.append(testChunk(i, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	var got []*chunk
	for c := sp.next(); c != nil; c = sp.next() {
		got = append(got, c)
	}
	if len(got) != 20 {
		t.Fatalf("read %d chunks, want 20", len(got))
	}
	for i, c := range got {
		if c.id != fmt.Sprintf("id-%d", i) || c.lines != i+1 || !bytes.Equal(c.msg, testChunk(i, 0).msg) {
			t.Fatalf("chunk %d: %s, %d lines, %d bytes", i, c.id, c.lines, len(c.msg))
		}
	}
	// Acks for 0..9, and for 12 out of order: a restart resends 10 on.
	for _, c := range got[:10] {
		sp.acked(c)
	}
	sp.acked(got[12])
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	sp = openTestSpool(t, dir, 1<<20)
	defer sp.close()
	records, lines, _ := sp.pending()
	if records != 10 {
		t.Fatalf("%d records pending after restart, want 10 (11..20)", records)
	}
	if want := 11 + 12 + 13 + 14 + 15 + 16 + 17 + 18 + 19 + 20; lines != want {
		t.Fatalf("%d lines pending, want %d", lines, want)
	}
	first := sp.next()
	if first.id != "id-10" {
		t.Fatalf("first after restart is %s, want id-10", first.id)
	}
	// Everything acknowledged: the segments go away.
	for c := first; c != nil; c = sp.next() {
		sp.acked(c)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(names) != 0 || sp.bytes != 0 {
		t.Fatalf("segments left: %v (%d bytes)", names, sp.bytes)
	}
}

func TestSpoolCapDropsOldestSegmentsCounted(t *testing.T) {
	sp := openTestSpool(t, t.TempDir(), 64<<10)
	defer sp.close()
	dropped := 0
	sp.onDrop = func(lines int, _ int64) { dropped += lines }
	total := 0
	for i := range 200 {
		sp.append(testChunk(i%200, 3))
		total += 3
	}
	if sp.bytes > 64<<10 {
		t.Fatalf("spool is %d bytes, over its cap", sp.bytes)
	}
	_, pending, _ := sp.pending()
	if dropped == 0 || dropped+pending != total {
		t.Fatalf("dropped %d + pending %d != %d written", dropped, pending, total)
	}
	// What is left is the newest.
	c := sp.next()
	if want := fmt.Sprintf("id-%d", dropped/3); c.id != want {
		t.Fatalf("oldest left is %s, want %s", c.id, want)
	}
}

func TestSpoolSurvivesTornAndDamagedRecords(t *testing.T) {
	dir := t.TempDir()
	sp := openTestSpool(t, dir, 1<<20)
	for i := range 3 {
		sp.append(testChunk(i, 1))
	}
	sp.close()
	seg, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	data, _ := os.ReadFile(seg[0])
	// A crash while writing the third record: cut it in half.
	os.WriteFile(seg[0], data[:len(data)-500], 0o600)
	sp = openTestSpool(t, dir, 1<<20)
	if records, _, _ := sp.pending(); records != 2 {
		t.Fatalf("%d records after a torn write, want 2", records)
	}
	sp.close()
	// A flipped byte in the second record: the first is read, the rest of
	// the segment is reported lost.
	data, _ = os.ReadFile(seg[0])
	data[len(data)-10] ^= 0xff
	os.WriteFile(seg[0], data, 0o600)
	sp = openTestSpool(t, dir, 1<<20)
	defer sp.close()
	lost := 0
	sp.onDrop = func(lines int, _ int64) { lost += lines }
	if c := sp.next(); c == nil || c.id != "id-0" {
		t.Fatalf("first record: %v", c)
	}
	if c := sp.next(); c != nil || lost != 1 {
		t.Fatalf("damaged record returned (%v) or not counted (%d)", c, lost)
	}
}

func TestSpoolIsLocked(t *testing.T) {
	dir := t.TempDir()
	sp := openTestSpool(t, dir, 1<<20)
	defer sp.close()
	if _, err := openSpool(dir, 1<<20, quietLog()); err == nil {
		t.Fatal("a second steward opened the same spool")
	}
}

func TestQueueWithoutSpoolDropsOldest(t *testing.T) {
	var st counters
	q := newQueue(10000, &st, quietLog())
	for i := range 30 {
		q.push(testChunk(i, 2)) // about 1 KB each
	}
	if st.dropped.Total() != 2*(30-9) {
		t.Fatalf("dropped %d, want %d", st.dropped.Total(), 2*(30-9))
	}
	if c := q.pop(); c.id != "id-21" {
		t.Fatalf("oldest kept is %s, want id-21", c.id)
	}
}

func TestQueueSpillsOldestAndReadsSpoolFirst(t *testing.T) {
	var st counters
	sp := openTestSpool(t, t.TempDir(), 1<<20)
	defer sp.close()
	q := newQueue(5000, &st, quietLog())
	q.attach(sp)
	for i := range 20 {
		q.push(testChunk(i, 1))
	}
	if st.dropped.Total() != 0 || st.spoolBytes.Load() == 0 || st.queueBytes.Load() > 5000 {
		t.Fatalf("dropped %d, spool %d bytes, memory %d bytes", st.dropped.Total(), st.spoolBytes.Load(), st.queueBytes.Load())
	}
	for i := range 20 {
		c := q.pop()
		if c == nil || c.id != fmt.Sprintf("id-%d", i) {
			t.Fatalf("pop %d: %v", i, c)
		}
		q.delivered(c)
	}
	if !q.empty() {
		t.Fatal("queue not empty")
	}
}
