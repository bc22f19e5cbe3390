# Sourced by step scripts: attach a raw disk image to a loop device and find
# its root partition. Callers record what they took and release it in a trap.

# own_mount_namespace "$@" (first thing, with the script's own arguments) re-runs
# the script in a mount namespace of its own. A VM that libvirt starts meanwhile
# copies the host's mounts into its namespace; a copy of ours there would keep
# the file system mounted, and its loop device busy, past our umount (an image
# written that way keeps a journal to replay).
own_mount_namespace() {
  # Not root: the script's own check says what is wrong.
  [ -z "${BTW_OWN_MOUNT_NAMESPACE:-}" ] && [ "$(id -u)" -eq 0 ] || return 0
  BTW_OWN_MOUNT_NAMESPACE=1 exec unshare --mount --propagation private sh "$0" "$@"
}

# attach_loop FILE [ro] -> prints /dev/loopN with partition nodes present
attach_loop() {
  _flags="-f --show -P"
  [ "${2:-}" = ro ] && _flags="$_flags -r"
  _loop=$(losetup $_flags "$1")
  _tries=0
  while [ ! -b "${_loop}p1" ] && [ "$_tries" -lt 25 ]; do
    partx -a "$_loop" 2>/dev/null || true
    sleep 0.2
    _tries=$((_tries + 1))
  done
  echo "$_loop"
}

# root_partition /dev/loopN -> the largest ext4 partition (p1 in Debian's
# layout). Probed with blkid -p: without udev, lsblk knows no file system types.
root_partition() {
  for _part in "$1"p*; do
    [ -b "$_part" ] || continue
    [ "$(blkid -p -o value -s TYPE "$_part" 2>/dev/null)" = ext4 ] || continue
    echo "$(blockdev --getsize64 "$_part") $_part"
  done | sort -n | tail -n 1 | cut -d' ' -f2
}

# detach_loops_of FILE... : detaches every loop device backed by one of the files.
detach_loops_of() {
  for _file in "$@"; do
    [ -f "$_file" ] || continue
    for _l in $(losetup -j "$_file" -O NAME -n 2>/dev/null); do losetup -d "$_l"; done
  done
}

# release_taken: the EXIT trap (on_exit release_taken, lib/messages.sh) of a script
# that records in mnt, loop and work what it takes (a mount point, a loop device,
# a work folder): unmounts, detaches and removes each one set, and exits with the
# script's status.
release_taken() {
  _status=$?
  set +e
  [ -z "${mnt:-}" ] || umount "$mnt"
  [ -z "${loop:-}" ] || losetup -d "$loop"
  # A signal during loop=$(attach_loop ...) leaves a loop device that loop does not name yet.
  [ -z "${work:-}" ] || detach_loops_of "$work"/*
  [ -z "${work:-}" ] || rm -rf "$work"
  exit "$_status"
}
