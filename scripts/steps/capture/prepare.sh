# shellcheck shell=sh disable=SC2154 # capture-partitions.sh's globals (work, staging, loop, mnt, partitions_json)
# What a capture prepares on the build host for a layout (sourced by
# capture-partitions.sh; lib/config/layout.ts names what each layout needs): the
# same for every machine of that layout, so no target computes it. Each
# preparation is an artifact in the capture with an entry in the manifest's
# "prepared" object: the partition it replaces, its tool, its sha256.

PREPARATIONS="bios-boot-mdraid"

is_preparation() { case " $PREPARATIONS " in *" $1 "*) return 0 ;; esac; return 1; }

# partition_number ROLE: the captured partition of ROLE, "" if there is none.
partition_number() { jq -r --arg role "$1" 'select(.role == $role) | .number' "$partitions_json" | head -n 1; }

# in_image COMMAND...: the image's own program in a chroot into its root at $mnt.
in_image() { chroot "$mnt" /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# open_image_root ROOT_NUMBER: the temporary disk read-write at $loop, its root at $mnt with
# /proc, /sys and a private /dev holding the disk (lib/private-dev.sh) for the image's programs.
# What it changes there stays in the temporary disk, after the capture of every partition.
open_image_root() {
  losetup -d "$loop"
  loop=$(attach_loop "$work/disk.raw")
  mnt=$work/root
  mkdir -p "$mnt"
  mount -t ext4 "${loop}p$1" "$mnt"
  mount -t proc proc "$mnt/proc"
  mount --bind /sys "$mnt/sys"
  make_private_dev "$mnt/dev" "$loop"
}

# close_image_root: what open_image_root mounted, deepest first (also the EXIT trap's first step).
close_image_root() {
  [ -n "${mnt:-}" ] || return 0
  for _m in dev/shm dev/pts dev sys proc; do umount "$mnt/$_m" 2>/dev/null || true; done
  umount "$mnt"
  mnt=""
}

# prepare_bios_boot_mdraid NUMBER ARTIFACT: the BIOS boot partition as the image's grub-install
# writes it for a /boot on md RAID1: core.img with diskfilter and mdraid1x, finding /boot by the
# root file system's UUID (which every restore keeps); the same on every disk of every machine,
# since the layout keeps the captured positions of the BIOS boot partition.
prepare_bios_boot_mdraid() {
  _root=$(partition_number root)
  [ -f "$mnt/usr/lib/grub/i386-pc/mdraid1x.mod" ] ||
    die "bios-boot-mdraid: the image has no GRUB for BIOS with mdraid1x (/usr/lib/grub/i386-pc, package grub-pc-bin)"
  say "bios-boot-mdraid: the image's grub-install writes core.img with mdraid1x into partition $1"
  in_image grub-install --target=i386-pc --modules="diskfilter mdraid1x" "$loop" >"$work/grub-install.log" 2>&1 || {
    cat "$work/grub-install.log" >&2
    die "bios-boot-mdraid: the image's grub-install failed on partition $1 (root partition $_root)"
  }
  { partclone.dd -q -s "${loop}p$1" -o - 2>>"$work/partclone.log" || echo $? >"$work/partclone.failed"; } | zstd -q -T0 -o "$staging/$2"
  [ ! -e "$work/partclone.failed" ] || { cat "$work/partclone.log" >&2; die "partclone.dd failed on the prepared partition $1"; }
}

# prepare NAME...: each preparation as an artifact, and the manifest's "prepared" entries in $work/prepared.json.
prepare() {
  echo '{}' >"$work/prepared.json"
  [ $# -gt 0 ] || return 0
  _root=$(partition_number root)
  open_image_root "$_root"
  for _name in "$@"; do
    case "$_name" in
      bios-boot-mdraid)
        _number=$(partition_number bios-boot)
        [ -n "$_number" ] || die "bios-boot-mdraid: the image has no BIOS boot partition"
        _artifact=p$_number.raw.mdraid.pcl.zst
        prepare_bios_boot_mdraid "$_number" "$_artifact"
        _tool=partclone.dd ;;
    esac
    jq --arg name "$_name" --argjson number "$_number" --arg tool "$_tool" --arg artifact "$_artifact" \
      --argjson size "$(stat -c %s "$staging/$_artifact")" --arg sha "$(sha256sum "$staging/$_artifact" | cut -d' ' -f1)" \
      '.[$name] = {number: $number, tool: $tool, artifact: $artifact, artifact_size: $size, sha256: $sha}' \
      "$work/prepared.json" >"$work/prepared.next" && mv "$work/prepared.next" "$work/prepared.json"
  done
  close_image_root
}
