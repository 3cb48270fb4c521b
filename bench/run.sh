#!/usr/bin/env bash
# Measures steward as an init against Debian's tini, tini-static, dumb-init
# and supervisord, and against the minimal Go init (bench/minigo): startup,
# RSS (all and anonymous), reaping 10,000 zombies, SIGTERM to exit, and RSS
# after a minute side by side. steward runs twice: with the default config
# (`steward -- CMD`) and with bench/multi.toml (two more programs, checks,
# the endpoint and socket, metrics to Graphite and Prometheus, Fluentd and
# Sensu, every peer down). The inits take turns run by run, so ratios of one
# run compare like with like on a loaded machine. Prints medians and
# ratios. Needs root (PID namespaces).
# Usage: bench/run.sh [initbench flags], e.g. -runs 200 -slow-runs 15 -hold 60s
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for cmd in tini dumb-init supervisord gcc; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
if [ ${#need[@]} -gt 0 ]; then
	pkgs=()
	for cmd in "${need[@]}"; do case $cmd in supervisord) pkgs+=(supervisor) ;; *) pkgs+=("$cmd") ;; esac; done
	echo "installing ${pkgs[*]}" >&2
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
gcc -O2 -static -o "$out/stamp" bench/c/stamp.c 2>/dev/null || gcc -O2 -o "$out/stamp" bench/c/stamp.c
gcc -O2 -o "$out/orphans" bench/c/orphans.c
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/steward" ./cmd/steward
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/minigo" ./bench/minigo
go build -o "$out/initbench" ./bench/initbench
cat >"$out/supervisord.sh" <<'SH'
#!/bin/sh
# supervisord runs the given command as its one program.
conf=$(mktemp)
printf '[supervisord]\nnodaemon=true\nsilent=true\nuser=root\nlogfile=/dev/null\npidfile=/tmp/sd-%s.pid\n[program:main]\ncommand=%s\nstdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\nautorestart=false\nstartsecs=0\n' "$$" "$*" >"$conf"
exec supervisord -c "$conf"
SH
chmod +x "$out/supervisord.sh"
echo "steward $(git rev-parse --short HEAD 2>/dev/null), $(go version | cut -d' ' -f3), $(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg), binary $(stat -c %s "$out/steward") bytes"
"$out/initbench" -stamp "$out/stamp" -orphans "$out/orphans" -hold 60s "$@" \
	"minigo=$out/minigo" \
	"steward=$out/steward,--" \
	"steward-multi=$out/steward,--config,$PWD/bench/multi.toml,--" \
	"tini=$(command -v tini),--" \
	"tini-static=$(command -v tini-static),--" \
	"dumb-init=$(command -v dumb-init)" \
	"supervisord=$out/supervisord.sh"
