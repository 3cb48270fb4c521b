// Package carbontest runs a real carbon-cache (Debian's graphite-carbon)
// on loopback for tests, with its own config and whisper storage in a
// temporary directory, optionally with a real graphite-web (Debian's
// graphite-web) and its /render API, and reads what was stored back with
// whisper-fetch (Debian's python3-whisper). It is linked only into tests:
// the cmd/steward integration tests and the e2e tests share it.
package carbontest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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

// Carbon is a real carbon-cache (Debian's graphite-carbon) on loopback,
// with its own config and whisper storage in a temporary directory.
type Carbon struct {
	t    testing.TB
	dir  string
	Addr string // plaintext line receiver, TCP and UDP, on 127.0.0.1
	cmd  *exec.Cmd
	done chan struct{}
	out  *testutil.LockedBuffer
	// web is graphite-web's address when the carbon has one (startGraphite).
	Web string
}

// Start writes a config on free loopback ports and starts
// carbon-cache in the foreground. Retention is one point per second for
// an hour, so a 1 s interval maps each round to its own slot.
func Start(t testing.TB) *Carbon {
	t.Helper()
	return StartIn(t, t.TempDir(), "", testutil.FreeAddr(t))
}

// StartIn starts carbon storing under dir; with web set
// (graphite-web's address) it registers tagged series in graphite-web's
// tag database, and answers graphite-web's queries for points not yet
// written on query.
func StartIn(t testing.TB, dir, web, query string) *Carbon {
	t.Helper()
	c := &Carbon{t: t, dir: dir, Addr: testutil.FreeAddr(t), Web: web}
	tags := "False"
	if web != "" {
		tags = "True\nGRAPHITE_URL = http://" + web
	}
	_, linePort, _ := net.SplitHostPort(c.Addr)
	_, picklePort, _ := net.SplitHostPort(testutil.FreeAddr(t))
	_, queryPort, _ := net.SplitHostPort(query)
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
# Without graphite-web, no tag database (it is graphite-web's): carbon
# still stores tagged series, under _tagged/ (see WhisperPath).
ENABLE_TAGS = %[5]s
TAG_HASH_FILENAMES = True
LOG_CREATES = True
LOG_UPDATES = False
`, c.dir, linePort, picklePort, queryPort, tags)
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

// stop ends carbon as an init system would (TERM) and waits for it.
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
	slices.Sort(tags)
	return name + ";" + strings.Join(tags, ";")
}

// WhisperPath is where carbon 1.1 stores a series. Tagged series go
// under _tagged/, in folders named by the first six hex digits of the
// sha256 of the normalised series, in a file named by the whole hash
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

// Fetch reads a series back from its whisper file with whisper-fetch
// (Debian's python3-whisper); nil when carbon has not created it yet.
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

// StartGraphite runs graphite-web (Debian's graphite-web, Django's
// runserver) on loopback with its settings, tag database and storage in a
// temporary directory, and a carbon that fills them: series are then read
// back as a Grafana would, through graphite-web's /render API.
func StartGraphite(t testing.TB) *Carbon {
	t.Helper()
	dir := t.TempDir()
	web, query := testutil.FreeAddr(t), testutil.FreeAddr(t)
	for _, d := range []string{"py", "whisper", "log/webapp"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	settings := fmt.Sprintf(`STORAGE_DIR = %[1]q
WHISPER_DIR = %[1]q + '/whisper'
STANDARD_DIRS = [WHISPER_DIR]
LOG_DIR = %[1]q + '/log/webapp'
INDEX_FILE = %[1]q + '/index'
CONF_DIR = %[1]q
LOG_ROTATION = False
SECRET_KEY = 'steward-test'
TIME_ZONE = 'UTC'
DEFAULT_XFILES_FACTOR = 0
TAGDB = 'graphite.tags.localdatabase.LocalDatabaseTagDB'
DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': %[1]q + '/graphite.db'}}
CARBONLINK_HOSTS = [%[2]q]
`, dir, query)
	os.WriteFile(filepath.Join(dir, "py", "steward_test_settings.py"), []byte(settings), 0o644)
	env := append(os.Environ(), "PYTHONPATH="+filepath.Join(dir, "py"),
		"GRAPHITE_SETTINGS_MODULE=steward_test_settings", "DJANGO_SETTINGS_MODULE=graphite.settings")
	migrate := exec.Command("/usr/bin/python3", "-m", "django", "migrate", "--noinput")
	migrate.Env = env
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("graphite-web (Debian package graphite-web): migrate: %v\n%s", err, out)
	}
	out := &testutil.LockedBuffer{}
	cmd := exec.Command("/usr/bin/python3", "-m", "django", "runserver", web, "--noreload")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		<-done
		if t.Failed() {
			t.Logf("graphite-web output:\n%s", out.String())
		}
	})
	testutil.Eventually(t, "graphite-web answering on "+web, func() bool {
		select {
		case <-done:
			t.Fatalf("graphite-web exited:\n%s", out.String())
		default:
		}
		resp, err := http.Get("http://" + web + "/render?format=json&target=foo")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return StartIn(t, dir, web, query)
}

// Render asks graphite-web for target (a seriesByTag query, say) over the
// last ten minutes: each series' name and its newest value.
func (c *Carbon) Render(target string) map[string]float64 {
	c.t.Helper()
	q := url.Values{"target": {target}, "format": {"json"}, "from": {"-10min"}}
	resp, err := http.Get("http://" + c.Web + "/render?" + q.Encode())
	if err != nil {
		c.t.Fatalf("graphite-web: %v", err)
	}
	defer resp.Body.Close()
	var series []struct {
		Target     string
		Datapoints [][2]*float64
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &series); err != nil {
		c.t.Fatalf("graphite-web: %v: %s", err, b)
	}
	out := map[string]float64{}
	for _, s := range series {
		for i := len(s.Datapoints) - 1; i >= 0; i-- {
			if v := s.Datapoints[i][0]; v != nil {
				out[s.Target] = *v
				break
			}
		}
	}
	return out
}

// WantRendered waits until graphite-web answers target with one series
// whose newest value passes ok.
func (c *Carbon) WantRendered(what, target string, ok func(v float64) bool) {
	c.t.Helper()
	var got map[string]float64
	testutil.Eventually(c.t, what+" from graphite-web ("+target+")", func() bool {
		got = c.Render(target)
		for _, v := range got {
			if ok(v) {
				return len(got) == 1
			}
		}
		time.Sleep(100 * time.Millisecond) // pacing: each query is a Django request
		return false
	})
	c.t.Logf("graphite-web: %s = %v", target, got)
}
