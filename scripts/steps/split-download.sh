#!/bin/sh
# A download larger than a host takes in one file (GitHub: 100 MiB) as parts of at
# most --part-mib MiB: FILE.part-00, FILE.part-01, ... and FILE.sha256, the whole
# file's checksum, in place of FILE. Joined and checked with:
#   cat FILE.part-* > FILE && sha256sum -c FILE.sha256
# (sign-release.sh's SHA256SUMS then covers the parts and FILE.sha256.) A file that
# fits is left as it is.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=split-download
USAGE="usage: split-download.sh --file FILE [--part-mib MIB]   (default 95)"
. "$(dirname "$0")/lib/messages.sh"

file="" part_mib=95
while [ $# -gt 0 ]; do
  case $1 in
    --file|--part-mib)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case $1 in --file) file=$2 ;; --part-mib) part_mib=$2 ;; esac
      shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$file" ] || usage_error "missing --file"
case $part_mib in '' | *[!0-9]* | 0*) usage_error "--part-mib is a whole number of MiB from 1, not '$part_mib'" ;; esac
[ -f "$file" ] || die "no such file: $file"

size=$(stat -c %s "$file")
limit=$((part_mib * 1024 * 1024))
if [ "$size" -le "$limit" ]; then
  say "$file ($((size / 1024 / 1024)) MiB) fits in one part of $part_mib MiB: left as it is"
  exit 0
fi

dir=$(dirname "$file") name=$(basename "$file")
work=""
cleanup() { [ -z "$work" ] || rm -rf "$work"; }
on_exit cleanup
# The parts are made beside the file and moved in when all are written: no half set.
work=$(mktemp -d "$dir/.$name.split.XXXXXX")
split -b "${part_mib}M" -d -a 2 "$file" "$work/$name.part-"
parts=$(find "$work" -name "$name.part-*" | wc -l)
(cd "$dir" && sha256sum "$name") >"$work/$name.sha256"
chmod 644 "$work"/*
for part in "$work"/*; do mv "$part" "$dir/"; done
rm -f "$file"
say "split $name ($((size / 1024 / 1024)) MiB) into $parts parts of at most $part_mib MiB; join and check: cat $name.part-* > $name && sha256sum -c $name.sha256"
