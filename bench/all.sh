#!/usr/bin/env bash
# Every figure issue 14 asks for, in one run (root, about 20 minutes):
#   1. bench/run.sh: startup, RSS (idle, and every shipper on after 60 s),
#      reaping 10,000 zombies and SIGTERM to exit, against the Go floor
#      (bench/minigo), tini, tini-static, dumb-init and supervisord;
#   2. bench/telegraf.sh: metrics' CPU against Telegraf's for the same
#      series;
#   3. bench/fluentd.sh: log forwarding (lines/s, CPU per line, peak RSS)
#      against a fast and a slow Forward peer, and the fluent-logger-golang
#      baseline.
# Each prints its own ratios; each part can be run alone with its flags.
# Usage: bench/all.sh   (RUNS=150 SLOW_RUNS=11 FLUENTD_RUNS=3 to change)
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== init figures (bench/run.sh)"
bench/run.sh -runs "${RUNS:-150}" -slow-runs "${SLOW_RUNS:-11}"
echo
echo "== metrics against Telegraf (bench/telegraf.sh)"
bench/telegraf.sh
echo
echo "== log forwarding (bench/fluentd.sh)"
bench/fluentd.sh -runs "${FLUENTD_RUNS:-3}"
