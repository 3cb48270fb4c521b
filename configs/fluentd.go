package configs

import (
	"fmt"
	"math"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Fluentd configures forwarding of every program's lines to Fluentd or
// Fluent Bit over the Forward Protocol v1 (shippers/fluentd). The section is
// active when it names at least one address.
type Fluentd struct {
	// Address lists servers: tcp://host:port, tls://host:port or
	// unix:///path. The first that answers is used; the others are
	// failovers.
	Address Endpoints `toml:"address"`
	// Tag is a template: {app}, {program}, {source}, {host} and {version}
	// are replaced.
	Tag string `toml:"tag"`

	// SharedKey enables the HELO/PING/PONG handshake; Username and
	// Password add user authentication to it.
	SharedKey    string `toml:"shared_key"`
	Username     string `toml:"username"`
	Password     string `toml:"password"`
	SelfHostname string `toml:"self_hostname"` // sent in PING; default steward.host

	TLS FluentdTLS `toml:"tls"`

	// RequireAck sends each batch with the chunk option and resends it
	// until the server acknowledges it (at-least-once).
	RequireAck bool   `toml:"require_ack"`
	Compress   string `toml:"compress"` // none or gzip (CompressedPackedForward)
	// Fields are static fields added to every record.
	Fields map[string]string `toml:"fields"`

	BatchBytes    ByteSize `toml:"batch_bytes"`    // a batch is sent when this big...
	FlushInterval Duration `toml:"flush_interval"` // ...or this old
	// QueueBytes bounds the memory holding lines not yet sent; beyond it
	// batches go to the spool.
	QueueBytes ByteSize `toml:"queue_bytes"`
	// SpoolDir holds batches that did not fit in memory, and those left
	// at shutdown; a spool found at start-up is sent first.
	SpoolDir string `toml:"spool_dir"`
	// SpoolMaxBytes caps the spool; beyond it the oldest batches are
	// dropped and counted. 0 disables the spool.
	SpoolMaxBytes ByteSize `toml:"spool_max_bytes"`

	ConnectTimeout Duration `toml:"connect_timeout"`
	AckTimeout     Duration `toml:"ack_timeout"`
	RetryInitial   Duration `toml:"retry_initial"` // first reconnect delay; doubles
	RetryMax       Duration `toml:"retry_max"`     // cap of the delay
	// Heartbeat is none or udp (the spec's UDP heartbeat, answered by
	// Fluentd's in_forward, not by Fluent Bit).
	Heartbeat         string   `toml:"heartbeat"`
	HeartbeatInterval Duration `toml:"heartbeat_interval"`
}

// FluentdTLS configures tls:// addresses.
type FluentdTLS struct {
	CA                 string `toml:"ca"`   // PEM bundle; default the system roots
	Cert               string `toml:"cert"` // client certificate (PEM), with Key
	Key                string `toml:"key"`
	ServerName         string `toml:"server_name"` // default the address's host
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`
}

// ProgramLogs is a program's optional log handling, [programs.NAME.logs].
type ProgramLogs struct {
	// Tag overrides fluentd.tag for this program.
	Tag string `toml:"tag"`
	// ParseJSON merges the keys of lines that are JSON objects into the
	// record (the raw line stays in "log").
	ParseJSON bool `toml:"parse_json"`
	// MultilineStart is a regular expression matching the first line of a
	// record; lines that do not match are appended to the record before
	// (stack traces). Empty: every line is a record.
	MultilineStart string `toml:"multiline_start"`
	// MultilineTimeout sends a joined record when no line followed it for
	// this long.
	MultilineTimeout Duration `toml:"multiline_timeout"`
	// MultilineMaxBytes sends a joined record once it is this big.
	MultilineMaxBytes ByteSize `toml:"multiline_max_bytes"`
}

// Defaults of [fluentd] and [programs.NAME.logs].
const (
	DefaultFluentdTag            = "{app}.{program}"
	DefaultFluentdPort           = "24224"
	DefaultFluentdBatchBytes     = 128 << 10
	DefaultFluentdFlushInterval  = 500 * time.Millisecond
	DefaultFluentdQueueBytes     = 2 << 20
	DefaultFluentdSpoolDir       = "/var/lib/steward/spool"
	DefaultFluentdSpoolMaxBytes  = 256 << 20
	DefaultFluentdConnectTimeout = 5 * time.Second
	DefaultFluentdAckTimeout     = 30 * time.Second
	DefaultFluentdRetryInitial   = 500 * time.Millisecond
	DefaultFluentdRetryMax       = 30 * time.Second
	DefaultHeartbeatInterval     = 5 * time.Second
	DefaultMultilineTimeout      = time.Second
	DefaultMultilineMaxBytes     = 256 << 10
)

func (f *Fluentd) setDefaults() {
	f.Tag = DefaultFluentdTag
	f.RequireAck = true
	f.Compress = "none"
	f.BatchBytes = DefaultFluentdBatchBytes
	f.FlushInterval = Duration(DefaultFluentdFlushInterval)
	f.QueueBytes = DefaultFluentdQueueBytes
	f.SpoolDir = DefaultFluentdSpoolDir
	f.SpoolMaxBytes = DefaultFluentdSpoolMaxBytes
	f.ConnectTimeout = Duration(DefaultFluentdConnectTimeout)
	f.AckTimeout = Duration(DefaultFluentdAckTimeout)
	f.RetryInitial = Duration(DefaultFluentdRetryInitial)
	f.RetryMax = Duration(DefaultFluentdRetryMax)
	f.Heartbeat = "none"
	f.HeartbeatInterval = Duration(DefaultHeartbeatInterval)
}

func (l *ProgramLogs) setDefaults() {
	l.MultilineTimeout = Duration(DefaultMultilineTimeout)
	l.MultilineMaxBytes = DefaultMultilineMaxBytes
}

// Endpoint is one server address.
type Endpoint struct {
	Network string // tcp, tls or unix
	Address string // host:port, or the socket's path
}

func (e Endpoint) String() string { return e.Network + "://" + e.Address }

// Endpoints is a list of addresses, written as an array or as one
// comma-separated string (the form environment variables use).
type Endpoints []Endpoint

func (es *Endpoints) decodeValue(v any) error {
	var items []string
	switch x := v.(type) {
	case string:
		for part := range strings.SplitSeq(x, ",") {
			if part = strings.TrimSpace(part); part != "" {
				items = append(items, part)
			}
		}
	case []any:
		for _, item := range x {
			s, ok := item.(string)
			if !ok {
				return fmt.Errorf("expected address strings, got %s", typeName(item))
			}
			items = append(items, s)
		}
	default:
		return fmt.Errorf("expected an address or an array of addresses, got %s", typeName(v))
	}
	out := make(Endpoints, 0, len(items))
	for _, item := range items {
		e, err := ParseEndpoint(item)
		if err != nil {
			return err
		}
		out = append(out, e)
	}
	*es = out
	return nil
}

// ParseEndpoint reads tcp://host:port, tls://host:port, unix:///path or a
// bare host:port (TCP). The port defaults to 24224.
func ParseEndpoint(s string) (Endpoint, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "tcp", s
	}
	switch scheme {
	case "unix":
		if !strings.HasPrefix(rest, "/") {
			return Endpoint{}, fmt.Errorf("address %q: a unix socket needs an absolute path (unix:///path)", s)
		}
		return Endpoint{Network: "unix", Address: rest}, nil
	case "tcp", "tls":
		if rest == "" {
			return Endpoint{}, fmt.Errorf("address %q names no host", s)
		}
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			// No port given.
			host, port = strings.Trim(rest, "[]"), DefaultFluentdPort
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return Endpoint{}, fmt.Errorf("address %q: bad port %q", s, port)
		}
		if host == "" {
			return Endpoint{}, fmt.Errorf("address %q names no host", s)
		}
		return Endpoint{Network: scheme, Address: net.JoinHostPort(host, port)}, nil
	default:
		return Endpoint{}, fmt.Errorf("address %q: unknown scheme %q (tcp, tls or unix)", s, scheme)
	}
}

// ByteSize is a size in bytes, written as a number or with a unit: "512k",
// "8MiB", "1g". Units are powers of 1024, as in Fluentd.
type ByteSize int64

func (b *ByteSize) decodeValue(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return fmt.Errorf("size %d is negative", x)
		}
		*b = ByteSize(x)
		return nil
	case string:
		n, err := parseByteSize(x)
		if err != nil {
			return err
		}
		*b = ByteSize(n)
		return nil
	default:
		return fmt.Errorf("expected a size (a number of bytes, or e.g. \"8MiB\"), got %s", typeName(v))
	}
}

func parseByteSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.TrimSpace(t[i:])
	shift := map[string]uint{"": 0, "b": 0, "k": 10, "kb": 10, "kib": 10, "m": 20, "mb": 20, "mib": 20, "g": 30, "gb": 30, "gib": 30}
	sh, ok := shift[unit]
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || f < 0 || math.IsInf(f, 0) || f*float64(int64(1)<<sh) > math.MaxInt64/2 {
		return 0, fmt.Errorf("bad size %q (a number of bytes, or e.g. \"512k\", \"8MiB\", \"1g\")", s)
	}
	return int64(f * float64(int64(1)<<sh)), nil
}

// Tag template placeholders.
var fluentdTagFields = []string{"app", "program", "source", "host", "version"}

// CheckTagTemplate reports placeholders a tag template does not know.
func CheckTagTemplate(tmpl string) error {
	rest := tmpl
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return fmt.Errorf("tag %q: unclosed {", tmpl)
		}
		name := rest[i+1 : i+j]
		known := false
		for _, f := range fluentdTagFields {
			known = known || f == name
		}
		if !known {
			return fmt.Errorf("tag %q: unknown placeholder {%s} (known: {%s})", tmpl, name, strings.Join(fluentdTagFields, "}, {"))
		}
		rest = rest[i+j+1:]
	}
	if strings.TrimSpace(tmpl) == "" {
		return fmt.Errorf("tag is empty")
	}
	return nil
}

func deriveFluentd(cfg *Config) {
	f := cfg.Fluentd
	if f == nil {
		return
	}
	if f.SelfHostname == "" {
		f.SelfHostname = cfg.Steward.Host
	}
	if f.Compress == "" {
		f.Compress = "none"
	}
}

func validateFluentd(d *decoder, cfg *Config) {
	for _, name := range cfg.Order {
		l := cfg.Programs[name].Logs
		if l == nil {
			continue
		}
		key := join("programs", name) + ".logs"
		if l.Tag != "" {
			if err := CheckTagTemplate(l.Tag); err != nil {
				d.add("", key+".tag", "%v", err)
			}
		}
		if l.MultilineStart != "" {
			if _, err := regexp.Compile(l.MultilineStart); err != nil {
				d.add("", key+".multiline_start", "bad regular expression: %v", err)
			}
		}
		if l.MultilineTimeout <= 0 {
			d.add("", key+".multiline_timeout", "must be above zero")
		}
		if l.MultilineMaxBytes < 1024 {
			d.add("", key+".multiline_max_bytes", "must be at least 1024")
		}
	}
	f := cfg.Fluentd
	if f == nil {
		return
	}
	if len(f.Address) == 0 {
		d.add("", "fluentd.address", "is empty: name a server (tcp://host:24224, tls://host:24224, unix:///path), or remove [fluentd]")
	}
	if err := CheckTagTemplate(f.Tag); err != nil {
		d.add("", "fluentd.tag", "%v", err)
	}
	if (f.Username != "" || f.Password != "") && f.SharedKey == "" {
		d.add("", "fluentd.username", "user authentication is part of the shared-key handshake: set shared_key too")
	}
	d.oneOf("fluentd.compress", f.Compress, "none", "gzip")
	d.oneOf("fluentd.heartbeat", f.Heartbeat, "none", "udp")
	for _, k := range []struct {
		key  string
		path string
	}{{"fluentd.tls.ca", f.TLS.CA}, {"fluentd.tls.cert", f.TLS.Cert}, {"fluentd.tls.key", f.TLS.Key}} {
		if k.path == "" {
			continue
		}
		if _, err := os.Stat(k.path); err != nil {
			d.add("", k.key, "cannot read %q: %v", k.path, err)
		}
	}
	if (f.TLS.Cert == "") != (f.TLS.Key == "") {
		d.add("", "fluentd.tls.cert", "cert and key go together")
	}
	if f.BatchBytes < 1024 || f.BatchBytes > 4<<20 {
		d.add("", "fluentd.batch_bytes", "%d is outside 1KiB to 4MiB (Fluent Bit's forward input takes messages up to 6 MB)", f.BatchBytes)
	}
	if f.QueueBytes < f.BatchBytes {
		d.add("", "fluentd.queue_bytes", "%d is below batch_bytes %d", f.QueueBytes, f.BatchBytes)
	}
	if f.SpoolMaxBytes != 0 && f.SpoolMaxBytes < f.BatchBytes {
		d.add("", "fluentd.spool_max_bytes", "%d is below batch_bytes %d (0 disables the spool)", f.SpoolMaxBytes, f.BatchBytes)
	}
	for key, dur := range map[string]Duration{
		"fluentd.flush_interval": f.FlushInterval, "fluentd.connect_timeout": f.ConnectTimeout,
		"fluentd.ack_timeout": f.AckTimeout, "fluentd.retry_initial": f.RetryInitial,
		"fluentd.heartbeat_interval": f.HeartbeatInterval,
	} {
		if dur <= 0 {
			d.add("", key, "must be above zero")
		}
	}
	if f.RetryMax < f.RetryInitial {
		d.add("", "fluentd.retry_max", "%s is below retry_initial %s", f.RetryMax.D(), f.RetryInitial.D())
	}
	for name := range f.Fields {
		if name == "" {
			d.add("", "fluentd.fields", "empty field name")
		}
	}
}
