#!/bin/sh
# Build a cloud-init NoCloud seed ISO (label cidata) from USER_DATA, META_DATA
# and NETWORK_CONFIG in the environment, after validating the user-data with
# the cloud-init of the image that will boot it. The image is read in place,
# read-only (lib/image-view.sh): no copy of it per seed. The ISO and every work
# file are the owner's alone (0600): the user-data may hold secrets, and the
# schema's messages are printed with its values hidden (lib/schema-check.py).
# shellcheck source-path=SCRIPTDIR
set -eu
PROG=make-seed-iso
USAGE="usage: USER_DATA=... META_DATA=... NETWORK_CONFIG=... make-seed-iso.sh --name VM --output SEED.iso [--validate-with IMAGE]"
. "$(dirname "$0")/lib/messages.sh"
. "$(dirname "$0")/lib/image-mount.sh"
. "$(dirname "$0")/lib/image-view.sh"
. "$(dirname "$0")/lib/private-dev.sh"
own_mount_namespace "$@"
umask 077

name=""
output=""
image=""
while [ $# -gt 0 ]; do
  case "$1" in
    --name) [ $# -ge 2 ] || usage_error "--name needs a value"; name="$2"; shift 2 ;;
    --output) [ $# -ge 2 ] || usage_error "--output needs a value"; output="$2"; shift 2 ;;
    --validate-with) [ $# -ge 2 ] || usage_error "--validate-with needs a value"; image="$2"; shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$name" ] || usage_error "missing --name"
[ -n "$output" ] || usage_error "missing --output"
case $name in */* | .* | *[[:space:]]*) usage_error "--name must be a plain VM name: $name" ;; esac
: "${USER_DATA:?make-seed-iso: USER_DATA is not set}" "${META_DATA:?make-seed-iso: META_DATA is not set}"
[ -z "$image" ] || [ -f "$image" ] || die "image to validate with not found: $image"

log() { say "$name: $*"; }

seeds=$(dirname "$output")
mkdir -p "$seeds"
# Work folders of earlier runs for this VM that were killed outright (their owner is gone).
for stale in "$seeds/.seed-$name".*; do
  [ -d "$stale" ] || continue
  owner=$(cat "$stale/owner" 2>/dev/null || true)
  [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null && continue
  rm -rf "$stale" 2>/dev/null || true
done
work=$(mktemp -d "$seeds/.seed-$name.XXXXXX")
echo $$ > "$work/owner"
cleanup() {
  _status=$?
  image_view_close
  rm -rf "$work"
  # A seed that failed is tainted in the engine's state, and the engine runs no destroy
  # step for it: the folder this made goes now, if nothing else is in it.
  [ "$_status" -eq 0 ] || rmdir -p "$seeds" 2>/dev/null || true
}
on_exit cleanup

printf '%s\n' "$USER_DATA" > "$work/user-data"
printf '%s\n' "$META_DATA" > "$work/meta-data"
printf '%s\n' "${NETWORK_CONFIG:-}" > "$work/network-config"

if [ -n "$image" ]; then
  log "validating user-data with the image's own cloud-init (read in place)"
  image_view_open "$image" "$work"
  root=$image_view_root
  if [ -x "$root/usr/bin/cloud-init" ] && [ -x "$root/usr/bin/python3" ]; then
    # cloud-init may write under /run, /tmp and /var/lib/cloud: private tmpfs over the read-only root.
    for dir in tmp run var/lib/cloud; do
      [ -d "$root/$dir" ] || continue
      mount -t tmpfs -o mode=0700,nosuid,nodev,size=64m btw-seed "$root/$dir"
      image_view_mounts="$root/$dir $image_view_mounts"
    done
    mount --bind /proc "$root/proc"
    image_view_mounts="$root/proc $image_view_mounts"
    make_private_dev "$root/dev"
    image_view_mounts="$root/dev/shm $root/dev/pts $root/dev $image_view_mounts"
    cp "$work/user-data" "$root/tmp/user-data"
    cp "$(dirname "$0")/lib/schema-check.py" "$root/tmp/schema-check.py"
    # Nothing of this environment (USER_DATA) reaches the image's programs.
    if ! env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
      chroot "$root" /usr/bin/python3 /tmp/schema-check.py /tmp/user-data > "$work/schema.log" 2>&1; then
      log "user-data fails the cloud-init schema:"
      sed '/^ *$/d; s/^/  /' "$work/schema.log" >&2
      exit 1
    fi
  else
    log "warning: the image has no cloud-init; user-data not validated"
  fi
  image_view_close
fi

cloud-localds --network-config="$work/network-config" "$work/seed.iso" "$work/user-data" "$work/meta-data"
chmod 0600 "$work/seed.iso"
mv "$work/seed.iso" "$output"
log "seed written to $output"
