#!/bin/sh
# Restore the artifacts of capture-partitions.sh onto a disk: verify every
# checksum first, write the partition table grown to the disk, restore each
# partition with partclone, write the BIOS boot code, grow the root file
# system and drop the machine's cloud-init seed into it. The disk is checked
# first: a partition, a missing disk or one too small is refused before any
# download, and nothing is written before every checksum matches.
# Runs on the target machine (busybox sh in our deploy initramfs) and on hosts.
set -eu
umask 022

PROG=restore-disk
USAGE="usage: restore-disk.sh --manifest URL_OR_DIR --disk /dev/X [--wipe] [--seed-dir URL_OR_DIR] [--work-dir DIR]
         [--install-id ID]"
FORMAT_VERSION=1

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
started=$(date +%s)
phase_at=$started phases=""
# phase NAME: the time since the previous phase was NAME's (the summary at the end says where the time went).
phase() { _now=$(date +%s); phases="$phases, $1 $((_now - phase_at))s"; phase_at=$_now; }
die() { say "error: $*"; exit 1; }
usage_error() { say "$*"; echo "$USAGE" >&2; exit 2; }

print_help() {
  cat <<EOF
$USAGE

  --manifest   manifest.json of a capture (its URL, its path, or its folder);
               the artifacts are read from beside it
  --disk       the whole disk to write, e.g. /dev/sda, /dev/nvme0n1, /dev/loop3,
               /dev/disk/by-id/..., /dev/disk/by-path/...
  --wipe       allow a disk that holds a partition table or data (destroyed)
  --seed-dir   NoCloud seed (user-data, meta-data, optional network-config),
               written to /var/lib/cloud/seed/nocloud/ on the restored root
  --work-dir   where downloaded artifacts are kept until written (default: a
               temporary folder; needs as much space as the artifacts)
  --install-id written to /var/lib/btw-img/install-id on the restored root; a
               disk that already holds this ID is left as it is (exit 3)
Nothing is written to the disk before every artifact matches its sha256.
Needs: jq, sfdisk, partclone.*, zstd, sha256sum, blockdev, e2fsck, resize2fs,
mount, and wget or curl for URLs.
EOF
}

manifest="" disk="" wipe="" seed="" work_dir="" install_id=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) print_help; exit 0 ;;
    --wipe) wipe=1; shift ;;
    --manifest|--disk|--seed-dir|--work-dir|--install-id)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case "$1" in
        --manifest) manifest=$2 ;;
        --disk) disk=$2 ;;
        --seed-dir) seed=$2 ;;
        --work-dir) work_dir=$2 ;;
        --install-id) install_id=$2 ;;
      esac
      shift 2 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$manifest" ] || usage_error "missing --manifest"
[ -n "$disk" ] || usage_error "missing --disk"
case "$install_id" in *[!0-9a-zA-Z]*) usage_error "--install-id takes letters and digits only" ;; esac

[ "$(id -u)" -eq 0 ] || die "must run as root"
for tool in jq sfdisk zstd sha256sum blockdev dd sed e2fsck resize2fs mount umount readlink; do
  command -v "$tool" >/dev/null 2>&1 || die "required tool not found: $tool"
done

is_url() { case "$1" in http://*|https://*) return 0 ;; *) return 1 ;; esac; }

# fetch SOURCE DEST: copy a URL (or a local file) to DEST.
fetch() {
  if is_url "$1"; then
    if command -v curl >/dev/null 2>&1; then
      curl -fsSL -o "$2" "$1"
    else
      wget -q -O "$2" "$1"
    fi
  else
    cp "$1" "$2"
  fi
}

# Where the manifest and its artifacts are.
case "$manifest" in
  *.json) source_base=${manifest%/*} ;;
  *) source_base=${manifest%/}; manifest=$source_base/manifest.json ;;
esac

created_work="" mnt=""
cleanup() {
  status=$?
  set +e
  if [ -n "$mnt" ]; then umount "$mnt" 2>/dev/null; rmdir "$mnt"; fi
  [ -n "$created_work" ] && rm -rf "$created_work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "$work_dir" ]; then
  work_dir=$(mktemp -d "${TMPDIR:-/tmp}/restore-disk.XXXXXX")
  created_work=$work_dir
fi
mkdir -p "$work_dir"

say "reading $manifest"
fetch "$manifest" "$work_dir/manifest.json" || die "cannot read the manifest $manifest"
m=$work_dir/manifest.json
version=$(jq -r '.format_version // "none"' "$m" 2>/dev/null) || die "the manifest is not JSON: $manifest"
[ "$version" = "$FORMAT_VERSION" ] || die "manifest format version $version is not supported (this restore-disk.sh reads format $FORMAT_VERSION)"

# ---------------------------------------------------------------- the target

# A by-id or by-path link names the same disk whatever the kernel called it this boot.
[ -e "$disk" ] || die "no such disk: $disk (disks here: $(cd /sys/block && echo *))"
device=$(readlink -f "$disk")
[ -b "$device" ] || die "not a block device: $disk"
disk_name=${device##*/}
[ ! -e "/sys/class/block/$disk_name/partition" ] || die "$disk ($device) is a partition: give the whole disk"
case "$disk_name" in
  *[0-9]) part_prefix=${device}p ;;
  *) part_prefix=$device ;;
