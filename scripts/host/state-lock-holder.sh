#!/bin/sh
# Names who holds the lock on a lab's state in PostgreSQL (state.backend pg): the
# engine's own lock error describes the run that failed to take the lock, not the
# holder. Prints one line per held lock (the holder's application name, which btw
# sets to user@host and command, and since when); prints nothing when none is held.
# The connection comes from libpq's environment (PGHOST, PGPORT, PGUSER, PGDATABASE,
# PGPASSWORD, ...: bin/btw.ts sets them from PG_CONN_STR), never from an argument.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=state-lock-holder
USAGE="usage: PGHOST=... [PGUSER=... PGDATABASE=...] state-lock-holder.sh --schema NAME [--schema NAME]..."
# shellcheck source=../steps/lib/messages.sh
. "$(dirname "$0")/../steps/lib/messages.sh"

schemas=""
while [ $# -gt 0 ]; do
  case "$1" in
    --schema)
      case "$2" in *[!a-z0-9_]*|'') usage_error "--schema must be a schema name of lowercase letters, digits and '_'" ;; esac
      schemas="$schemas $2"; shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$schemas" ] || usage_error "missing --schema"
[ -n "${PGHOST:-}${PGSERVICE:-}${PGDATABASE:-}" ] || die "no connection: set PGHOST (or PGSERVICE, PGDATABASE) and the other libpq variables it needs"

for schema in $schemas; do
  # The pg backend locks a state with pg_try_advisory_lock(<its row id>), or -1 while it
  # creates the row; a bigint key shows in pg_locks as classid (high half) and objid (low half).
  psql -X -q -A -t -v ON_ERROR_STOP=1 -v schema="$schema" <<'SQL' 2>/dev/null || true
SELECT format('state %s is locked by %s (connected from %s since %s)',
              :'schema',
              coalesce(nullif(a.application_name, ''), 'a client without an application name'),
              coalesce(host(a.client_addr), 'a local socket or a hidden address'),
              to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ'))
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND a.pid <> pg_backend_pid()
  AND ((l.classid::bigint << 32) | l.objid::bigint) IN (SELECT id FROM :"schema".states WHERE name = 'default' UNION ALL SELECT -1);
SQL
done
