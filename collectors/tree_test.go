package collectors

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const (
	v2Fixture = "testdata/linux-6.18-cgroup2-container"
	v1Fixture = "testdata/linux-6.18-cgroup1-hybrid"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// tree is a filesystem root assembled from fixtures in a temporary
// directory, laid out as the kernel shows it.
type tree struct {
	t    *testing.T
	root string
}

func newTree(t *testing.T) *tree {
	return &tree{t: t, root: t.TempDir()}
}

func (tr *tree) path(p string) string { return filepath.Join(tr.root, p) }

func (tr *tree) write(p, content string) {
	tr.t.Helper()
	full := tr.path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *tree) remove(p string) {
	tr.t.Helper()
	if err := os.Remove(tr.path(p)); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *tree) link(p, target string) {
	tr.t.Helper()
	full := tr.path(p)
	os.MkdirAll(filepath.Dir(full), 0o755)
	if err := os.Symlink(target, full); err != nil {
		tr.t.Fatal(err)
	}
}

// copyDir copies the regular files of fixture directory src (skipping
// the "_" notes) into dst.
func (tr *tree) copyDir(src, dst string) {
	tr.t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		tr.t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), "_") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			tr.t.Fatal(err)
		}
		tr.write(filepath.Join(dst, e.Name()), string(b))
	}
}

func fixture(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// proc lays out proc/self -> proc/PID and proc/net -> self/net, with
// the process's cgroup and mountinfo and the fixture's network files.
func (tr *tree) proc(pid, cgroup, mountinfo, netFixture string) {
	tr.link("proc/self", pid)
	tr.link("proc/net", "self/net")
	tr.write("proc/"+pid+"/cgroup", cgroup)
	tr.write("proc/"+pid+"/mountinfo", mountinfo)
	if netFixture != "" {
		tr.copyDir(netFixture, "proc/"+pid+"/net")
	}
}

// samples indexes what a collector emits by series: name;k=v;...
type samples map[string]Sample

func series(s Sample) string {
	var b strings.Builder
	b.WriteString(s.Name)
	for _, t := range s.Tags {
		b.WriteString(";" + t.Key + "=" + t.Value)
	}
	return b.String()
}

func collect(t *testing.T, c Collector) (samples, error) {
	t.Helper()
	out := samples{}
	err := c.Collect(context.Background(), func(s Sample) {
		k := series(s)
		if _, dup := out[k]; dup {
			t.Errorf("series %s emitted twice", k)
		}
		out[k] = s
	})
	return out, err
}

func (s samples) names() []string {
	var n []string
	for k := range s {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// want checks the value and kind of each series.
func (s samples) want(t *testing.T, kind Kind, values map[string]float64) {
	t.Helper()
	for k, v := range values {
		got, ok := s[k]
		if !ok {
			t.Errorf("%s: missing (have %v)", k, s.names())
			continue
		}
		if got.Value != v {
			t.Errorf("%s = %v, want %v", k, got.Value, v)
		}
		if got.Kind != kind {
			t.Errorf("%s is a %v, want a %v", k, got.Kind, kind)
		}
	}
}

func (s samples) absent(t *testing.T, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if v, ok := s[k]; ok {
			t.Errorf("%s = %v, want it absent", k, v.Value)
		}
	}
}
