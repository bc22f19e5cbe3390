#!/bin/sh
# Build a cloud-init NoCloud seed ISO (label cidata) from USER_DATA, META_DATA
# and NETWORK_CONFIG in the environment, after validating the user-data with
# the cloud-init of the image that will boot it.
# shellcheck source-path=SCRIPTDIR
set -eu
PROG=make-seed-iso
USAGE="usage: USER_DATA=... META_DATA=... NETWORK_CONFIG=... make-seed-iso.sh --name VM --output SEED.iso [--validate-with IMAGE.qcow2]"
. "$(dirname "$0")/lib/messages.sh"
. "$(dirname "$0")/lib/image-mount.sh"
. "$(dirname "$0")/lib/private-dev.sh"
own_mount_namespace "$@"

name=""
output=""
image=""
while [ $# -gt 0 ]; do
  case "$1" in
    --name) name="$2"; shift 2 ;;
    --output) output="$2"; shift 2 ;;
    --validate-with) image="$2"; shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$name" ] || usage_error "missing --name"
[ -n "$output" ] || usage_error "missing --output"
: "${USER_DATA:?make-seed-iso: USER_DATA is not set}" "${META_DATA:?make-seed-iso: META_DATA is not set}"
[ -z "$image" ] || [ -f "$image" ] || die "image to validate with not found: $image"

log() { say "$name: $*"; }

mkdir -p "$(dirname "$output")"
work=$(mktemp -d "$(dirname "$output")/.seed-$name.XXXXXX")
loop=""
mounts=""
cleanup() {
  for m in $mounts; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  [ -z "$loop" ] || losetup -d "$loop" 2>/dev/null || true
  rm -rf "$work"
}
on_exit cleanup

printf '%s\n' "$USER_DATA" > "$work/user-data"
printf '%s\n' "$META_DATA" > "$work/meta-data"
printf '%s\n' "${NETWORK_CONFIG:-}" > "$work/network-config"

if [ -n "$image" ]; then
  log "validating user-data with the image's own cloud-init"
  qemu-img convert -O raw "$image" "$work/image.raw"
  loop=$(attach_loop "$work/image.raw" ro)
  root=$(root_partition "$loop")
  [ -n "$root" ] || { log "no ext4 root partition in $image"; exit 1; }
  mkdir "$work/root"
  mount -o ro,noload "$root" "$work/root"; mounts="$work/root"
  mount -t tmpfs tmpfs "$work/root/tmp"; mounts="$work/root/tmp $mounts"
  mount --bind /proc "$work/root/proc"; mounts="$work/root/proc $mounts"
  make_private_dev "$work/root/dev"; mounts="$work/root/dev/shm $work/root/dev/pts $work/root/dev $mounts"
  cp "$work/user-data" "$work/root/tmp/user-data"
  if [ -x "$work/root/usr/bin/cloud-init" ]; then
    if ! chroot "$work/root" /usr/bin/cloud-init schema --config-file /tmp/user-data > "$work/schema.log" 2>&1; then
      log "user-data fails the cloud-init schema:"
      sed 's/^/  /' "$work/schema.log" >&2
      exit 1
    fi
  else
    log "warning: the image has no cloud-init; user-data not validated"
  fi
fi

cloud-localds --network-config="$work/network-config" "$work/seed.iso" "$work/user-data" "$work/meta-data"
mv "$work/seed.iso" "$output"
log "seed written to $output"
