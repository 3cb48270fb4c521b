//go:build e2e

package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stewardhq/steward/internal/carbontest"
	"github.com/stewardhq/steward/shippers/fluentd/fluentdtest"
	"github.com/stewardhq/steward/shippers/sensu/sensupeer"
)

// TestDockerFluentdContainerID: the records reaching Fluentd (the
// project's forward-protocol peer on the host's loopback; the container
// shares the host's network) carry the container's id as Docker knows it.
func TestDockerFluentdContainerID(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var ids, lines []string
	peer, err := fluentdtest.Listen("tcp", "127.0.0.1:0", fluentdtest.Config{OnEvent: func(e fluentdtest.Event) {
		rec, err := e.Record()
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		id, _ := rec["container_id"].(string)
		line, _ := rec["log"].(string)
		ids, lines = append(ids, id), append(lines, line)
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close(); peer.Wait() })
	c := runContainer(t, `
[programs.app]
main = true
command = ["sh", "-c", "echo 'app: order 1 shipped'; exec sleep 3600"]
`, "--network", "host", "-e", "STEWARD_HTTP_ADDR=off", "-e", "STEWARD_FLUENTD_ADDR="+peer.Addr())
	waitFor(t, "the app's line at Fluentd", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(lines, "app: order 1 shipped")
	})
	full := mustDocker(t, "inspect", "-f", "{{.Id}}", c.id)
	mu.Lock()
	defer mu.Unlock()
	i := slices.Index(lines, "app: order 1 shipped")
	if ids[i] != full {
		t.Fatalf("container_id %q, docker inspect says %q", ids[i], full)
	}
	t.Logf("container_id = docker inspect .Id = %s", full)
}

// TestDockerBlueGreen: two versions of one app run side by side, each
// shipping its series tagged with its version to a real carbon, and each
// its own Sensu entity. `docker stop` deregisters both; a redeployed
// version SIGKILLed (docker kill) cannot, and its entity expires when its
// keepalives stop.
func TestDockerBlueGreen(t *testing.T) {
	t.Parallel()
	carbon := carbontest.Start(t)
	sensu, err := sensupeer.New("agent", "p4ss-e2e", "k3y-e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sensu.Close)
	config := `
[steward]
app = "shop"

[metrics]
interval = "1s"

[sensu]
keepalive_interval = "1s"
keepalive_warning_timeout = "5s"

[programs.web]
main = true
command = ["sh", "-c", "echo web: serving; exec sleep 3600"]
`
	deploy := func(version string) *container {
		return runContainer(t, config, "--network", "host", "--name", "shop-"+version+"-"+strings.ReplaceAll(t.Name(), "/", "-"),
			"-e", "STEWARD_HTTP_ADDR=off", "-e", "STEWARD_VERSION="+version, "-e", "STEWARD_HOST=e2e",
			"-e", "STEWARD_GRAPHITE_ADDR="+carbon.Addr,
			"-e", "STEWARD_SENSU_BACKEND_URL="+sensu.AgentURL(), "-e", "STEWARD_SENSU_API_URL="+sensu.APIURL(),
			"-e", "STEWARD_SENSU_USER=agent", "-e", "STEWARD_SENSU_PASSWORD=p4ss-e2e", "-e", "STEWARD_SENSU_API_KEY=k3y-e2e",
			"-e", "STEWARD_SENSU_ENTITY_NAME=shop-"+version)
	}
	blue, green := deploy("3074f46"), deploy("9c1e2ab")
	for _, v := range []string{"3074f46", "9c1e2ab"} {
		series := carbontest.Tagged("program.uptime_seconds", "app=shop", "host=e2e", "program=web", "version="+v)
		waitFor(t, "carbon storing "+series, func() bool { _, ok := carbon.Last(series); return ok })
		mem := carbontest.Tagged("container.memory.usage_bytes", "app=shop", "host=e2e", "version="+v)
		waitFor(t, "carbon storing "+mem, func() bool { v, ok := carbon.Last(mem); return ok && v > 0 })
		waitFor(t, "Sensu entity shop-"+v, func() bool { _, ok := sensu.Entity("default", "shop-"+v); return ok })
		raw, _ := sensu.Entity("default", "shop-"+v)
		var ent struct {
			Metadata struct{ Labels map[string]string }
		}
		json.Unmarshal(raw, &ent)
		t.Logf("entity shop-%s labels %v", v, ent.Metadata.Labels)
	}
	mustDocker(t, "stop", blue.id, green.id)
	for _, v := range []string{"3074f46", "9c1e2ab"} {
		waitFor(t, "shop-"+v+" deregistered", func() bool { return slices.Contains(sensu.Deletions(), "default/shop-"+v) })
		if _, ok := sensu.Entity("default", "shop-"+v); ok {
			t.Errorf("entity shop-%s still there after docker stop", v)
		}
	}
	// A redeployment of green, killed: no deregistration, the keepalive
	// failure removes it.
	again := runContainer(t, config, "--network", "host",
		"-e", "STEWARD_HTTP_ADDR=off", "-e", "STEWARD_VERSION=9c1e2ab", "-e", "STEWARD_HOST=e2e",
		"-e", "STEWARD_SENSU_BACKEND_URL="+sensu.AgentURL(), "-e", "STEWARD_SENSU_API_URL="+sensu.APIURL(),
		"-e", "STEWARD_SENSU_USER=agent", "-e", "STEWARD_SENSU_PASSWORD=p4ss-e2e", "-e", "STEWARD_SENSU_API_KEY=k3y-e2e",
		"-e", "STEWARD_SENSU_ENTITY_NAME=shop-9c1e2ab-2")
	waitFor(t, "Sensu entity shop-9c1e2ab-2", func() bool { _, ok := sensu.Entity("default", "shop-9c1e2ab-2"); return ok })
	mustDocker(t, "kill", again.id)
	if code := again.waitExit(); code != 137 {
		t.Fatalf("docker kill: exit %d", code)
	}
	waitFor(t, "shop-9c1e2ab-2 expired by keepalive", func() bool { return slices.Contains(sensu.Expired(), "default/shop-9c1e2ab-2") })
	if slices.Contains(sensu.Deletions(), "default/shop-9c1e2ab-2") {
		t.Error("a SIGKILLed steward cannot have deregistered")
	}
}
