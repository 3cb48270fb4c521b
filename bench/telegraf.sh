#!/usr/bin/env bash
# steward's metrics against Telegraf's for the same series: the CPU each
# uses over the same window (60 s, after a warm-up), the lines each sends
# to a loopback Graphite sink per interval, CPU per series, RSS, and the
# ratios steward/Telegraf (issue 14's target: steward ≤ 0.25x Telegraf's
# CPU). Both run in turns as PID 1 of a fresh PID and mount namespace with
# the same three `sleep` programs (steward supervising them, Telegraf their
# parent), at the same interval; CPU from /proc/PID/task/*/schedstat
# (bench/metricscpu -vs). Telegraf is built once from its module, with only
# the plugins used (its `custom` build tags), into ~/.cache/steward-bench/.
# Needs root (namespaces) and Go; not CI's business.
# Usage: bench/telegraf.sh [-window 60s] [-interval 10s] [-runs 2]
# STEWARD_BENCH_KEEP=DIR keeps the generated telegraf.conf and the series
# names each one sent (steward.series, telegraf.series) in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
telegraf_version=v1.37.2
cache=${STEWARD_BENCH_CACHE:-$HOME/.cache/steward-bench}
telegraf=$cache/telegraf-$telegraf_version/telegraf
if [ ! -x "$telegraf" ]; then
	echo "building Telegraf $telegraf_version (once, cached in $cache)" >&2
	mkdir -p "$cache"
	nice -n 19 env GOFLAGS=-mod=mod CGO_ENABLED=0 GOBIN="$(dirname "$telegraf")" \
		go install -p 1 -trimpath -ldflags="-s -w" \
		-tags "custom,inputs.cgroup,inputs.net,inputs.netstat,inputs.nstat,inputs.procstat,inputs.internal,inputs.mem,inputs.cpu,outputs.graphite" \
		"github.com/influxdata/telegraf/cmd/telegraf@$telegraf_version"
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/steward" ./cmd/steward
go build -o "$out/metricscpu" ./bench/metricscpu

