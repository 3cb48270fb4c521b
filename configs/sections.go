package configs

import "reflect"

// Loading goes in phases, each in one place:
//
//  1. newConfig: the static defaults, each table's setDefaults (a table
//     made while decoding, a program say, gets its own the same way);
//  2. decode: the file, then the STEWARD_* variables, over them;
//  3. derive: the defaults that depend on other keys (a main program's
//     restart policy, the app's name), section by section in the order of
//     the list below;
//  4. validate: every section's checks; they read the config and change
//     nothing, so their order does not matter;
//  5. resolve: what the config names outside itself is read: users and
//     groups (/etc/passwd, /etc/group), the Sensu allow list file.
//
// Load returns the result and nothing changes it afterwards: a reload
// loads a new one.
//
// sections is the one list of the config's parts. A new section adds its
// line here; a new key adds its default to its table's setDefaults (or to
// the section's derive when it depends on other keys) and its checks to
// the section's validate.
var sections = []section{
	{name: "steward", derive: deriveSteward, validate: validateSteward},
	{name: "programs", derive: derivePrograms, validate: validatePrograms, resolve: resolveUsers},
	{name: "checks", derive: deriveChecks, validate: validateChecks},
	{name: "health, http, control", derive: deriveLocalSurfaces, validate: validateLocalSurfaces},
	{name: "sensu", derive: deriveSensu, validate: validateSensu, resolve: resolveSensu},
	{name: "metrics", derive: deriveMetrics, validate: validateMetrics},
	{name: "graphite", validate: validateGraphite},
	{name: "app metrics (metrics.statsd, metrics.relay, metrics.scrape, metrics_url, output_metric_format)", validate: validateAppMetrics},
	{name: "fluentd", derive: deriveFluentd, validate: validateFluentd},
}

type section struct {
	name string
	// derive fills defaults that depend on other keys; nil when none.
	derive func(cfg *Config)
	// validate adds a problem for every key that is wrong, and changes
	// nothing.
	validate func(d *decoder, cfg *Config)
	// resolve reads what the section names outside the config (a user, a
	// file) into it; nil when nothing.
	resolve func(d *decoder, cfg *Config)
}

// defaulter is implemented by config tables that fill their defaults before
// the file's values are decoded over them.
type defaulter interface{ setDefaults() }

// newConfig is a config holding every static default: each top-level table
// with a setDefaults method gets it called.
func newConfig(file string) *Config {
	cfg := &Config{File: file}
	v := reflect.ValueOf(cfg).Elem()
	for i := range v.NumField() {
		if df, ok := v.Field(i).Addr().Interface().(defaulter); ok {
			df.setDefaults()
		}
	}
	return cfg
}

func derive(cfg *Config) {
	for _, s := range sections {
		if s.derive != nil {
			s.derive(cfg)
		}
	}
}

func (d *decoder) validate(cfg *Config) {
	for _, s := range sections {
		s.validate(d, cfg)
	}
}

func (d *decoder) resolve(cfg *Config) {
	for _, s := range sections {
		if s.resolve != nil {
			s.resolve(d, cfg)
		}
	}
}
