#!/bin/sh
# The whole suite: C unit tests, then integration tests (Node's test runner)
# against real PostgreSQL, Apache + mod_fcgid, the worker and the test
# provider.  Ends with one line "N passed, N failed" over all suites.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
VAR=${TEST_VAR:-"$ROOT/var/test"}   # TEST_VAR lets two runs share a checkout
pass=0 fail=0
log=$(mktemp)

count() {   # file prefix-regexp -> "P F" from the last "N passed, N failed" line
	sed -n 's/.*[^0-9]\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed.*/\1 \2/p' "$1" | tail -n 1
}

# npm packages used by the tests (s3rver for the S3 destination, playwright-core
# for the browser), installed from their lock files
for d in tests/s3 tests/browser; do
	if [ -f "$d/package.json" ] && [ ! -d "$d/node_modules" ]; then
		(cd "$d" && npm ci --no-audit --no-fund --silent) || echo "not ok - npm ci in $d failed"
	fi
done

# 1. C unit tests
sh tests/run-unit.sh "$@" | tee "$log"
set -- $(count "$log") 
pass=$((pass + ${1:-0})); fail=$((fail + ${2:-1}))

# 2. integration (and browser tests when present)
sh scripts/services.sh stop "$VAR" >/dev/null 2>&1 || true
rm -rf "$VAR"
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
mkdir -p "$VAR"
cat > "$VAR/bulk-import.conf.extra" <<CONF
status_retry_after = 1
poll_default_wait = 1
poll_max_wait = 2
worker_lease_seconds = 6
max_running_imports = 3
export_deadline = 120
http_retries = 2
inline_attachment_types = image/jpeg, application/pdf
inline_attachment_max = 100000
provider_headers = X-Consumer-Test: yes
CONF
export BULK_IMPORT_TEST=1
trap 'sh scripts/services.sh stop "$VAR" >/dev/null 2>&1; rm -f "$log"' EXIT INT TERM
if sh scripts/services.sh start "$VAR" "$PORT" > "$VAR/start.log" 2>&1; then
	CONSUMER_BASE="http://127.0.0.1:$PORT" VAR_DIR="$VAR" ROOT_DIR="$ROOT" \
	CONSUMER_DB="host=$VAR/pg dbname=bulk_import user=postgres" \
	node --test --test-reporter=tap --test-concurrency=2 \
		tests/provider/*.test.mjs tests/integration/*.test.mjs $(ls tests/browser/*.test.mjs 2>/dev/null) > "$log" 2>&1
	grep -v '^ *# Subtest\|^ *ok \|^ *---$\|^ *\.\.\.$\|^ *duration_ms\|^TAP version' "$log" | grep -v '^ *1\.\.' || true
	p=$(sed -n 's/^# pass \([0-9]*\)/\1/p' "$log" | tail -n 1)
	f=$(sed -n 's/^# fail \([0-9]*\)/\1/p' "$log" | tail -n 1)
	[ -n "$p" ] || { p=0; f=1; echo "integration: runner produced no summary"; }
	echo "integration: $p passed, $f failed"
	pass=$((pass + p)); fail=$((fail + f))
else
	cat "$VAR/start.log"
	echo "not ok - services failed to start"
	fail=$((fail + 1))
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
