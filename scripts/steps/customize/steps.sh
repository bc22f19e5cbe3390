# shellcheck shell=sh
# Sourced by customize-image.sh: one step of the build on a mounted overlay:
# open_step mounts it (the first time, with the checks that must hold before
# anything changes), apply_step applies what one layer adds.
# Reads: work backup release image_release host_release; sets: checked.
# shellcheck disable=SC2154 # the globals named above are customize-image.sh's

# One mount of the image on a new overlay of PARENT (a layer's name, or "" for the base).
# The first one opened checks what must hold before anything is changed.
checked=""
open_step() {
  _overlay=$1; shift
  rm -rf "$backup"
  mkdir "$backup"
  : >"$work/temp-files"
  open_image "$_overlay"
  if [ -z "$checked" ]; then
    say "image release: $image_release (host: $host_release)"
    [ "$image_release" = "$release" ] || die "the image is $image_release but --release is $release (the lab's release and its image disagree)"
    check_layer_repos
    check_layer_keys "$@"
    check_layer_playbooks "$@"
    checked=1
  fi
  mount_chroot_filesystems
}

# STEP: what one layer adds, with the host's apt configuration in for it only.
apply_step() {
  _step=$1; shift
  guard_build
  import_host_apt
  case "$_step" in
    packages)
      add_layer_sources "$@"
      install_packages
      # The downloaded packages are not part of the layer; the lists are (install.sh: refresh_stale_lists).
      in_chroot apt-get clean ;;
    */files) copy_layer_files "$(layer_named "${_step%/files}")" ;;
    */ansible)
      mirror_layer_sources "$@"
      refresh_stale_lists
      run_layer_playbooks "$(layer_named "${_step%/ansible}")" ;;
    */commands.d/*)
      mirror_layer_sources "$@"
      refresh_stale_lists
      _layer=$(layer_named "${_step%%/*}")
      run_layer_command "$_layer" "$_layer/commands.d/${_step##*/}" ;;
  esac
  kill_chroot_processes
  restore_image_apt
  restore_layer_sources
  unguard_build
  check_leftovers
}
