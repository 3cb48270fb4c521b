// Package buildinfo is steward's own version, as stamped at build time:
// by the linker (-ldflags "-X main.version=v1.2.3"), by `go install
// module@version`, or by the VCS revision Go records when it builds from a
// repository.
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// Info is what the binary knows about its build.
type Info struct {
	// Version is the release, or devel-REVISION[-dirty] for a build from a
	// repository, or "devel" when nothing was recorded.
	Version   string
	Revision  string // full VCS revision, if recorded
	Time      string // VCS commit time, if recorded
	Modified  bool   // built from a tree with uncommitted changes
	GoVersion string
}

// Read resolves the version: stamped (the linker's value; "" or "dev" mean
// none) first, then the module version, then the VCS revision.
func Read(stamped string) Info {
	info := Info{Version: "devel"}
	if stamped != "" && stamped != "dev" {
		info.Version = stamped
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	info.GoVersion = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	if info.Version != "devel" {
		return info
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		info.Version = v
		return info
	}
	if info.Revision != "" {
		info.Version = "devel-" + info.Revision[:min(12, len(info.Revision))]
		if info.Modified {
			info.Version += "-dirty"
		}
	}
	return info
}

// String is the version with its provenance, for `steward version`.
func (i Info) String() string {
	var details []string
	if i.Revision != "" {
		r := "revision " + i.Revision
		if i.Modified {
			r += " (modified)"
		}
		details = append(details, r)
	}
	if i.Time != "" {
		details = append(details, "committed "+i.Time)
	}
	if i.GoVersion != "" {
		details = append(details, i.GoVersion)
	}
	if len(details) == 0 {
		return i.Version
	}
	return i.Version + " (" + strings.Join(details, ", ") + ")"
}
