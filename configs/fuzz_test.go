package configs

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// fuzzSeeds are documents for the config fuzz targets: the shipped
// examples and small ones that reach every TOML rule parseDocument keeps.
func fuzzSeeds(f *testing.F) {
	files, _ := filepath.Glob("examples/*.toml")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"[programs.web]\ncommand = [\"web\"]\nmain = true\ngroups = [\n  \"daemon\",\n  7,\n]\n",
		"a.b.c = 1\na.b.d = 2\n[x]\ny = {z = 1, w.v = [1, 2.5, \"s\", true]}\n",
		"[[a]]\nx = 1\n[a.b]\ny = 2\n[[a]]\nx = 3\n",
		"[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n",
		"[a]\nb.c = 1\n[a.b.d]\ne = 2\n",
		"a = {b = 1}\n[a.c]\n",
		"a = []\n[[a]]\n",
		"[a]\n[a]\n",
		"k = 0x_ff\nl = 0o17\nm = 0b101\nn = -1_000\no = inf\np = -nan\nq = 1e300\nr = 1979-05-27T07:32:00Z\ns = 07:32:00\n",
		"[programs.\"a.b\"]\ncommand = ['x']\n",
		"[steward]\nshutdown_timeout = \"soon\"\n[programs.x]\nmain = true\ncommand = 7\ndepends_on = [\"x\"]\n",
	} {
		f.Add([]byte(s))
	}
}

// FuzzParseDocument compares parseDocument with go-toml's Unmarshal on
// any input: both accept the same documents into the same tree (dates
// aside: go-toml also checks their ranges, and no setting takes one), and
// neither panics nor hangs.
func FuzzParseDocument(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := parseDocument(data)
		var want map[string]any
		werr := toml.Unmarshal(data, &want)
		switch {
		case err != nil && werr != nil:
			return
		case err != nil:
			t.Fatalf("go-toml accepts what parseDocument refuses (%v):\n%q", err, data)
		case werr != nil:
			if !hasDate(doc.tree) {
				t.Fatalf("parseDocument accepts what go-toml refuses (%v):\n%q", werr, data)
			}
			return
		}
		if !sameTree(doc.tree, want) {
			t.Fatalf("trees differ for %q:\n got %#v\nwant %#v", data, doc.tree, want)
		}
	})
}

func hasDate(v any) bool {
	switch x := v.(type) {
	case dateTime:
		return true
	case map[string]any:
		for _, e := range x {
			if hasDate(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasDate(e) {
				return true
			}
		}
	}
	return false
}

func sameTree(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, v := range w {
			if !sameTree(g[k], v) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !sameTree(g[i], w[i]) {
				return false
			}
		}
		return true
	case float64:
		g, ok := got.(float64)
		return ok && (g == w || math.IsNaN(g) && math.IsNaN(w))
	case time.Time, toml.LocalDate, toml.LocalTime, toml.LocalDateTime:
		_, ok := got.(dateTime)
		return ok
	}
	return reflect.DeepEqual(got, want)
}

// FuzzLoad loads any bytes as a config file with STEWARD_* variables: no
// panic, no hang, and every problem names the file (with the line of its
// key when the key is written there) or the variable.
func FuzzLoad(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		const path = "fuzz.toml"
		cfg, err := loadData(Options{Path: path, DeferUsers: true,
			Environ: []string{"STEWARD_LOG_LEVEL=debug", "STEWARD_GRAPHITE_ADDR=127.0.0.1:2003"}}, data)
		if err == nil {
			if cfg.MainProgram() == nil && len(cfg.Programs) == 0 {
				t.Fatal("a config without programs was accepted")
			}
			return
		}
		cerr, ok := err.(*Error)
		if !ok {
			t.Fatalf("not a *configs.Error: %v", err)
		}
		for _, p := range cerr.Problems {
			switch {
			case strings.HasPrefix(p.Source, "STEWARD_"):
			case p.Source != path:
				t.Errorf("problem from %q: %s", p.Source, p)
			case p.Line == 0 && p.Key != "" && p.Key != "programs":
				t.Errorf("problem without a line: %s\n%q", p, data)
			}
		}
	})
}

// FuzzEnv sets every STEWARD_* variable to the fuzzed value over a valid
// file: no panic, and no problem is blamed on a line of the file.
func FuzzEnv(f *testing.F) {
	for _, s := range []string{"", "x", "1", "-1", "1.5", "true", "10s", "a,b", "127.0.0.1:1", "ws://h:1", "/abs", "\x00", "9999999999999999999999"} {
		f.Add(s)
	}
	file := []byte("[programs.web]\nmain = true\ncommand = [\"web\"]\n")
	f.Fuzz(func(t *testing.T, value string) {
		var environ []string
		for _, s := range EnvSettings {
			if !s.Secret {
				environ = append(environ, s.Name+"="+value)
			}
		}
		_, err := loadData(Options{Path: "env.toml", Environ: environ}, file)
		if err == nil {
			return
		}
		cerr, ok := err.(*Error)
		if !ok {
			t.Fatalf("not a *configs.Error: %v", err)
		}
		for _, p := range cerr.Problems {
			if p.Source == "env.toml" && p.Line > 0 {
				t.Errorf("a variable's problem is blamed on the file: %s", p)
			}
		}
	})
}
