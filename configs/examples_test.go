package configs

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// knownEnv reports whether steward reads name (a setting, or NAME_FILE of
// a secret one).
func knownEnv(name string) bool {
	for _, s := range EnvSettings {
		if name == s.Name || s.Secret && name == s.Name+"_FILE" {
			return true
		}
	}
	return slices.Contains([]string{"STEWARD_CONFIG"}, name)
}

var envName = regexp.MustCompile(`\bSTEWARD_[A-Z0-9_]+\b`)

// TestOrchestratorExamples keeps the Kubernetes and Swarm examples and
// Dockerfile.example true to what steward reads and serves.
func TestOrchestratorExamples(t *testing.T) {
	_, port, _ := net.SplitHostPort(DefaultHTTPAddr)
	stopBudget := DefaultShutdownTimeout + DefaultFlushTimeout
	for _, f := range []string{"examples/kubernetes.yaml", "examples/swarm-stack.yaml", "../Dockerfile.example"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range envName.FindAllString(string(b), -1) {
			if !knownEnv(name) {
				t.Errorf("%s sets %s, which steward does not read", f, name)
			}
		}
	}

	b, _ := os.ReadFile("examples/kubernetes.yaml")
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	var deployments int
	for {
		var doc struct {
			Kind string
			Spec struct {
				Template struct {
					Spec struct {
						TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
						Containers                    []struct {
							Env []struct {
								Name, Value string
							}
							Ports []struct {
								Name          string
								ContainerPort int `yaml:"containerPort"`
							}
							LivenessProbe  probe `yaml:"livenessProbe"`
							ReadinessProbe probe `yaml:"readinessProbe"`
						}
					}
				}
			}
		}
		if err := dec.Decode(&doc); err != nil {
			if err.Error() != "EOF" {
				t.Fatal(err)
			}
			break
		}
		if doc.Kind != "Deployment" {
			continue
		}
		deployments++
		pod := doc.Spec.Template.Spec
		if time.Duration(pod.TerminationGracePeriodSeconds)*time.Second <= stopBudget {
			t.Errorf("terminationGracePeriodSeconds %d does not cover shutdown + flush (%v)", pod.TerminationGracePeriodSeconds, stopBudget)
		}
		c := pod.Containers[0]
		var httpAddr string
		for _, e := range c.Env {
			if e.Name == "STEWARD_HTTP_ADDR" {
				httpAddr = e.Value
			}
		}
		if _, p, _ := net.SplitHostPort(httpAddr); p != port || !strings.HasPrefix(httpAddr, "0.0.0.0") {
			t.Errorf("STEWARD_HTTP_ADDR %q: the kubelet needs 0.0.0.0:%s", httpAddr, port)
		}
		var stewardPort int
		for _, p := range c.Ports {
			if p.Name == "steward" {
				stewardPort = p.ContainerPort
			}
		}
		if strconv.Itoa(stewardPort) != port {
			t.Errorf("container port steward = %d, want %s", stewardPort, port)
		}
		for _, pr := range []struct {
			probe probe
			path  string
		}{{c.LivenessProbe, "/healthz"}, {c.ReadinessProbe, "/readyz"}} {
			if pr.probe.HTTPGet.Path != pr.path || pr.probe.HTTPGet.Port != "steward" {
				t.Errorf("probe %+v, want %s on port steward", pr.probe.HTTPGet, pr.path)
			}
		}
	}
	if deployments != 1 {
		t.Fatalf("%d Deployments in the manifest", deployments)
	}

	b, _ = os.ReadFile("examples/swarm-stack.yaml")
	var stack struct {
		Services map[string]struct {
			StopGracePeriod string `yaml:"stop_grace_period"`
			Healthcheck     struct{ Test []string }
		}
	}
	if err := yaml.Unmarshal(b, &stack); err != nil {
		t.Fatal(err)
	}
	for name, svc := range stack.Services {
		if d, err := time.ParseDuration(svc.StopGracePeriod); err != nil || d <= stopBudget {
			t.Errorf("%s: stop_grace_period %q does not cover shutdown + flush", name, svc.StopGracePeriod)
		}
		if !slices.Equal(svc.Healthcheck.Test, []string{"CMD", "/usr/local/bin/steward", "health"}) {
			t.Errorf("%s: healthcheck %v", name, svc.Healthcheck.Test)
		}
	}

	b, _ = os.ReadFile("../Dockerfile.example")
	for _, want := range []string{`CMD ["/usr/local/bin/steward", "health"]`, `ENTRYPOINT ["/usr/local/bin/steward"]`, "USER app", "CGO_ENABLED=0", "-trimpath", "STEWARD_VERSION=${GIT_SHA}"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Dockerfile.example lacks %q", want)
		}
	}
}

