#!/bin/sh
# Erase a released machine's disks (btw metal release NAME --erase MODE):
#   erase.sh --mode quick|full --disk /dev/X [--disk ...]
# quick: on every partition and then the disk, every signature wipefs finds (file
#   systems, md superblocks, ZFS labels, the partition tables with GPT's backup)
#   and the first and last MiB (where md and ZFS keep theirs).
# full: the whole disk discarded (blkdiscard), or where the disk cannot, zeroes.
# With BTW_PROGRESS set (btw-report in the deploy environment): erasing N, as it goes.
# Runs on the target machine (busybox sh in the deploy environment) and on hosts.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=erase
USAGE="usage: erase.sh --mode quick|full --disk /dev/X [--disk ...]"
BTW_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BTW_DIR/lib/output.sh"

mode="" disks=""
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) [ $# -ge 2 ] || usage_error "--mode needs a value"; mode=$2; shift 2 ;;
    --disk) [ $# -ge 2 ] || usage_error "--disk needs a value"; disks="$disks $2"; shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
case "$mode" in quick|full) ;; *) usage_error "--mode must be quick or full" ;; esac
[ -n "$disks" ] || usage_error "missing --disk"
need wipefs dd

MiB=1048576
# sectors DEVICE: its size in 512-byte sectors (as sysfs counts them).
sectors() { cat "/sys/class/block/$(basename "$(readlink -f "$1")")/size"; }

# zero DEVICE START COUNT [BLOCK]: COUNT blocks of zeroes (BLOCK bytes, 512 unless given) from block START.
zero() { dd if=/dev/zero of="$1" bs="${4:-512}" seek="$2" count="$3" conv=notrunc,fsync 2>/dev/null || die "cannot write zeroes to $1"; }

# ends DEVICE: signatures gone, then its first and last MiB (2048 sectors) zeroed.
ends() {
  wipefs -a -q "$1" || die "wipefs could not erase the signatures on $1"
  _size=$(sectors "$1")
  if [ "$_size" -le 4096 ]; then
    zero "$1" 0 "$_size"
  else
    zero "$1" 0 2048
    zero "$1" $((_size - 2048)) 2048
  fi
}

# partitions DISK: its partitions' device nodes, as the kernel knows them.
partitions() {
  _name=$(basename "$(readlink -f "$1")")
  for _part in /sys/class/block/"$_name"/"$_name"*; do
    [ -e "$_part/partition" ] && echo "/dev/${_part##*/}"
  done
  return 0
}

# shellcheck disable=SC2086 # disk paths, one a word
set -- $disks
count=$#
index=0
for disk in "$@"; do
  [ -b "$disk" ] || die "$disk is not a block device"
  index=$((index + 1))
  if [ "$mode" = quick ]; then
    for part in $(partitions "$disk"); do
      say "erasing $part"
      ends "$part"
    done
    say "erasing $disk"
    ends "$disk"
    progress erasing "$(percent "$index" "$count")" "$disk"
    continue
  fi
  if command -v blkdiscard >/dev/null 2>&1 && [ -z "${BTW_ERASE_NO_DISCARD:-}" ] && blkdiscard -f "$disk" 2>/dev/null; then
    say "discarded $disk"
    # A discard may leave old data readable on some devices: the ends go in any case.
    ends "$disk"
    progress erasing "$(percent "$index" "$count")" "$disk"
    continue
  fi
  size=$(sectors "$disk")
  total=$((size / 2048))
  say "writing zeroes over $disk ($total MiB)"
  # In chunks of 256 MiB, so that the progress moves; then what is left past the last whole MiB.
  done_mib=0
  while [ "$done_mib" -lt "$total" ]; do
    chunk=256
    [ $((total - done_mib)) -ge "$chunk" ] || chunk=$((total - done_mib))
    zero "$disk" "$done_mib" "$chunk" $MiB
    done_mib=$((done_mib + chunk))
    progress erasing "$(( (100 * (index - 1) + $(percent "$done_mib" "$total")) / count ))" "$disk"
  done
  [ $((size % 2048)) -eq 0 ] || zero "$disk" $((total * 2048)) $((size % 2048))
  wipefs -a -q "$disk" || true
done
sync
say "erased ($mode):$disks"
