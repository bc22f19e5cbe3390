# Sourced by step scripts: attach a raw disk image to a loop device and find
# its root partition. Callers record what they took and release it in a trap.

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
