#!/usr/bin/env bash
# render.sh: the README's per-version graphs, made by real Graphite.
#
# Runs the demo (configs/examples/demo.toml) as two versions of one app,
# "blue" and "green", each as PID 1 of its own PID namespace and in its own
# cgroup (as a container runtime would start them), shipping metrics to a
# real carbon-cache, and renders the dashboard's panels
# (configs/dashboards/steward-graphite.json) through a real graphite-web's
# /render API into docs/img/*.png. Each version also runs the demo app
# (configs/dashboards/demoapp), which reports its requests by StatsD and on
# a Prometheus endpoint, for the dashboard's App row.
#
#   configs/dashboards/render.sh [--duration 4m] [--out DIR] [--keep]
#                                [--steward BIN --demoapp BIN] [--print]
#
# Needs root on Debian 12 (apt, cgroups, namespaces) and Go. Everything it
# starts lives in a temporary directory on loopback ports it picks; nothing
# in /etc is written, and every process and cgroup it made is gone when it
# exits (--keep keeps the temporary directory, for a look at the logs).
# --steward and --demoapp use these binaries instead of building them.
# --print runs only the deployments, with no Graphite: each steward prints
# its metric lines (print mode), and the script writes them all to stdout
# at the end, ready for carbon's plaintext port; with the binaries given it
# needs only bash, busybox and root (the e2e test runs it so on a cgroup v2
# kernel under qemu).
set -euo pipefail

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

duration=4m
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=$repo/docs/img
keep=false
steward=
demoapp=
print=false
while [ $# -gt 0 ]; do
	case $1 in
	--duration) duration=${2:?--duration needs a value}; shift 2 ;;
	--duration=*) duration=${1#*=}; shift ;;
	--out) out=${2:?--out needs a directory}; shift 2 ;;
	--out=*) out=${1#*=}; shift ;;
	--keep) keep=true; shift ;;
	--steward) steward=${2:?--steward needs a binary}; shift 2 ;;
	--steward=*) steward=${1#*=}; shift ;;
	--demoapp) demoapp=${2:?--demoapp needs a binary}; shift 2 ;;
	--demoapp=*) demoapp=${1#*=}; shift ;;
	--print) print=true; shift ;;
	-h | --help) usage ;;
	*) echo "render.sh: unknown argument $1" >&2; usage 2 >&2 ;;
	esac
done
case $duration in
*m) seconds=$((${duration%m} * 60)) ;;
*s) seconds=${duration%s} ;;
*) seconds=$duration ;;
esac
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 70 ]; then
	# Under ~70 s there is not one whole run of the demo's main program.
	echo "render.sh: --duration $duration: give at least 70s (e.g. 90s, 4m)" >&2
	exit 2
fi
if [ "$(id -u)" != 0 ]; then
	echo "render.sh: run as root (apt, cgroups, namespaces)" >&2
	exit 2
fi

# The two deployments: same app and programs, different versions and CPU
# quotas. Green gets a fifth of a core, so its load is throttled: the
# picture shows what a tighter limit does to the same code.
app=demo
blue_version=3074f46 blue_cpu_us=100000 # 1 core (per 100 ms period)
green_version=9c1e2ab green_cpu_us=20000 # 0.2 core
memory_limit=$((128 << 20))

log() { echo "render.sh: $*" >&2; }
# cores QUOTA_US: a quota per 100 ms period as cores (20000 -> 0.2).
cores() { awk -v q="$1" 'BEGIN { print q / 100000 }'; }

# --- Packages --------------------------------------------------------------
# Debian 12's Graphite 1.1: carbon (graphite-carbon), the web app and its
# /render API (graphite-web), whisper. Fonts for the graphs' text, which a
# minimal image may lack. policy-rc.d keeps apt from starting the packaged
# services: this script runs its own copies on its own ports.
packages=(graphite-carbon graphite-web python3-whisper fonts-dejavu-core)
$print && packages=()
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	made_policy=false
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=true
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; }
	if $made_policy; then rm -f /usr/sbin/policy-rc.d; fi
fi
# Debian's python: the packages' modules live in its dist-packages, which a
# python3 earlier on PATH (pyenv, a venv) would not see.
py=/usr/bin/python3

