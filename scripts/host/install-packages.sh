#!/bin/sh
# The package step of host setup: installs, with apt, every Debian package that
# host-requirements.txt names and dpkg does not have installed. Root only.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=install-packages
USAGE="usage: install-packages.sh [--requirements FILE] [--quiet]"
. "$(dirname "$0")/../steps/lib/messages.sh"
requirements="$(dirname "$0")/host-requirements.txt"
quiet=""
while [ $# -gt 0 ]; do
  case "$1" in
    --requirements) [ $# -ge 2 ] || usage_error "missing value for $1"; requirements=$2; shift 2 ;;
    --quiet) quiet=1; shift ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -f "$requirements" ] || usage_error "no requirements file at $requirements"

missing=""
# shellcheck disable=SC2013 # package names, one a word
for package in $(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$requirements" | awk '{ print $2 }' | sort -u); do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed' || missing="$missing $package"
done
[ -n "$missing" ] || exit 0
[ "$(id -u)" -eq 0 ] || die "missing Debian packages:$missing (run as root or apt-get install them)"
[ -n "$quiet" ] || say "installing Debian packages:$missing"
apt-get update -qq
# shellcheck disable=SC2086 # one word per package
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
