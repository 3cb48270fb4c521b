#!/bin/sh
# Cost of the chain loader that sets inherited signal dispositions: time
# for `steward -- true` started plainly, and under nohup (HUP inherited
# ignored, so the program is started through steward re-executed).
# Usage: bench/signals.sh [STEWARD_BIN] [RUNS]
bin=${1:-./steward}; runs=${2:-50}
t() { s=$(date +%s%N); i=0; while [ $i -lt $runs ]; do "$@" >/dev/null 2>&1; i=$((i+1)); done; echo $(( ($(date +%s%N) - s) / runs / 1000 )); }
plain=$(t "$bin" -- true)
nohup=$(t nohup "$bin" -- true)
bare=$(t nohup true)
echo "steward -- true: ${plain} us; under nohup (chain loader): ${nohup} us; nohup alone: ${bare} us"