# --- Cleanup ---------------------------------------------------------------
# Not under /tmp: each deployment gets a private /tmp (see deploy), which
# would hide this directory and the steward binary in it.
work=$(mktemp -d /var/tmp/steward-render.XXXXXX)
pids=()   # carbon, graphite-web, the deployment loops
cgdirs=() # every cgroup directory made, in creation order
cleanup() {
	local status=$?
	set +e
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	# Whatever is still in the cgroups (a steward and its programs, when the
	# script was interrupted) is killed, then the cgroups are removed.
	for dir in "${cgdirs[@]}"; do
		for _ in $(seq 50); do
			rmdir "$dir" 2>/dev/null && break
			for p in $(cat "$dir/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
			sleep 0.1
		done
		[ -d "$dir" ] && log "could not remove cgroup $dir"
	done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
	if $keep || [ "$status" != 0 ]; then
		log "logs and data kept in $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# freeports N prints N distinct free loopback ports: bound to port 0
# together, so the kernel hands out distinct ones, then released.
freeports() {
	if [ ! -x "$py" ]; then
		# No python (--print in a bare VM): ports from a random start on
		# which nothing accepts connections.
		local p=$((20000 + RANDOM % 20000)) n=0 out=()
		while [ "$n" -lt "$1" ]; do
			p=$((p + 1))
			(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
			out+=("$p"); n=$((n + 1))
		done
		echo "${out[*]}"
		return
	fi
	"$py" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
read -r line_port pickle_port query_port web_port blue_statsd_port blue_app_port green_statsd_port green_app_port < <(freeports 8)

# waitport PORT PID WHAT: until something accepts on PORT, or PID died.
waitport() {
	for _ in $(seq 300); do
		kill -0 "$2" 2>/dev/null || { log "$3 exited; its log:"; cat "$work/$3.log" >&2; exit 1; }
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.2
	done
	log "$3 not listening on 127.0.0.1:$1 after 60 s"
	exit 1
}

if ! $print; then
# --- graphite-web ----------------------------------------------------------
# graphite.settings imports the module named by GRAPHITE_SETTINGS_MODULE
# (Debian's default: /etc/graphite/local_settings.py) before it derives the
# rest from STORAGE_DIR, so a module of ours on PYTHONPATH moves all of it
# into the temporary directory and /etc is not read.
mkdir -p "$work/py" "$work/storage/whisper" "$work/storage/log/webapp" "$work/conf"
secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
cat >"$work/py/steward_render_settings.py" <<EOF
STORAGE_DIR = '$work/storage'
WHISPER_DIR = '$work/storage/whisper'
STANDARD_DIRS = [WHISPER_DIR]
LOG_DIR = '$work/storage/log/webapp'
INDEX_FILE = '$work/storage/index'
CONF_DIR = '$work/conf'
LOG_ROTATION = False
SECRET_KEY = '$secret'
TIME_ZONE = 'UTC'
DEFAULT_XFILES_FACTOR = 0
# The tag database that carbon fills (ENABLE_TAGS) and seriesByTag reads.
TAGDB = 'graphite.tags.localdatabase.LocalDatabaseTagDB'
DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': '$work/storage/graphite.db'}}
# Points carbon holds but has not written yet are fetched from its cache.
CARBONLINK_HOSTS = ['127.0.0.1:$query_port']
EOF
export PYTHONPATH=$work/py GRAPHITE_SETTINGS_MODULE=steward_render_settings DJANGO_SETTINGS_MODULE=graphite.settings
"$py" -m django migrate --noinput >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; exit 1; }
# Django's own server is enough for one client; --noreload keeps it one
# process, so its pid is the one to stop.
"$py" -m django runserver "127.0.0.1:$web_port" --noreload >"$work/graphite-web.log" 2>&1 &
pids+=($!)
waitport "$web_port" "$!" graphite-web

# --- carbon ----------------------------------------------------------------
# As in cmd/steward/carbon_test.go, plus tags: carbon registers every new
# tagged series with graphite-web's tag database (GRAPHITE_URL). Retention:
# one point per 2 s, steward's interval here, for 2 hours.
cat >"$work/conf/carbon.conf" <<EOF
[cache]
STORAGE_DIR = $work/storage
LOCAL_DATA_DIR = $work/storage/whisper
LOG_DIR = $work/storage/log
PID_DIR = $work
ENABLE_LOGROTATION = False
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = $line_port
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = $pickle_port
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = $query_port
MAX_CREATES_PER_MINUTE = inf
MAX_UPDATES_PER_SECOND = inf
ENABLE_TAGS = True
GRAPHITE_URL = http://127.0.0.1:$web_port
TAG_HASH_FILENAMES = True
LOG_CREATES = False
LOG_UPDATES = False
EOF
printf '[all]\npattern = .*\nretentions = 2s:2h\n' >"$work/conf/storage-schemas.conf"
carbon-cache --config="$work/conf/carbon.conf" --debug start >"$work/carbon.log" 2>&1 &
pids+=($!)
waitport "$line_port" "$!" carbon
fi

# --- steward and the demo --------------------------------------------------
if [ -n "$steward" ] && [ -n "$demoapp" ]; then
	cp "$steward" "$work/steward"
	cp "$demoapp" "$work/demoapp"
else
	log "building steward and the demo app"
	(cd "$repo" && CGO_ENABLED=0 go build -o "$work/steward" ./cmd/steward &&
		CGO_ENABLED=0 go build -o "$work/demoapp" ./configs/dashboards/demoapp)
fi

# The demo as it ships, plus one program that wants about 0.3 of a core
# (0.3 s of busy loop every second): the demo's own programs mostly sleep,
# and a quota only shows on what uses CPU.
cp "$repo/configs/examples/demo.toml" "$work/demo.toml"
cat >>"$work/demo.toml" <<'EOF'

# Added by configs/dashboards/render.sh: some CPU for the quotas to act on.
[programs.load]
command = ["sh", "-c", "while :; do timeout 0.3 sh -c 'while :; do :; done'; sleep 0.7; done"]
EOF

# appconf NAME STATSD_PORT APP_PORT ERRORS: the deployment's config: the
# demo plus the demo app (configs/dashboards/demoapp), which sends StatsD
# to steward and serves a Prometheus endpoint steward scrapes, failing
# ERRORS of its requests. Each deployment has its own ports: they share
# the host's network namespace here, as containers would not.
appconf() {
	cp "$work/demo.toml" "$work/$1.toml"
	cat >>"$work/$1.toml" <<EOF

# Added by configs/dashboards/render.sh: the app's own metrics.
[programs.webapp]
command = ["$work/demoapp"]
env = { DEMO_STATSD = "127.0.0.1:$2", DEMO_LISTEN = "127.0.0.1:$3", DEMO_ERRORS = "$4" }
metrics_url = "http://127.0.0.1:$3/metrics"

[metrics.statsd]
enabled = true
addr = "127.0.0.1:$2"
percentiles = [90, 99]
EOF
	"$work/steward" validate --config "$work/$1.toml" >/dev/null
}
appconf blue "$blue_statsd_port" "$blue_app_port" 0.02
appconf green "$green_statsd_port" "$green_app_port" 0.05

# mkcgroups NAME CPU_US: a cgroup per deployment, as a runtime makes one
# per container, with a CPU quota (per 100 ms) and a memory limit. Sets
# joined to the directories whose cgroup.procs its PID 1 must join.
mkcgroups() {
	local name=steward-render-$$-$1 quota=$2 d
	joined=()
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		# v2: one tree; the controllers must be enabled in the parent.
		for c in cpu memory pids; do
			echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
		done
		d=/sys/fs/cgroup/$name
		mkdir "$d"; cgdirs+=("$d")
		echo "$quota 100000" >"$d/cpu.max"
		echo "$memory_limit" >"$d/memory.max"
		joined+=("$d")
	else
		# v1 or hybrid: a directory per controller; cpu and cpuacct may be
		# one hierarchy under two names (then it is made once).
		local seen=()
		for c in cpu cpuacct memory pids; do
			local root real
			root=/sys/fs/cgroup/$c
			[ -d "$root" ] || continue
			real=$(readlink -f "$root")
			[[ " ${seen[*]} " == *" $real "* ]] && continue
			seen+=("$real")
			d=$root/$name
			mkdir "$d"; cgdirs+=("$d")
			case $c in
			cpu)
				echo 100000 >"$d/cpu.cfs_period_us"
				echo "$quota" >"$d/cpu.cfs_quota_us"
				;;
			memory) echo "$memory_limit" >"$d/memory.limit_in_bytes" ;;
			esac
			joined+=("$d")
		done
		# A hybrid host accounts pressure in the v2 tree.
		if [ -f /sys/fs/cgroup/unified/cgroup.procs ]; then
			d=/sys/fs/cgroup/unified/$name
			mkdir "$d"; cgdirs+=("$d")
			joined+=("$d")
		fi
	fi
}

# deploy NAME VERSION CGROUP_DIR...: the deployment's container, started
# again whenever it ends (the demo's main program ends after 60 s) until
# the run's end. Each start joins the cgroups, then becomes PID 1 of a new
# PID namespace with its own /proc and a private /tmp (the demo's cache
# marks itself ready in /tmp/steward-demo-cache.ready; the two must not
# see each other's).
deploy() {
	local name=$1 version=$2
	shift 2
	local n=0
	while [ "$(date +%s)" -lt "$end" ]; do
		n=$((n + 1))
		echo "render.sh: $name: start $n at $(date -u +%T)"
		(
			for d in "$@"; do echo "$BASHPID" >"$d/cgroup.procs"; done
			export STEWARD_APP=$app STEWARD_VERSION=$version STEWARD_METRICS_INTERVAL=2s \
				STEWARD_HTTP_ADDR=off STEWARD_CONTROL_SOCKET=$work/$name.sock
			if $print; then
				export STEWARD_METRICS_PRINT=true
			else
				export STEWARD_GRAPHITE_ADDR=127.0.0.1:$line_port STEWARD_METRICS_PRINT=false
			fi
			# Short options: util-linux's unshare and busybox's take them.
			exec unshare -p -f --mount-proc -- sh -c \
				'mount -t tmpfs -o mode=1777,size=16m tmpfs /tmp && exec "$@"' sh \
				"$work/steward" --config "$work/$name.toml"
		) || { echo "render.sh: $name: steward exited with status $?"; exit 1; }
	done
}

# pid1s DIR: the processes in a cgroup that are PID 1 of their namespace
# (the stewards), by the last field of NSpid.
pid1s() {
	local p
	for p in $(cat "$1/cgroup.procs" 2>/dev/null); do
		awk '/^NSpid:/ && NF > 2 && $NF == 1 { found = 1 } END { exit !found }' "/proc/$p/status" 2>/dev/null && echo "$p"
	done
}

mkcgroups blue "$blue_cpu_us"
blue_cg=("${joined[@]}")
mkcgroups green "$green_cpu_us"
green_cg=("${joined[@]}")

start=$(date +%s)
end=$((start + seconds))
log "running blue ($blue_version) and green ($green_version) for ${seconds}s; logs in $work"
deploy blue "$blue_version" "${blue_cg[@]}" >"$work/blue.log" 2>&1 &
pids+=($!)
blue_loop=$!
deploy green "$green_version" "${green_cg[@]}" >"$work/green.log" 2>&1 &
pids+=($!)
green_loop=$!

# A steward that fails ends its loop early (the demo itself exits 0).
while [ "$(date +%s)" -lt "$end" ]; do
	for loop in "$blue_loop:blue" "$green_loop:green"; do
		if ! kill -0 "${loop%:*}" 2>/dev/null; then
			log "the ${loop#*:} deployment failed; its log:"
			tail -n 20 "$work/${loop#*:}.log" >&2
			exit 1
		fi
	done
	sleep 1
done
# The end: TERM to each steward, as `docker stop` does; it stops its
# programs and flushes its metrics. Repeated until both loops are done, in
# case one was just starting a steward.
while kill -0 "$blue_loop" 2>/dev/null || kill -0 "$green_loop" 2>/dev/null; do
	for p in $(pid1s "${blue_cg[0]}") $(pid1s "${green_cg[0]}"); do kill -TERM "$p" 2>/dev/null || true; done
	sleep 1
done
stop=$(date +%s)

if $print; then
	# The metric lines only (the logs also hold the programs' output).
	grep -hE '^[A-Za-z0-9_.-]+;[^ ]+ [^ ]+ [0-9]+$' "$work/blue.log" "$work/green.log"
	exit 0
fi

# --- Render ----------------------------------------------------------------
# Each graph is a dashboard panel's query with $app and $version filled in
# (one series per version, named by aliasByTags). It is fetched as JSON
# first: it must hold both versions, each with data, or the script fails
# rather than leave an empty picture (the PNGs reach --out only when all
# are right). The PNG draws the same query twice,
# grep'd to one version each: blue wide, green narrow on top, so that equal
# figures still show both lines, and each in its own colour.
mkdir -p "$work/img"
by() { echo "seriesByTag('name=$1','app=$app','version=~($blue_version|$green_version)'${2:+,$2})"; }
# Restarts are counted per whole minute from the start (a partial last
# minute would look like fewer restarts).
whole=$((start + (stop - start) / 60 * 60))
graphs=(
	# file name | title | query | extra /render parameters (URL-encoded)
	"demo-cpu-by-version|CPU used (cores)|aliasByTags(perSecond($(by container.cpu.usage_seconds_total)), 'version')|"
	"demo-throttled-by-version|CPU throttled (seconds per second)|aliasByTags(perSecond($(by container.cpu.throttled_seconds_total)), 'version')|"
	"demo-memory-by-version|Memory working set (limit: $((memory_limit >> 20)) MiB)|aliasByTags($(by container.memory.working_set_bytes), 'version')|yUnitSystem=binary"
	"demo-restarts-by-version|Restarts of the crashing worker, per minute|aliasByTags(summarize(nonNegativeDerivative($(by program.restarts_total "'program=worker'")), '1min', 'sum', true), 'version')|lineMode=staircase&until=$whole"
	# The App row: the demo app's StatsD and its Prometheus endpoint.
	"demo-app-requests-by-version|App: requests per second (StatsD http.requests.rate)|aliasByTags(groupByTags($(by http.requests.rate), 'sum', 'version'), 'version')|"
	"demo-app-latency-by-version|App: latency p90, ms (StatsD http.request_duration.p90)|aliasByTags(groupByTags($(by http.request_duration.p90), 'max', 'version'), 'version')|"
	"demo-app-errors-by-version|App: errors per second (Prometheus http_requests_total, code 5xx)|aliasByTags(groupByTags(perSecond($(by http_requests_total "'code=~^5'")), 'sum', 'version'), 'version')|"
)
"$py" - "$web_port" "$start" "$stop" "$work/img" \
	"$blue_version" "blue: $(cores "$blue_cpu_us")-core quota" \
	"$green_version" "green: $(cores "$green_cpu_us")-core quota" \
	"${graphs[@]}" <<'EOF'
import json, sys, urllib.parse, urllib.request

port, start, stop, out, blue, blue_label, green, green_label = sys.argv[1:9]
common = {
    "from": start, "until": stop, "width": "800", "height": "300", "tz": "UTC",
    "bgcolor": "white", "fgcolor": "black", "majorGridLineColor": "#cccccc",
    "minorGridLineColor": "#eeeeee", "lineWidth": "2", "yMin": "0", "hideLegend": "false",
}

def render(params):
    url = "http://127.0.0.1:%s/render?%s" % (port, urllib.parse.urlencode(params, doseq=True))
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.headers.get("Content-Type", ""), r.read()

def one(query, version, label, colour, width):
    return "color(lineWidth(aliasSub(grep(%s, '^%s$'), '$', ' (%s)'), %d), '%s')" % (
        query, version, label, width, colour)

ok = True
for graph in sys.argv[9:]:
    # The query holds a | of its own (the version regex).
    name, title, rest = graph.split("|", 2)
    query, extra = rest.rsplit("|", 1)
    params = dict(common)
    params.update(urllib.parse.parse_qsl(extra))
    _, body = render(dict(params, target=query, format="json"))
    points = {s["target"]: sum(v is not None for v, _ in s["datapoints"]) for s in json.loads(body)}
    print("render.sh: %s: %s" % (name, ", ".join("%s %d points" % kv for kv in sorted(points.items())) or "no series"), file=sys.stderr)
    if sorted(points) != sorted([blue, green]) or min(points.values()) == 0:
        print("render.sh: %s: want both versions, each with data" % name, file=sys.stderr)
        ok = False
    params.update(title=title, format="png", target=[
        one(query, blue, blue_label, "#1f77b4", 4),
        one(query, green, green_label, "#2ca02c", 2),
    ])
    ctype, png = render(params)
    if ctype != "image/png":
        sys.exit("render.sh: %s: got %s, not a PNG" % (name, ctype))
    with open("%s/%s.png" % (out, name), "wb") as f:
        f.write(png)
sys.exit(0 if ok else 1)
EOF
mkdir -p "$out"
cp "$work"/img/*.png "$out"/
log "graphs in $out: $(cd "$work/img" && echo *.png)"
