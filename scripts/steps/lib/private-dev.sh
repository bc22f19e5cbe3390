# Sourced by step scripts that chroot into an image: give the chroot a /dev of
# its own instead of the host's. Debian's images ship an empty /dev, and a bind
# of the host's /dev would let the build add or remove the host's device links.

# make_private_dev DIR [LOOP] -> mounts DIR (tmpfs), DIR/pts (devpts), DIR/shm (tmpfs)
# with the nodes a package install needs. With LOOP (/dev/loopN), also that disk
# and its partitions, and their disk/by-uuid, by-partuuid and by-label links, so
# grub-mkconfig in the chroot names the root partition by UUID/PARTUUID, never
# by the build's loop device. The caller unmounts DIR/shm, DIR/pts, DIR.
make_private_dev() {
  _dev=$1 _disk=${2:-}
  mount -t tmpfs -o mode=0755,nosuid,size=16m btw-dev "$_dev"
  # name type major minor mode
  for _node in "null c 1 3 666" "zero c 1 5 666" "full c 1 7 666" "random c 1 8 666" \
    "urandom c 1 9 666" "tty c 5 0 666" "console c 5 1 600"; do
    # shellcheck disable=SC2086 # five fields
    set -- $_node
    mknod -m "$5" "$_dev/$1" "$2" "$3" "$4"
  done
  mkdir -m 0755 "$_dev/pts"
  mkdir -m 1777 "$_dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$_dev/pts"
  mount -t tmpfs -o mode=1777,nosuid,nodev shm "$_dev/shm"
  ln -s pts/ptmx "$_dev/ptmx"
  ln -s /proc/self/fd "$_dev/fd"
  ln -s /proc/self/fd/0 "$_dev/stdin"
  ln -s /proc/self/fd/1 "$_dev/stdout"
  ln -s /proc/self/fd/2 "$_dev/stderr"
  [ -n "$_disk" ] || return 0
  mkdir -p "$_dev/disk/by-uuid" "$_dev/disk/by-partuuid" "$_dev/disk/by-label"
  for _block in "$_disk" "$_disk"p*; do
    [ -b "$_block" ] || continue
    _name=${_block#/dev/}
    _numbers=$(cat "/sys/class/block/$_name/dev")
    mknod -m 660 "$_dev/$_name" b "${_numbers%%:*}" "${_numbers#*:}"
    [ "$_block" != "$_disk" ] || continue
    for _link in UUID:by-uuid PART_ENTRY_UUID:by-partuuid LABEL:by-label; do
      _value=$(blkid -p -o value -s "${_link%%:*}" "$_block" 2>/dev/null || true)
      case $_value in '' | */*) continue ;; esac
      ln -sfn "../../$_name" "$_dev/disk/${_link#*:}/$_value"
    done
  done
}
