#!/bin/sh
# Restore the artifacts of capture-partitions.sh onto a machine's disks as a
# layout other than single (docs/layouts.md). Every layout: the captured table on
# every disk (root grown to the smallest one, each disk its own GUIDs), the ESP and
# the BIOS boot partition on every disk, then, from a chroot into the restored
# system, fstab, the initramfs and GRUB on every disk.
#   raid1: an md RAID1 of every disk's root partition holding the captured root
#     file system block for block; mdadm.conf and GRUB's root=UUID.
#   zfs, zfs-mirror: bpool (/boot, GRUB's features) and rpool (/) on one disk or
#     mirrored across all; the captured root file system's files copied into
#     rpool/ROOT/debian (the artifact restored into a file on the pool, read
#     through a loop device); hostid, the bpool import unit, GRUB for ZFS; the
#     pools exported at the end, so the restored system imports them as its own.
# As restore-disk.sh: every disk is checked and every artifact matches its
# sha256 before anything is written, and disks that already hold this install
# (its ID on the root of the array or of rpool) are left as they are (exit 3).
set -eu
umask 022

PROG=restore-layout
USAGE="usage: restore-layout.sh --layout raid1|zfs|zfs-mirror --manifest URL_OR_DIR --disk /dev/X --disk /dev/Y [--disk ...]
         [--wipe] [--seed-dir URL_OR_DIR] [--work-dir DIR] [--install-id ID]"
FORMAT_VERSION=1
RAID_TYPE=A19D880F-05FC-4D3B-A006-743F0F84911E
# As OpenZFS's guide types them (sgdisk BF00 for rpool, BF01 for bpool).
RPOOL_TYPE=6A85CF4D-1DD2-11B2-99A6-080020736631
BPOOL_TYPE=6A898CC3-1DD2-11B2-99A6-080020736631
# bpool's partition (p2) at the captured root's start; rpool (p1) after it.
BPOOL_NUMBER=2
BPOOL_SECTORS=2097152
ARRAY=/dev/md0
# Only to read an earlier install's ID; stopped at once.
CHECK_ARRAY=/dev/md9
TARGET=/target

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "error: $*"; exit 1; }
usage_error() { say "$*"; echo "$USAGE" >&2; exit 2; }
started=$(date +%s)
phase_at=$started phases=""
phase() { _now=$(date +%s); phases="$phases, $1 $((_now - phase_at))s"; phase_at=$_now; }

layout="" manifest="" disks="" wipe="" seed="" work_dir="" install_id=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) echo "$USAGE"; exit 0 ;;
    --wipe) wipe=1; shift ;;
    --layout|--manifest|--disk|--seed-dir|--work-dir|--install-id)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case "$1" in
        --layout) layout=$2 ;;
        --manifest) manifest=$2 ;;
        --disk) disks="$disks $2" ;;
        --seed-dir) seed=$2 ;;
        --work-dir) work_dir=$2 ;;
        --install-id) install_id=$2 ;;
      esac
      shift 2 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$manifest" ] || usage_error "missing --manifest"
# shellcheck disable=SC2086 # a list of disk paths without blanks (checked at synth and by pxe-server.sh)
set -- $disks
case "$layout" in
  raid1|zfs-mirror) [ $# -ge 2 ] || usage_error "$layout needs at least two --disk" ;;
  zfs) [ $# -eq 1 ] || usage_error "zfs takes one --disk (for several, zfs-mirror)" ;;
  *) usage_error "--layout: raid1, zfs or zfs-mirror (got '${layout:-nothing}')" ;;
esac
case "$install_id" in *[!0-9a-zA-Z]*) usage_error "--install-id takes letters and digits only" ;; esac
[ "$(id -u)" -eq 0 ] || die "must run as root"
case "$layout" in
  raid1) layout_tools="mdadm e2fsck resize2fs" ;;
  # cp: the image's GNU cp (build-deploy-initramfs.sh --image-program): busybox's drops xattrs.
  *) layout_tools="zpool zfs cp losetup modprobe" ;;
esac
for tool in jq sfdisk zstd sha256sum blockdev dd sed awk mount umount chroot readlink partclone.ext4 partclone.vfat partclone.dd $layout_tools; do
  command -v "$tool" >/dev/null 2>&1 || die "required tool not found: $tool"
