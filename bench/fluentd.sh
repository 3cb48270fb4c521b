#!/usr/bin/env bash
# Measures log forwarding through steward to a Forward Protocol peer with
# acks, against fluent-logger-golang posting one record at a time with
# RequestAck. Needs root (PID namespace) and gcc.
# Usage: bench/fluentd.sh [fluentdbench flags, e.g. -n 1000000 -runs 3]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v gcc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc >/dev/null; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
gcc -O2 -o "$out/lines" bench/c/lines.c
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/steward" ./cmd/steward
go build -o "$out/fluentdbench" ./bench/fluentdbench
echo "steward $(git rev-parse --short HEAD 2>/dev/null), $(go version | cut -d' ' -f3), $(nproc) cores, $(uname -r)"
"$out/fluentdbench" -steward "$out/steward" -lines "$out/lines" "$@"
