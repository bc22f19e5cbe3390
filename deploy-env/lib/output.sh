# shellcheck shell=sh disable=SC2154,SC2034 # restore.sh's globals, set and read across its parts
# Messages, timed phases and the one fetch client of the restore (sourced by
# restore.sh; PROG and USAGE are the caller's).

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "error: $*"; exit 1; }
usage_error() { say "$*"; echo "$USAGE" >&2; exit 2; }

started=$(date +%s)
phase_at=$started phases=""
# phase NAME: the time since the previous phase was NAME's (the summary at the end says where the time went).
phase() { _now=$(date +%s); phases="$phases, $1 $((_now - phase_at))s"; phase_at=$_now; }

# progress STATE [PERCENT [NOTE]]: how far the restore is, to whoever follows it: $BTW_PROGRESS
# (btw-report in the deploy environment), at most every 3 seconds for the same state.
progress_state="" progress_at=0
progress() {
  [ -n "${BTW_PROGRESS:-}" ] || return 0
  _now=$(date +%s)
  [ "$1" != "$progress_state" ] || [ $((_now - progress_at)) -ge 3 ] || return 0
  progress_state=$1 progress_at=$_now
  "$BTW_PROGRESS" "$@" >/dev/null 2>&1 || true
}

# follow PID STATE PERCENT_COMMAND [NOTE]: while PID runs, STATE with the percent that
# PERCENT_COMMAND prints, every few seconds; then PID's exit status.
follow() {
  while kill -0 "$1" 2>/dev/null; do
    progress "$2" "$(eval "$3")" "${4:-}"
    sleep 1
  done
  wait "$1"
}

# percent PART WHOLE: PART of WHOLE in whole percent (0 when WHOLE is 0), at most 100.
percent() { [ "$2" -gt 0 ] 2>/dev/null || { echo 0; return; }; _p=$(($1 * 100 / $2)); [ "$_p" -le 100 ] || _p=100; echo "$_p"; }

is_url() { case "$1" in http://*|https://*) return 0 ;; *) return 1 ;; esac; }

# fetch SOURCE DEST: a URL (curl where there is one, else busybox's or GNU wget) or a local file, to DEST.
fetch() {
  if ! is_url "$1"; then
    cp "$1" "$2"
  elif command -v curl >/dev/null 2>&1; then
    curl -fsSL -o "$2" "$1"
  else
    wget -q -O "$2" "$1"
  fi
}

# need TOOL...: each one on PATH, or the restore stops before anything else.
need() {
  for _tool in "$@"; do
    command -v "$_tool" >/dev/null 2>&1 || die "required tool not found: $_tool"
  done
}
