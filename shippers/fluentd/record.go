package fluentd

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/supervisor"
)

// identity is what every record says about where it comes from.
type identity struct {
	app, version, host, containerID, containerName string
	fields                                         map[string]string
}

// streamKey names one pipe of one program incarnation.
type streamKey struct {
	program string
	pid     int
	source  string
}

// stream is the encoding state of one pipe: its tag, the fields every one
// of its records carries, pre-encoded once, and its multiline joiner.
type stream struct {
	tag     string
	static  []byte // key/value pairs, msgpack
	nstatic int
	json    bool
	// Parts of a cut line, Docker's partial_* fields.
	partialID      string
	partialOrdinal int
	joiner         *joiner
	key            streamKey
	builder        *builder // of its tag, set by the shipper
}

// encoder turns log records into msgpack [time, record] entries.
type encoder struct {
	id       identity
	tag      string // template
	programs map[string]*configs.ProgramLogs
	streams  map[streamKey]*stream
	// joiners outlive incarnations: a program's next pid continues its
	// record only after the old one is flushed, which happens on the
	// change.
	joiners  map[streamKey]*joiner
	idPrefix [8]byte
	idCount  uint64
	scratch  []byte
	last     *stream // records come in runs from one pipe
}

// reserved reports the fields steward sets; parsed JSON and static fields
// do not override them.
func reserved(key string) bool {
	switch key {
	case "log", "source", "program", "app", "version", "host", "container_id", "container_name", "pid",
		"partial", "partial_message", "partial_id", "partial_ordinal", "partial_last":
		return true
	}
	return false
}

func (e *encoder) stream(r *supervisor.LogRecord) *stream {
	if l := e.last; l != nil && l.key.pid == r.PID && l.key.program == r.Program && l.key.source == r.Source {
		return l
	}
	k := streamKey{r.Program, r.PID, r.Source}
	if s := e.streams[k]; s != nil {
		e.last = s
		return s
	}
	if len(e.streams) > 4096 {
		// Many restarts: forget old incarnations rather than grow.
		clear(e.streams)
	}
	logs := e.programs[r.Program]
	tmpl := e.tag
	if logs != nil && logs.Tag != "" {
		tmpl = logs.Tag
	}
	s := &stream{tag: expandTag(tmpl, e.id, r.Program, r.Source), key: k}
	b := s.static
	add := func(k, v string) {
		b = msgp.AppendString(msgp.AppendString(b, k), v)
		s.nstatic++
	}
	add("source", r.Source)
	add("program", r.Program)
	add("app", e.id.app)
	add("version", e.id.version)
	add("host", e.id.host)
	if e.id.containerID != "" {
		add("container_id", e.id.containerID)
	}
	if e.id.containerName != "" {
		add("container_name", e.id.containerName)
	}
	b = msgp.AppendInt(msgp.AppendString(b, "pid"), r.PID)
	s.nstatic++
	for k, v := range e.id.fields {
		if !reserved(k) {
			add(k, v)
		}
	}
	s.static = b
	if logs != nil {
		s.json = logs.ParseJSON
		if logs.MultilineStart != "" {
			jk := streamKey{program: r.Program, source: r.Source}
			s.joiner = e.joiners[jk]
			if s.joiner == nil {
				s.joiner = newJoiner(logs)
				e.joiners[jk] = s.joiner
			}
		}
	}
	e.streams[k] = s
	e.last = s
	return s
}

func expandTag(tmpl string, id identity, program, source string) string {
	return strings.NewReplacer("{app}", id.app, "{program}", program, "{source}", source,
		"{host}", id.host, "{version}", id.version).Replace(tmpl)
}

// entry appends [time, record] for one line (or one part of a cut line) to
// b.
func (e *encoder) entry(b []byte, s *stream, t time.Time, text string, partial bool) []byte {
	b = msgp.AppendArrayHeader(b, 2)
	b = appendEventTime(b, t)
	n := 1 + s.nstatic
	cut := partial || s.partialOrdinal > 0
	if cut {
		n += 4
		if partial {
			n++
		}
	}
	var fields []byte
	if s.json {
		var nf int
		fields, nf = e.jsonFields(text)
		n += nf
	}
	b = msgp.AppendMapHeader(b, uint32(n))
	b = msgp.AppendString(b, "log")
	b = msgp.AppendString(b, text)
	b = append(b, s.static...)
	if cut {
		if s.partialOrdinal == 0 {
			s.partialID = e.newPartialID()
		}
		s.partialOrdinal++
		if partial {
			b = msgp.AppendBool(msgp.AppendString(b, "partial"), true)
		}
		b = msgp.AppendString(msgp.AppendString(b, "partial_message"), "true")
		b = msgp.AppendString(msgp.AppendString(b, "partial_id"), s.partialID)
		b = msgp.AppendString(msgp.AppendString(b, "partial_ordinal"), strconv.Itoa(s.partialOrdinal))
		b = msgp.AppendString(msgp.AppendString(b, "partial_last"), strconv.FormatBool(!partial))
		if !partial {
			s.partialOrdinal = 0
		}
	}
	return append(b, fields...)
}

