# shellcheck shell=sh disable=SC2154,SC2034 # restore.sh's globals, set and read across its parts
# Layout driver single (sourced by restore.sh; the hooks are described there): the
# captured table on the one disk with the captured GUIDs (the image boots root by
# PARTUUID), root grown to the disk's end, the seed written into the restored root.

layout_tools() { echo e2fsck resize2fs; }
layout_prepared() { :; }

layout_installed_id() {
  _root=$(layout_root)
  [ ! -b "$_root" ] || install_id_on "$_root" ext4 noload
}

# The dump fixed root's size: dropped, so that root grows to the end of the disk.
layout_table() {
  captured_table | sed -e "s/^disk$root_number : \(start= *[0-9]*\), *size= *[0-9]*,/disk$root_number : \1,/"
}

layout_assemble() { :; }

layout_write_root() {
  restored_root=$(layout_root)
  part_node "${devices# }" "$root_number" >/dev/null
  say "restoring partition $root_number (root) with $1 onto $restored_root"
  restore_partition "$1" "$2" "$restored_root"
}

layout_configure() {
  grow_ext4 "$restored_root"
  [ -n "$seed_files$install_id" ] || return 0
  mkdir -p "$work_dir/root"
  mount -t ext4 "$restored_root" "$work_dir/root"
  write_seed_and_id "$work_dir/root"
  umount "$work_dir/root"
}

layout_finish() { :; }
layout_cleanup() { umount "$work_dir/root" 2>/dev/null || true; }

layout_root() { part_path "${devices# }" "$root_number"; }
layout_release() { :; }
