package sensu

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
)

// The wire types below are the few parts of Sensu Go's core/v2 types that
// steward sends, declared by hand with core/v2's JSON field names. Linking
// github.com/sensu/core/v2 itself costs about 20 ms and 2.5 MB at every
// container start (its init() compiles regexps, registers protobuf types
// and more: 3.9x the Go floor, measured with GODEBUG=inittrace=1), so it is
// used only by the tests, which decode what steward sends into the real
// types and call their Validate().

// objectMeta is core/v2 ObjectMeta.
type objectMeta struct {
	Name        string            `json:"name,omitempty"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	CreatedBy   string            `json:"created_by,omitempty"`
}

// entity is core/v2 Entity, class agent.
type entity struct {
	EntityClass       string         `json:"entity_class"`
	System            system         `json:"system"`
	Subscriptions     []string       `json:"subscriptions"`
	LastSeen          int64          `json:"last_seen"`
	Deregister        bool           `json:"deregister"`
	Deregistration    deregistration `json:"deregistration"`
	User              string         `json:"user,omitempty"`
	Redact            []string       `json:"redact,omitempty"`
	Metadata          objectMeta     `json:"metadata"`
	SensuAgentVersion string         `json:"sensu_agent_version"`
	KeepaliveHandlers []string       `json:"keepalive_handlers,omitempty"`
}

type deregistration struct {
	Handler string `json:"handler,omitempty"`
}

// system is core/v2 System.
type system struct {
	Hostname        string  `json:"hostname,omitempty"`
	OS              string  `json:"os,omitempty"`
	Platform        string  `json:"platform,omitempty"`
	PlatformFamily  string  `json:"platform_family,omitempty"`
	PlatformVersion string  `json:"platform_version,omitempty"`
	Network         network `json:"network"`
	Arch            string  `json:"arch,omitempty"`
	LibCType        string  `json:"libc_type"`
	VMSystem        string  `json:"vm_system"`
	VMRole          string  `json:"vm_role"`
	CloudProvider   string  `json:"cloud_provider"`
	Processes       []any   `json:"processes"`
}

type network struct {
	Interfaces []networkInterface `json:"interfaces"`
}

type networkInterface struct {
	Name      string   `json:"name,omitempty"`
	MAC       string   `json:"mac,omitempty"`
	Addresses []string `json:"addresses"`
}

// check is core/v2 Check: a check's configuration with the result of one
// execution. Checks the backend requested carry fields steward does not
// know; those are kept in extra and sent back as they came, as sensu-agent
// does.
type check struct {
	Metadata             objectMeta `json:"metadata"`
	Command              string     `json:"command,omitempty"`
	Handlers             []string   `json:"handlers"`
	Interval             uint32     `json:"interval"`
	Timeout              uint32     `json:"timeout"`
	Ttl                  int64      `json:"ttl"`
	Subscriptions        []string   `json:"subscriptions"`
	Publish              bool       `json:"publish"`
	Stdin                bool       `json:"stdin"`
	ProxyEntityName      string     `json:"proxy_entity_name"`
	EnvVars              []string   `json:"env_vars"`
	MaxOutputSize        int64      `json:"max_output_size,omitempty"`
	OutputMetricFormat   string     `json:"output_metric_format"`
	OutputMetricHandlers []string   `json:"output_metric_handlers"`
	Pipelines            []any      `json:"pipelines"`
	// Scheduler is what scheduled the check: the backend's value for a
	// check request, "memory" for steward's own checks (scheduled in
	// steward's memory, as the backend's in-memory scheduler does).
	Scheduler string `json:"scheduler,omitempty"`
	// ProcessedBy is the agent that ran the check.
	ProcessedBy string `json:"processed_by,omitempty"`

	// The result.
	Duration float64 `json:"duration,omitempty"`
	Executed int64   `json:"executed"`
	Issued   int64   `json:"issued"`
	Output   string  `json:"output"`
	Status   uint32  `json:"status"`

	extra map[string]json.RawMessage
}

// MarshalJSON writes the known fields over the extra ones.
func (c *check) MarshalJSON() ([]byte, error) {
	type plain check
	b, err := json.Marshal((*plain)(c))
	if err != nil || len(c.extra) == 0 {
		return b, err
	}
	var known map[string]json.RawMessage
	if err := json.Unmarshal(b, &known); err != nil {
		return nil, err
	}
	merged := make(map[string]json.RawMessage, len(c.extra)+len(known))
	for k, v := range c.extra {
		merged[k] = v
	}
	for k, v := range known {
		merged[k] = v
	}
	return json.Marshal(merged)
}

// UnmarshalJSON keeps the fields steward does not know in extra.
func (c *check) UnmarshalJSON(b []byte) error {
	type plain check
	if err := json.Unmarshal(b, (*plain)(c)); err != nil {
		return err
	}
	return json.Unmarshal(b, &c.extra)
}

// event is core/v2 Event.
type event struct {
	Timestamp int64      `json:"timestamp"`
	Entity    *entity    `json:"entity"`
	Check     *check     `json:"check"`
	Metadata  objectMeta `json:"metadata"`
	ID        string     `json:"id"` // a UUID in its text form, as core/v2 writes it
	Sequence  int64      `json:"sequence"`
	Pipelines []any      `json:"pipelines"`
	// Metrics are those of a check with an output_metric_format, as
	// sensu-agent extracts them (core/v2 Metrics).
	Metrics *eventMetrics `json:"metrics,omitempty"`
}

// eventMetrics is core/v2 Metrics.
type eventMetrics struct {
	Handlers []string      `json:"handlers"`
	Points   []metricPoint `json:"points"`
}

// metricPoint is core/v2 MetricPoint.
type metricPoint struct {
	Name      string      `json:"name"`
	Value     float64     `json:"value"`
	Timestamp int64       `json:"timestamp"`
	Tags      []metricTag `json:"tags"`
}

// metricTag is core/v2 MetricTag.
type metricTag struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// checkRequest is core/v2 CheckRequest, as the backend publishes it.
type checkRequest struct {
	Config *check            `json:"config"`
	Assets []json.RawMessage `json:"assets"`
	Hooks  []json.RawMessage `json:"hooks"`
	Issued int64             `json:"issued"`
}

// newUUID returns a random (version 4) UUID in its text form.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Message types of the agent transport (sensu-go transport package and
// core/v2 CheckRequestType).
const (
	msgKeepalive    = "keepalive"
	msgEvent        = "event"
	msgCheckRequest = "check_request"
	msgEntityConfig = "entity_config"
)

// encodeMessage frames a message as the agent transport does: the type, a
// newline, the payload, in one binary WebSocket message.
func encodeMessage(typ string, payload []byte) []byte {
	b := make([]byte, 0, len(typ)+1+len(payload))
	b = append(b, typ...)
	b = append(b, '\n')
	return append(b, payload...)
}

// decodeMessage splits a transport message into type and payload.
func decodeMessage(b []byte) (string, []byte, error) {
	for i, c := range b {
		if c == '\n' {
			return string(b[:i]), b[i+1:], nil
		}
	}
	return "", nil, fmt.Errorf("sensu: message without a type line (%d bytes)", len(b))
}
