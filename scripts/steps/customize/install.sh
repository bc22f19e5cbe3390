#!/bin/sh
# Sourced by customize-image.sh: what the layers add to the image, in the
# chroot, in this order: the packages of all layers (one apt-get install),
# then files/ of each layer, then (customize/ansible.sh) the playbooks of the
# layers, then each commands.d/ script of each layer, parent first; each is
# one step of the layer chain (customize/layers.sh).
# Nothing starts or installs a boot loader meanwhile (guard_build).
# Functions taking LAYER... get the layer folders, parent first.
# Reads: root backup packages image_release CHROOT_PATH; sets: grub_diverted.
# shellcheck disable=SC2154 # the globals named above are customize-image.sh's

# No service starts while the image is built (policy-rc.d), and grub-install
# (from grub-efi/shim maintainer scripts) would fail without the ESP mounted:
# it is diverted, and the image's boot loader is left as Debian built it.
guard_build() {
  if present "$root/usr/sbin/policy-rc.d"; then
    cp -a "$root/usr/sbin/policy-rc.d" "$backup/policy-rc.d"
  fi
  printf '#!/bin/sh\n# customize-image: no service starts while the image is built\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  grub_diverted=""
  if [ -e "$root/usr/sbin/grub-install" ]; then
    say "diverting grub-install for the build (the ESP is not mounted)"
    in_chroot dpkg-divert --local --rename --divert /usr/sbin/grub-install.btw-real --add /usr/sbin/grub-install
    grub_diverted=1
    printf '#!/bin/sh\necho "customize-image: skipped grub-install $*: the ESP is not mounted while customizing" >&2\nexit 0\n' >"$root/usr/sbin/grub-install"
    chmod 0755 "$root/usr/sbin/grub-install"
  fi
}

unguard_build() {
  if [ -n "$grub_diverted" ]; then
    rm -f "$root/usr/sbin/grub-install"
    in_chroot dpkg-divert --local --rename --divert /usr/sbin/grub-install.btw-real --remove /usr/sbin/grub-install
  fi
  rm -f "$root/usr/sbin/policy-rc.d"
  if present "$backup/policy-rc.d"; then cp -a "$backup/policy-rc.d" "$root/usr/sbin/policy-rc.d"; fi
}

# Every package has a candidate (else the error names where it came from), then one install.
install_packages() {
  say "apt-get update"
  in_chroot apt-get -q update || die "apt-get update failed in the image"
  _names=$(printf '%s' "$packages" | awk '{ print $1 }' | tr '\n' ' ')
  [ -n "$_names" ] || return 0
  while read -r _pkg _origin; do
    [ -n "$_pkg" ] || continue
    _name=${_pkg%%[=/]*}
    _candidate=$(chroot "$root" /usr/bin/env -i PATH="$CHROOT_PATH" apt-cache policy "$_name" 2>/dev/null | sed -n 's/^ *Candidate: //p')
    if [ -z "$_candidate" ] || [ "$_candidate" = "(none)" ]; then
      die "${_origin:+$_origin: }package '$_name' is not available for $image_release"
    fi
  done <<LIST
$packages
LIST
  say "installing: $_names"
  # shellcheck disable=SC2086 # one word per package
  in_chroot apt-get -q -y --no-install-recommends -o Dpkg::Use-Pty=0 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    install $_names || die "apt-get install failed (packages: $_names)"
}

copy_layer_files() {
  for _layer in "$@"; do
    if [ -d "$_layer/files" ] && [ -n "$(folder_entries "$_layer/files")" ]; then
      say "copying files/ of profile ${_layer##*/}"
      copy_into_image "$_layer/files" .
    fi
  done
}

# apt in a step after the packages' works from the lists the packages step left in
# its layer (clean_image removes them from the output); older than an hour, or
# missing, they are read again, so a script's apt-get install finds what the
# archive holds now.
refresh_stale_lists() {
  if [ -n "$(find "$root/var/lib/apt/lists" -maxdepth 1 -name '*_Packages*' -mmin -60 2>/dev/null | head -n 1)" ]; then return 0; fi
  say "apt-get update (no package lists of the last hour in the image)"
  in_chroot apt-get -q update || die "apt-get update failed in the image"
}

# LAYER SCRIPT: the script runs with sh in the chroot, knowing its layer (BTW_PROFILE) and the release.
run_layer_command() {
  _layer=$1 _script=$2
  _script_name=${_script##*/}
  mkdir -p "$root/tmp/btw-customize"
  say "profile ${_layer##*/}: running commands.d/$_script_name"
  cp "$_script" "$root/tmp/btw-customize/$_script_name"
  _status=0
  in_chroot BTW_PROFILE="${_layer##*/}" BTW_RELEASE="$image_release" sh "/tmp/btw-customize/$_script_name" || _status=$?
  rm -rf "$root/tmp/btw-customize"
  [ "$_status" -eq 0 ] || die "profile ${_layer##*/}: commands.d/$_script_name failed with exit code $_status"
}
