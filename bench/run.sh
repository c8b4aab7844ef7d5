#!/bin/sh
# bench/run.sh: `make bench`.  Prints figures; asserts nothing about speed.
#
#   1. NDJSON validator alone (bench/ndjson_bench.c against ${BUILD}/libbulk.a):
#      MB/s, lines/s and peak RSS for 20 MB and 200 MB of Observation lines.
#   2. End to end: bulk-data downloading from the test provider on 127.0.0.1
#      (a fixture set with Observation multiplied), into a folder and into
#      `none`, with --parallel 1 and 4: wall time, MB/s, resources/s, CPU and
#      peak RSS of bulk-data, CPU of the provider.
#
# Knobs (environment): BUILD (default build), BENCH_REPS (runs per row,
# median reported; default 3), BENCH_MULT (Observation copies; default 20),
# BENCH_FILES_PER_TYPE (provider filesPerType; default 4), BENCH_NDJSON_MB
# (validator sizes; default "20 200"), BENCH_ROWS (destination:parallel
# pairs; default "folder:1 folder:4 none:4"), BENCH_FIXTURES (default
# ../shared/fixtures), BENCH_NO_GNU_TIME=1 (peak RSS from wait4() even when
# /usr/bin/time is installed).  Everything lives in one temp dir, removed on exit
# together with the provider.
set -eu
export LC_ALL=C
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
CC=${CC:-cc}
REPS=${BENCH_REPS:-3}
MULT=${BENCH_MULT:-20}
FILES_PER_TYPE=${BENCH_FILES_PER_TYPE:-4}
NDJSON_MB=${BENCH_NDJSON_MB:-20 200}
ROWS=${BENCH_ROWS:-folder:1 folder:4 none:4}
FIXTURES=${BENCH_FIXTURES:-../shared/fixtures}
BULK=$BUILD/bin/bulk-data

say() { printf '%s\n' "$*"; }
fail() { printf 'bench: %s\n' "$*" >&2; exit 1; }

case $REPS in ''|*[!0-9]*|0) fail "BENCH_REPS must be a positive integer" ;; esac
case $MULT in ''|*[!0-9]*|0) fail "BENCH_MULT must be a positive integer" ;; esac
for spec in $ROWS; do
	case $spec in folder:[1-9]*|none:[1-9]*) ;; *) fail "BENCH_ROWS: bad row $spec" ;; esac
done
case $FILES_PER_TYPE in ''|*[!0-9]*|0) fail "BENCH_FILES_PER_TYPE must be a positive integer" ;; esac
[ -f "$FIXTURES/fhir/Observation.ndjson" ] || fail "no fixtures at $FIXTURES/fhir"
command -v node >/dev/null || fail "node is needed for the test provider"

# ---------------------------------------------------------------- build
if [ ! -x "$BULK" ] || [ ! -f "$BUILD/libbulk.a" ]; then
	make -s all BUILD="$BUILD"
fi
mkdir -p "$BUILD/bench"
# shellcheck disable=SC2046 # word splitting of pkg-config output is intended
$CC -O2 -Ilib $(pkg-config --cflags json-c) bench/ndjson_bench.c "$BUILD/libbulk.a" \
	$(pkg-config --libs libcurl json-c openssl libjwt libpq fcgi) \
	-lneo_cgi -lneo_cs -lneo_utl -lz -lpthread -lm -o "$BUILD/bench/ndjson_bench"
$CC -O2 bench/runstat.c -o "$BUILD/bench/runstat"
RUNSTAT=$BUILD/bench/runstat

# ---------------------------------------------------------------- temp dir, cleanup
T=$(mktemp -d "${TMPDIR:-/tmp}/bulk-bench.XXXXXX")
PROV_PID=''
RUN_PID=''
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [ -n "$RUN_PID" ]; then
		kill "$RUN_PID" 2>/dev/null || true
		wait "$RUN_PID" 2>/dev/null || true
	fi
	if [ -n "$PROV_PID" ]; then
		kill "$PROV_PID" 2>/dev/null || true
		wait "$PROV_PID" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

CORES=$(nproc 2>/dev/null || echo '?')
say "bulk-import benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $CORES cores"
say ""

