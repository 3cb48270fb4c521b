package configs

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// valueDecoder is implemented by config value types that parse themselves
// from a TOML scalar (string, int64, float64, bool) or from the string of an
// environment variable.
type valueDecoder interface {
	decodeValue(v any) error
}

// Duration is a time.Duration written as a Go duration string ("1m30s") or
// as a number of seconds.
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d *Duration) decodeValue(v any) error {
	switch x := v.(type) {
	case string:
		if n, err := strconv.ParseFloat(x, 64); err == nil {
			return d.decodeValue(n)
		}
		parsed, err := time.ParseDuration(x)
		if err != nil {
			return fmt.Errorf("bad duration %q (use e.g. \"500ms\", \"10s\", \"1m30s\", or a number of seconds)", x)
		}
		if parsed < 0 {
			return fmt.Errorf("duration %q is negative", x)
		}
		*d = Duration(parsed)
	case int64:
		if x < 0 || x > math.MaxInt64/int64(time.Second) {
			return fmt.Errorf("duration %d s is out of range", x)
		}
		*d = Duration(time.Duration(x) * time.Second)
	case float64:
		if x < 0 || x > float64(math.MaxInt64/int64(time.Second)) || math.IsNaN(x) {
			return fmt.Errorf("duration %v s is out of range", x)
		}
		*d = Duration(x * float64(time.Second))
	default:
		return fmt.Errorf("expected a duration, got %s", typeName(v))
	}
	return nil
}

// Signal is a signal written as "TERM", "SIGTERM" or a number.
type Signal syscall.Signal

// S returns the signal as a syscall.Signal.
func (s Signal) S() syscall.Signal { return syscall.Signal(s) }

func (s Signal) String() string {
	if s == 0 {
		return ""
	}
	return SignalName(syscall.Signal(s))
}

func (s *Signal) decodeValue(v any) error {
	sig, err := ParseSignal(v)
	if err != nil {
		return err
	}
	*s = Signal(sig)
	return nil
}

// ParseSignal reads a signal name (with or without SIG, any case) or number.
func ParseSignal(v any) (syscall.Signal, error) {
	switch x := v.(type) {
	case int64:
		if x <= 0 || x > 64 {
			return 0, fmt.Errorf("signal number %d is out of range 1-64", x)
		}
		return syscall.Signal(x), nil
	case string:
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return ParseSignal(n)
		}
		name := strings.ToUpper(strings.TrimSpace(x))
		if !strings.HasPrefix(name, "SIG") {
			name = "SIG" + name
		}
		if sig := signalByName(name); sig != 0 {
			return sig, nil
		}
		return 0, fmt.Errorf("unknown signal %q", x)
	default:
		return 0, fmt.Errorf("expected a signal name or number, got %s", typeName(v))
	}
}

// SignalRewrite is the target of a signal rewrite: a signal, or Drop.
type SignalRewrite struct {
	Signal syscall.Signal
	Drop   bool
}

func (r *SignalRewrite) decodeValue(v any) error {
	if s, ok := v.(string); ok && (strings.EqualFold(s, "drop") || s == "") {
		*r = SignalRewrite{Drop: true}
		return nil
	}
	sig, err := ParseSignal(v)
	if err != nil {
		return fmt.Errorf("%w (or \"drop\")", err)
	}
	*r = SignalRewrite{Signal: sig}
	return nil
}

// Umask is a file mode creation mask written in octal ("022" or "0o022").
type Umask uint32

func (u *Umask) decodeValue(v any) error {
	s, ok := v.(string)
	if !ok {
		// An unquoted 022 in TOML would be the decimal 22: ask for a string.
		return fmt.Errorf("expected an octal string such as \"022\", got %s", typeName(v))
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O"), 8, 32)
	if err != nil || n > 0o777 {
		return fmt.Errorf("bad umask %q (octal, 000-777)", s)
	}
	*u = Umask(n)
	return nil
}

// Rlimit is a resource limit: a number (soft and hard), "soft:hard", or
// "unlimited".
type Rlimit struct {
	Soft, Hard uint64
}

// Unlimited is RLIM_INFINITY.
const Unlimited = math.MaxUint64

func (r *Rlimit) decodeValue(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return fmt.Errorf("limit %d is negative", x)
		}
		*r = Rlimit{uint64(x), uint64(x)}
		return nil
	case string:
		soft, hard, both := strings.Cut(x, ":")
		s, err := parseLimit(soft)
		if err != nil {
			return err
		}
		h := s
		if both {
			if h, err = parseLimit(hard); err != nil {
				return err
			}
		}
		if s > h {
			return fmt.Errorf("soft limit %s is above the hard limit %s", soft, hard)
		}
		*r = Rlimit{s, h}
		return nil
	default:
		return fmt.Errorf("expected a number, \"soft:hard\" or \"unlimited\", got %s", typeName(v))
	}
}

func parseLimit(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if s == "unlimited" || s == "infinity" {
		return Unlimited, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad limit %q (a number or \"unlimited\")", s)
	}
	return n, nil
}

// RlimitResources maps the names accepted under rlimits to resources.
var RlimitResources = map[string]int{
	"as":         unix.RLIMIT_AS,
	"core":       unix.RLIMIT_CORE,
	"cpu":        unix.RLIMIT_CPU,
	"data":       unix.RLIMIT_DATA,
	"fsize":      unix.RLIMIT_FSIZE,
	"locks":      unix.RLIMIT_LOCKS,
	"memlock":    unix.RLIMIT_MEMLOCK,
	"msgqueue":   unix.RLIMIT_MSGQUEUE,
	"nice":       unix.RLIMIT_NICE,
	"nofile":     unix.RLIMIT_NOFILE,
	"nproc":      unix.RLIMIT_NPROC,
	"rss":        unix.RLIMIT_RSS,
	"rtprio":     unix.RLIMIT_RTPRIO,
	"sigpending": unix.RLIMIT_SIGPENDING,
	"stack":      unix.RLIMIT_STACK,
}

// Dependency conditions.
const (
	// CondStarted: the dependency's process is running.
	CondStarted = "started"
	// CondReady: its readiness probe passed (or, without one, it ran
	// start_secs).
	CondReady = "ready"
	// CondCompleted: the oneshot exited successfully.
	CondCompleted = "completed"
)

// Dependency is "name" or "name:condition". Without a condition a oneshot
// must have completed and a service with a readiness probe must be ready;
// other services must have started.
type Dependency struct {
	Name      string
	Condition string // empty until validation fills the default
}

func (d *Dependency) decodeValue(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("expected \"name\" or \"name:condition\", got %s", typeName(v))
	}
	name, cond, _ := strings.Cut(s, ":")
	if name == "" {
		return errors.New("dependency names no program")
	}
	switch cond {
	case "", CondStarted, CondReady, CondCompleted:
	default:
		return fmt.Errorf("unknown condition %q in %q (started, ready or completed)", cond, s)
	}
	*d = Dependency{Name: name, Condition: cond}
	return nil
}

func (d Dependency) String() string {
	if d.Condition == "" {
		return d.Name
	}
	return d.Name + ":" + d.Condition
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case dateTime:
		return "a date or time"
	case nil:
		return "nothing"
	default:
		return fmt.Sprintf("a %T", v)
	}
}
