package fluentd

import "testing"

func TestContainerID(t *testing.T) {
	for dir, want := range map[string]string{
		"docker-cgroup1": "3f4b6c5a1e2d8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a",
		"docker-cgroup2": "9d2c8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d",
		"k8s-containerd": "7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d",
		"podman":         "5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b",
		"host":           "",
		"missing":        "",
	} {
		if got := ContainerID("testdata/containerid/" + dir); got != want {
			t.Errorf("%s: %q, want %q", dir, got, want)
		}
	}
}

func TestLastHexID(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for in, want := range map[string]string{
		"/docker/" + id:                           id,
		"/system.slice/docker-" + id + ".scope":   id,
		"/x/" + id + "0":                          "", // 65 digits is not an id
		"/kubepods/pod1234/" + id[:63]:            "",
		"/a/" + id + "/b/" + id[:10]:              id,
		"/" + id[:32] + "-" + id[:32]:             "",
		"":                                        "",
		"/DOCKER/" + "0123456789ABCDEF" + id[16:]: "",
	} {
		if got := lastHexID(in); got != want {
			t.Errorf("lastHexID(%q) = %q, want %q", in, got, want)
		}
	}
}
