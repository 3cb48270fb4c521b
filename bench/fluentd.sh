#!/usr/bin/env bash
# Measures log forwarding through steward to a Forward Protocol peer with
# acks, fast and slow (-slow-rate records/s, like Fluentd 1.16 with a file
# output): lines/s, CPU s per million lines, duplicates and peak RSS
# (VmHWM); and fluent-logger-golang posting one record at a time with
# RequestAck. Needs root (PID namespace) and gcc.
# BASE=<git ref> also builds steward at that ref and measures it in the
# same run, interleaved (before/after on a shared machine).
# Usage: [BASE=main] bench/fluentd.sh [fluentdbench flags, e.g. -n 1000000 -runs 3 -slow-rate 15000]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v gcc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc >/dev/null; }
out=$(mktemp -d)
cleanup() {
	[ -d "$out/base-src" ] && git worktree remove --force "$out/base-src" >/dev/null 2>&1 || true
	rm -rf "$out"
}
trap cleanup EXIT
gcc -O2 -o "$out/lines" bench/c/lines.c
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/steward" ./cmd/steward
go build -o "$out/fluentdbench" ./bench/fluentdbench
base=()
if [ -n "${BASE:-}" ]; then
	git worktree add --detach "$out/base-src" "$BASE" >/dev/null 2>&1
	(cd "$out/base-src" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/steward-base" ./cmd/steward)
	base=(-base "$out/steward-base")
	echo "base: $BASE ($(git rev-parse --short "$BASE"))"
fi
echo "steward $(git rev-parse --short HEAD 2>/dev/null), $(go version | cut -d' ' -f3), $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$out/fluentdbench" -steward "$out/steward" -lines "$out/lines" "${base[@]}" "$@"