done
# The image's GNU cp, by the path of its wrapper: busybox's shell runs its own cp applet whatever
# PATH says, and that copies the root without its xattrs and ACLs, silently.
IMAGE_CP=/usr/sbin/cp
case "$layout" in
  zfs*) "$IMAGE_CP" --version 2>/dev/null | grep -q GNU || die "$IMAGE_CP is not GNU cp: this deploy environment lacks the image's cp (build-deploy-initramfs.sh --image-program cp)" ;;
esac

is_url() { case "$1" in http://*|https://*) return 0 ;; *) return 1 ;; esac; }
fetch() {
  if is_url "$1"; then wget -q -O "$2" "$1"; else cp "$1" "$2"; fi
}
case "$manifest" in
  *.json) source_base=${manifest%/*} ;;
  *) source_base=${manifest%/}; manifest=$source_base/manifest.json ;;
esac

created_work=""
# unmount_target: everything at or under /target, deepest first: the binds, what the restored
# system's programs mounted inside them (seen on UEFI: /target kept busy, so the array could not
# stop and the first boot could not read it), then the restored root.
unmount_target() {
  awk -v t="$TARGET" '$2 == t || index($2, t "/") == 1 { print $2 }' /proc/mounts | sort -r | while read -r _point; do
    umount "$_point" 2>/dev/null || umount -l "$_point" 2>/dev/null || say "could not unmount $_point"
  done
}
# release_staging: the root artifact's staging file and its loop device (zfs layouts).
staging_loop=""
release_staging() {
  if [ -n "$staging_loop" ]; then
    umount "$work_dir/staged" 2>/dev/null || umount -l "$work_dir/staged" 2>/dev/null
    losetup -d "$staging_loop" 2>/dev/null
    staging_loop=""
  fi
}
# export_pools: a pool left imported here was last used by another host, which the restored
# system's initramfs does not import without -f.
created_pools=""
export_pools() {
  for _pool in $created_pools; do
    zpool export "$_pool" || say "could not export $_pool"
  done
  created_pools=""
}
release() {
  status=$?
  set +e
  release_staging
  unmount_target
  export_pools
  [ -n "$created_work" ] && rm -rf "$created_work"
  exit "$status"
}
trap release EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "$work_dir" ]; then
  work_dir=$(mktemp -d "${TMPDIR:-/tmp}/restore-layout.XXXXXX")
  created_work=$work_dir
fi
mkdir -p "$work_dir"
m=$work_dir/manifest.json
fetch "$manifest" "$m" || die "cannot read the manifest $manifest"
[ "$(jq -r '.format_version // "none"' "$m")" = "$FORMAT_VERSION" ] || die "manifest format version is not $FORMAT_VERSION"

# ---------------------------------------------------------------- the disks

# part_path DEVICE NUMBER: the partition's node (nvme0n1p1, sda1).
part_path() { case "$1" in *[0-9]) echo "${1}p$2" ;; *) echo "$1$2" ;; esac; }

# check_disks: every disk whole, distinct, unmounted, big enough, blank or --wipe; sets devices and smallest_bytes.
check_disks() {
  need_bytes=$(jq -r .disk.min_size_bytes "$m")
  devices="" smallest_bytes=""
  for _disk in $disks; do
    [ -e "$_disk" ] || die "no such disk: $_disk (disks here: $(cd /sys/block && echo *))"
    _device=$(readlink -f "$_disk")
    [ -b "$_device" ] || die "not a block device: $_disk"
    [ ! -e "/sys/class/block/${_device##*/}/partition" ] || die "$_disk ($_device) is a partition: give the whole disk"
    case " $devices " in *" $_device "*) die "$_disk is $_device, which another --disk names too" ;; esac
    _bytes=$(blockdev --getsize64 "$_device")
    say "disk $_disk: $_device, $_bytes bytes"
    [ "$_bytes" -ge "$need_bytes" ] || die "$_disk is too small: $_bytes bytes, the image needs at least $need_bytes"
    if grep -q "^$_device\(p\)\{0,1\}[0-9]* " /proc/mounts /proc/swaps 2>/dev/null; then
      die "$_disk (or one of its partitions) is mounted or in use as swap"
    fi
    devices="$devices $_device"
    [ -n "$smallest_bytes" ] && [ "$smallest_bytes" -le "$_bytes" ] || smallest_bytes=$_bytes
  done
}