# Telegraf's config: the files steward's collectors read here, each
# cgroup directory (found as steward finds them: /proc/self/cgroup) with
# the files steward reads in it, fields cut to steward's series.
conf=$out/telegraf.conf
list() { local IFS=,; printf '"%s"' "$*" | sed 's/,/", "/g'; }
cgroup() { # dir files fields
	printf '[[inputs.cgroup]]\n  paths = [%s]\n  files = [%s]\n  fieldinclude = [%s]\n' "\"$1\"" "$2" "$3" >>"$conf"
}
: >"$conf"
declare -A done_dirs
while IFS=: read -r _ ctrls path; do
	if [ -z "$ctrls" ]; then
		if [ -d /sys/fs/cgroup/unified ]; then # hybrid: pressure only
			cgroup "/sys/fs/cgroup/unified$path" "$(list cpu.pressure memory.pressure io.pressure)" '"*.total"'
		elif grep -q ' - cgroup2 ' /proc/self/mountinfo && [ ! -d /sys/fs/cgroup/memory ]; then # v2
			cgroup "/sys/fs/cgroup$path" \
				"$(list cpu.stat cpu.max memory.current memory.max memory.stat memory.peak memory.swap.current memory.swap.max memory.events pids.current pids.max io.stat cpu.pressure memory.pressure io.pressure)" \
				"$(list cpu.stat.usage_usec cpu.stat.user_usec cpu.stat.system_usec cpu.stat.nr_periods cpu.stat.nr_throttled cpu.stat.throttled_usec 'cpu.max.*' memory.current memory.max memory.stat.anon memory.stat.file memory.stat.inactive_file memory.peak memory.swap.current memory.swap.max memory.events.max memory.events.oom memory.events.oom_kill pids.current pids.max '*.rbytes' '*.wbytes' '*.rios' '*.wios' '*.total')"
		fi
		continue
	fi
	dir=/sys/fs/cgroup/$ctrls$path
	[ -d "$dir" ] || continue
	real=$(realpath "$dir")
	[ -z "${done_dirs[$real]:-}" ] || continue
	done_dirs[$real]=1
	files=() fields=()
	for c in ${ctrls//,/ }; do
		case $c in
		cpuacct) files+=(cpuacct.usage cpuacct.stat) fields+=(cpuacct.usage 'cpuacct.stat.*') ;;
		cpu) files+=(cpu.stat cpu.cfs_quota_us cpu.cfs_period_us) fields+=(cpu.stat.nr_periods cpu.stat.nr_throttled cpu.stat.throttled_time cpu.cfs_quota_us cpu.cfs_period_us) ;;
		memory)
			files+=(memory.usage_in_bytes memory.limit_in_bytes memory.stat memory.max_usage_in_bytes memory.failcnt memory.memsw.usage_in_bytes memory.oom_control)
			fields+=(memory.usage_in_bytes memory.limit_in_bytes memory.stat.total_rss memory.stat.total_cache memory.stat.total_inactive_file memory.max_usage_in_bytes memory.failcnt memory.memsw.usage_in_bytes memory.oom_control.oom_kill)
			;;
		pids) files+=(pids.current pids.max) fields+=(pids.current pids.max) ;;
		blkio) files+=(blkio.throttle.io_service_bytes_recursive blkio.throttle.io_serviced_recursive) fields+=('*.Read' '*.Write' '*.Total') ;;
		esac
	done
	[ ${#files[@]} -eq 0 ] || cgroup "$dir" "$(list "${files[@]}")" "$(list "${fields[@]}")"
done </proc/self/cgroup
# The interfaces steward reports: all of /proc/net/dev but lo, up or not.
ifaces=$(awk -F: 'NR > 2 { gsub(/ /, "", $1); if ($1 != "lo") print $1 }' /proc/net/dev | paste -sd, -)
cat >>"$conf" <<EOF
[[inputs.net]]
  interfaces = [$(list ${ifaces//,/ })]
  fieldinclude = ["bytes_*", "packets_*", "err_*", "drop_*"]
[[inputs.netstat]]
  fieldinclude = ["tcp_*"]
  fielddrop = ["tcp_none"]
[[inputs.nstat]]
  ## steward does not read snmp6: a missing file is skipped.
  proc_net_snmp6 = "/proc/net/snmp6-not-read"
  dump_zeros = true
  fieldinclude = ["TcpActiveOpens", "TcpPassiveOpens", "TcpAttemptFails", "TcpEstabResets", "TcpInSegs", "TcpOutSegs", "TcpRetransSegs", "TcpInErrs", "TcpOutRsts", "TcpCurrEstab", "TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPTimeouts", "TcpExtTCPSynRetrans", "TcpExtSyncookiesSent", "TcpExtTCPRcvQDrop", "UdpInErrors", "UdpRcvbufErrors", "UdpSndbufErrors", "UdpNoPorts"]
[[inputs.procstat]]
  pid_finder = "native"
  properties = ["cpu", "memory"]
  fieldinclude = ["num_threads", "num_fds", "memory_rss", "cpu_time_user", "cpu_time_system", "created_at", "pid_count", "running"]
  [[inputs.procstat.filter]]
    name = "app"
    patterns = ["^sleep 100001\$"]
    recursion_depth = -1
  [[inputs.procstat.filter]]
    name = "worker"
    patterns = ["^sleep 100002\$"]
    recursion_depth = -1
  [[inputs.procstat.filter]]
    name = "cache"
    patterns = ["^sleep 100003\$"]
    recursion_depth = -1
[[inputs.internal]]
[[outputs.graphite]]
  servers = ["\${GRAPHITE_ADDR}"]
  graphite_tag_support = true
[global_tags]
  app = "bench"
  version = "1"
[agent]
  interval = "\${METRICS_INTERVAL}"
  round_interval = true
  flush_interval = "\${METRICS_INTERVAL}"
  flush_jitter = "0s"
  collection_jitter = "0s"
  quiet = true
EOF

echo "steward $(git rev-parse --short HEAD 2>/dev/null), Telegraf $telegraf_version (inputs cgroup, net, netstat, nstat, procstat, internal; outputs graphite), $(go version | cut -d' ' -f3), $(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$out/series"
"$out/metricscpu" -steward "$out/steward" -series "$out/series" -vs telegraf "$@" -- "$telegraf" --strict-env-handling --config "$conf"
cat <<'EOF'

Where the series differ (same sources read; names and shapes are each tool's own):
- steward sends per program its state (9 lines), ready, restarts and uptime from
  its supervisor, which Telegraf has no notion of; Telegraf's procstat sends
  pid_count, running and created_at instead, and reads more files per process
  (/proc/PID/status, io, ...) than it keeps.
- steward sends /proc/net/sockstat (8 series); Telegraf has no input for it.
- steward sends derived series (working set = usage - inactive_file, CPU in
  seconds, IO summed over devices, a limit only when one is set); Telegraf
  sends the raw fields (IO per device and direction, inactive_file itself, an
  unlimited limit as its number) and leaves the arithmetic to queries.
- Self-metrics: steward's own (steward.*, check.status), against Telegraf's
  inputs.internal (agent, per-input gather and per-output write statistics,
  Go memstats).
EOF
if [ -n "${STEWARD_BENCH_KEEP:-}" ]; then
	mkdir -p "$STEWARD_BENCH_KEEP" && cp "$out"/series/*.series "$conf" "$STEWARD_BENCH_KEEP"/
	echo "series names (of each one's last run) and telegraf.conf kept in $STEWARD_BENCH_KEEP"
fi