// appConvention: name is a series an app following the README's
// conventions makes steward send — a name the conventions table lists as a
// Prometheus metric, or a StatsD name it lists with a suffix steward's
// aggregation writes (collectors/statsd).
func appConvention(readme, name string) bool {
	_, conv, ok := strings.Cut(readme, "#### Conventions")
	if !ok {
		return false
	}
	conv, _, _ = strings.Cut(conv, "\n### ")
	if strings.Contains(conv, "`"+name+"`") && !strings.Contains(name, ".") {
		return true
	}
	i := strings.LastIndexByte(name, '.')
	if i < 0 || !strings.Contains(conv, "`"+name[:i]+"`") {
		return false
	}
	switch suffix := name[i+1:]; suffix {
	case "count", "rate", "lower", "upper", "mean", "median", "stddev", "sum":
		return true
	default:
		return regexp.MustCompile(`^p[0-9]+(_[0-9]+)?$`).MatchString(suffix)
	}
}

type probe struct {
	HTTPGet struct{ Path, Port string } `yaml:"httpGet"`
}

// TestDashboardQueriesWhatStewardSends: every series the Grafana dashboard
// asks for is one steward emits (a name written in the collectors or the
// components' metrics), selected by app and version.
func TestDashboardQueriesWhatStewardSends(t *testing.T) {
	b, err := os.ReadFile("dashboards/steward-graphite.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Templating struct {
			List []struct{ Name, Query string }
		}
		Panels []struct {
			Type, Title string
			Targets     []struct{ Target string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	var sources strings.Builder
	for _, pattern := range []string{"../collectors/*.go", "../collectors/*/*.go", "../shippers/*/*.go", "../cmd/steward/*.go"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			if !strings.HasSuffix(f, "_test.go") {
				src, _ := os.ReadFile(f)
				sources.Write(src)
			}
		}
	}
	names := regexp.MustCompile(`'name=([a-z0-9_.]+)'`)
	vars := map[string]bool{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
	}
	if !vars["app"] || !vars["version"] {
		t.Fatalf("dashboard variables %v, want app and version", vars)
	}
	if len(dash.Panels) < 8 {
		t.Fatalf("%d panels", len(dash.Panels))
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	appRow := false
	for _, p := range dash.Panels {
		if p.Type == "row" {
			appRow = appRow || strings.HasPrefix(p.Title, "App")
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			m := names.FindAllStringSubmatch(tg.Target, -1)
			if len(m) == 0 || !strings.Contains(tg.Target, "'app=$app'") || !strings.Contains(tg.Target, "'version=~${version:regex}'") {
				t.Errorf("panel %q: %s does not select a series by name, app and version", p.Title, tg.Target)
			}
			for _, n := range m {
				if strings.HasPrefix(p.Title, "App: ") {
					if !appConvention(string(readme), n[1]) {
						t.Errorf("panel %q asks for %s, which is not a series of the README's conventions for app metrics", p.Title, n[1])
					}
					continue
				}
				if !strings.Contains(sources.String(), `"`+n[1]+`"`) {
					t.Errorf("panel %q asks for %s, which steward does not send", p.Title, n[1])
				}
			}
		}
	}
	if !appRow {
		t.Errorf("no App row")
	}
}