# holds_this_install: the disks hold a root with this install's ID (its report may not have
# reached the server): an array of their root partitions assembled read-only, or rpool imported read-only.
holds_this_install() {
  [ -n "$install_id" ] || return 1
  case "$layout" in
    raid1) array_holds_this_install ;;
    *) pool_holds_this_install ;;
  esac
}
# load_zfs: the module zfs-dkms built for the image's kernel, signed with dkms's own key.
load_zfs() {
  modprobe zfs || die "cannot load the zfs module: the machine's profile must build it (zfs-dkms), and with Secure Boot on the kernel refuses it (dkms signs it with its own key): turn Secure Boot off for this machine"
}
pool_holds_this_install() {
  load_zfs
  # Only this machine's disks are searched: their rpool partitions.
  _search=""
  for _device in $devices; do
    _member=$(part_path "$_device" "$root_number")
    [ -b "$_member" ] && _search="$_search -d $_member"
  done
  [ -n "$_search" ] || return 1
  # shellcheck disable=SC2086 # options and partition nodes
  zpool import $_search 2>/dev/null | grep -q '^ *pool: rpool$' || return 1
  # shellcheck disable=SC2086 # options and partition nodes
  zpool import $_search -N -f -o readonly=on -R "$work_dir/check" rpool >/dev/null 2>&1 || return 1
  _found=""
  mkdir -p "$work_dir/check"
  if mount -t zfs -o ro rpool/ROOT/debian "$work_dir/check" 2>/dev/null; then
    _found=$(cat "$work_dir/check/var/lib/btw-img/install-id" 2>/dev/null) || true
    umount "$work_dir/check"
  fi
  zpool export rpool >/dev/null 2>&1
  [ "$_found" = "$install_id" ]
}
array_holds_this_install() {
  for _device in $devices; do
    _member=$(part_path "$_device" "$root_number")
    [ -b "$_member" ] || continue
    mdadm --examine "$_member" >/dev/null 2>&1 || continue
    mdadm --assemble --readonly --run "$CHECK_ARRAY" "$_member" >/dev/null 2>&1 || continue
    _found=""
    mkdir -p "$work_dir/check"
    if mount -t ext4 -o ro,noload "$CHECK_ARRAY" "$work_dir/check" 2>/dev/null; then
      _found=$(cat "$work_dir/check/var/lib/btw-img/install-id" 2>/dev/null) || true
      umount "$work_dir/check"
    fi
    mdadm --stop "$CHECK_ARRAY" >/dev/null 2>&1
    [ "$_found" = "$install_id" ] && return 0
  done
  return 1
}

# check_blank: without --wipe, nothing on any disk may be overwritten.
check_blank() {
  [ -z "$wipe" ] || return 0
  # By the names the machine's config gave (check_disks resolved each one already).
  for _disk in $disks; do
    _device=$(readlink -f "$_disk")
    sfdisk -d "$_device" >/dev/null 2>&1 && die "$_disk ($_device) holds a partition table: pass --wipe to overwrite it"
    [ -z "$(dd if="$_device" bs=65536 count=16 2>/dev/null | tr -d '\000' | head -c 1)" ] || die "$_disk ($_device) is not blank: pass --wipe to overwrite it"
  done
}

# ---------------------------------------------------------------- the artifacts

