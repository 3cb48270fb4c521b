package configs

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// parseDocument reads a TOML document into a generic tree (tables as
// map[string]any, arrays as []any, scalars as string, int64, float64, bool
// and dateTime) and the line of every dotted key in it (tables, keys, keys
// in inline tables, array elements: groups[1]), in one pass of go-toml's
// own parser.
//
// The tree is built here rather than by go-toml's Unmarshal because its
// duplicate-key tracker scans every key seen so far for each new one
// (go-toml v2.4.3; pelletier/go-toml#1100 is open): even with the lines
// found without Parser.Shape, a config of 8000 programs took a second to
// load and a 6 MB one 40 s. The TOML rules that
// tracker enforces (a key or a table defined once, inline tables closed,
// [[arrays]] of tables) are kept here with a map per table, so loading is
// linear in the size of the file; FuzzParseDocument compares the result
// with go-toml's Unmarshal.
func parseDocument(data []byte) (*document, error) {
	doc := &document{lines: map[string]int{}, counter: lineCounter{data: data, line: 1}, root: newTable(tableHeader)}
	doc.p.Reset(data)
	current := doc.root
	var currentKey string
	for doc.p.NextExpression() {
		expr := doc.p.Expression()
		var err error
		switch expr.Kind {
		case unstable.Table:
			current, currentKey, err = doc.header(expr.Key(), false)
		case unstable.ArrayTable:
			current, currentKey, err = doc.header(expr.Key(), true)
		case unstable.KeyValue:
			err = doc.keyValue(current, currentKey, expr, doc.lines)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := doc.p.Error(); err != nil {
		var pe *unstable.ParserError
		if errors.As(err, &pe) {
			return nil, doc.errorAt(pe.Highlight, "%s", pe.Message)
		}
		return nil, err
	}
	doc.tree = doc.root.export()
	return doc, nil
}

// dateTime is a TOML date, time or date-time, kept as written: no setting
// takes one.
type dateTime string

// syntaxError is a TOML document that does not parse, or breaks a rule.
type syntaxError struct {
	line int
	msg  string
}

func (e *syntaxError) Error() string { return e.msg }

type document struct {
	p       unstable.Parser
	counter lineCounter
	lines   map[string]int
	root    *table
	tree    map[string]any
}

// tableKind says how a table came to be, which decides what may add to it.
type tableKind int

const (
	tableImplicit tableKind = iota // a parent of a [header], not defined itself
	tableHeader                    // [header], or the root
	tableDotted                    // a.b = 1 made a
	tableInline                    // {...}, exported as a value at once
	tableArray                     // [[header]]: its elements are tables
)

type table struct {
	kind   tableKind
	keys   []string // in order of definition, for export
	values map[string]any
	tables map[string]*table
	elems  []*table // tableArray only
}

func newTable(kind tableKind) *table {
	return &table{kind: kind, values: map[string]any{}, tables: map[string]*table{}}
}

func (t *table) has(name string) bool {
	_, v := t.values[name]
	_, s := t.tables[name]
	return v || s
}

func (t *table) addTable(name string, kind tableKind) *table {
	c := newTable(kind)
	t.tables[name] = c
	t.keys = append(t.keys, name)
	return c
}

func (t *table) export() map[string]any {
	m := make(map[string]any, len(t.keys))
	for _, k := range t.keys {
		if v, ok := t.values[k]; ok {
			m[k] = v
			continue
		}
		c := t.tables[k]
		if c.kind == tableArray {
			list := make([]any, len(c.elems))
			for i, e := range c.elems {
				list[i] = e.export()
			}
			m[k] = list
			continue
		}
		m[k] = c.export()
	}
	return m
}

func (doc *document) errorAt(highlight []byte, format string, args ...any) error {
	line := 0
	if len(highlight) > 0 {
		line = doc.counter.lineAt(int(doc.p.Range(highlight).Offset))
	}
	return &syntaxError{line: line, msg: fmt.Sprintf(format, args...)}
}

func (doc *document) keyError(n *unstable.Node, format string, args ...any) error {
	return &syntaxError{line: doc.counter.lineAt(int(n.Raw.Offset)), msg: fmt.Sprintf(format, args...)}
}

// record notes the line of key, the first time it is seen.
func (doc *document) record(lines map[string]int, key string, n *unstable.Node) {
	if _, seen := lines[key]; !seen {
		lines[key] = doc.counter.lineAt(int(n.Raw.Offset))
	}
}

// header opens [a.b.c] or [[a.b.c]] and returns the table keys go to.
func (doc *document) header(it unstable.Iterator, array bool) (*table, string, error) {
	t, key := doc.root, ""
	for it.Next() {
		n := it.Node()
		name := string(n.Data)
		key = join(key, name)
		doc.record(doc.lines, key, n)
		last := it.IsLast()
		if _, isValue := t.values[name]; isValue {
			return nil, "", doc.keyError(n, "%s is already defined as a value", key)
		}
		c, exists := t.tables[name]
		switch {
		case !exists && last && array:
			c = t.addTable(name, tableArray)
		case !exists && last:
			c = t.addTable(name, tableHeader)
		case !exists:
			c = t.addTable(name, tableImplicit)
		case last && array:
			if c.kind != tableArray {
				return nil, "", doc.keyError(n, "%s is already defined as a table, not an array of tables", key)
			}
		case last:
			if c.kind != tableImplicit {
				return nil, "", doc.keyError(n, "table %s is already defined", key)
			}
			c.kind = tableHeader
		case c.kind == tableInline:
			return nil, "", doc.keyError(n, "%s is an inline table, which cannot be extended", key)
		}
		if c.kind == tableArray {
			if last {
				c.elems = append(c.elems, newTable(tableHeader))
			}
			// [a.b] after [[a]] goes into the last element of a.
			key += "[" + strconv.Itoa(len(c.elems)-1) + "]"
			if _, seen := doc.lines[key]; !seen {
				doc.lines[key] = doc.lines[strings.TrimSuffix(key, "["+strconv.Itoa(len(c.elems)-1)+"]")]
			}
			c = c.elems[len(c.elems)-1]
		}
		t = c
	}
	return t, key, nil
}

// keyValue sets a.b.c = value in t, whose key is prefix.
func (doc *document) keyValue(t *table, prefix string, kv *unstable.Node, lines map[string]int) error {
	it := kv.Key()
	key := prefix
	for it.Next() {
		n := it.Node()
		name := string(n.Data)
		key = join(key, name)
		doc.record(lines, key, n)
		if it.IsLast() {
			if t.has(name) {
				return doc.keyError(n, "key %s is already defined", key)
			}
			v, err := doc.value(key, kv.Value(), lines)
			if err != nil {
				return err
			}
			t.values[name] = v
			t.keys = append(t.keys, name)
			return nil
		}
		if _, isValue := t.values[name]; isValue {
			return doc.keyError(n, "%s is already defined as a value", key)
		}
		c, exists := t.tables[name]
		switch {
		case !exists:
			c = t.addTable(name, tableDotted)
		case c.kind != tableDotted:
			return doc.keyError(n, "table %s is already defined; dotted keys cannot add to it", key)
		}
		t = c
	}
	return nil
}

// value converts a value node; key is where it is, for the lines of its
// elements.
func (doc *document) value(key string, v *unstable.Node, lines map[string]int) (any, error) {
	switch v.Kind {
	case unstable.String:
		return string(v.Data), nil
	case unstable.Bool:
		return v.Data[0] == 't', nil
	case unstable.Integer:
		n, err := parseTOMLInt(v.Data)
		if err != nil {
			return nil, doc.keyError(v, "%v", err)
		}
		return n, nil
	case unstable.Float:
		f, err := parseTOMLFloat(v.Data)
		if err != nil {
			return nil, doc.keyError(v, "%v", err)
		}
		return f, nil
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return dateTime(v.Data), nil
	case unstable.InlineTable:
		t := newTable(tableInline)
		it := v.Children()
		for it.Next() {
			if n := it.Node(); n.Kind == unstable.KeyValue {
				if err := doc.keyValue(t, key, n, lines); err != nil {
					return nil, err
				}
			}
		}
		return t.export(), nil
	case unstable.Array:
		list := []any{}
		it := v.Children()
		for it.Next() {
			n := it.Node()
			if n.Kind == unstable.Comment {
				continue
			}
			elem := key + "[" + strconv.Itoa(len(list)) + "]"
			// Arrays carry no position of their own: a nested one is
			// placed at the line of its key.
			if n.Raw.Length > 0 {
				doc.record(lines, elem, n)
			} else if _, seen := lines[elem]; !seen {
				lines[elem] = lines[key]
			}
			x, err := doc.value(elem, n, lines)
			if err != nil {
				return nil, err
			}
			list = append(list, x)
		}
		return list, nil
	}
	return nil, doc.keyError(v, "unexpected %s", v.Kind)
}

// parseTOMLInt reads an integer the parser has checked the form of:
// decimal with an optional sign, or 0x, 0o, 0b; underscores between digits.
func parseTOMLInt(b []byte) (int64, error) {
	s := strings.ReplaceAll(string(b), "_", "")
	base := 10
	if len(s) > 2 && s[0] == '0' {
		switch s[1] {
		case 'x':
			base = 16
		case 'o':
			base = 8
		case 'b':
			base = 2
		}
		if base != 10 {
			s = s[2:]
		}
	}
	n, err := strconv.ParseInt(s, base, 64)
	if err != nil {
		return 0, fmt.Errorf("integer %s does not fit in 64 bits", b)
	}
	return n, nil
}

// parseTOMLFloat reads a float the parser has checked the form of.
func parseTOMLFloat(b []byte) (float64, error) {
	s := strings.ReplaceAll(string(b), "_", "")
	switch strings.TrimLeft(s, "+-") {
	case "inf":
		if s[0] == '-' {
			return math.Inf(-1), nil
		}
		return math.Inf(1), nil
	case "nan":
		return math.NaN(), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("float %s is out of range", b)
	}
	return f, nil
}

// lineCounter turns byte offsets into line numbers by counting newlines
// from the last offset asked, so a document is scanned once: keys come in
// the order they are written. go-toml's Parser.Shape counts from the start
// of the document at every call, which made loading quadratic in the
// number of keys (8k keys: 0.73 s; 10 MB: not done after 10 minutes).
type lineCounter struct {
	data      []byte
	pos, line int
	// scanned counts the bytes examined, for the test that keeps this
	// linear.
	scanned int
}

func (c *lineCounter) lineAt(offset int) int {
	offset = min(offset, len(c.data))
	if offset < c.pos {
		// Never in document order; correct anyway.
		c.pos, c.line = 0, 1
	}
	c.line += bytes.Count(c.data[c.pos:offset], []byte{'\n'})
	c.scanned += offset - c.pos
	c.pos = offset
	return c.line
}