esac
disk_bytes=$(blockdev --getsize64 "$device")
need_bytes=$(jq -r .disk.min_size_bytes "$m")
# sysattr NAME...: the first of the disk's sysfs attributes that has a value.
sysattr() {
  for _attr in "$@"; do
    [ -r "/sys/class/block/$disk_name/$_attr" ] || continue
    _value=$(tr -d '\000' <"/sys/class/block/$disk_name/$_attr" 2>/dev/null | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//') || true
    [ -z "$_value" ] || { echo "$_value"; return 0; }
  done
  echo "-"
}
model=$(sysattr device/model loop/backing_file)
serial=$(sysattr serial device/serial)
wwid=$(sysattr wwid device/wwid)
say "disk $disk: /dev/$disk_name, model $model, serial $serial, wwid $wwid, $disk_bytes bytes ($((disk_bytes / 1073741824)) GiB)"
[ "$disk_bytes" -ge "$need_bytes" ] || die "$disk is too small: $disk_bytes bytes, the image needs at least $need_bytes"
if grep -q "^$device\(p\)\{0,1\}[0-9]* " /proc/mounts || grep -q "^$device\(p\)\{0,1\}[0-9]* " /proc/swaps 2>/dev/null; then
  die "$disk (or one of its partitions) is mounted or in use as swap"
fi
root_number=$(jq -r '.partitions[] | select(.role == "root") | .number' "$m")
# An install that wrote this ID already happened (its report may not have reached the server): keep it.
if [ -n "$install_id" ] && [ -b "$part_prefix$root_number" ]; then
  found=""
  mnt=$(mktemp -d "${TMPDIR:-/tmp}/restore-root.XXXXXX")
  if mount -t ext4 -o ro,noload "$part_prefix$root_number" "$mnt" 2>/dev/null; then
    found=$(cat "$mnt/var/lib/btw-img/install-id" 2>/dev/null) || true
    umount "$mnt"
  fi
  rmdir "$mnt"
  mnt=""
  if [ "$found" = "$install_id" ]; then
    say "$disk already holds this install ($install_id): nothing written"
    exit 3
  fi
fi
if [ -z "$wipe" ]; then
  if sfdisk -d "$device" >/dev/null 2>&1; then
    die "$disk holds a partition table: pass --wipe to overwrite it"
  fi
  if [ -n "$(dd if="$device" bs=65536 count=16 2>/dev/null | tr -d '\000' | head -c 1)" ]; then
    die "$disk is not blank (data in its first MiB): pass --wipe to overwrite it"
  fi
fi

phase "disk checks"

# ---------------------------------------------------------------- the artifacts

# Every file the restore reads, as "file sha256" lines.
jq -r '.partition_table, .boot_code, .partitions[] | "\(.file // .artifact) \(.sha256)"' "$m" >"$work_dir/files"
while read -r file sha; do
  case "$file" in */*|.*|'') die "manifest names an unsafe file: '$file'" ;; esac
  if is_url "$source_base"; then
    say "downloading $file"
    # To a file, then hashed: busybox tee moves about 1 KiB a system call, which made
    # a single pass through it slower under emulation than the two passes.
    fetch "$source_base/$file" "$work_dir/$file" || die "cannot download $source_base/$file"
    local_file=$work_dir/$file
  else
    local_file=$source_base/$file
    [ -f "$local_file" ] || die "artifact missing: $local_file"
  fi
  actual=$(sha256sum "$local_file" | cut -d' ' -f1)
  [ "$actual" = "$sha" ] || die "checksum mismatch for $file: expected $sha, got $actual (nothing was written to $disk)"
done <"$work_dir/files"
say "all $(wc -l <"$work_dir/files") artifacts match their sha256"
phase "download and check"
artifact() { if is_url "$source_base"; then echo "$work_dir/$1"; else echo "$source_base/$1"; fi; }

seed_files=""
if [ -n "$seed" ]; then
  # The machine's user-data: readable by root only, here as on the restored disk.
  mkdir -p "$work_dir/seed"
  chmod 700 "$work_dir/seed"
  for name in user-data meta-data network-config; do
    if fetch "${seed%/}/$name" "$work_dir/seed/$name" 2>/dev/null; then
      seed_files="$seed_files $name"
    elif [ "$name" != network-config ]; then
      die "the seed has no $name: ${seed%/}/$name"
    fi
  done
fi

# ---------------------------------------------------------------- writing

say "writing the partition table to $disk ($disk_bytes bytes; root takes the rest)"
dd if=/dev/zero of="$device" bs=65536 count=16 conv=notrunc 2>/dev/null
# The dump fixed the disk's end: drop it and root's size so root grows to the end.
sed -e '/^last-lba:/d' -e '/^device:/d' \
  -e "s/^disk$root_number : \(start= *[0-9]*\), *size= *[0-9]*,/disk$root_number : \1,/" \
  "$(artifact "$(jq -r .partition_table.file "$m")")" >"$work_dir/table.sfdisk"
sfdisk -q --wipe always --wipe-partitions always "$device" <"$work_dir/table.sfdisk" || die "sfdisk could not write the partition table"
command -v partx >/dev/null 2>&1 && partx -u "$device" 2>/dev/null || true
phase "partition table"

part_node() {
  _node=$part_prefix$1
  _tries=0
  while [ ! -b "$_node" ] && [ "$_tries" -lt 50 ]; do
    command -v partx >/dev/null 2>&1 && partx -a "$device" 2>/dev/null || true
    sleep 0.2
    _tries=$((_tries + 1))
  done
  [ -b "$_node" ] || die "partition node $_node did not appear"
  echo "$_node"
}

jq -r '.partitions[] | "\(.number) \(.tool) \(.artifact) \(.role)"' "$m" >"$work_dir/partitions"
while read -r number tool file role; do
  case "$tool" in partclone.ext4|partclone.vfat|partclone.dd) ;; *) die "partition $number: unsupported tool '$tool'" ;; esac
  command -v "$tool" >/dev/null 2>&1 || die "required tool not found: $tool"
  node=$(part_node "$number")
  say "restoring partition $number ($role) with $tool onto $node"
  # -i: no CRC of every block; the artifact's sha256 was checked before anything was
  # written (and zstd checks its frames): under emulation the CRC took half the restore.
  mode="-r -i"
  [ "$tool" = partclone.dd ] && mode="-i"
  rm -f "$work_dir/partclone.failed"
  zstd -dc "$(artifact "$file")" | { "$tool" $mode -q -L "$work_dir/partclone.log" -s - -o "$node" >>"$work_dir/partclone.log" 2>&1 || echo $? >"$work_dir/partclone.failed"; }
  if [ -e "$work_dir/partclone.failed" ]; then
    cat "$work_dir/partclone.log" >&2
    die "$tool could not restore partition $number"
  fi
done <"$work_dir/partitions"

phase "partitions"
say "writing the BIOS boot code (first 440 bytes)"
dd if="$(artifact "$(jq -r .boot_code.file "$m")")" of="$device" bs=440 count=1 conv=notrunc 2>/dev/null

root=$(part_node "$root_number")
say "growing the root file system on $root"
e2fsck -f -p "$root" >&2 || [ $? -le 1 ] || die "e2fsck found errors on $root"
resize2fs "$root" >&2 2>&1 || die "resize2fs failed on $root"

phase "growing root"
if [ -n "$seed_files$install_id" ]; then
  mnt=$(mktemp -d "${TMPDIR:-/tmp}/restore-root.XXXXXX")
  mount -t ext4 "$root" "$mnt"
  if [ -n "$seed_files" ]; then
    # On the root file system, not a cidata partition: the seed then needs no
    # network and no extra partition, and NoCloud finds it before networking.
    seed_target=$mnt/var/lib/cloud/seed/nocloud
    mkdir -p "$seed_target"
    for name in $seed_files; do
      cp "$work_dir/seed/$name" "$seed_target/$name"
    done
    chmod 600 "$seed_target/user-data"
    say "wrote the cloud-init seed ($seed_files ) to /var/lib/cloud/seed/nocloud"
  fi
  if [ -n "$install_id" ]; then
    mkdir -p "$mnt/var/lib/btw-img"
    echo "$install_id" >"$mnt/var/lib/btw-img/install-id"
  fi
  umount "$mnt"
  rmdir "$mnt"
  mnt=""
fi
sync
phase "seed and sync"
say "restored $(jq -r '.profile // "image"' "$m") ($(jq -r '.partitions | length' "$m") partitions) onto $disk in $((phase_at - started))s (${phases#, })"
