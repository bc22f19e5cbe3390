#!/bin/sh
# Restore the artifacts of capture-partitions.sh onto a machine's disks in a layout
# (docs/layouts.md). Every layout goes the same way: check the disks (and leave
# them when they hold this install already: exit 3, or another btw-img install
# that --replace does not name: exit 4), fetch every artifact and check its
# sha256, then write: the tables, the root's container, the partitions, the
# restored system's configuration. The layout's driver (layouts/DRIVER.sh, named by
# the layout table, lib/layout-table.sh) says how, in these hooks:
#   layout_tools          the programs it needs beyond every layout's
#   layout_prepared       what of the capture's preparations it writes in place of captured partitions
#   layout_installed_id   the install ID on the root these disks hold, if any
#   layout_table          the sfdisk table every disk gets
#   layout_assemble       what holds the root (an array, pools), once the tables are written
#   layout_write_root     TOOL ARTIFACT: the captured root onto it
#   layout_configure      the restored system made ready to boot in this layout
#   layout_finish         what must be released before the system starts (left assembled: the root)
#   layout_cleanup        on any exit: whatever it still holds
#   layout_root           the restored root to start from here (kexec, switch_root); none: reboot
#   layout_release        what the deploy environment lets go of just before that start
# Runs on the target machine (busybox sh in the deploy environment) and on hosts.
# With BTW_PROGRESS set (btw-report in the deploy environment), it is told how far the
# restore is: downloading N, writing N (per partition), configuring, every few seconds.
# shellcheck source-path=SCRIPTDIR
set -eu
umask 022

PROG=restore
USAGE="usage: restore.sh --manifest URL_OR_DIR --disk /dev/X [--disk ...] [--layout NAME] [--layouts FILE]
         [--wipe] [--replace] [--seed-dir URL_OR_DIR] [--work-dir DIR] [--install-id ID]
         [--manifest-sha256 HEX] [--seed-sha256 HEX] [--multicast TABLE --multicast-interface IF [--multicast-wait S]]
       restore.sh --fetch-only --manifest URL_OR_DIR [--multicast ...] [--work-dir DIR]
       restore.sh --print-root|--release --disk /dev/X [--disk ...] [--layout NAME] [--layouts FILE] --work-dir DIR"
BTW_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BTW_DIR/lib/output.sh"
. "$BTW_DIR/lib/layout-table.sh"
. "$BTW_DIR/lib/manifest.sh"
. "$BTW_DIR/lib/multicast.sh"
. "$BTW_DIR/lib/disks.sh"
. "$BTW_DIR/lib/partitions.sh"
. "$BTW_DIR/lib/target.sh"

print_help() {
  cat <<HELP
$USAGE

  --manifest   manifest.json of a capture (its URL, its path, or its folder);
               the artifacts are read from beside it
  --disk       a whole disk to write, e.g. /dev/sda, /dev/nvme0n1, /dev/loop3,
               /dev/disk/by-id/...; once per disk, in the layout's order
  --layout     a layout of the layout table (default: its first line)
  --layouts    the layout table (default: layouts.tab beside restore.sh, which
               build-deploy-initramfs.sh writes from lib/config/layout.ts)
  --wipe       allow disks that hold a partition table or data that is not a
               btw-img install (destroyed)
  --replace    allow disks that hold another btw-img install (replaced): what a
               reinstall of this very machine asks (btw metal reinstall)
  --seed-dir   NoCloud seed (user-data, meta-data, optional network-config),
               written to /var/lib/cloud/seed/nocloud/ on the restored root
  --work-dir   where downloaded artifacts are kept until written (default: a
               temporary folder; needs as much space as the artifacts)
  --install-id written to /var/lib/btw-img/install-id on the restored root; disks
               that already hold this ID are left as they are (exit 3); a restore
               of this ID cut short (power loss after the tables) is written again
               without --wipe (the tables carry a disk GUID made from the ID)
  --manifest-sha256  the manifest's sha256, as its boot script carries it: a manifest
               that does not match is refused (its sha256s cover the artifacts)
  --seed-sha256  sha256 of what sha256sum prints for the seed's files (user-data,
               meta-data, network-config if there is one), as its boot script carries
               it: a seed that does not match is refused
  --multicast  the PXE server's multicast session table (URL or file): the artifacts
               it lists are received from their udpcast sessions on
               --multicast-interface; one whose session does not start within
               --multicast-wait seconds (default 300), or that fails its sha256,
               is fetched over HTTP
  --fetch-only fetch the artifacts and check their sha256, write nothing (a check of
               the server and the network before a fleet is installed)
  --print-root after a restore (the same --disk, --layout, --work-dir): the restored
               root to start from the deploy environment; nothing: reboot instead
  --release    after a restore: let go of what the layout holds before that start
