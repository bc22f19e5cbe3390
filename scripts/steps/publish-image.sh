#!/bin/sh
# The file people download: a customized image written as one standalone qcow2
# with every cluster compressed (qemu-img, libvirt and Proxmox read it as it is).
# CI publishes with this script; bench/run.ts measures what it writes.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=publish-image
USAGE="usage: publish-image.sh --image IMG --output FILE.qcow2 [--compression zlib|zstd]
  --compression  zlib (default: every qemu-img reads it) or zstd (smaller and
                 faster to read; needs QEMU 5.1 or newer to read)"
. "$(dirname "$0")/lib/messages.sh"

image="" output="" compression=zlib
while [ $# -gt 0 ]; do
  case $1 in
    --image|--output|--compression)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case $1 in --image) image=$2 ;; --output) output=$2 ;; --compression) compression=$2 ;; esac
      shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$image" ] || usage_error "missing --image"
[ -n "$output" ] || usage_error "missing --output"
case $compression in zlib|zstd) ;; *) usage_error "--compression is zlib or zstd, not '$compression'" ;; esac
[ -f "$image" ] || die "no such image: $image"
format=$(qemu-img info "$image" 2>/dev/null | sed -n 's/^file format: //p')
[ -n "$format" ] || die "qemu-img cannot read $image"

partial=""
cleanup() { [ -z "$partial" ] || rm -f "$partial"; }
on_exit cleanup
mkdir -p "$(dirname "$output")"
partial=$(mktemp "$output.partial.XXXXXX")
say "compressing $image ($compression) into $output"
qemu-img convert -f "$format" -O qcow2 -c -o "compression_type=$compression" "$image" "$partial"
chmod 644 "$partial" # a file to download: mktemp made it 0600
mv "$partial" "$output"
partial=""
say "wrote $output ($(du -k "$output" | awk '{ printf "%.1f MiB", $1 / 1024 }'))"
