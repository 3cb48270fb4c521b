package configs

import (
	"net/url"
	"os"
	"slices"
	"time"
)

// Sensu is the [sensu] section: steward as a Sensu Go 6.x agent. It is off
// while BackendURLs is empty.
type Sensu struct {
	// BackendURLs are ws:// or wss:// agent endpoints (port 8081), tried
	// in turn.
	BackendURLs []string `toml:"backend_url"`
	Namespace   string   `toml:"namespace"`
	User        string   `toml:"user"`
	Password    string   `toml:"password"` // secret
	// APIURL is the backend's REST API (port 8080), used with APIKey to
	// delete the entity at once when steward stops.
	APIURL string `toml:"api_url"`
	APIKey string `toml:"api_key"` // secret

	// EntityName defaults to steward.host (the hostname).
	EntityName    string            `toml:"entity_name"`
	Subscriptions []string          `toml:"subscriptions"`
	Labels        map[string]string `toml:"labels"`
	Annotations   map[string]string `toml:"annotations"`
	// Deregister lets the backend delete the entity when its keepalives
	// stop (a SIGKILLed container).
	Deregister            bool   `toml:"deregister"`
	DeregistrationHandler string `toml:"deregistration_handler"`
	// AgentManagedEntity labels the entity sensu.io/managed_by=sensu-agent,
	// so the backend takes labels and subscriptions from every keepalive
	// rather than only at registration (sensu-agent --agent-managed-entity).
	AgentManagedEntity bool `toml:"agent_managed_entity"`

	KeepaliveInterval        Duration `toml:"keepalive_interval"`
	KeepaliveWarningTimeout  Duration `toml:"keepalive_warning_timeout"`
	KeepaliveCriticalTimeout Duration `toml:"keepalive_critical_timeout"`
	KeepaliveHandlers        []string `toml:"keepalive_handlers"`
	// Handlers of steward's own events (program checks) and of local checks
	// that name none.
	Handlers []string `toml:"handlers"`

	// QueueSize bounds the events waiting for the backend; beyond it the
	// oldest are dropped and counted.
	QueueSize int `toml:"queue_size"`
	// AllowListFile is sensu-agent's allow list (a YAML or JSON file of
	// exec, args, sha512, enable_env): the only commands check requests
	// from the backend may run. Without it, and without AllowAnyCommand,
	// every check request is refused.
	AllowListFile string `toml:"allow_list"`
	// AllowList is the file's rules, read when the config is loaded.
	AllowList []AllowRule `toml:"-"`
	// AllowAnyCommand runs whatever the backend requests, as sensu-agent
	// does without an allow list: whoever can create a check owns the
	// container.
	AllowAnyCommand bool `toml:"allow_any_command"`
	// Redact lists the entity's fields whose values the backend hides
	// (sensu-agent's --redact).
	Redact []string `toml:"redact"`

	// MaxOutputBytes caps the output of checks the backend requests.
	MaxOutputBytes int `toml:"max_output_bytes"`
	// EventSpacing is the least time between two results of one check sent
	// to the backend without an API key to see them stored: the backend
	// stores events asynchronously and loses one of two that arrive
	// together.
	EventSpacing Duration `toml:"event_spacing"`

	TrustedCAFile         string `toml:"trusted_ca_file"`
	InsecureSkipTLSVerify bool   `toml:"insecure_skip_tls_verify"`
}

// Defaults of the Sensu agent, those of sensu-agent 6.x where it has them.
const (
	DefaultSensuNamespace         = "default"
	DefaultSensuUser              = "agent"
	DefaultKeepaliveInterval      = 20 * time.Second
	DefaultKeepaliveWarning       = 120 * time.Second
	DefaultSensuQueueSize         = 1000
	DefaultSensuMaxOutputBytes    = 64 * 1024
	DefaultSensuEventSpacing      = time.Second
	minimumKeepaliveTimeout       = 5 * time.Second // sensu-agent's minimum
	DefaultSensuManagedEntityFlag = true
)

func (s *Sensu) setDefaults() {
	s.Namespace = DefaultSensuNamespace
	s.User = DefaultSensuUser
	s.Deregister = true
	s.AgentManagedEntity = DefaultSensuManagedEntityFlag
	s.KeepaliveInterval = Duration(DefaultKeepaliveInterval)
	s.KeepaliveWarningTimeout = Duration(DefaultKeepaliveWarning)
	s.QueueSize = DefaultSensuQueueSize
	s.MaxOutputBytes = DefaultSensuMaxOutputBytes
	s.EventSpacing = Duration(DefaultSensuEventSpacing)
	s.Redact = slices.Clone(DefaultSensuRedact)
}

