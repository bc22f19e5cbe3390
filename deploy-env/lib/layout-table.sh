# shellcheck shell=sh disable=SC2154,SC2034 # restore.sh's globals, set and read across its parts
# The layout table (sourced by restore.sh and deploy-init.sh): one "NAME:DRIVER:MIN:MAX"
# line per layout the deploy environment restores, written by build-deploy-initramfs.sh
# from lib/config/layout.ts, the table's one owner; MAX "-" is no limit. The first line
# is the layout of a machine that names none.

# layout_lookup TABLE [NAME]: sets layout, layout_driver, layout_min and layout_max from
# NAME's line (the first line without NAME); fails with layout_error saying why.
layout_lookup() {
  layout_error=""
  if [ ! -r "$1" ]; then
    layout_error="no layout table at $1 (build-deploy-initramfs.sh writes it from lib/config/layout.ts; on a host, pass --layouts FILE)"
    return 1
  fi
  _entry=$(awk -F: -v name="${2:-}" 'name == "" || $1 == name { print; exit }' "$1")
  if [ -z "$_entry" ]; then
    layout_error="layout '$2' is not one this deploy environment restores ($(cut -d: -f1 "$1" | tr '\n' ' ' | sed 's/ $//'))"
    return 1
  fi
  _saved_ifs=$IFS
  IFS=:
  # shellcheck disable=SC2086 # split on ':'
  set -- $_entry
  IFS=$_saved_ifs
  layout=$1 layout_driver=$2 layout_min=$3 layout_max=$4
  case "$layout_driver" in ''|*[!a-z0-9]*) layout_error="the layout table names a bad driver '$layout_driver' for $layout"; return 1 ;; esac
}

# layout_takes COUNT: the layout takes COUNT disks; else fails with layout_error saying how many it takes.
layout_takes() {
  if [ "$1" -ge "$layout_min" ] && { [ "$layout_max" = - ] || [ "$1" -le "$layout_max" ]; }; then
    return 0
  fi
  case "$layout_max" in
    -) layout_error="layout $layout needs $layout_min disks or more, $1 given" ;;
    "$layout_min") layout_error="layout $layout takes $layout_min disk(s), $1 given" ;;
    *) layout_error="layout $layout takes $layout_min to $layout_max disks, $1 given" ;;
  esac
  return 1
}
