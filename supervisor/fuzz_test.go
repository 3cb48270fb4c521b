package supervisor

import (
	"bytes"
	"testing"
)

// FuzzSplitLines: however a program's output is cut into reads, the pieces
// put back together (a newline after each piece that ends a line) are the
// output byte for byte; no piece is longer than max, and only a piece of
// exactly max bytes is partial.
func FuzzSplitLines(f *testing.F) {
	f.Add([]byte("one\ntwo\n\nbad \xff\x00 bytes\nlast"), uint8(16), uint8(3))
	f.Add([]byte("a line far longer than the buffer is\n"), uint8(4), uint8(1))
	f.Add([]byte("\n\n\n"), uint8(1), uint8(0))
	f.Fuzz(func(t *testing.T, input []byte, maxb, chunk uint8) {
		max := int(maxb)%64 + 1
		got := lines(t, string(input), max, int(chunk)%9)
		var out bytes.Buffer
		for i, p := range got {
			if len(p.text) > max {
				t.Fatalf("piece %d of %d bytes, max %d", i, len(p.text), max)
			}
			if p.partial && len(p.text) != max {
				t.Fatalf("partial piece %d of %d bytes, max %d", i, len(p.text), max)
			}
			if i > 0 && p.cont != got[i-1].partial {
				t.Fatalf("piece %d: cont %v after partial %v", i, p.cont, got[i-1].partial)
			}
			out.Write(p.text)
			if !p.partial && (i < len(got)-1 || bytes.HasSuffix(input, []byte("\n"))) {
				out.WriteByte('\n')
			}
		}
		if !bytes.Equal(out.Bytes(), input) {
			t.Fatalf("pieces put back together:\n%q\nwant\n%q", out.Bytes(), input)
		}
	})
}
