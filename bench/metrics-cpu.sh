#!/usr/bin/env bash
# steward's CPU share with metrics on, against the same steward with
# metrics off: prints both, the difference per collection, and the ratio
# to the budget (0.1 % of a core at a 10 s interval). Needs root (PID and
# mount namespaces). Usage: bench/metrics-cpu.sh [-window 120s] [-interval 10s]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/steward" ./cmd/steward
go build -o "$out/metricscpu" ./bench/metricscpu
echo "steward $(git rev-parse --short HEAD 2>/dev/null), $(go version | cut -d' ' -f3), $(nproc) cores, $(uname -r)"
"$out/metricscpu" -steward "$out/steward" "$@"
