package configs

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/stewardhq/steward/internal/suggest"
)

// Problem is one thing wrong with the configuration.
type Problem struct {
	// Source is the file, the STEWARD_* variable the value came from, or
	// "command line".
	Source  string
	Line    int    // 0 when unknown or not from a file
	Key     string // dotted key, e.g. programs.web.stop_timeout
	Message string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Source)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	if p.Key != "" {
		b.WriteString(": " + p.Key)
	}
	b.WriteString(": " + p.Message)
	return b.String()
}

// Error lists every problem found; Load returns it when there is any.
type Error struct {
	Problems []Problem
	// Warnings are as Config.Warnings, found beside the problems.
	Warnings []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "configs: " + strings.Join(lines, "\n")
}

// Options says where the configuration comes from.
type Options struct {
	// Path of the TOML file; empty for none.
	Path string
	// Environ is the environment (os.Environ()) read for STEWARD_* settings.
	Environ []string
	// Command, from "steward -- CMD ARGS", is the main program: it replaces
	// the command of the program marked main, or is added as a new program.
	Command []string
	// DeferUsers makes users and groups unknown on this host warnings
	// (Config.Warnings) rather than problems, for `steward validate` on a
	// host that is not the image the config runs in. Such a config has no
	// credentials and is not run.
	DeferUsers bool
}

// Load reads, overrides, decodes and validates the configuration. A returned
// *Error lists every problem, each naming its file, line and key, or its
// STEWARD_* variable.
func Load(opts Options) (*Config, error) {
	var data []byte
	if opts.Path != "" {
		var err error
		if data, err = os.ReadFile(opts.Path); err != nil {
			return nil, &Error{Problems: []Problem{{Source: opts.Path, Message: fmt.Sprintf("cannot read: %v", errors.Unwrap(err))}}}
		}
	}
	return loadData(opts, data)
}

// loadData is Load on the file's content, read already.
func loadData(opts Options, data []byte) (*Config, error) {
	d := &decoder{source: "command line", undecoded: map[string]bool{}, deferUsers: opts.DeferUsers}
	tree := map[string]any{}
	if opts.Path != "" {
		d.source = opts.Path
		doc, err := parseDocument(data)
		if err != nil {
			return nil, &Error{Problems: []Problem{syntaxProblem(opts.Path, err)}}
		}
		tree, d.lines = doc.tree, doc.lines
	}
	var envProblems []Problem
	envProblems, d.fromEnv = applyEnv(tree, opts.Environ)
	d.problems = append(d.problems, envProblems...)

	cfg := newConfig(opts.Path)
	d.decode("", tree, reflect.ValueOf(cfg).Elem())
	if cfg.Programs == nil {
		cfg.Programs = map[string]*Program{}
	}
	for name, p := range cfg.Programs {
		p.Name = name
	}
	cfg.Order = d.programOrder(cfg.Programs)
	if len(opts.Command) > 0 {
		d.addCommand(cfg, opts.Command)
	}
	// Fields that failed to decode keep their defaults, so the semantic
	// checks still run and the user sees every problem at once.
	d.validating = true
	derive(cfg)
	d.validate(cfg)
	d.resolve(cfg)
	d.sort(d.warnings)
	if len(d.problems) > 0 {
		d.sort(d.problems)
		return nil, &Error{Problems: d.problems, Warnings: d.warnings}
	}
	cfg.Warnings = d.warnings
	return cfg, nil
}

// sort puts the file's problems first, by line, then the environment's.
func (d *decoder) sort(problems []Problem) {
	sort.SliceStable(problems, func(i, j int) bool {
		a, b := problems[i], problems[j]
		if a.Source != b.Source {
			return a.Source == d.source
		}
		return a.Line < b.Line
	})
}

func syntaxProblem(path string, err error) Problem {
	var se *syntaxError
	if errors.As(err, &se) {
		return Problem{Source: path, Line: se.line, Message: "TOML syntax: " + se.msg}
	}
	return Problem{Source: path, Message: "TOML: " + err.Error()}
}

