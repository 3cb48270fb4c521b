#!/usr/bin/env bash
# What the health surfaces cost at start: runs `steward -- true` (start,
# run a program that exits at once, stop) N times with the HTTP endpoint and
# control socket off, then with them on (the default), then also as a Sensu
# agent whose backend is down. Prints the median wall time, the median max
# RSS and the ratios to the first. Usage: bench/surfaces.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/steward" ./cmd/steward
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The three setups take turns, so drift in the machine's load hits all alike.
setups=(
	"off|STEWARD_HTTP_ADDR=off STEWARD_CONTROL_SOCKET=$out/off.sock"
	"http+socket|STEWARD_HTTP_ADDR=127.0.0.1:$port STEWARD_CONTROL_SOCKET=$out/on.sock"
	"http+socket+sensu(down)|STEWARD_HTTP_ADDR=127.0.0.1:$port STEWARD_CONTROL_SOCKET=$out/s.sock STEWARD_SENSU_BACKEND_URL=ws://127.0.0.1:1/ STEWARD_FLUSH_TIMEOUT=1s"
)
for _ in $(seq "$n"); do
	for i in "${!setups[@]}"; do
		IFS='|' read -r _ vars <<<"${setups[$i]}"
		s=$(date +%s%N)
		# shellcheck disable=SC2086
		env $vars /usr/bin/time -f %M -o "$out/rss" "$out/steward" -- true >/dev/null 2>&1
		e=$(date +%s%N)
		echo $(( (e - s) / 1000 )) >>"$out/t$i"
		cat "$out/rss" >>"$out/m$i"
	done
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "steward $(git rev-parse --short HEAD 2>/dev/null), $(go version | cut -d' ' -f3), $(nproc) cores, $n runs each of: steward -- true"
for i in "${!setups[@]}"; do
	IFS='|' read -r name _ <<<"${setups[$i]}"
	echo "$name $(median "$out/t$i") $(median "$out/m$i")"
done | awk 'NR==1 {bt=$2; bm=$3} {printf "%-26s median %7.2f ms (x%.2f)   max RSS %6d KiB (x%.2f)\n", $1, $2/1000, $2/bt, $3, $3/bm}'
