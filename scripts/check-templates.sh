#!/bin/sh
# ClearSilver escapes only var: under Config.VarEscapeMode = html; alt:,
# evar:, lvar:, uvar: print raw, and include/linclude of a variable would
# run request data as a template.  None of them may appear in templates/.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bad=$(grep -nE '<\?cs *(alt|evar|lvar|uvar|linclude) *:|<\?cs *include *: *[^"]' "$ROOT"/templates/*.cs)
if [ -n "$bad" ]; then
	echo "not ok - templates use raw output or dynamic includes:"
	echo "$bad"
	exit 1
fi
echo "ok - templates print request and database data through var: only"
