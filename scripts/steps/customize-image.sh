#!/bin/sh
# Apply a profile's layers (packages, files, playbooks, commands; see profiles/README.md)
# to a copy of a Debian cloud image in a chroot, using the host's apt
# configuration for the duration of the build only, and write the result as a
# new qcow2. lib/config/profile.ts resolves and checks the profile; this script gets
# its folders (parent first), packages and release as arguments, and the steps to
# build as cached layers with their keys (lib/image/layer-plan.ts plans them: a
# change in one step rebuilds from that step on). Its parts, by job:
#   customize/common.sh    helpers the parts share (chroot, interruptible steps)
#   customize/arguments.sh the help and the arguments
#   customize/steps.sh     open one step's overlay, apply one layer's step
#   customize/layers.sh    the given steps as a chain of cached qcow2 layers, their locks
#   customize/work.sh      mount a layer; release it on any exit; recover a killed run
#   customize/sources.sh   the layers' apt repositories: read, checked, added
#   customize/host-apt.sh  the host's apt configuration in the image for the build only
#   customize/install.sh   packages, files/ and commands.d/ of the layers
#   customize/ansible.sh   ansible/playbook.yml of the layers (chroot connection)
#   customize/clean.sh     leave the image clean
#   lib/secure-boot.sh     what in the image Secure Boot would refuse
# shellcheck source-path=SCRIPTDIR
set -eu
umask 022

PROG=customize-image
USAGE="usage: customize-image.sh --base BASE --release CODENAME --layer DIR... [--package 'NAME [ORIGIN]']... [--step 'KEY NAME']... [--secure-boot] [--apt-mirror URI=MIRROR]... [--layer-store DIR] --output OUT.qcow2"
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Prefix of every file this script puts into the image for the build only.
TEMP_PREFIX=btw-host-
# Free space a step needs in the layer store before it starts (a layer holds what
# the step writes: a desktop's packages are about 1 GiB).
LAYER_FREE_MIB=${BTW_LAYER_FREE_MIB:-1024}

. "$(dirname "$0")/lib/messages.sh"
. "$(dirname "$0")/lib/image-mount.sh"
own_mount_namespace "$@"
. "$(dirname "$0")/lib/private-dev.sh"
. "$(dirname "$0")/customize/common.sh"
. "$(dirname "$0")/customize/arguments.sh"
. "$(dirname "$0")/customize/steps.sh"
. "$(dirname "$0")/customize/layers.sh"
. "$(dirname "$0")/customize/work.sh"
. "$(dirname "$0")/customize/sources.sh"
. "$(dirname "$0")/customize/host-apt.sh"
. "$(dirname "$0")/customize/install.sh"
. "$(dirname "$0")/lib/ansible-log.sh"
. "$(dirname "$0")/customize/ansible.sh"
. "$(dirname "$0")/customize/clean.sh"
. "$(dirname "$0")/lib/secure-boot.sh"

parse_arguments "$@"
# From here on the positional parameters are the layers, parent first.
set --
while IFS= read -r layer; do
  [ -n "$layer" ] || continue
  [ -d "$layer" ] || die "layer folder not found: $layer"
  # A profile that says it cannot boot with Secure Boot enforced (lib/config/profile.ts refuses it at synth too).
  if [ -n "$secure_boot" ] && [ -f "$layer/no-secure-boot" ]; then
    die "profile ${layer##*/} cannot boot with Secure Boot enforced ($(sed 's/#.*//' "$layer/no-secure-boot" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')); build without --secure-boot (firmware uefi or bios)"
  fi
  set -- "$@" "$layer"
  layers_last=$layer
done <<LIST
$layers
LIST

[ "$(id -u)" -eq 0 ] || die "must run as root (loop devices, mount, chroot)"
for tool in qemu-img qemu-storage-daemon setpriv losetup partx blkid blockdev mount umount chroot flock tar realpath sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "required tool not found: $tool"
done
[ -f "$base" ] || die "base image not found: $base"
out_dir=$(dirname "$output")
mkdir -p "$out_dir" || die "cannot create the output folder $out_dir"
output=$(realpath "$output")
case "$output" in *[[:space:]]*) die "output path must not contain whitespace: $output" ;; esac
[ "$output" != "$(realpath "$base")" ] || die "output must differ from base"
[ ! -d "$output" ] || die "output is a folder: $output"
base_format=$(qemu-img info "$base" 2>/dev/null | sed -n 's/^file format: //p')
[ -n "$base_format" ] || die "qemu-img cannot read base image: $base"
[ -n "$layer_store" ] || layer_store=$out_dir/layers
mkdir -p "$layer_store" || die "cannot create the layer store $layer_store"
layer_store=$(realpath "$layer_store")

