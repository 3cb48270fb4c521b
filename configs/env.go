package configs

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// EnvSetting ties an environment variable to a config key. Environment
// values override the file, so one image can run in many environments
// (twelve-factor).
type EnvSetting struct {
	Name string // STEWARD_...
	Key  string // dotted config key
	// Secret settings are removed from every program's environment and
	// never printed.
	Secret bool
}

// EnvSettings lists every STEWARD_* variable steward reads. STEWARD_CONFIG
// (the config file's path) is read by the command line.
var EnvSettings = []EnvSetting{
	{Name: "STEWARD_APP", Key: "steward.app"},
	{Name: "STEWARD_VERSION", Key: "steward.version"},
	{Name: "STEWARD_HOST", Key: "steward.host"},
	{Name: "STEWARD_CONTAINER_NAME", Key: "steward.container_name"},
	{Name: "STEWARD_LOG_LEVEL", Key: "steward.log_level"},
	{Name: "STEWARD_LOG_FORMAT", Key: "steward.log_format"},
	{Name: "STEWARD_SHUTDOWN_TIMEOUT", Key: "steward.shutdown_timeout"},
	{Name: "STEWARD_FLUSH_TIMEOUT", Key: "steward.flush_timeout"},
	{Name: "STEWARD_RELOAD_ON_SIGHUP", Key: "steward.reload_on_sighup"},
	{Name: "STEWARD_SUCCESS_EXIT_CODES", Key: "steward.success_exit_codes"},
	{Name: "STEWARD_OUTPUT_PREFIX", Key: "steward.output_prefix"},
	{Name: "STEWARD_OUTPUT_TIMESTAMPS", Key: "steward.output_timestamps"},
	{Name: "STEWARD_MAX_LINE_BYTES", Key: "steward.max_line_bytes"},
	{Name: "STEWARD_PDEATHSIG", Key: "steward.pdeath_signal"},
	{Name: "STEWARD_HEALTH_GRACE_PERIOD", Key: "health.grace_period"},
	{Name: "STEWARD_HTTP_ADDR", Key: "http.addr"},
	{Name: "STEWARD_CONTROL_SOCKET", Key: "control.socket"},
	{Name: "STEWARD_CONTROL_LOG_LINES", Key: "control.log_lines"},
	{Name: "STEWARD_SENSU_BACKEND_URL", Key: "sensu.backend_url"},
	{Name: "STEWARD_SENSU_NAMESPACE", Key: "sensu.namespace"},
	{Name: "STEWARD_SENSU_USER", Key: "sensu.user"},
	{Name: "STEWARD_SENSU_PASSWORD", Key: "sensu.password", Secret: true},
	{Name: "STEWARD_SENSU_API_URL", Key: "sensu.api_url"},
	{Name: "STEWARD_SENSU_API_KEY", Key: "sensu.api_key", Secret: true},
	{Name: "STEWARD_SENSU_SUBSCRIPTIONS", Key: "sensu.subscriptions"},
	{Name: "STEWARD_SENSU_ENTITY_NAME", Key: "sensu.entity_name"},
	{Name: "STEWARD_SENSU_KEEPALIVE_INTERVAL", Key: "sensu.keepalive_interval"},
	{Name: "STEWARD_SENSU_ALLOW_LIST", Key: "sensu.allow_list"},
	{Name: "STEWARD_SENSU_REDACT", Key: "sensu.redact"},
	{Name: "STEWARD_METRICS_INTERVAL", Key: "metrics.interval"},
	{Name: "STEWARD_METRICS_PRINT", Key: "metrics.print"},
	{Name: "STEWARD_METRICS_PROMETHEUS", Key: "metrics.prometheus"},
	{Name: "STEWARD_METRICS_STATSD_ENABLED", Key: "metrics.statsd.enabled"},
	{Name: "STEWARD_METRICS_STATSD_ADDR", Key: "metrics.statsd.addr"},
	{Name: "STEWARD_METRICS_RELAY_ENABLED", Key: "metrics.relay.enabled"},
	{Name: "STEWARD_METRICS_RELAY_ADDR", Key: "metrics.relay.addr"},
	{Name: "STEWARD_METRICS_COLLECTORS", Key: "metrics.collectors"},
	{Name: "STEWARD_GRAPHITE_ADDR", Key: "graphite.addr"},
	{Name: "STEWARD_GRAPHITE_PROTOCOL", Key: "graphite.protocol"},
	{Name: "STEWARD_GRAPHITE_FAILOVER", Key: "graphite.failover"},
	{Name: "STEWARD_GRAPHITE_MODE", Key: "graphite.mode"},
	{Name: "STEWARD_GRAPHITE_PREFIX", Key: "graphite.prefix"},
	{Name: "STEWARD_GRAPHITE_TEMPLATE", Key: "graphite.template"},
	{Name: "STEWARD_GRAPHITE_BUFFER", Key: "graphite.buffer"},
	{Name: "STEWARD_GRAPHITE_TIMEOUT", Key: "graphite.timeout"},

	{Name: "STEWARD_FLUENTD_ADDR", Key: "fluentd.address"},
	{Name: "STEWARD_FLUENTD_TAG", Key: "fluentd.tag"},
	{Name: "STEWARD_FLUENTD_SHARED_KEY", Key: "fluentd.shared_key", Secret: true},
	{Name: "STEWARD_FLUENTD_USERNAME", Key: "fluentd.username"},
	{Name: "STEWARD_FLUENTD_PASSWORD", Key: "fluentd.password", Secret: true},
	{Name: "STEWARD_FLUENTD_SELF_HOSTNAME", Key: "fluentd.self_hostname"},
	{Name: "STEWARD_FLUENTD_REQUIRE_ACK", Key: "fluentd.require_ack"},
	{Name: "STEWARD_FLUENTD_COMPRESS", Key: "fluentd.compress"},
	{Name: "STEWARD_FLUENTD_TLS_CA", Key: "fluentd.tls.ca"},
	{Name: "STEWARD_FLUENTD_TLS_CERT", Key: "fluentd.tls.cert"},
	{Name: "STEWARD_FLUENTD_TLS_KEY", Key: "fluentd.tls.key"},
	{Name: "STEWARD_FLUENTD_TLS_SERVER_NAME", Key: "fluentd.tls.server_name"},
	{Name: "STEWARD_FLUENTD_TLS_INSECURE_SKIP_VERIFY", Key: "fluentd.tls.insecure_skip_verify"},
	{Name: "STEWARD_FLUENTD_BATCH_BYTES", Key: "fluentd.batch_bytes"},
	{Name: "STEWARD_FLUENTD_FLUSH_INTERVAL", Key: "fluentd.flush_interval"},
	{Name: "STEWARD_FLUENTD_QUEUE_BYTES", Key: "fluentd.queue_bytes"},
	{Name: "STEWARD_FLUENTD_SPOOL_DIR", Key: "fluentd.spool_dir"},
	{Name: "STEWARD_FLUENTD_SPOOL_MAX_BYTES", Key: "fluentd.spool_max_bytes"},
	{Name: "STEWARD_FLUENTD_CONNECT_TIMEOUT", Key: "fluentd.connect_timeout"},
	{Name: "STEWARD_FLUENTD_ACK_TIMEOUT", Key: "fluentd.ack_timeout"},
	{Name: "STEWARD_FLUENTD_RETRY_INITIAL", Key: "fluentd.retry_initial"},
	{Name: "STEWARD_FLUENTD_RETRY_MAX", Key: "fluentd.retry_max"},
	{Name: "STEWARD_FLUENTD_HEARTBEAT", Key: "fluentd.heartbeat"},
	{Name: "STEWARD_FLUENTD_HEARTBEAT_INTERVAL", Key: "fluentd.heartbeat_interval"},
}