# ---------------------------------------------------------------- 1. validator
# shellcheck disable=SC2086 # NDJSON_MB is a list
"$BUILD/bench/ndjson_bench" --fixture "$FIXTURES/fhir/Observation.ndjson" \
	--type Observation --tmpdir "$T" $NDJSON_MB
say ""

# ---------------------------------------------------------------- 2. end to end
# Fixture set: Observation x MULT with ids "<orig>-<k>", the other types as-is.
mkdir -p "$T/fx/fhir"
FIXDIR=$(cd "$FIXTURES/fhir" && pwd)
for f in "$FIXDIR"/*.ndjson; do
	n=$(basename "$f")
	[ "$n" = Observation.ndjson ] || ln -s "$f" "$T/fx/fhir/$n"
done
k=1
while [ "$k" -le "$MULT" ]; do
	sed "s/\"id\":\"\([^\"]*\)\"/\"id\":\"\1-$k\"/" "$FIXDIR/Observation.ndjson"
	k=$((k + 1))
done >"$T/fx/fhir/Observation.ndjson"
EXP_BYTES=$(cat "$T"/fx/fhir/*.ndjson | wc -c | tr -d ' ')
EXP_RES=$(cat "$T"/fx/fhir/*.ndjson | wc -l | tr -d ' ')

node tests/provider/server.mjs --port 0 --host 127.0.0.1 --fixtures "$T/fx" \
	>"$T/provider.out" 2>"$T/provider.err" &
PROV_PID=$!
i=0
while ! grep -q '^LISTENING' "$T/provider.out" 2>/dev/null; do
	kill -0 "$PROV_PID" 2>/dev/null || { cat "$T/provider.err" >&2; fail "the provider exited"; }
	i=$((i + 1))
	[ "$i" -le 300 ] || fail "the provider did not start within 30 s"
	sleep 0.1
done
PORT=$(sed -n 's/^LISTENING {"port":\([0-9]*\).*/\1/p' "$T/provider.out")
[ -n "$PORT" ] || fail "cannot read the provider's port"
CFG=$(printf '{"auth":false,"polls":0,"filesPerType":%s}' "$FILES_PER_TYPE" |
	base64 | tr -d '\n=' | tr '+/' '-_')
URL="http://127.0.0.1:$PORT/sim/$CFG/fhir"

# Peak RSS: GNU time when installed (Debian package `time`), else runstat's wait4().
if [ -z "${BENCH_NO_GNU_TIME:-}" ] && /usr/bin/time -f %M -o "$T/rss" true 2>/dev/null && [ -s "$T/rss" ]; then
	RSS_FROM="GNU time %M"
else
	RSS_FROM="wait4() ru_maxrss"
fi
TICK=$(getconf CLK_TCK)
prov_cpu() { # provider user+sys CPU seconds so far
	awk -v t="$TICK" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / t }' "/proc/$PROV_PID/stat"
}
# timed ARGS...: bulk-data under runstat (and GNU time), 180 s at most.  In the
# background + wait, so a signal to this script is handled at once (cleanup
# then stops runstat, which stops bulk-data).
timed() {
	if [ "$RSS_FROM" = "GNU time %M" ]; then
		"$RUNSTAT" "$T/stat" 180 /usr/bin/time -f %M -o "$T/rss" "$BULK" "$@" &
	else
		"$RUNSTAT" "$T/stat" 180 "$BULK" "$@" &
	fi
	RUN_PID=$!
	wait "$RUN_PID"
	st=$?
	RUN_PID=
	return "$st"
}

