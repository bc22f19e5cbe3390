# shellcheck shell=sh disable=SC2154,SC2034 # restore.sh's globals, set and read across its parts
# Layout driver raid1 (sourced by restore.sh; the hooks are described there): an md
# RAID1 of every disk's root partition holding the captured root file system block
# for block; the ESP and the prepared BIOS boot partition (GRUB reading the array,
# capture-partitions.sh --prepare bios-boot-mdraid) on every disk; in the restored
# system: mdadm.conf (also added to its initramfs, which the image's mdadm package
# made), fstab and GRUB's root by the file system's UUID (an md device has no PARTUUID).

ARRAY=/dev/md0
# Only to read an earlier install's ID; stopped at once.
CHECK_ARRAY=/dev/md9
RAID_TYPE=A19D880F-05FC-4D3B-A006-743F0F84911E

layout_tools() { echo mdadm e2fsck resize2fs chroot; }
layout_prepared() { echo bios-boot-mdraid; }

# The install ID on the root of an array of any one root partition, assembled read-only.
layout_installed_id() {
  for _device in $devices; do
    _member=$(part_path "$_device" "$root_number")
    { [ -b "$_member" ] && mdadm --examine "$_member" >/dev/null 2>&1; } || continue
    mdadm --assemble --readonly --run "$CHECK_ARRAY" "$_member" >/dev/null 2>&1 || continue
    _found=$(install_id_on "$CHECK_ARRAY" ext4 noload)
    mdadm --stop "$CHECK_ARRAY" >/dev/null 2>&1
    [ -z "$_found" ] || { echo "$_found"; return 0; }
  done
}

# Each disk its own GUIDs; root typed Linux RAID, ending where the smallest disk ends.
layout_table() {
  root_extent
  captured_table | own_ids | root_line "start=$root_start, size=$root_size, type=$RAID_TYPE"
}

# metadata 1.2, no --assume-clean (docs/layouts.md).
layout_assemble() {
  _members=""
  for _device in $devices; do _members="$_members $(part_node "$_device" "$root_number")"; done
  say "creating $ARRAY (RAID1 of$_members)"
  # shellcheck disable=SC2086 # partition nodes
  mdadm --create "$ARRAY" --run --level=1 --raid-devices="$(echo $_members | wc -w)" --metadata=1.2 \
    --homehost=any --name=root $_members || die "mdadm could not create $ARRAY"
}

layout_write_root() {
  say "restoring root with $1 onto $ARRAY"
  restore_partition "$1" "$2" "$ARRAY"
  grow_ext4 "$ARRAY"
}

layout_configure() {
  mkdir -p "$TARGET"
  mount -t ext4 "$ARRAY" "$TARGET"
  bind_target
  write_seed_and_id "$TARGET"
  _uuid=$(in_target blkid -s UUID -o value "$ARRAY")
  [ -n "$_uuid" ] || die "no file system UUID on $ARRAY"
  [ -f "$TARGET/usr/share/initramfs-tools/hooks/mdadm" ] || die "the restored system has no mdadm hook for its initramfs (package mdadm)"
  say "mdadm.conf, fstab, GRUB's root and settings in the restored system"
  sed -i '/^ARRAY /d' "$TARGET/etc/mdadm/mdadm.conf"
  in_target mdadm --detail --scan >>"$TARGET/etc/mdadm/mdadm.conf"
  # The array's line, so that the initramfs names it /dev/md0 (without it: /dev/md127).
  initramfs_add etc/mdadm/mdadm.conf
  fstab_lines "UUID=$_uuid" ""
  grub_cfg_root "UUID=$_uuid"
  # For the restored system's own update-grub (kernel updates): root=UUID= as above.
  grub_settings "GRUB_DISABLE_LINUX_PARTUUID=true
GRUB_DISABLE_LINUX_UUID="
  write_esp_sync
}

# The array stays assembled: the restored system may start from it (layout_root).
layout_finish() { unmount_target; }
layout_cleanup() { unmount_target; }

layout_root() { echo "$ARRAY"; }
# Marked clean before the restored system starts: its resync then goes on from where it was.
layout_release() { mdadm --stop "$ARRAY" >/dev/null 2>&1 || say "could not stop $ARRAY (it resyncs again from the start)"; }