# fetch_artifacts: every file the restore reads, downloaded and checked before anything is written.
fetch_artifacts() {
  jq -r '.partition_table, .boot_code, .partitions[] | "\(.file // .artifact) \(.sha256)"' "$m" >"$work_dir/files"
  while read -r _file _sha; do
    case "$_file" in */*|.*|'') die "manifest names an unsafe file: '$_file'" ;; esac
    if is_url "$source_base"; then
      fetch "$source_base/$_file" "$work_dir/$_file" || die "cannot download $source_base/$_file"
    else
      cp "$source_base/$_file" "$work_dir/$_file" || die "artifact missing: $source_base/$_file"
    fi
    [ "$(sha256sum "$work_dir/$_file" | cut -d' ' -f1)" = "$_sha" ] || die "checksum mismatch for $_file (nothing was written)"
  done <"$work_dir/files"
  if [ -n "$seed" ]; then
    mkdir -p "$work_dir/seed"
    chmod 700 "$work_dir/seed"
    for _name in user-data meta-data network-config; do
      fetch "${seed%/}/$_name" "$work_dir/seed/$_name" 2>/dev/null || [ "$_name" = network-config ] || die "the seed has no $_name"
    done
  fi
}

# ---------------------------------------------------------------- writing

# table_for_disks: the captured table for every disk: no disk GUID, no partition UUIDs (each
# disk gets its own), the root partition ending where the smallest disk ends (aligned to 1 MiB):
# typed Linux RAID (raid1), or split into bpool (p2, 1 GiB at root's start) and rpool (zfs layouts).
table_for_disks() {
  _sector=$(jq -r .disk.sector_size "$m")
  _start=$(jq -r '.partitions[] | select(.role == "root") | .start_sector' "$m")
  # The backup GPT takes the last 33 sectors.
  _size=$(( (smallest_bytes / _sector - 33 - _start) / 2048 * 2048 ))
  case "$layout" in
    raid1) _root="start=$_start, size=$_size, type=$RAID_TYPE" ;;
    *)
      jq -e --argjson n "$BPOOL_NUMBER" '[.partitions[] | select(.number == $n)] | length == 0' "$m" >/dev/null ||
        die "the captured table already has a partition $BPOOL_NUMBER, where bpool goes"
      [ "$_size" -gt $((BPOOL_SECTORS * 2)) ] ||
        die "the smallest disk ($smallest_bytes bytes) leaves no room for rpool after bpool's $((BPOOL_SECTORS * _sector)) bytes: give disks of at least $(( (_start + BPOOL_SECTORS * 2 + 2048) * _sector )) bytes"
      _root="start=$((_start + BPOOL_SECTORS)), size=$((_size - BPOOL_SECTORS)), type=$RPOOL_TYPE
disk$BPOOL_NUMBER : start=$_start, size=$BPOOL_SECTORS, type=$BPOOL_TYPE" ;;
  esac
  sed -e '/^label-id:/d' -e '/^device:/d' -e '/^last-lba:/d' -e 's/, *uuid= *[0-9A-Fa-f-]*//' \
    "$work_dir/$(jq -r .partition_table.file "$m")" | awk -v n="disk$root_number" -v line="$_root" '
      $1 == n && $2 == ":" { print n " : " line; done = 1; next }
      { print }
      END { if (!done) exit 1 }' >"$work_dir/table.sfdisk" || die "the captured table has no line for the root partition $root_number"
}

# part_node DEVICE NUMBER: the partition's node once the kernel shows it.
part_node() {
  _node=$(part_path "$1" "$2")
  _tries=0
  while [ ! -b "$_node" ] && [ "$_tries" -lt 50 ]; do
    partx -a "$1" 2>/dev/null || true
    sleep 0.2
    _tries=$((_tries + 1))
  done
  [ -b "$_node" ] || die "partition node $_node did not appear"
  echo "$_node"
}

# partition_disks: the table on every disk.
partition_disks() {
  for _device in $devices; do
    say "writing the partition table to $_device"
    dd if=/dev/zero of="$_device" bs=65536 count=16 conv=notrunc 2>/dev/null
    sfdisk -q --wipe always --wipe-partitions always "$_device" <"$work_dir/table.sfdisk" || die "sfdisk could not write $_device"
    partx -u "$_device" 2>/dev/null || true
  done
}

# restore_partition TOOL ARTIFACT NODE [OUTPUT_OPTIONS]: OUTPUT_OPTIONS "-C -O" for a new file.
restore_partition() {
  _mode="-r -i"
  [ "$1" = partclone.dd ] && _mode="-i"
  rm -f "$work_dir/partclone.failed"
  # shellcheck disable=SC2086,SC2094 # the mode and the output options are several options; the log is only appended to
  zstd -dc "$work_dir/$2" | { "$1" $_mode -q -L "$work_dir/partclone.log" -s - ${4:--o} "$3" >>"$work_dir/partclone.log" 2>&1 || echo $? >"$work_dir/partclone.failed"; }
  if [ -e "$work_dir/partclone.failed" ]; then
    cat "$work_dir/partclone.log" >&2
    die "$1 could not restore $3"
  fi
}

# assemble_root: the RAID1 of every disk's root partition, or the two pools.
assemble_root() {
  case "$layout" in
    raid1) assemble_array ;;
    *) create_pools ;;
  esac
}

