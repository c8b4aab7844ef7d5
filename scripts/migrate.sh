#!/bin/sh
# Apply sql/NNN_*.sql files not yet recorded in schema_versions, in order,
# each in its own transaction.  Safe to run any number of times.
set -eu
CONN=${1:?usage: migrate.sh CONNINFO}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PSQL="psql -X -q -v ON_ERROR_STOP=1 -d"
$PSQL "$CONN" -c "CREATE TABLE IF NOT EXISTS schema_versions (
	version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
for f in "$ROOT"/sql/[0-9][0-9][0-9]_*.sql; do
	name=$(basename "$f")
	v=$(echo "$name" | sed 's/^0*\([0-9][0-9]*\)_.*/\1/')
	done=$($PSQL "$CONN" -tAc "SELECT 1 FROM schema_versions WHERE version = $v")
	[ "$done" = 1 ] && continue
	{ echo "BEGIN;"; cat "$f"; echo "INSERT INTO schema_versions (version, name) VALUES ($v, '$name');"; echo "COMMIT;"; } |
		$PSQL "$CONN" >/dev/null
	echo "applied $name"
done