check_steps
read_layer_sources "$@"
check_ansible "$@"
names=""
for layer in "$@"; do names="${names:+$names -> }${layer##*/}"; done
say "layers: $names"
say "packages: $(printf '%s' "$packages" | awk '{ print $1 }' | tr '\n' ' ')"

# ---------------------------------------------------------------- work dir, locks, trap

work=$output.work
raw=$work/disk.raw
root=$work/root
backup=$work/backup
state=$work/state
partial=$output.partial
have_lock=""
child_pid=""
qsd_pid=""
building=""
succeeded=""

cleanup() {
  _rc=$?
  set +e
  trap - EXIT INT TERM
  [ -z "$child_pid" ] || kill "$child_pid" 2>/dev/null
  if [ -n "$have_lock" ] && [ -z "$succeeded" ]; then
    say "releasing mounts and loop devices"
    release_work
    # A layer is only ever visible complete.
    [ -z "$building" ] || rm -f "$(layer_file "$building").partial"
    rm -f "$partial"
    rm -rf "$work"
  fi
  exit "$_rc"
}
on_exit cleanup

open_layer_store
mkdir -p "$work"
exec 9>>"$work/lock"
if ! flock -n 9; then
  say "waiting for another customize-image run building $output (lock $work/lock)"
  flock 9
fi
have_lock=1
recover_work

# ---------------------------------------------------------------- build

# The first step whose layer is not in the store runs, and every one after it (their keys follow from it).
parent="" count=$(printf '%s' "$steps" | awk 'NF { n++ } END { print n + 0 }') index=0
while read -r key step; do
  [ -n "$key" ] || continue
  index=$((index + 1))
  if [ -e "$(layer_file "$key")" ] || ! lock_layer "$key" "$step"; then
    say "layer $index/$count $step: cached ($key)"
    parent=$key
    continue
  fi
  say "layer $index/$count $step: building ($key)"
  need_space "$layer_store" "$LAYER_FREE_MIB" "layer $step"
  building=$key
  create_layer "$key" "${parent:+$parent.qcow2}"
  inherit_own_apt "$parent"
  open_step "$(layer_file "$key").partial" "$@"
  apply_step "$step" "$@"
  close_image
  commit_layer "$key" "$step"
  building=""
  parent=$key
done <<LIST
$steps
LIST

# ---------------------------------------------------------------- the image: last layer, checked, cleaned

# On a throwaway overlay, so no layer holds what is cleaned away.
say "checking and cleaning the image on the last layer"
rm -f "$work/final.qcow2"
if [ -n "$parent" ]; then
  run qemu-img create -q -f qcow2 -F qcow2 -b "$(layer_file "$parent")" "$work/final.qcow2"
else
  run qemu-img create -q -f qcow2 -F "$base_format" -b "$(realpath "$base")" "$work/final.qcow2"
fi
open_step "$work/final.qcow2" "$@"
check_boot_config
# Said now, not found when a machine with Secure Boot enforced fails to boot.
unsigned=$(unsigned_boot_files "$root")
if [ -n "$unsigned" ]; then
  level=warning
  [ -z "$secure_boot" ] || level=error
  printf '%s\n' "$unsigned" | while IFS= read -r file; do say "$level: Secure Boot would refuse $file: it is not signed"; done
  [ -z "$secure_boot" ] || die "--secure-boot (firmware uefi-secure): sign what is named above with a key the firmware trusts (a MOK enrolled with mokutil, say) or use firmware uefi"
fi
kill_chroot_processes
clean_image
check_leftovers

# ---------------------------------------------------------------- output

say "unmounting and writing $output"
close_image
need_space "$out_dir" "$(qemu-img measure -f qcow2 -O qcow2 "$work/final.qcow2" | awk '/^required size:/ { print int($3 / 1048576) + 1 }')" "the image"
# Written past the page cache (-t none): several times faster on a busy host; tmpfs has no O_DIRECT.
run qemu-img convert -t none -W -m 16 -f qcow2 -O qcow2 "$work/final.qcow2" "$partial" 2>/dev/null ||
  run qemu-img convert -f qcow2 -O qcow2 "$work/final.qcow2" "$partial"
mv -f "$partial" "$output"
succeeded=1
rm -rf "$work"
collect_layers "${layers_last##*/}" || say "warning: could not collect unused layers in $layer_store"
say "done: $output"
