#!/bin/sh
# The VM's checks (e2e/vm_test.go reads what they print): a "box"
# container made as a runtime makes one on cgroup v2, its steward's
# figures beside the kernel's own files, then configs/dashboards/render.sh
# in print mode.
cg=/sys/fs/cgroup
say() { echo "RESULT $*"; }
say kernel "$(uname -r)"
say hostname "$(hostname)"
[ -f $cg/cgroup.controllers ] && say cgroup2 yes
for c in cpu memory io pids; do echo "+$c" >$cg/cgroup.subtree_control; done
say subtree_control "$(cat $cg/cgroup.subtree_control)"

box=$cg/box
mkdir $box
echo "20000 100000" >$box/cpu.max
echo $((64 << 20)) >$box/memory.max
echo 0 >$box/memory.swap.max 2>/dev/null
echo 40 >$box/pids.max
# Joins the box, then unshares PID, mount and cgroup namespaces: inside,
# /sys/fs/cgroup is the box (mounted anew: a mount over the same one is
# refused), as in a container. util-linux's unshare by
# path: busybox sh would run its own applet, which has no -C.
sh -c "echo \$\$ >$box/cgroup.procs && exec /usr/bin/unshare -C -m -p -f --mount-proc sh -c 'umount /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec /steward --config /e2e/box.toml'" \
	>/tmp/box.out 2>/tmp/box.err
say box_exit $?
for f in cpu.max memory.max pids.max; do say "$f" "$(cat $box/$f)"; done
say memory.events "$(tr '\n' ' ' <$box/memory.events)"
say cpu.stat "$(tr '\n' ' ' <$box/cpu.stat)"
say io.stat "$(cat $box/io.stat)"
say cpu.pressure "$(tr '\n' ' ' <$box/cpu.pressure)"
say pids.peak "$(cat $box/pids.peak 2>/dev/null)"
grep -E '^(container|steward)\.' /tmp/box.out | sed 's/^/BOX /'
sed 's/^/BOXLOG /' /tmp/box.err
rmdir $box

# The dashboards' demo, blue and green, on this cgroup v2 kernel.
bash /repo/configs/dashboards/render.sh --print --duration 70s --steward /steward --demoapp /demoapp >/tmp/render.out 2>/tmp/render.err
say render_exit $?
grep -E '^container\.' /tmp/render.out | sed 's/^/RENDER /'
sed 's/^/RENDERLOG /' /tmp/render.err

# No zombie is left: steward, PID 1, reaped every orphan.
say zombies "$(grep -l '^[0-9]* ([^)]*) Z' /proc/[0-9]*/stat 2>/dev/null | wc -l)"
echo checks: done