// addCommand makes argv the main program.
func (d *decoder) addCommand(cfg *Config, argv []string) {
	if p := cfg.MainProgram(); p != nil {
		p.Command = argv
		return
	}
	name := programName(argv[0])
	if _, taken := cfg.Programs[name]; taken || name == "" {
		name = "main"
	}
	if _, taken := cfg.Programs[name]; taken {
		d.add("", "programs."+name, "a program named %q exists; mark it main = true to run the command line in its place", name)
		return
	}
	p := &Program{Name: name, Command: argv, Main: true}
	p.setDefaults()
	cfg.Programs[name] = p
	cfg.Order = append(cfg.Order, name)
}

// programName derives a program name from a command: its base name with
// characters outside [A-Za-z0-9_-] replaced.
func programName(cmd string) string {
	base := filepath.Base(cmd)
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, base)
}

// decoder maps the generic TOML tree onto the typed config. It is written
// here rather than taken from go-toml's own Unmarshal because that stops at
// the first type error and reports no position for semantic errors, while
// steward must list every problem with its line before anything starts.
type decoder struct {
	source string
	lines  map[string]int // dotted key -> line in the file
	// fromEnv names the STEWARD_* variable that set a key.
	fromEnv    map[string]string
	problems   []Problem
	warnings   []Problem
	undecoded  map[string]bool // keys that failed to decode
	validating bool
	deferUsers bool
}

// envValue is a value set by an environment variable: always a string,
// converted to the target's type.
type envValue struct {
	name, value string
}

// add records a problem with key. env names the variable whose value is
// wrong, when known; otherwise a key some STEWARD_* variable set is blamed
// on that variable, and any other on its line in the file.
func (d *decoder) add(env, key, format string, args ...any) {
	if d.validating && d.undecoded[key] {
		return // a key that failed to decode would only repeat itself
	}
	if !d.validating {
		d.undecoded[key] = true
	}
	d.problems = append(d.problems, d.problem(env, key, format, args...))
}

func (d *decoder) problem(env, key, format string, args ...any) Problem {
	p := Problem{Source: d.source, Key: key, Message: fmt.Sprintf(format, args...)}
	if env == "" {
		env = d.fromEnv[trimIndex(key)]
	}
	if env != "" {
		p.Source = env
	} else {
		p.Line = d.line(key)
	}
	return p
}

