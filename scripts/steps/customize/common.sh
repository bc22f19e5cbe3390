#!/bin/sh
# Sourced by customize-image.sh: helpers its parts share.
# shellcheck disable=SC2154 # globals of customize-image.sh: root child_pid CHROOT_PATH

present() { [ -e "$1" ] || [ -L "$1" ]; }
plain_dir() { [ -d "$1" ] && [ ! -L "$1" ]; }

# Entries of a folder, hidden ones included (a glob alone would skip them).
folder_entries() {
  for _e in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    present "$_e" || continue
    printf '%s\n' "${_e##*/}"
  done
}

# Long steps run in the background so INT/TERM are handled at once; fds 7-9 (the
# locks) are closed for them so an orphan cannot keep a lock after a SIGKILL.
run() {
  "$@" 7>&- 8>&- 9>&- &
  child_pid=$!
  _status=0
  wait "$child_pid" || _status=$?
  child_pid=""
  return "$_status"
}

in_chroot() {
  run chroot "$root" /usr/bin/env -i PATH="$CHROOT_PATH" HOME=/root LC_ALL=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true "$@" >&2
}

# Copy PATHS (relative to SRC) into the image, resolving symlinks inside the
# image (merged /usr, absolute links) and without changing existing folders.
# Owned by root and never group/world-writable: git keeps only the x bit.
copy_into_image() {
  _src=$1; shift
  tar -C "$_src" --owner=0 --group=0 --numeric-owner --mode=go-w -cf - "$@" |
    chroot "$root" /bin/tar -xf - -C / --keep-directory-symlink --no-overwrite-dir
}
