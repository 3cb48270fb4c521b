// Package carbontest runs a real carbon-cache (Debian's graphite-carbon)
// on loopback for tests, with its own config and whisper storage in a
// temporary directory, and reads what it stored back with whisper-fetch
// (Debian's python3-whisper). It is linked only into tests: the
// cmd/steward integration tests and the e2e tests share it.
package carbontest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/testutil"
)

// Carbon is a running carbon-cache.
type Carbon struct {
	t    testing.TB
	dir  string
	Addr string // plaintext line receiver, TCP and UDP, on 127.0.0.1
	cmd  *exec.Cmd
	done chan struct{}
	out  *testutil.LockedBuffer
}

// Start writes a config on free loopback ports and starts carbon-cache in
// the foreground; it is stopped when the test ends. Retention is one point
// per second for an hour, so a 1 s interval maps each round to its own
// slot.
func Start(t testing.TB) *Carbon {
	t.Helper()
	c := &Carbon{t: t, dir: t.TempDir(), Addr: freeAddr(t)}
	_, linePort, _ := net.SplitHostPort(c.Addr)
	_, picklePort, _ := net.SplitHostPort(freeAddr(t))
	_, queryPort, _ := net.SplitHostPort(freeAddr(t))
	conf := fmt.Sprintf(`[cache]
STORAGE_DIR = %[1]s
LOCAL_DATA_DIR = %[1]s/whisper
LOG_DIR = %[1]s/log
PID_DIR = %[1]s
ENABLE_LOGROTATION = False
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = %[2]s
ENABLE_UDP_LISTENER = True
UDP_RECEIVER_INTERFACE = 127.0.0.1
UDP_RECEIVER_PORT = %[2]s
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = %[3]s
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = %[4]s
MAX_CREATES_PER_MINUTE = inf
MAX_UPDATES_PER_SECOND = inf
# No graphite-web here: the tag database is graphite-web's. Carbon still
# stores tagged series, under _tagged/ (see whisperPath).
ENABLE_TAGS = False
TAG_HASH_FILENAMES = True
LOG_CREATES = True
LOG_UPDATES = False
`, c.dir, linePort, picklePort, queryPort)
	os.WriteFile(filepath.Join(c.dir, "carbon.conf"), []byte(conf), 0o644)
	os.WriteFile(filepath.Join(c.dir, "storage-schemas.conf"), []byte("[all]\npattern = .*\nretentions = 1s:1h\n"), 0o644)
	c.Start()
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("carbon output:\n%s", c.out.String())
		}
	})
	return c
}

// Start starts carbon-cache (again, after Stop) and waits until it
// accepts connections.
func (c *Carbon) Start() {
	c.t.Helper()
	c.out = &testutil.LockedBuffer{}
	c.cmd = exec.Command("carbon-cache", "--config="+filepath.Join(c.dir, "carbon.conf"), "--debug", "start")
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		c.t.Fatalf("carbon-cache (Debian package graphite-carbon): %v", err)
	}
	c.done = make(chan struct{})
	go func() { c.cmd.Wait(); close(c.done) }()
	testutil.Eventually(c.t, "carbon accepting connections on "+c.Addr, func() bool {
		select {
		case <-c.done:
			c.t.Fatalf("carbon-cache exited:\n%s", c.out.String())
		default:
		}
		conn, err := net.Dial("tcp", c.Addr)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
}

// Stop ends carbon as an init system would (TERM) and waits for it.
func (c *Carbon) Stop() {
	if c.cmd == nil {
		return
	}
	syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
	c.cmd = nil
}

// Tagged is a tagged series as carbon normalises it: the name, then the
// tags sorted by key.
func Tagged(name string, tags ...string) string {
	tags = slices.Clone(tags)
	slices.Sort(tags)
	return name + ";" + strings.Join(tags, ";")
}

// WhisperPath is where carbon 1.1 stores a series. Tagged series go under
// _tagged/, in folders named by the first six hex digits of the sha256 of
// the normalised series, in a file named by the whole hash
// (TAG_HASH_FILENAMES, the default) — carbon's TaggedSeries.encode.
func (c *Carbon) WhisperPath(series string) string {
	base := filepath.Join(c.dir, "whisper")
	if !strings.Contains(series, ";") {
		return filepath.Join(base, strings.ReplaceAll(series, ".", "/")+".wsp")
	}
	sum := sha256.Sum256([]byte(series))
	h := hex.EncodeToString(sum[:])
	return filepath.Join(base, "_tagged", h[:3], h[3:6], h+".wsp")
}

// Point is one slot of a whisper file.
type Point struct {
	T int64
	V *float64
}

// Fetch reads a series back from its whisper file with whisper-fetch; nil
// when carbon has not created it yet.
func (c *Carbon) Fetch(series string, from int64) []Point {
	c.t.Helper()
	path := c.WhisperPath(series)
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	out, err := exec.Command("whisper-fetch", "--json", "--from="+strconv.FormatInt(from, 10), path).Output()
	if err != nil {
		c.t.Fatalf("whisper-fetch %s: %v", path, err)
	}
	var r struct {
		Start, Step int64
		Values      []*float64
	}
	if err := json.Unmarshal(out, &r); err != nil {
		c.t.Fatalf("whisper-fetch: %v: %s", err, out)
	}
	pts := make([]Point, len(r.Values))
	for i, v := range r.Values {
		pts[i] = Point{r.Start + int64(i)*r.Step, v}
	}
	return pts
}

// Last is the newest value stored for series, if any.
func (c *Carbon) Last(series string) (float64, bool) {
	pts := c.Fetch(series, time.Now().Add(-10*time.Minute).Unix())
	for i := len(pts) - 1; i >= 0; i-- {
		if pts[i].V != nil {
			return *pts[i].V, true
		}
	}
	return 0, false
}

// Want waits until the newest value carbon stored for series passes ok.
func (c *Carbon) Want(what, series string, ok func(v float64) bool) {
	c.t.Helper()
	var last float64
	var have bool
	testutil.Eventually(c.t, what+" in carbon ("+series+")", func() bool {
		last, have = c.Last(series)
		return have && ok(last)
	})
	c.t.Logf("%s = %v", series, last)
}

// Stored counts the points stored for series.
func (c *Carbon) Stored(series string, from int64) int {
	n := 0
	for _, p := range c.Fetch(series, from) {
		if p.V != nil {
			n++
		}
	}
	return n
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