// trimIndex drops the element indexes that end a key: groups[0] -> groups.
func trimIndex(key string) string {
	for strings.HasSuffix(key, "]") {
		i := strings.LastIndexByte(key, '[')
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return key
}

// line finds the line of key, or of its closest enclosing array or table.
func (d *decoder) line(key string) int {
	for key != "" {
		if l, ok := d.lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	if strings.ContainsAny(key, ". ") {
		key = strconv.Quote(key)
	}
	return path + "." + key
}

var valueDecoderType = reflect.TypeFor[valueDecoder]()

func (d *decoder) decode(path string, v any, rv reflect.Value) {
	env := ""
	if ev, ok := v.(envValue); ok {
		env = ev.name
		v = ev.value
	}
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			rv.Set(reflect.New(rv.Type().Elem()))
			if df, ok := rv.Interface().(defaulter); ok {
				df.setDefaults()
			}
		}
		if env != "" {
			v = envValue{env, v.(string)}
		}
		d.decode(path, v, rv.Elem())
		return
	}
	if rv.CanAddr() && rv.Addr().Type().Implements(valueDecoderType) {
		if err := rv.Addr().Interface().(valueDecoder).decodeValue(v); err != nil {
			d.add(env, path, "%v", err)
		}
		return
	}
	if env != "" {
		d.decodeEnv(path, env, v.(string), rv)
		return
	}
	switch rv.Kind() {
	case reflect.Struct:
		table, ok := v.(map[string]any)
		if !ok {
			d.add("", path, "expected a table, got %s", typeName(v))
			return
		}
		fields := tomlFields(rv.Type())
		keys := slices.Sorted(maps.Keys(table))
		for _, k := range keys {
			idx, ok := fields[k]
			if !ok {
				d.add("", join(path, k), "unknown key%s", didYouMean(k, fields))
				continue
			}
			d.decode(join(path, k), table[k], rv.Field(idx))
		}
	case reflect.Map:
		table, ok := v.(map[string]any)
		if !ok {
			d.add("", path, "expected a table, got %s", typeName(v))
			return
		}
		if rv.IsNil() {
			rv.Set(reflect.MakeMap(rv.Type()))
		}
		for _, k := range slices.Sorted(maps.Keys(table)) {
			elem := reflect.New(rv.Type().Elem()).Elem()
			if elem.Kind() == reflect.Pointer {
				elem.Set(reflect.New(elem.Type().Elem()))
				if df, ok := elem.Interface().(defaulter); ok {
					df.setDefaults()
				}
			}
			d.decode(join(path, k), table[k], elem)
			rv.SetMapIndex(reflect.ValueOf(k), elem)
		}
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			d.add("", path, "expected an array, got %s", typeName(v))
			return
		}
		out := reflect.MakeSlice(rv.Type(), len(list), len(list))
		before := len(d.problems)
		for i, item := range list {
			d.decode(path+"["+strconv.Itoa(i)+"]", item, out.Index(i))
		}
		if len(d.problems) > before {
			// The checks of the whole array would see the zero values
			// left by the elements that failed (unknown group "").
			d.undecoded[path] = true
		}
		rv.Set(out)
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			d.add("", path, "expected a string, got %s", typeName(v))
			return
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			d.add("", path, "expected true or false, got %s", typeName(v))
			return
		}
		rv.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, ok := v.(int64)
		if !ok {
			d.add("", path, "expected an integer, got %s", typeName(v))
			return
		}
		if rv.OverflowInt(n) {
			d.add("", path, "%d is out of range", n)
			return
		}
		rv.SetInt(n)
	case reflect.Float64:
		switch n := v.(type) {
		case float64:
			rv.SetFloat(n)
		case int64:
			rv.SetFloat(float64(n))
		default:
			d.add("", path, "expected a number, got %s", typeName(v))
		}
	default:
		panic(fmt.Sprintf("configs: no decoding for %s at %s", rv.Type(), path))
	}
}

// decodeEnv converts an environment variable's string to rv's type. Lists
// are comma-separated.
func (d *decoder) decodeEnv(path, env, s string, rv reflect.Value) {
	var err error
	switch rv.Kind() {
	case reflect.String:
		rv.SetString(s)
	case reflect.Bool:
		var b bool
		if b, err = strconv.ParseBool(s); err == nil {
			rv.SetBool(b)
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		var n int64
		if n, err = strconv.ParseInt(s, 10, rv.Type().Bits()); err == nil {
			rv.SetInt(n)
		}
	case reflect.Float64:
		var f float64
		if f, err = strconv.ParseFloat(s, 64); err == nil {
			rv.SetFloat(f)
		}
	case reflect.Slice:
		var parts []string
		for part := range strings.SplitSeq(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				parts = append(parts, part)
			}
		}
		out := reflect.MakeSlice(rv.Type(), len(parts), len(parts))
		for i, part := range parts {
			d.decode(path, envValue{env, part}, out.Index(i))
		}
		rv.Set(out)
	default:
		err = fmt.Errorf("cannot be set from the environment")
	}
	if err != nil {
		d.add(env, path, "bad value %q for %s", s, rv.Kind())
	}
}

func tomlFields(t reflect.Type) map[string]int {
	fields := map[string]int{}
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("toml")
		if tag != "" && tag != "-" {
			fields[tag] = i
		}
	}
	return fields
}

// didYouMean names the closest known key when one is near enough to be a
// typo.
func didYouMean(key string, fields map[string]int) string {
	best := suggest.Closest(key, slices.Collect(maps.Keys(fields)), 2)
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// programOrder lists programs in the order the file declares them.
func (d *decoder) programOrder(programs map[string]*Program) []string {
	names := slices.Sorted(maps.Keys(programs))
	sort.SliceStable(names, func(i, j int) bool {
		return d.lines[join("programs", names[i])] < d.lines[join("programs", names[j])]
	})
	return names
}
