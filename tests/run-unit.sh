#!/bin/sh
# Run C unit test binaries (built with ASan/UBSan); each prints ok/not ok
# lines and "# N passed, N failed".  Prints "unit: N passed, N failed".
set -u
pass=0 fail=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for t in "$@"; do
	out=$("$t" 2>&1); rc=$?
	printf '%s\n' "$out" | grep -v '^ok - ' || true
	p=$(printf '%s\n' "$out" | grep -c '^ok - ')
	f=$(printf '%s\n' "$out" | grep -c '^not ok - ')
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $t exited with status $rc (crash or sanitizer report above)"
		f=1
	fi
	echo "$(basename "$t"): $p passed, $f failed"
	pass=$((pass + p)); fail=$((fail + f))
done
# the README's configuration reference is generated from the config table
if out=$(sh "$(dirname "$0")/../scripts/config-doc.sh" --check); then pass=$((pass + 1)); else fail=$((fail + 1)); fi
echo "$out"
if out=$(sh "$(dirname "$0")/../scripts/check-templates.sh"); then pass=$((pass + 1)); else fail=$((fail + 1)); fi
echo "$out"
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
