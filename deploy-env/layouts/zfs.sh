# shellcheck shell=sh disable=SC2154,SC2034 # restore.sh's globals, set and read across its parts
# Layout driver zfs (sourced by restore.sh; the hooks are described there): bpool
# (/boot, GRUB's features) and rpool (/) as OpenZFS's "Debian Root on ZFS" makes
# them, on one disk or mirrored across all; the captured root file system's files
# unpacked into rpool/ROOT/debian (the capture's root-tar); from a chroot: hostid (added to the image's initramfs too),
# the bpool import unit, fstab, GRUB for ZFS; the pools exported at the end, so the
# restored system imports them.

# As OpenZFS's guide types them (sgdisk BF00 for rpool, BF01 for bpool).
RPOOL_TYPE=6A85CF4D-1DD2-11B2-99A6-080020736631
BPOOL_TYPE=6A898CC3-1DD2-11B2-99A6-080020736631
# bpool's partition (p2) at the captured root's start; rpool (p1) after it.
BPOOL_NUMBER=2
BPOOL_SECTORS=2097152
# The image's GNU tar, by the path of its wrapper (build-deploy-initramfs.sh --image-program tar):
# busybox's shell may run its own tar applet whatever PATH says, and that unpacks without the
# xattrs and ACLs, silently.
IMAGE_TAR=/usr/sbin/tar

layout_tools() {
  "$IMAGE_TAR" --version 2>/dev/null | grep -q GNU ||
    die "$IMAGE_TAR is not GNU tar: this deploy environment lacks the image's tar (build-deploy-initramfs.sh --image-program tar)"
  echo zpool zfs modprobe chroot
}

layout_prepared() { echo root-tar; }

# load_zfs: the module zfs-dkms built for the image's kernel, signed with dkms's own key.
load_zfs() {
  modprobe zfs || die "cannot load the zfs module: the machine's profile must build it (zfs-dkms), and with Secure Boot on the kernel refuses it (dkms signs it with its own key): turn Secure Boot off for this machine"
}

# The install ID on rpool/ROOT/debian of rpool on these disks' root partitions (only these: no
# other disk is searched), imported read-only.
layout_installed_id() {
  _search=""
  for _device in $devices; do
    _member=$(part_path "$_device" "$root_number")
    [ ! -b "$_member" ] || _search="$_search -d $_member"
  done
  [ -n "$_search" ] || return 0
  load_zfs
  # shellcheck disable=SC2086 # options and partition nodes
  zpool import $_search 2>/dev/null | grep -q '^ *pool: rpool$' || return 0
  # shellcheck disable=SC2086 # options and partition nodes
  zpool import $_search -N -f -o readonly=on -R "$work_dir/check" rpool >/dev/null 2>&1 || return 0
  install_id_on rpool/ROOT/debian zfs
  zpool export rpool >/dev/null 2>&1
}

# Each disk its own GUIDs; the captured root's place split into bpool (p2, 1 GiB at root's
# start) and rpool, which ends where the smallest disk ends.
layout_table() {
  root_extent
  jq -e --argjson n "$BPOOL_NUMBER" '[.partitions[] | select(.number == $n)] | length == 0' "$m" >/dev/null ||
    die "the captured table already has a partition $BPOOL_NUMBER, where bpool goes"
  [ "$root_size" -gt $((BPOOL_SECTORS * 2)) ] ||
    die "the smallest disk ($smallest_bytes bytes) leaves no room for rpool after bpool's $((BPOOL_SECTORS * sector_size)) bytes: give disks of at least $(( (root_start + BPOOL_SECTORS * 2 + 2048) * sector_size )) bytes"
  captured_table | own_ids | root_line "start=$((root_start + BPOOL_SECTORS)), size=$((root_size - BPOOL_SECTORS)), type=$RPOOL_TYPE
disk$BPOOL_NUMBER : start=$root_start, size=$BPOOL_SECTORS, type=$BPOOL_TYPE"
}

# The pools by kernel names (no udev here; the restored system finds them by scanning),
# mirrored across two disks or more.
layout_assemble() {
  _bpool="" _rpool="" _vdev=""
  for _device in $devices; do
    _bpool="$_bpool $(part_node "$_device" "$BPOOL_NUMBER")"
    _rpool="$_rpool $(part_node "$_device" "$root_number")"
  done
  # shellcheck disable=SC2086 # device paths
  [ "$(echo $devices | wc -w)" -lt 2 ] || _vdev=mirror
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
}

