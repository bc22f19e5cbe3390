#!/bin/sh
# Sourced by customize-image.sh: mount and recovery. Each layer (customize/layers.sh)
# is written through a qcow2 overlay that qemu-storage-daemon exports as a raw
# file at $raw (FUSE; this kernel has no NBD), attached to a loop device and
# mounted at $root; release_work undoes all of it after any exit, and
# recover_work after a run that was killed before it could (the daemon dies
# with the script: its parent-death signal).
# Reads: output work raw root backup state partial; sets: loop root_part qsd_pid image_release host_release.
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

# Unmount everything under PREFIX (deepest first).
unmount_under() {
  for _try in 1 2 3 4 5; do
    _mounts=$(awk -v w="$1" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -ru)
    _live=""
    for _m in $_mounts; do
      awk -v m="$_m" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo || continue
      _live=1
      say "unmounting $_m"
      umount "$_m" 2>/dev/null || umount -l "$_m" 2>/dev/null || true
    done
    [ -n "$_live" ] || break
  done
}

# Unmount the image, detach the loop devices backed by our raw disk, stop the
# export: the layer being written is thrown away. Used by the trap and by crash
# recovery.
release_work() {
  # First, so that nothing below can wait on a daemon that no longer answers.
  abort_export
  kill_chroot_processes
  kill_file_users
  unmount_under "$root"
  # Matched by the path they were set up with, or as recorded (after a SIGKILL the
  # export is gone with the script's mount namespace and the path may read "/").
  _recorded=""
  [ ! -s "$work/export" ] || _recorded=$(awk '{ print $3 }' "$work/export")
  losetup -nl -O NAME,BACK-FILE 2>/dev/null | while read -r _l _backing; do
    case "$_backing" in
      "$raw"|"$raw (deleted)") ;;
      *) if [ "$_l" != "$_recorded" ] || ! recorded_loop_matches "$_l"; then continue; fi ;;
    esac
    say "detaching $_l"
    losetup -d "$_l" 2>/dev/null || true
  done
  stop_export
  unmount_under "$work/"
}

# $work/export: "DAEMON-PID FUSE-CONNECTION LOOP DISKSEQ" of the open export, so a
# later run can end what a killed one left, even a stuck daemon. DISKSEQ tells this
# attachment of LOOP from any later one (it grows with each).
record_export() {
  _conn=$(awk -v m="$raw" '$5 == m { split($3, d, ":"); print d[1] * 1048576 + d[2] }' /proc/self/mountinfo)
  _seq=-
  [ -z "${1:-}" ] || _seq=$(cat "/sys/block/${1#/dev/}/diskseq" 2>/dev/null || echo -)
  printf '%s %s %s %s\n' "$qsd_pid" "$_conn" "${1:--}" "$_seq" >"$work/export"
}

recorded_loop_matches() {
  _seq=$(awk '{ print $4 }' "$work/export")
  [ "$_seq" != - ] && [ "$(cat "/sys/block/${1#/dev/}/diskseq" 2>/dev/null)" = "$_seq" ]
}

# Ends the recorded export's FUSE connection (every request to it fails at once)
# and kills its daemon. A daemon thread can wait in the kernel on a request to its
# own export, which only the daemon could answer (the loop device's writes are
# paged through it): then neither SIGKILL nor unmounting frees it, this does.
abort_export() {
  [ -s "$work/export" ] || return 0
  read -r _pid _conn _rest <"$work/export"
  # Only while that process is still our daemon serving $raw: its number may since be another mount's.
  case "$(tr '\0' ' ' <"/proc/$_pid/cmdline" 2>/dev/null)" in
    *qemu-storage-daemon*"mountpoint=$raw,"*) ;;
    *) return 0 ;;
  esac
  _ctl=/sys/fs/fuse/connections
  [ -e "$_ctl/$_conn" ] || mount -t fusectl fusectl "$_ctl" 2>/dev/null || true
  if [ -e "$_ctl/$_conn/abort" ]; then
    echo 1 >"$_ctl/$_conn/abort" 2>/dev/null && say "ended the FUSE connection of the export ($_conn)"
  fi
  kill -KILL "$_pid" 2>/dev/null || true
}

# Is PID a live process (not a zombie waiting for its parent)?
process_running() {
  _st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [ -n "$_st" ] && [ "$_st" != Z ]
}

