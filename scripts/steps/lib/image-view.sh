# shellcheck shell=sh
# Sourced by step scripts: a read-only view of a disk image's root file system,
# without copying or converting the image. qemu-storage-daemon exports the image
# (qcow2 or raw) as a read-only raw file through FUSE; the root partition of that
# file is mounted read-only (ro,noload: no journal replay) through a loop device.
#
# Needs root, and a mount namespace of the caller's own (own_mount_namespace in
# lib/image-mount.sh). The script records nothing itself: image_view_close, run
# from its EXIT trap (lib/messages.sh on_exit), frees the mount, the loop
# device and the daemon on every exit path. If the script is killed outright
# (SIGKILL), nothing is left either: the daemon dies with it (parent-death
# signal), the loop device is detached by the kernel when its mount goes (mount's
# autoclear), and the mounts go with the script's mount namespace.
#
#   image_view_open IMAGE DIR   -> IMAGE's root file system, read-only, at DIR/root
#                                  (DIR: an empty folder of the caller's, e.g. in its work folder)
#   image_view_close            -> unmounts what image_view_open mounted and stops the daemon
#   image_view_mounts="..."     -> mount points under DIR/root the caller added; unmounted first, in this order

image_view_pid=""
image_view_disk=""
image_view_root=""
image_view_mounts=""

image_view_open() {
  _image=$1 _dir=$2
  _format=$(qemu-img info -U "$_image" 2>/dev/null | sed -n 's/^file format: //p')
  case $_format in
    qcow2 | raw) ;;
    *) say "error: cannot read $_image as qcow2 or raw (qemu-img says: ${_format:-nothing})"; return 1 ;;
  esac
  image_view_disk="$_dir/disk"
  # The export's mount point: an empty file, until the daemon serves the image there.
  : > "$image_view_disk"
  # A comma in an option's value must be doubled.
  _image_opt=$(printf '%s' "$_image" | sed 's/,/,,/g')
  _disk_opt=$(printf '%s' "$image_view_disk" | sed 's/,/,,/g')
  # In the background of a script without job control SIGINT is ignored: the trap stops it, in order.
  setpriv --pdeathsig KILL qemu-storage-daemon \
    --blockdev "driver=file,node-name=file,filename=$_image_opt,read-only=on" \
    --blockdev "driver=$_format,node-name=disk,file=file,read-only=on" \
    --export "type=fuse,id=view,node-name=disk,mountpoint=$_disk_opt,writable=off" \
    </dev/null >"$_dir/daemon.log" 2>&1 &
  image_view_pid=$!
  _tries=0
  # Served once the mount point has the image's size.
  until [ -s "$image_view_disk" ]; do
    if ! kill -0 "$image_view_pid" 2>/dev/null || [ "$_tries" -ge 100 ]; then
      say "error: qemu-storage-daemon did not export $_image: $(cat "$_dir/daemon.log")"
      return 1
    fi
    sleep 0.1
    _tries=$((_tries + 1))
  done
  _part=$(image_view_root_partition "$image_view_disk")
  if [ -z "$_part" ]; then
    say "error: no ext4 root partition in $_image"
    return 1
  fi
  image_view_root="$_dir/root"
  mkdir -p "$image_view_root"
  # shellcheck disable=SC2086 # offset and size
  set -- $_part
  mount -t ext4 -o "ro,noload,loop,offset=$1,sizelimit=$2" "$image_view_disk" "$image_view_root" || {
    image_view_root=""
    return 1
  }
}

# image_view_root_partition FILE -> "OFFSET SIZE" in bytes of its largest ext4
# partition (p1 in Debian's layout), read from the partition table without a loop device.
image_view_root_partition() {
  partx -g -o START,SECTORS "$1" 2>/dev/null | while read -r _start _sectors; do
    _offset=$((_start * 512)) _size=$((_sectors * 512))
    [ "$(blkid -p -O "$_offset" -S "$_size" -o value -s TYPE "$1" 2>/dev/null)" = ext4 ] || continue
    echo "$_size $_offset"
  done | sort -n | tail -n 1 | awk '{ print $2, $1 }'
}

image_view_close() {
  for _m in $image_view_mounts; do umount "$_m" 2>/dev/null || umount -l "$_m" 2>/dev/null || true; done
  image_view_mounts=""
  if [ -n "$image_view_root" ]; then
    umount "$image_view_root" 2>/dev/null || umount -l "$image_view_root" 2>/dev/null || true
    image_view_root=""
    # The loop device goes with the mount (autoclear); wait for it before the daemon goes.
    _tries=0
    while [ -n "$(losetup -n -O NAME -j "$image_view_disk" 2>/dev/null)" ] && [ "$_tries" -lt 50 ]; do
      sleep 0.1
      _tries=$((_tries + 1))
    done
  fi
  if [ -n "$image_view_pid" ]; then
    # On SIGTERM the daemon removes its export (and unmounts it) before it exits.
    kill "$image_view_pid" 2>/dev/null || true
    wait "$image_view_pid" 2>/dev/null || true
    image_view_pid=""
  fi
  if [ -n "$image_view_disk" ]; then
    umount -l "$image_view_disk" 2>/dev/null || true
    rm -f "$image_view_disk"
    image_view_disk=""
  fi
}