# create_pools: bpool and rpool as OpenZFS's "Debian Root on ZFS" creates them (docs/layouts.md),
# mirrored for zfs-mirror, members by kernel name (no udev here; the pools are found by scanning).
create_pools() {
  _bpool="" _rpool=""
  for _device in $devices; do
    _bpool="$_bpool $(part_node "$_device" "$BPOOL_NUMBER")"
    _rpool="$_rpool $(part_node "$_device" "$root_number")"
  done
  _vdev=""
  [ "$layout" = zfs-mirror ] && _vdev=mirror
  mkdir -p /etc/zfs "$TARGET"
  load_zfs
  say "creating bpool ($_vdev$_bpool) and rpool ($_vdev$_rpool)"
  # shellcheck disable=SC2086 # partition nodes
  zpool create -f -o ashift=12 -o autotrim=on -o compatibility=grub2 -o cachefile=none \
    -O devices=off -O acltype=posixacl -O xattr=sa -O compression=lz4 -O normalization=formD -O relatime=on \
    -O canmount=off -O mountpoint=/boot -R "$TARGET" bpool $_vdev $_bpool || die "zpool could not create bpool on$_bpool"
  created_pools="bpool"
  # shellcheck disable=SC2086 # partition nodes
  zpool create -f -o ashift=12 -o autotrim=on -o cachefile=none \
    -O acltype=posixacl -O xattr=sa -O dnodesize=auto -O compression=lz4 -O normalization=formD -O relatime=on \
    -O canmount=off -O mountpoint=/ -R "$TARGET" rpool $_vdev $_rpool || die "zpool could not create rpool on$_rpool"
  created_pools="bpool rpool"
  zfs create -o canmount=off -o mountpoint=none rpool/ROOT
  zfs create -o canmount=off -o mountpoint=none bpool/BOOT
  zfs create -o canmount=noauto -o mountpoint=/ rpool/ROOT/debian
  # /boot by fstab (legacy): systemd then mounts it before /boot/efi, which lies on it.
  zfs create -o mountpoint=legacy bpool/BOOT/debian
  # Where the root artifact is unpacked; removed before the pools are exported.
  zfs create -o mountpoint=legacy -o compression=lz4 rpool/btw-staging
}

# assemble_array: the RAID1 of every disk's root partition (docs/layouts.md: metadata 1.2, no --assume-clean).
assemble_array() {
  _members=""
  for _device in $devices; do _members="$_members $(part_node "$_device" "$root_number")"; done
  say "creating $ARRAY (RAID1 of$_members)"
  # shellcheck disable=SC2086 # partition nodes
  mdadm --create "$ARRAY" --run --level=1 --raid-devices="$(echo $_members | wc -w)" --metadata=1.2 \
    --homehost=any --name=root $_members || die "mdadm could not create $ARRAY"
}

# write_partitions: root onto the array, the other partitions (ESP, BIOS boot) onto every disk.
write_partitions() {
  jq -r '.partitions[] | "\(.number) \(.tool) \(.artifact) \(.role)"' "$m" >"$work_dir/partitions"
  while read -r _number _tool _file _role; do
    case "$_tool" in partclone.ext4|partclone.vfat|partclone.dd) ;; *) die "partition $_number: unsupported tool '$_tool'" ;; esac
    if [ "$_role" = root ] && [ "$layout" = raid1 ]; then
      say "restoring root with $_tool onto $ARRAY"
      restore_partition "$_tool" "$_file" "$ARRAY"
      continue
    elif [ "$_role" = root ]; then
      copy_root_files "$_tool" "$_file"
      continue
    fi
    for _device in $devices; do
      _node=$(part_node "$_device" "$_number")
      say "restoring partition $_number ($_role) with $_tool onto $_node"
      restore_partition "$_tool" "$_file" "$_node"
    done
  done <"$work_dir/partitions"
  for _device in $devices; do
    dd if="$work_dir/$(jq -r .boot_code.file "$m")" of="$_device" bs=440 count=1 conv=notrunc 2>/dev/null
  done
  [ "$layout" = raid1 ] || return 0
  e2fsck -f -p "$ARRAY" >&2 || [ $? -le 1 ] || die "e2fsck found errors on $ARRAY"
  resize2fs "$ARRAY" >&2 2>&1 || die "resize2fs failed on $ARRAY"
}