# one run: run MODE PARALLEL [record]
run() {
	mode=$1 par=$2
	if [ "$mode" = folder ]; then dest=$T/out; else dest=none; fi
	rm -rf "$T/out" "$T/rss"
	c0=$(prov_cpu)
	set +e
	timed --fhir-url "$URL" --destination "$dest" \
		--parallel "$par" --reporter text --cancel-on-interrupt no --deadline 170 \
		>"$T/run.log" 2>&1
	rc=$?
	set -e
	c1=$(prov_cpu)
	if [ "$rc" -ne 0 ]; then
		tail -n 20 "$T/run.log" >&2
		fail "bulk-data ($mode, --parallel $par) exited with $rc"
	fi
	got_res=$(sed -n 's/^ *resources: *\([0-9]*\).*/\1/p' "$T/run.log")
	got_bytes=$(sed -n 's/^ *bytes: *\([0-9]*\).*/\1/p' "$T/run.log")
	if [ "$got_res" != "$EXP_RES" ] || [ "$got_bytes" != "$EXP_BYTES" ]; then
		fail "bulk-data ($mode) got $got_res resources / $got_bytes bytes, expected $EXP_RES / $EXP_BYTES"
	fi
	if [ "$mode" = folder ]; then
		stored=$(cat "$T"/out/*.ndjson | wc -c | tr -d ' ')
		[ "$stored" = "$EXP_BYTES" ] || fail "stored $stored bytes, expected $EXP_BYTES"
	fi
	rm -rf "$T/out"
	[ "${3:-}" = record ] || return 0
	read -r wall usr sys rss_w _ <"$T/stat"
	if [ -s "$T/rss" ]; then rss=$(tail -n 1 "$T/rss"); else rss=$rss_w; fi
	awk -v m="$mode" -v p="$par" -v w="$wall" -v u="$usr" -v s="$sys" -v r="$rss" \
		-v a="$c0" -v b="$c1" 'BEGIN { printf "%s %s %s %.2f %s %.2f\n", m, p, w, u + s, r, b - a }' \
		>>"$T/results"
}
run none 4 # warm-up, not recorded (provider JIT, page cache)
NFILES=$(sed -n 's/.*manifest: \([0-9]*\) files.*/\1/p' "$T/run.log" | head -n 1)

say "End to end: $BULK <- test provider (node, same machine) at 127.0.0.1"
awk -v b="$EXP_BYTES" -v r="$EXP_RES" -v n="$NFILES" -v m="$MULT" -v f="$FILES_PER_TYPE" -v k="$REPS" 'BEGIN {
	printf "  export: %s files (filesPerType %s), %.1f MB, %d resources (Observation x %s); median of %s runs\n",
	       n, f, b / 1e6, r, m, k }'
r=1
while [ "$r" -le "$REPS" ]; do
	for spec in $ROWS; do
		run "${spec%:*}" "${spec#*:}" record
	done
	r=$((r + 1))
done

MID=$(((REPS + 1) / 2))
median() { sort -n | sed -n "${MID}p"; }
printf '  %-12s %8s %8s %8s %12s %8s %11s %7s %12s\n' destination parallel "wall s" "MB/s" "resources/s" \
	"CPU s" "server CPU" "busy %" "max RSS MiB"
for spec in $ROWS; do
	m=${spec%:*} p=${spec#*:}
	rows=$(grep "^$m $p " "$T/results")
	w=$(printf '%s\n' "$rows" | awk '{ print $3 }' | median)
	c=$(printf '%s\n' "$rows" | awk '{ print $4 }' | median)
	pc=$(printf '%s\n' "$rows" | awk '{ print $6 }' | median)
	rss=$(printf '%s\n' "$rows" | awk 'BEGIN { x = 0 } $5 > x { x = $5 } END { print x }')
	awk -v m="$m" -v p="$p" -v w="$w" -v c="$c" -v pc="$pc" -v rss="$rss" -v b="$EXP_BYTES" -v r="$EXP_RES" 'BEGIN {
		printf "  %-12s %8s %8.2f %8.1f %12.0f %8.2f %11.2f %7.0f %12.1f\n", m, p, w, b / 1e6 / w, r / w, c, pc,
		       100 * (c + pc) / w, rss / 1024 }'
done
say "  (MB = 10^6 bytes; wall: CLOCK_MONOTONIC around the whole bulk-data run (kick-off, manifest,"
say "   downloads, fsync/rename); CPU s: user+sys of bulk-data; server CPU: of the node provider"
say "   during the run; busy %: (CPU s + server CPU) / wall, 100 = one core busy all along;"
say "   max RSS: peak of bulk-data over the runs, from $RSS_FROM)"
exit 0