# The export ends when its daemon does (SIGTERM: it unmounts $raw and flushes the
# overlay). A daemon that does not end within a minute is cut off and the build fails.
stop_export() {
  [ -n "${qsd_pid:-}" ] || return 0
  kill -TERM "$qsd_pid" 2>/dev/null || true
  _tries=0
  while process_running "$qsd_pid"; do
    if [ "$_tries" -ge 600 ]; then
      abort_export
      wait "$qsd_pid" 2>/dev/null || true
      qsd_pid=""
      die "qemu-storage-daemon did not stop within 60 s after SIGTERM; its export was cut off and this layer is not kept"
    fi
    sleep 0.1
    _tries=$((_tries + 1))
  done
  _status=0
  wait "$qsd_pid" 2>/dev/null || _status=$?
  qsd_pid=""
  rm -f "$work/export"
  # SIGKILL (137) only ever comes from abort_export, on the way to throwing the layer away.
  [ "$_status" -eq 0 ] || [ "$_status" -eq 137 ] || die "qemu-storage-daemon exited with status $_status while closing the layer"
}

# A fresh work folder (the lock file kept); what a killed run left is released first.
recover_work() {
  if [ -e "$state" ] || [ -e "$raw" ] || [ -e "$partial" ]; then
    say "recovering from an interrupted run in $work"
    release_work
    if [ -n "$(awk -v w="$work/" 'index($5, w) == 1' /proc/self/mountinfo)" ]; then
      die "mounts under $work are still busy; unmount them and retry"
    fi
    ! losetup -nl -O BACK-FILE 2>/dev/null | grep -qxF "$raw" || die "loop devices still hold $raw; detach them and retry"
  fi
  find "$work" -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf {} +
  rm -f "$partial"
  : >"$state"
  : >"$work/temp-files"
  mkdir "$root" "$backup"
}

# Exports the qcow2 OVERLAY as the raw file $raw, mounts its root partition at
# $root and reads its release. The daemon is this shell's child, killed with it.
open_image() {
  : >"$raw"
  # discard=unmap: what a step frees (fstrim on close) becomes zero clusters over the
  # layers below, so the flattened image does not carry deleted files' old blocks.
  setpriv --pdeathsig KILL qemu-storage-daemon \
    --blockdev "driver=qcow2,node-name=layer,discard=unmap,file.driver=file,file.filename=$1,file.discard=unmap" \
    --export "type=fuse,id=layer,node-name=layer,mountpoint=$raw,writable=on" 7>&- 8>&- 9>&- &
  qsd_pid=$!
  _tries=0
  until awk -v m="$raw" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; do
    kill -0 "$qsd_pid" 2>/dev/null || { qsd_pid=""; die "qemu-storage-daemon could not export $1"; }
    [ "$_tries" -lt 100 ] || die "qemu-storage-daemon did not export $1 within 10 s"
    sleep 0.1
    _tries=$((_tries + 1))
  done
  record_export
  loop=$(attach_loop "$raw")
  record_export "$loop"
  root_part=$(root_partition "$loop")
  [ -n "$root_part" ] || die "no ext4 root partition found in $base"
  say "mounting root partition $root_part (the ESP stays unmounted: the kernel here cannot mount vfat)"
  mount "$root_part" "$root"
  # A chroot'ed cat: /etc/os-release may be an absolute symlink.
  image_release=$(chroot "$root" /bin/cat /etc/os-release 2>/dev/null | sed -n 's/^VERSION_CODENAME=//p' | tr -d "\"'")
  [ -n "$image_release" ] || die "cannot read VERSION_CODENAME from the image's /etc/os-release"
  host_release=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release | tr -d "\"'")
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

# Unmounts everything, checks the file system, detaches the loop device and ends
# the export: the overlay is complete. Any error throws it away (a full cache's file
# system fails the writes under the export: that layer must never be kept).
close_image() {
  kill_chroot_processes
  # Blocks freed in the image are discarded in the overlay, so it stays small.
  # Committed first: ext4 trims no block freed in a transaction still open (clean's deletions).
  _err=$(sync -f "$root" 2>&1) || die "writing the image failed (sync: $_err); is the cache's file system full? Nothing of this step is kept"
  _err=$(fstrim "$root" 2>&1) || die "discarding freed blocks failed (fstrim: $_err); nothing of this step is kept"
  for _m in dev/shm dev/pts dev run sys proc; do
    umount "$root/$_m"
  done
  umount "$root"
  _err=$(e2fsck -fn "$root_part" 2>&1) || die "the image's root file system has errors after this step (e2fsck -fn $root_part: $(printf '%s\n' "$_err" | tail -n 3 | tr '\n' ' ')); nothing of it is kept"
  losetup -d "$loop"
  stop_export
  rm -f "$raw"
}