# copy_root_files TOOL ARTIFACT: the captured root file system restored into a sparse file on
# rpool/btw-staging (only its used blocks are written), read through a loop device, and its files
# copied into rpool/ROOT/debian (/boot's into bpool/BOOT/debian) with GNU cp: owners, modes, times,
# hard links, ACLs and xattrs (file capabilities).
copy_root_files() {
  [ "$1" = partclone.ext4 ] || die "the root partition is $1, the zfs layouts copy files of ext4 only"
  mkdir -p "$work_dir/staging" "$work_dir/staged"
  mount -t zfs rpool/btw-staging "$work_dir/staging" || die "cannot mount rpool/btw-staging"
  _image=$work_dir/staging/root.ext4
  say "unpacking the root file system into rpool/btw-staging"
  # A new file (-O; -C: a file has no size to check), sparse: partclone writes the used blocks only,
  # so it ends at the last of them; the file system's own size again for the kernel to mount it.
  restore_partition "$1" "$2" "$_image" "-C -O"
  truncate -s "$(jq -r '.partitions[] | select(.role == "root") | .size_bytes' "$m")" "$_image"
  modprobe loop 2>/dev/null || true
  staging_loop=$(losetup -f) || die "no free loop device for the staged root"
  losetup -r "$staging_loop" "$_image" || die "cannot attach the staged root to $staging_loop"
  mount -t ext4 -o ro,noload "$staging_loop" "$work_dir/staged" || die "cannot mount the staged root file system"
  mount -t zfs rpool/ROOT/debian "$TARGET" || die "cannot mount rpool/ROOT/debian at $TARGET"
  mkdir -p "$TARGET/boot"
  mount -t zfs bpool/BOOT/debian "$TARGET/boot" || die "cannot mount bpool/BOOT/debian at $TARGET/boot"
  say "copying the root file system's files into rpool/ROOT/debian and bpool/BOOT/debian"
  "$IMAGE_CP" -a "$work_dir/staged/." "$TARGET/" || die "cp could not copy the root file system onto the pools"
  release_staging
  umount "$work_dir/staging"
  zfs destroy rpool/btw-staging || die "cannot remove rpool/btw-staging"
}

# in_target COMMAND...: the restored system's own program, in a chroot.
in_target() { chroot "$TARGET" /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# configure_target: seed, install ID, fstab, the layout's settings, the initramfs and GRUB.
configure_target() {
  mkdir -p "$TARGET"
  if [ "$layout" = raid1 ]; then
    mount -t ext4 "$ARRAY" "$TARGET"
  fi
  for _fs in dev proc sys; do mount -o bind "/$_fs" "$TARGET/$_fs"; done
  mount -t tmpfs tmpfs "$TARGET/run"
  if [ -n "$seed" ]; then
    mkdir -p "$TARGET/var/lib/cloud/seed/nocloud"
    cp "$work_dir/seed/"* "$TARGET/var/lib/cloud/seed/nocloud/"
    chmod 600 "$TARGET/var/lib/cloud/seed/nocloud/user-data"
  fi
  if [ -n "$install_id" ]; then
    mkdir -p "$TARGET/var/lib/btw-img"
    echo "$install_id" >"$TARGET/var/lib/btw-img/install-id"
  fi
  _esp_number=$(jq -r '.partitions[] | select(.role == "esp") | .number' "$m")
  _fstab_esp=""
  if [ -n "$_esp_number" ] && [ "$_esp_number" != null ]; then
    # shellcheck disable=SC2086 # device paths
    set -- $devices
    _fstab_esp=$(in_target blkid -s UUID -o value "$(part_path "$1" "$_esp_number")")
    # Every ESP's PARTUUID, for the hook that keeps them in step.
    mkdir -p "$TARGET/etc/btw-img"
    for _device in $devices; do in_target blkid -s PARTUUID -o value "$(part_path "$_device" "$_esp_number")"; done >"$TARGET/etc/btw-img/esps"
  fi
  case "$layout" in
    raid1) configure_array_root ;;
    *) configure_zfs_root ;;
  esac
  write_esp_sync

  say "update-initramfs and update-grub in the restored system"
  in_target update-initramfs -u -k all >&2 || die "update-initramfs failed in the restored system"
  in_target update-grub >&2 || die "update-grub failed in the restored system"
  grep -q "root=$root_argument" "$TARGET/boot/grub/grub.cfg" || die "the restored grub.cfg does not boot root=$root_argument"
  for _device in $devices; do
    say "GRUB for BIOS onto $_device"
    in_target grub-install --target=i386-pc "$_device" >&2 || die "grub-install failed on $_device"
  done
  [ "$layout" = raid1 ] || install_efi_grub
}

