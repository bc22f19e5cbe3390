#!/bin/sh
# Checks every line of host-requirements.txt on this host (or, with --root, in a
# root file system, run inside it by chroot) and names each one still missing.
# A line is a command on PATH, an absolute path, or python:MODULE@COMMAND: MODULE
# importable by the interpreter COMMAND runs under (its #! line), not by whatever
# python3 comes first on PATH.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=check-requirements
USAGE="usage: check-requirements.sh [--requirements FILE]"
. "$(dirname "$0")/../steps/lib/messages.sh"
requirements="$(dirname "$0")/host-requirements.txt"
while [ $# -gt 0 ]; do
  case "$1" in
    --requirements) [ $# -ge 2 ] || usage_error "missing value for $1"; requirements=$2; shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -f "$requirements" ] || usage_error "no requirements file at $requirements"

PATH="$PATH:/usr/sbin:/sbin"
# interpreter_of COMMAND: the #! line of COMMAND's file ("/usr/bin/env python3" stays two words).
interpreter_of() {
  file=$(command -v "$1" 2>/dev/null) || return 1
  sed -n '1s/^#! *//p' "$file"
}

absent=""
while read -r need package; do
  case $need in
    python:*@*)
      module=${need#python:}; module=${module%@*}; runner=${need##*@}
      # shellcheck disable=SC2086 # the #! line may be "/usr/bin/env python3"
      { interpreter=$(interpreter_of "$runner") && [ -n "$interpreter" ] && $interpreter -c "import $module" 2>/dev/null; } ||
        absent="$absent $need ($package)"
      ;;
    /*) [ -e "$need" ] || absent="$absent $need ($package)" ;;
    *) command -v "$need" >/dev/null 2>&1 || absent="$absent $need ($package)" ;;
  esac
done <<LINES
$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$requirements")
LINES
[ -z "$absent" ] || { say "still missing:$absent; install those packages (see $requirements)"; exit 1; }
