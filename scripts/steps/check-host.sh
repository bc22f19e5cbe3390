#!/bin/sh
# Preflight for a lab: fail, naming the input at fault, before anything is
# created when libvirtd, an existing network/bridge or a firmware file is missing.
set -eu

usage() { echo "usage: check-host.sh --uri URI [--network NAME] [--bridge NAME] [--file CONFIG_KEY=PATH]..."; }

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
    -h|--help) usage; exit 0 ;;
    *) echo "check-host: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$uri" ] || { usage >&2; exit 2; }

fail() { echo "check-host: $*" >&2; exit 1; }

virsh -c "$uri" version >/dev/null 2>&1 || fail "libvirtd does not answer on $uri (libvirt.uri): start libvirtd or fix the URI"

for name in $networks; do
  virsh -c "$uri" net-info "$name" >/dev/null 2>&1 ||
    fail "libvirt network '$name' (network.name) does not exist on $uri; existing: $(virsh -c "$uri" net-list --all --name | tr '\n' ' ')- create it, or set network.create: true"
done
for name in $bridges; do
  [ -d "/sys/class/net/$name/bridge" ] || fail "host bridge '$name' (network.bridge) does not exist on this host"
done
for entry in $files; do
  key=${entry%%=*}
  file=${entry#*=}
  [ -r "$file" ] || fail "file '$file' ($key) does not exist or is not readable: install the 'ovmf' package or fix $key"
done
echo "check-host: $uri ready" >&2