# fstab_lines ROOT_SOURCE BOOT_LINE: the image's fstab with root's source replaced (or, for "-",
# its line dropped: ZFS mounts root) and BOOT_LINE in its place; the ESP by its vfat serial, which
# every copy has, with nofail: either disk's ESP will do, and a missing one stops nothing.
fstab_lines() {
  awk -v root="$1" -v boot="$2" -v esp="${_fstab_esp:+UUID=$_fstab_esp}" '
    /^[[:space:]]*#/ { print; next }
    $2 == "/" && root == "-" { if (boot != "") print boot; next }
    $2 == "/" { $1 = root }
    $2 == "/boot/efi" && esp != "" { $1 = esp; if ($4 !~ /nofail/) $4 = $4 ",nofail" }
    { print }' "$TARGET/etc/fstab" >"$TARGET/etc/fstab.btw" && mv "$TARGET/etc/fstab.btw" "$TARGET/etc/fstab"
}

# configure_array_root: mdadm.conf, root by its file system's UUID (an md device has no PARTUUID).
configure_array_root() {
  _root_uuid=$(in_target blkid -s UUID -o value "$ARRAY")
  [ -n "$_root_uuid" ] || die "no file system UUID on $ARRAY"
  root_argument=UUID=$_root_uuid
  # No udev here: grub-mkconfig writes root=UUID only when this link exists.
  mkdir -p /dev/disk/by-uuid
  ln -sf "../../${ARRAY#/dev/}" "/dev/disk/by-uuid/$_root_uuid"

  say "mdadm.conf, fstab and GRUB's settings in the restored system"
  sed -i '/^ARRAY /d' "$TARGET/etc/mdadm/mdadm.conf"
  in_target mdadm --detail --scan >>"$TARGET/etc/mdadm/mdadm.conf"
  fstab_lines "UUID=$_root_uuid" ""
  cat >"$TARGET/etc/default/grub.d/90-btw-layout.cfg" <<EOF
# Written by btw-img's restore (layout raid1): root on an md array, named by its file system's UUID.
GRUB_DISABLE_LINUX_PARTUUID=true
GRUB_DISABLE_LINUX_UUID=
EOF
}

# configure_zfs_root: as OpenZFS's guide: a host ID of the machine's own, bpool imported by its
# own unit, /boot from bpool (fstab, legacy: systemd mounts it before /boot/efi, which lies on
# it), and GRUB's root=ZFS= (grub-mkconfig writes it when grub-probe says / is zfs).
configure_zfs_root() {
  root_argument=ZFS=rpool/ROOT/debian
  say "hostid, fstab, the bpool import unit and GRUB's settings in the restored system"
  rm -f "$TARGET/etc/hostid"
  in_target zgenhostid >&2 || die "zgenhostid failed in the restored system"
  fstab_lines - "bpool/BOOT/debian /boot zfs nodev,relatime,x-systemd.requires=zfs-import-bpool.service 0 0"
  cat >"$TARGET/etc/systemd/system/zfs-import-bpool.service" <<'EOF'
# Written by btw-img's restore (layouts zfs, zfs-mirror), as OpenZFS's "Debian Root on ZFS" has it:
# bpool is imported here, not by the initramfs, and kept out of the pool cache.
[Unit]
DefaultDependencies=no
Before=zfs-import-scan.service
Before=zfs-import-cache.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/sbin/zpool import -N -o cachefile=none bpool
# Work-around to preserve zpool cache:
ExecStartPre=-/bin/mv /etc/zfs/zpool.cache /etc/zfs/preboot_zpool.cache
ExecStartPost=-/bin/mv /etc/zfs/preboot_zpool.cache /etc/zfs/zpool.cache

[Install]
WantedBy=zfs-import.target
EOF
  in_target systemctl enable zfs-import-bpool.service >&2 || die "cannot enable zfs-import-bpool.service in the restored system"
  # The image's settings ask for root=PARTUUID=, which a pool has not: grub-mkconfig's zfs case decides.
  cat >"$TARGET/etc/default/grub.d/90-btw-layout.cfg" <<EOF
# Written by btw-img's restore (layout $layout): root on ZFS (rpool/ROOT/debian), /boot on bpool.
GRUB_DISABLE_LINUX_PARTUUID=true
EOF
  [ "$(in_target grub-probe /boot)" = zfs ] || die "GRUB does not read /boot (bpool) as zfs in the restored system"
}

