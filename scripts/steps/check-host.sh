#!/bin/sh
# Preflight for a lab: fail, naming the input at fault, before anything is
# created when libvirtd, an existing network/bridge or a firmware file is missing.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=check-host
USAGE="usage: check-host.sh --uri URI [--network NAME] [--bridge NAME] [--file CONFIG_KEY=PATH]..."
. "$(dirname "$0")/lib/messages.sh"

uri=""
networks=""
bridges=""
files=""
while [ $# -gt 0 ]; do
  case "$1" in
    --uri) uri="$2"; shift 2 ;;
    --network) networks="$networks $2"; shift 2 ;;
    --bridge) bridges="$bridges $2"; shift 2 ;;
    --file) files="$files $2"; shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$uri" ] || usage_error "missing --uri"

virsh -c "$uri" version >/dev/null 2>&1 || die "libvirtd does not answer on $uri (libvirt.uri): start libvirtd or fix the URI"

for name in $networks; do
  virsh -c "$uri" net-info "$name" >/dev/null 2>&1 ||
    die "libvirt network '$name' (network.name) does not exist on $uri; existing: $(virsh -c "$uri" net-list --all --name | tr '\n' ' ')- create it, or set network.create: true"
done
for name in $bridges; do
  [ -d "/sys/class/net/$name/bridge" ] || die "host bridge '$name' (network.bridge) does not exist on this host"
done
for entry in $files; do
  key=${entry%%=*}
  file=${entry#*=}
  [ -r "$file" ] || die "file '$file' ($key) does not exist or is not readable: install the 'ovmf' package or fix $key"
done
say "$uri ready"
