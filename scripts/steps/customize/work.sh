#!/bin/sh
# Sourced by customize-image.sh: mount and recovery. The build works on a raw
# copy of the base image in $work (beside the output), attached to a loop
# device and mounted at $root; release_work undoes all of it after any exit,
# and recover_work after a run that was killed before it could.
# Reads: base base_format output work raw root backup state partial; sets: loop image_release host_release.
# shellcheck disable=SC2154 # the globals named above are customize-image.sh's

# Processes whose root is our chroot (daemons a package or a command left behind).
kill_chroot_processes() {
  for _sig in TERM KILL; do
    _found=""
    for _p in /proc/[0-9]*; do
      [ "$(readlink "$_p/root" 2>/dev/null)" = "$root" ] || continue
      _cmd=$(tr '\0' ' ' <"$_p/cmdline" 2>/dev/null | cut -c1-60)
      kill "-$_sig" "${_p#/proc/}" 2>/dev/null && _found=1 &&
        say "stopped process ${_p#/proc/} left in the chroot ($_cmd)"
    done
    [ -n "$_found" ] || return 0
    sleep 1
  done
}

# Processes with our raw disk or partial output open (an orphaned qemu-img).
kill_file_users() {
  for _p in /proc/[0-9]*; do
    [ "${_p#/proc/}" != $$ ] || continue
    for _fd in "$_p"/fd/*; do
      case "$(readlink "$_fd" 2>/dev/null)" in
        "$raw"|"$raw (deleted)"|"$partial"|"$partial (deleted)")
          kill -KILL "${_p#/proc/}" 2>/dev/null && say "stopped process ${_p#/proc/} still writing $(readlink "$_fd")"
          break ;;
      esac
    done
  done
}

# Unmount everything under the work dir (deepest first) and detach the loop
# devices backed by our raw disk. Used by the trap and by crash recovery.
release_work() {
  kill_chroot_processes
  kill_file_users
  for _try in 1 2 3 4 5; do
    _mounts=$(awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -ru)
    _live=""
    for _m in $_mounts; do
      awk -v m="$_m" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo || continue
      _live=1
      say "unmounting $_m"
      umount "$_m" 2>/dev/null || umount -l "$_m" 2>/dev/null || true
    done
    [ -n "$_live" ] || break
  done
  _loops=""
  [ ! -e "$raw" ] || _loops=$(losetup -j "$raw" 2>/dev/null | cut -d: -f1)
  # shellcheck disable=SC2086 # one word per loop device
  for _l in $(printf '%s\n' $_loops | sort -u); do
    # Only loop devices whose backing file is our raw disk.
    _backing=$(losetup -nO BACK-FILE "$_l" 2>/dev/null | sed 's/ (deleted)$//' | sed 's/[[:space:]]*$//')
    [ "$_backing" = "$raw" ] || continue
    say "detaching $_l"
    losetup -d "$_l" 2>/dev/null || true
  done
}

# A fresh work folder (the lock file kept); what a killed run left is released first.
recover_work() {
  if [ -e "$state" ] || [ -e "$raw" ] || [ -e "$partial" ]; then
    say "recovering from an interrupted run in $work"
    release_work
    if [ -n "$(awk -v w="$work/" 'index($5, w) == 1' /proc/self/mountinfo)" ]; then
      die "mounts under $work are still busy; unmount them and retry"
    fi
    [ ! -e "$raw" ] || [ -z "$(losetup -j "$raw" 2>/dev/null)" ] || die "loop devices still hold $raw; detach them and retry"
  fi
  find "$work" -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf {} +
  rm -f "$partial"
  : >"$state"
  : >"$work/temp-files"
  mkdir "$root" "$backup"
}

# Copies the base image, mounts its root partition at $root and reads its release.
open_image() {
  say "copying $base to $raw"
  run qemu-img convert -f "$base_format" -O raw "$base" "$raw"
  loop=$(attach_loop "$raw")
  _root_part=$(root_partition "$loop")
  [ -n "$_root_part" ] || die "no ext4 root partition found in $base"
  say "mounting root partition $_root_part (the ESP stays unmounted: the kernel here cannot mount vfat)"
  mount "$_root_part" "$root"
  # A chroot'ed cat: /etc/os-release may be an absolute symlink.
  image_release=$(chroot "$root" /bin/cat /etc/os-release 2>/dev/null | sed -n 's/^VERSION_CODENAME=//p' | tr -d "\"'")
  [ -n "$image_release" ] || die "cannot read VERSION_CODENAME from the image's /etc/os-release"
  host_release=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release | tr -d "\"'")
  say "image release: $image_release (host: $host_release)"
}

# What a package install needs in the chroot; /dev is a private one (lib/private-dev.sh).
mount_chroot_filesystems() {
  for _dir in dev proc sys run tmp etc/apt/apt.conf.d etc/apt/sources.list.d; do
    plain_dir "$root/$_dir" || die "the image has no /$_dir folder (or it is a symlink)"
  done
  mount -t proc proc "$root/proc"
  mount --bind /sys "$root/sys"
  mount -t tmpfs -o mode=0755 tmpfs "$root/run"
  make_private_dev "$root/dev" "$loop"
}

# Unmounts everything and detaches the loop device: the raw disk is complete.
close_image() {
  say "unmounting and writing $output"
  kill_chroot_processes
  # Blocks freed in the image become holes in the raw disk, so the qcow2 stays small.
  fstrim "$root" 2>/dev/null || true
  for _m in dev/shm dev/pts dev run sys proc; do
    umount "$root/$_m"
  done
  umount "$root"
  losetup -d "$loop"
}