# The root file system's files, as the capture prepared them (root-tar), unpacked once by the
# image's GNU tar into rpool/ROOT/debian (/boot's into bpool/BOOT/debian): owners, modes, times,
# hard links, ACLs and xattrs. Progress: how far zstd has read the artifact (its fdinfo: asking
# zfs every second cost the emulated CPU as much as the unpacking).
layout_write_root() {
  [ "$1" = tar ] || die "the zfs layouts write the root from the capture's root-tar, not from $1"
  mount -t zfs rpool/ROOT/debian "$TARGET" || die "cannot mount rpool/ROOT/debian at $TARGET"
  mkdir -p "$TARGET/boot"
  mount -t zfs bpool/BOOT/debian "$TARGET/boot" || die "cannot mount bpool/BOOT/debian at $TARGET/boot"
  _artifact=$(artifact "$2")
  _size=$(stat -c %s "$_artifact")
  say "unpacking the root file system's files into rpool/ROOT/debian and bpool/BOOT/debian"
  rm -f "$work_dir/tar.failed" "$work_dir/root.tar"
  mkfifo "$work_dir/root.tar"
  zstd -dc <"$_artifact" >"$work_dir/root.tar" 2>>"$work_dir/tar.log" &
  _zstd=$!
  { "$IMAGE_TAR" -x -p --numeric-owner --acls --xattrs --xattrs-include='*' -f "$work_dir/root.tar" -C "$TARGET" 2>>"$work_dir/tar.log" ||
    echo $? >"$work_dir/tar.failed"; } &
  # shellcheck disable=SC2016 # the command is follow's, run by it
  follow $! writing 'percent "$(sed -n "s/^pos:[[:space:]]*//p" "/proc/$_zstd/fdinfo/0" 2>/dev/null | grep . || echo 0)" "$_size"' root
  _zstd_status=0
  wait "$_zstd" || _zstd_status=$?
  [ ! -e "$work_dir/tar.failed" ] || { cat "$work_dir/tar.log" >&2; die "tar could not unpack the root file system onto the pools"; }
  [ "$_zstd_status" -eq 0 ] || { cat "$work_dir/tar.log" >&2; die "zstd could not unpack $2"; }
  rm -f "$work_dir/root.tar"
}

# As OpenZFS's guide: a host ID of the machine's own, bpool imported by its own unit, /boot from
# bpool (fstab, legacy), GRUB's root=ZFS= (grub-mkconfig writes it when grub-probe says / is zfs).
layout_configure() {
  bind_target
  write_seed_and_id "$TARGET"
  say "hostid, fstab, the bpool import unit and GRUB's settings in the restored system"
  rm -f "$TARGET/etc/hostid"
  in_target zgenhostid >&2 || die "zgenhostid failed in the restored system"
  # The image's initramfs (zfs-initramfs made it) imports rpool under the host ID it holds: this one's.
  initramfs_add etc/hostid
  fstab_lines - "bpool/BOOT/debian /boot zfs nodev,relatime,x-systemd.requires=zfs-import-bpool.service 0 0"
  cat >"$TARGET/etc/systemd/system/zfs-import-bpool.service" <<'UNIT'
# Written by btw-img's restore (driver zfs), as OpenZFS's "Debian Root on ZFS" has it:
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
UNIT
  in_target systemctl enable zfs-import-bpool.service >&2 || die "cannot enable zfs-import-bpool.service in the restored system"
  # The image's settings ask for root=PARTUUID=, which a pool has not: grub-mkconfig's zfs case decides.
  grub_settings "GRUB_DISABLE_LINUX_PARTUUID=true"
  [ "$(in_target grub-probe /boot)" = zfs ] || die "GRUB does not read /boot (bpool) as zfs in the restored system"
  write_esp_sync
  grub_in_target ZFS=rpool/ROOT/debian
  install_efi_grub
}

# The ESP's GRUB (Debian's signed image) pointed at bpool, then the first disk's ESP copied
# onto the others (the same serial on every disk, as for raid1).
install_efi_grub() {
  [ -n "$esp_number" ] || return 0
  # shellcheck disable=SC2086 # device paths
  set -- $devices
  _first_esp=$(part_path "$1" "$esp_number")
  mkdir -p "$TARGET/boot/efi"
  for _module in vfat nls_cp437 nls_ascii nls_utf8; do modprobe "$_module" 2>/dev/null || true; done
  mount -t vfat "$_first_esp" "$TARGET/boot/efi" || die "cannot mount the ESP $_first_esp"
  say "GRUB for UEFI onto $_first_esp (reading bpool)"
  in_target grub-install --target=x86_64-efi --efi-directory=/boot/efi --bootloader-id=debian --no-nvram --uefi-secure-boot >&2 ||
    die "grub-install (UEFI) failed on $_first_esp"
  umount "$TARGET/boot/efi"
  shift
  for _device in "$@"; do
    say "copying the ESP onto $(part_path "$_device" "$esp_number")"
    dd if="$_first_esp" of="$(part_path "$_device" "$esp_number")" bs=1M 2>/dev/null || die "cannot copy the ESP onto $_device"
  done
}

# A pool left imported here was last used by another host, which the restored system's
# initramfs does not import without -f.
created_pools=""
export_pools() {
  for _pool in $created_pools; do zpool export "$_pool" || say "could not export $_pool"; done
  created_pools=""
}

layout_finish() { unmount_target; export_pools; }
layout_cleanup() { unmount_target; export_pools; }

# Root on ZFS: the pools are exported, the restored system starts by a reboot.
layout_root() { :; }
layout_release() { :; }
