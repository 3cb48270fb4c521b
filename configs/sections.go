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
//  5. resolve: users and groups looked up in /etc/passwd and /etc/group.
//
// Load returns the result and nothing changes it afterwards: a reload
// loads a new one.
//
// sections is the one list of the config's parts. A new section adds its
// line here; a new key adds its default to its table's setDefaults (or to
// the section's derive when it depends on other keys) and its checks to
// the section's validate.
var sections = []section{
	{"steward", deriveSteward, validateSteward},
	{"programs", derivePrograms, validatePrograms},
	{"checks", deriveChecks, validateChecks},
	{"health, http, control", deriveLocalSurfaces, validateLocalSurfaces},
	{"sensu", deriveSensu, validateSensu},
	{"metrics", deriveMetrics, validateMetrics},
	{"graphite", nil, validateGraphite},
	{"fluentd", deriveFluentd, validateFluentd},
}

type section struct {
	name string
	// derive fills defaults that depend on other keys; nil when none.
	derive func(cfg *Config)
	// validate adds a problem for every key that is wrong.
	validate func(d *decoder, cfg *Config)
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