// SecretEnvNames lists the variables that must never reach a program.
func SecretEnvNames() []string {
	var names []string
	for _, s := range EnvSettings {
		if s.Secret {
			names = append(names, s.Name)
		}
	}
	return names
}

// applyEnv writes every set STEWARD_* variable into the tree at its key. A
// secret can also be given as NAME_FILE, the path of a file holding it (as
// Docker and Kubernetes secrets are mounted); one trailing newline is cut.
// It returns the problems found reading such files, and which variable set
// which key.
func applyEnv(tree map[string]any, environ []string) ([]Problem, map[string]string) {
	set := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "STEWARD_") {
			set[k] = v
		}
	}
	var problems []Problem
	fromEnv := map[string]string{}
	for _, s := range EnvSettings {
		v, ok := set[s.Name]
		if path := set[s.Name+"_FILE"]; s.Secret && (!ok || v == "") && path != "" {
			data, err := os.ReadFile(path)
			if err != nil {
				// The error names the path only, never the content.
				problems = append(problems, Problem{Source: s.Name + "_FILE", Key: s.Key,
					Message: fmt.Sprintf("cannot read the secret: %v", errors.Unwrap(err))})
				continue
			}
			v, ok = strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r"), true
		}
		if !ok || v == "" {
			continue
		}
		parts := strings.Split(s.Key, ".")
		node := tree
		for _, part := range parts[:len(parts)-1] {
			child, ok := node[part].(map[string]any)
			if !ok {
				// A non-table here is a type error the decoder reports
				// for the file; the environment replaces it.
				child = map[string]any{}
				node[part] = child
			}
			node = child
		}
		node[parts[len(parts)-1]] = envValue{name: s.Name, value: v}
		fromEnv[s.Key] = s.Name
	}
	return problems, fromEnv
}
