#!/bin/sh
# Regenerate (or with --check, verify) the configuration reference in
# README.md from lib/config_table.h, via `bulk-import-config --doc`.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/${BUILD:-build}/bin/bulk-import-config"
tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.doc"' EXIT
"$BIN" --doc > "$tmp.doc"
awk -v doc="$tmp.doc" '
	/<!-- config:begin -->/ { print; while ((getline l < doc) > 0) print l; skip = 1; next }
	/<!-- config:end -->/ { skip = 0 }
	!skip { print }' "$ROOT/README.md" > "$tmp"
if [ "${1:-}" = --check ]; then
	if cmp -s "$tmp" "$ROOT/README.md"; then
		echo "ok - README configuration reference matches lib/config_table.h"
	else
		echo "not ok - README configuration reference is stale: run make doc-config"
		exit 1
	fi
else
	cp "$tmp" "$ROOT/README.md"
fi
