#!/usr/bin/env bash
# StatsD intake of the real steward binary: lines per second at each rate
# tried, lost lines, kernel socket drops, steward's CPU. Usage:
#   bench/statsd.sh [-duration 5s] [-rates 10000,50000] [-batch 1,20]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/steward" ./cmd/steward
go build -o "$out/statsdbench" ./bench/statsdbench
echo "steward $(git rev-parse --short HEAD 2>/dev/null), $(go version | cut -d' ' -f3), $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$out/statsdbench" -steward "$out/steward" "$@"