# install_efi_grub: the ESP's GRUB (Debian's signed image) pointed at bpool, then the first
# disk's ESP copied onto the others (the same serial on every disk, as for raid1).
install_efi_grub() {
  [ -n "$_esp_number" ] && [ "$_esp_number" != null ] || return 0
  # shellcheck disable=SC2086 # device paths
  set -- $devices
  _first_esp=$(part_path "$1" "$_esp_number")
  mkdir -p "$TARGET/boot/efi"
  for _module in vfat nls_cp437 nls_ascii nls_utf8; do modprobe "$_module" 2>/dev/null || true; done
  mount -t vfat "$_first_esp" "$TARGET/boot/efi" || die "cannot mount the ESP $_first_esp"
  say "GRUB for UEFI onto $_first_esp (reading bpool)"
  in_target grub-install --target=x86_64-efi --efi-directory=/boot/efi --bootloader-id=debian --no-nvram --uefi-secure-boot >&2 ||
    die "grub-install (UEFI) failed on $_first_esp"
  umount "$TARGET/boot/efi"
  shift
  for _device in "$@"; do
    say "copying the ESP onto $(part_path "$_device" "$_esp_number")"
    dd if="$_first_esp" of="$(part_path "$_device" "$_esp_number")" bs=1M 2>/dev/null || die "cannot copy the ESP onto $_device"
  done
}

# finish_pools: everything under /target unmounted and the pools exported (release() does it too).
finish_pools() {
  [ "$layout" = raid1 ] && return 0
  unmount_target
  export_pools
}

# write_esp_sync: after each package run, the mounted ESP is copied onto the others (docs/layouts.md).
write_esp_sync() {
  mkdir -p "$TARGET/usr/local/sbin"
  cat >"$TARGET/usr/local/sbin/btw-esp-sync" <<'EOF'
#!/bin/sh
# Written by btw-img's restore: copies /boot/efi onto the other disks' ESPs.
set -eu
# /boot/efi may be an automount (x-systemd.automount): reading it mounts the ESP for findmnt.
ls /boot/efi >/dev/null 2>&1 || exit 0
mounted=$(findmnt -n -o PARTUUID /boot/efi | tail -n 1)
[ -n "$mounted" ] || exit 0
while read -r partuuid; do
  [ -n "$partuuid" ] && [ "$partuuid" != "$mounted" ] && [ -e "/dev/disk/by-partuuid/$partuuid" ] || continue
  dir=$(mktemp -d)
  if mount -t vfat "/dev/disk/by-partuuid/$partuuid" "$dir"; then
    cp -a /boot/efi/. "$dir/" || echo "btw-esp-sync: could not copy /boot/efi onto $partuuid" >&2
    umount "$dir"
  fi
  rmdir "$dir"
done </etc/btw-img/esps
EOF
  chmod 755 "$TARGET/usr/local/sbin/btw-esp-sync"
  echo 'DPkg::Post-Invoke { "if [ -x /usr/local/sbin/btw-esp-sync ]; then /usr/local/sbin/btw-esp-sync || true; fi"; };' \
    >"$TARGET/etc/apt/apt.conf.d/90btw-esp-sync"
}

check_disks
root_number=$(jq -r '.partitions[] | select(.role == "root") | .number' "$m")
if holds_this_install; then
  say "the disks already hold this install ($install_id): nothing written"
  exit 3
fi
check_blank
phase "disk checks"
fetch_artifacts
phase "download and check"
table_for_disks
partition_disks
phase "partition tables"
assemble_root
write_partitions
phase "partitions"
configure_target
finish_pools
sync
phase "restored system"
say "restored $(jq -r '.profile // "image"' "$m") as $layout onto$devices in $((phase_at - started))s (${phases#, })"