// appendEventTime appends t as the forward protocol's EventTime: msgpack
// fixext 8 (0xd7) of extension type 0, seconds since the epoch and
// nanoseconds as big-endian 32-bit unsigned integers. Written by hand: the
// 8 bytes were all steward used of github.com/fluent/fluent-logger-golang,
// which linked its client, TLS dialer and msgp extension registry into the
// binary for them (its init ran at every start: 0.01 ms, 144 bytes; 0.1 MB
// of binary). fluent-logger-golang's EventTime stays as the tests' oracle
// (TestEventTimeOracle). Unlike its int32, the seconds are unsigned, as the
// protocol says, so they last until 2106.
func appendEventTime(b []byte, t time.Time) []byte {
	b = append(b, 0xd7, 0x00)
	b = binary.BigEndian.AppendUint32(b, uint32(t.Unix()))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

func (e *encoder) newPartialID() string {
	e.idCount++
	var id [16]byte
	copy(id[:8], e.idPrefix[:])
	binary.BigEndian.PutUint64(id[8:], e.idCount)
	return hex.EncodeToString(id[:])
}

// jsonFields encodes the keys of a line that is a JSON object, leaving out
// steward's own keys. A line that is not a JSON object adds nothing; its
// text is still in "log", so nothing is lost.
func (e *encoder) jsonFields(text string) ([]byte, int) {
	t := strings.TrimSpace(text)
	if len(t) < 2 || t[0] != '{' || t[len(t)-1] != '}' {
		return nil, 0
	}
	dec := json.NewDecoder(strings.NewReader(t))
	dec.UseNumber()
	var obj map[string]any
	if dec.Decode(&obj) != nil || dec.More() {
		return nil, 0
	}
	b := e.scratch[:0]
	n := 0
	for k, v := range obj {
		if reserved(k) {
			continue
		}
		b = msgp.AppendString(b, k)
		b = appendJSONValue(b, v)
		n++
	}
	e.scratch = b
	return b, n
}

func appendJSONValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return msgp.AppendNil(b)
	case bool:
		return msgp.AppendBool(b, x)
	case string:
		return msgp.AppendString(b, x)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return msgp.AppendInt64(b, i)
		}
		if f, err := x.Float64(); err == nil {
			return msgp.AppendFloat64(b, f)
		}
		return msgp.AppendString(b, x.String())
	case []any:
		b = msgp.AppendArrayHeader(b, uint32(len(x)))
		for _, item := range x {
			b = appendJSONValue(b, item)
		}
		return b
	case map[string]any:
		b = msgp.AppendMapHeader(b, uint32(len(x)))
		for k, item := range x {
			b = appendJSONValue(msgp.AppendString(b, k), item)
		}
		return b
	default:
		return msgp.AppendNil(b)
	}
}

// joiner joins the lines of one program's pipe into multiline records: a
// line matching start begins a record, others are appended to it.
type joiner struct {
	start    *regexp.Regexp
	timeout  time.Duration
	maxBytes int

	buf     bytes.Buffer
	pending bool
	first   time.Time // time of the record's first line
	last    time.Time // when a line last arrived
	stream  *stream
	midPart bool // the last piece was a partial part of a line
}

func newJoiner(l *configs.ProgramLogs) *joiner {
	return &joiner{
		start:    regexp.MustCompile(l.MultilineStart), // validated by configs
		timeout:  l.MultilineTimeout.D(),
		maxBytes: int(l.MultilineMaxBytes),
	}
}

// startsRecord reports whether text begins a new record, so the one held
// so far must be sent first. The rest of a cut line never does.
func (j *joiner) startsRecord(text string) bool {
	if !j.pending || j.midPart {
		return false
	}
	return j.start.MatchString(text) || j.buf.Len()+len(text) > j.maxBytes
}

// full reports whether the record reached its size bound.
func (j *joiner) full() bool { return j.buf.Len() >= j.maxBytes }

func (j *joiner) add(s *stream, t time.Time, text string, partial bool) {
	if !j.pending {
		j.pending, j.first, j.stream = true, t, s
	} else if !j.midPart {
		j.buf.WriteByte('\n')
	}
	j.buf.WriteString(text)
	j.midPart = partial
	j.last = time.Now()
}

func (j *joiner) deadline() time.Time { return j.last.Add(j.timeout) }

// take returns the joined record and empties the joiner. A joined record
// is never partial (the fourth result, for emit).
func (j *joiner) take() (s *stream, t time.Time, text string, partial bool) {
	s, t, text = j.stream, j.first, j.buf.String()
	j.buf.Reset()
	j.pending, j.midPart, j.stream = false, false, nil
	if j.buf.Cap() > 4*j.maxBytes {
		j.buf = bytes.Buffer{}
	}
	return s, t, text, false
}