// DefaultSensuRedact is sensu-agent's default redact list.
var DefaultSensuRedact = []string{"password", "passwd", "pass", "api_key", "api_token", "access_key", "secret_key", "private_key", "secret"}

// Enabled reports whether steward should act as a Sensu agent.
func (s *Sensu) Enabled() bool { return len(s.BackendURLs) > 0 }

func deriveSensu(cfg *Config) {
	if s := &cfg.Sensu; s.Enabled() && s.EntityName == "" {
		s.EntityName = cfg.Steward.Host
	}
}

func validateSensu(d *decoder, cfg *Config) {
	s := &cfg.Sensu
	if !s.Enabled() {
		return
	}
	if !validCheckName(s.EntityName) {
		d.add("", "sensu.entity_name", "%q is not a valid Sensu name (letters, digits, '_', '.', '-', ':')", s.EntityName)
	}
	if !validCheckName(s.Namespace) {
		d.add("", "sensu.namespace", "%q is not a valid Sensu namespace", s.Namespace)
	}
	for _, u := range s.BackendURLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "ws" && p.Scheme != "wss") || p.Host == "" {
			d.add("", "sensu.backend_url", "%q is not a ws:// or wss:// URL", RedactURL(u))
		} else if p.User != nil {
			d.add("", "sensu.backend_url", "%q carries a user and password, which the agent transport cannot use: set sensu.user and STEWARD_SENSU_PASSWORD", RedactURL(u))
		}
	}
	if s.APIURL != "" {
		p, err := url.Parse(s.APIURL)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			d.add("", "sensu.api_url", "%q is not an http:// or https:// URL", RedactURL(s.APIURL))
		} else if p.User != nil {
			d.add("", "sensu.api_url", "%q carries a user and password, which the API does not take: set STEWARD_SENSU_API_KEY", RedactURL(s.APIURL))
		}
	}
	if s.APIKey != "" && s.APIURL == "" {
		d.add("", "sensu.api_url", "is needed with api_key: the entity is deleted through the REST API")
	}
	for _, sub := range s.Subscriptions {
		if !validCheckName(sub) {
			d.add("", "sensu.subscriptions", "bad subscription %q", sub)
		}
	}
	if s.KeepaliveInterval < Duration(time.Second) {
		d.add("", "sensu.keepalive_interval", "must be at least 1s")
	}
	if s.KeepaliveWarningTimeout < Duration(minimumKeepaliveTimeout) {
		d.add("", "sensu.keepalive_warning_timeout", "must be at least %s", minimumKeepaliveTimeout)
	} else if s.KeepaliveWarningTimeout <= s.KeepaliveInterval {
		d.add("", "sensu.keepalive_warning_timeout", "must be longer than keepalive_interval %s", s.KeepaliveInterval.D())
	}
	if c := s.KeepaliveCriticalTimeout; c != 0 && (c < Duration(minimumKeepaliveTimeout) || c <= s.KeepaliveWarningTimeout) {
		d.add("", "sensu.keepalive_critical_timeout", "must be 0 (off), or at least %s and longer than keepalive_warning_timeout", minimumKeepaliveTimeout)
	}
	if s.QueueSize < 1 {
		d.add("", "sensu.queue_size", "must be at least 1")
	}
	if s.EventSpacing < Duration(10*time.Millisecond) || s.EventSpacing > Duration(time.Minute) {
		d.add("", "sensu.event_spacing", "must be between 10ms and 1m")
	}
	if s.AllowListFile != "" && s.AllowAnyCommand {
		d.add("", "sensu.allow_any_command", "cannot be used with allow_list")
	}
	if s.MaxOutputBytes < 256 {
		d.add("", "sensu.max_output_bytes", "must be at least 256")
	}
	if s.TrustedCAFile != "" {
		if _, err := os.Stat(s.TrustedCAFile); err != nil {
			d.add("", "sensu.trusted_ca_file", "cannot read %s", s.TrustedCAFile)
		}
	}
	for _, h := range append(append([]string{s.DeregistrationHandler}, s.KeepaliveHandlers...), s.Handlers...) {
		if h != "" && !validCheckName(h) {
			d.add("", "sensu", "bad handler name %q", h)
		}
	}
}

// resolveSensu reads the allow list file.
func resolveSensu(d *decoder, cfg *Config) {
	s := &cfg.Sensu
	if !s.Enabled() || s.AllowListFile == "" {
		return
	}
	f, err := os.Open(s.AllowListFile)
	if err != nil {
		d.add("", "sensu.allow_list", "%v", err)
		return
	}
	defer f.Close()
	rules, err := ParseAllowList(f)
	if err != nil {
		d.add("", "sensu.allow_list", "%s: %v", s.AllowListFile, err)
	}
	s.AllowList = rules
}

// redactURL drops a password written into a URL, so it is never printed.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
