#!/bin/sh
# The box's main program: gives each controller something to count, then
# waits until steward has printed what the kernel counted, and ends.
out=/tmp/box.out
seen() { grep -qE "^$1;[^ ]* $2 [0-9]+\$" "$out"; }
# cpu: 1.5 s of busy loop under a 0.2-core quota is throttled.
timeout 1.5 sh -c 'while :; do :; done'
# io: 8 MiB written to and read from the RAM disk, bypassing the cache.
dd if=/dev/zero of=/dev/ram0 bs=1M count=8 oflag=direct 2>/dev/null
dd if=/dev/ram0 of=/dev/null bs=1M count=8 iflag=direct 2>/dev/null
# pids: 10 more processes for a while.
for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & done
until seen container.pids.current '(1[2-9]|[2-3][0-9])'; do sleep 0.2; done
kill $(jobs -p) 2>/dev/null
# memory: the hog is OOM-killed.
touch /tmp/hog.go
until seen container.memory.oom_kills_total 1 && grep -q 'io.write_bytes_total' "$out" && seen container.cpu.throttled_periods_total '[1-9][0-9]*'; do
	sleep 0.2
done
# One more round after all of it, so every counter has caught up.
n=$(grep -c '^container.memory.oom_kills_total' "$out")
until [ "$(grep -c '^container.memory.oom_kills_total' "$out")" -gt "$((n + 1))" ]; do sleep 0.2; done
echo work: done