Disks that hold another btw-img install are left as they are (exit 4) unless --replace.
Nothing is written to a disk before every artifact matches its sha256.
HELP
}

mode=restore manifest="" disks="" layout_name="" table=$BTW_DIR/layouts.tab wipe="" replace="" seed="" work_dir="" install_id="" manifest_sha256="" seed_sha256=""
multicast="" multicast_interface="" multicast_wait=300 devices=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) print_help; exit 0 ;;
    --wipe) wipe=1; shift ;;
    --replace) replace=1; shift ;;
    --print-root) mode=root; shift ;;
    --release) mode=release; shift ;;
    --fetch-only) mode=fetch; shift ;;
    --manifest|--disk|--layout|--layouts|--seed-dir|--work-dir|--install-id|--manifest-sha256|--seed-sha256|--multicast|--multicast-interface|--multicast-wait)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case "$1" in
        --manifest) manifest=$2 ;;
        --disk) disks="$disks $2" ;;
        --layout) layout_name=$2 ;;
        --layouts) table=$2 ;;
        --seed-dir) seed=$2 ;;
        --work-dir) work_dir=$2 ;;
        --install-id) install_id=$2 ;;
        --manifest-sha256) manifest_sha256=$2 ;;
        --seed-sha256) seed_sha256=$2 ;;
        --multicast) multicast=$2 ;;
        --multicast-interface) multicast_interface=$2 ;;
        --multicast-wait) multicast_wait=$2 ;;
      esac
      shift 2 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
layout_lookup "$table" "$layout_name" || usage_error "--layout: $layout_error"
# shellcheck disable=SC2086 # disk paths without blanks (checked at synth and by pxe-server.sh)
[ "$mode" = fetch ] || layout_takes "$(echo $disks | wc -w)" || usage_error "--disk: $layout_error"
# shellcheck source=/dev/null # a driver of layouts/, as the layout table names it
. "$BTW_DIR/layouts/$layout_driver.sh"
case "$install_id" in *[!0-9a-zA-Z]*) usage_error "--install-id takes letters and digits only" ;; esac
case "$multicast_wait" in ''|*[!0-9]*) usage_error "--multicast-wait takes seconds" ;; esac

if [ "$mode" = root ] || [ "$mode" = release ]; then
  # What the restore left: its manifest in the work folder, the disks as it resolved them.
  [ -f "${work_dir:-.}/manifest.json" ] || usage_error "--$mode needs the --work-dir of a restore"
  manifest_numbers
  devices=""
  for _disk in $disks; do devices="$devices $(readlink -f "$_disk")"; done
  if [ "$mode" = root ]; then layout_root; else layout_release; fi
  exit 0
fi

[ -n "$manifest" ] || usage_error "missing --manifest"
[ "$(id -u)" -eq 0 ] || die "must run as root"

created_work=""
release() {
  status=$?
  set +e
  layout_cleanup
  [ -n "$created_work" ] && rm -rf "$created_work"
  exit "$status"
}
trap release EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ -z "$work_dir" ]; then
  work_dir=$(mktemp -d "${TMPDIR:-/tmp}/restore.XXXXXX")
  created_work=$work_dir
fi
mkdir -p "$work_dir"

read_manifest
read_multicast_table
if [ "$mode" = fetch ]; then
  need jq zstd sha256sum
  fetch_artifacts
  exit 0
fi
# The manifest first: a capture that lacks what the layout writes is named before its tools are.
tools=$(layout_tools) || exit 1
# shellcheck disable=SC2086 # program names
need jq sfdisk partx zstd sha256sum blockdev dd sed awk mount umount readlink $tools
check_disks
# The install these disks hold: this one (its report may not have reached the server), kept;
# another, kept unless this machine's reinstall asks to replace it (the server's records of
# it may be lost: a rebuilt server, a new state folder, the machine out of the config and back).
found_id=$(layout_installed_id) || found_id=""
if [ -n "$install_id" ] && [ "$found_id" = "$install_id" ]; then
  say "the disks already hold this install ($install_id): nothing written"
  exit 3
elif [ -n "$found_id" ] && [ -z "$replace" ]; then
  say "the disks hold another btw-img install ($found_id): nothing written; to replace it, reinstall this machine (btw metal reinstall NAME)"
  exit 4
elif [ -n "$found_id" ]; then
  say "replacing the btw-img install $found_id (--replace)"
else
  check_blank
fi
phase "disk checks"
progress downloading 0
fetch_artifacts
fetch_seed
phase "download and check"
progress writing 0 "partition tables"
write_tables
phase "partition tables"
layout_assemble
write_partitions
phase "partitions"
progress configuring "" "$layout"
layout_configure
layout_finish
sync
phase "restored system"
say "restored $(jq -r '.profile // "image"' "$m") as $layout onto$devices in $((phase_at - started))s (${phases#, })"
