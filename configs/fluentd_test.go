package configs

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFluentdDefaults(t *testing.T) {
	cfg, err := load(t, "[steward]\nhost = \"h1\"\n[fluentd]\naddress = \"fluentd.internal\"\n")
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Fluentd
	if len(f.Address) != 1 || f.Address[0] != (Endpoint{"tcp", "fluentd.internal:24224"}) {
		t.Errorf("address %v", f.Address)
	}
	if f.Tag != "{app}.{program}" || !f.RequireAck || f.Compress != "none" || f.BatchBytes != 128<<10 ||
		f.QueueBytes != 2<<20 || f.SpoolDir != "/var/lib/steward/spool" || f.SpoolMaxBytes != 256<<20 ||
		f.FlushInterval.D() != 500*time.Millisecond || f.SelfHostname != "h1" || f.Heartbeat != "none" {
		t.Errorf("defaults %+v", f)
	}
	cfg, err = load(t, "[programs.app]\nmain = true\ncommand = [\"app\"]\n")
	if err != nil || cfg.Fluentd != nil {
		t.Fatalf("without [fluentd]: %v %v", cfg.Fluentd, err)
	}
}

func TestFluentdFromEnvironment(t *testing.T) {
	cfg, err := load(t, "", "STEWARD_FLUENTD_ADDR=tls://a.example:24284, unix:///run/fluent.sock",
		"STEWARD_FLUENTD_SHARED_KEY=k", "STEWARD_FLUENTD_SPOOL_MAX_BYTES=1g", "STEWARD_FLUENTD_TAG=docker.{program}",
		"STEWARD_FLUENTD_REQUIRE_ACK=false", "STEWARD_FLUENTD_FLUSH_INTERVAL=2s", "STEWARD_FLUENTD_TLS_INSECURE_SKIP_VERIFY=true")
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Fluentd
	want := Endpoints{{"tls", "a.example:24284"}, {"unix", "/run/fluent.sock"}}
	if !slices.Equal(f.Address, want) || f.SharedKey != "k" || f.SpoolMaxBytes != 1<<30 || f.Tag != "docker.{program}" ||
		f.RequireAck || f.FlushInterval.D() != 2*time.Second || !f.TLS.InsecureSkipVerify {
		t.Errorf("%+v", f)
	}
	secrets := SecretEnvNames()
	for _, name := range []string{"STEWARD_FLUENTD_SHARED_KEY", "STEWARD_FLUENTD_PASSWORD"} {
		if !slices.Contains(secrets, name) {
			t.Errorf("%s is not a secret", name)
		}
	}
}

func TestFluentdErrorsNameTheLine(t *testing.T) {
	_, err := load(t, `[fluentd]
address = ["tcp://ok:1", "udp://x:1", "tcp://host:99999", "unix://relative"]
tag = "{app}.{nope}"
username = "u"
compress = "zstd"
batch_bytes = "12 parsecs"
heartbeat = "icmp"
ack_timeout = "0s"

[programs.app]
main = true
command = ["app"]
[programs.app.logs]
multiline_start = "(unclosed"
multiline_timeout = 0
`)
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("want a config error, got %v", err)
	}
	var lines []string
	for _, p := range cerr.Problems {
		lines = append(lines, p.String())
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		`:2: fluentd.address: address "udp://x:1": unknown scheme`,
		`:3: fluentd.tag: tag "{app}.{nope}": unknown placeholder {nope}`,
		`:4: fluentd.username: user authentication is part of the shared-key handshake`,
		`:5: fluentd.compress: "zstd" is not one of none, gzip`,
		`:6: fluentd.batch_bytes: bad size "12 parsecs"`,
		`:7: fluentd.heartbeat: "icmp" is not one of none, udp`,
		`:8: fluentd.ack_timeout: must be above zero`,
		`:14: programs.app.logs.multiline_start: bad regular expression`,
		`:15: programs.app.logs.multiline_timeout: must be above zero`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in\n%s", want, all)
		}
	}
	_, err = load(t, "[fluentd]\ntag = \"x\"\n")
	if err == nil || !strings.Contains(err.Error(), "fluentd.address: is empty") {
		t.Errorf("a [fluentd] without address: %v", err)
	}
}

func TestParseEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://h:1":         "tcp://h:1",
		"h":                 "tcp://h:24224",
		"h:5":               "tcp://h:5",
		"tls://[::1]:24284": "tls://[::1]:24284",
		"tls://[::1]":       "tls://[::1]:24224",
		"unix:///a/b.sock":  "unix:///a/b.sock",
		"unix://a":          "error",
		"tcp://":            "error",
		"tcp://:1":          "error",
		"http://h:1":        "error",
		"tcp://h:0":         "error",
	} {
		e, err := ParseEndpoint(in)
		got := e.String()
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("ParseEndpoint(%q) = %s (%v), want %s", in, got, err, want)
		}
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[any]int64{
		int64(1024): 1024, "512": 512, "512k": 512 << 10, "8MiB": 8 << 20, "8 mb": 8 << 20,
		"1.5g": 3 << 29, "1GiB": 1 << 30, "-1": -1, "lots": -1, int64(-5): -1, 1.5: -1, "9999999999g": -1,
	} {
		var b ByteSize
		err := b.decodeValue(in)
		got := int64(b)
		if err != nil {
			got = -1
		}
		if got != want {
			t.Errorf("%#v: %d (%v), want %d", in, got, err, want)
		}
	}
}
