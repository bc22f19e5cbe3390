# shellcheck shell=sh disable=SC2154 # capture-partitions.sh's globals (work, staging, loop, mnt, partitions_json)
# What a capture prepares on the build host for a layout (sourced by
# capture-partitions.sh; lib/config/layout.ts names what each layout needs): the
# same for every machine of that layout, so no target computes it. Each
# preparation is an artifact in the capture with an entry in the manifest's
# "prepared" object: the partition it replaces, its tool, its sha256.

# In the order they are made: root-tar reads the root file system before anything changes it.
PREPARATIONS="root-tar bios-boot-mdraid"
# What made them: a capture whose preparations another recipe made is not up to date.
PREPARE_RECIPE=$(sha256sum "$(dirname "$0")/capture/prepare.sh" | cut -c1-64)

is_preparation() { case " $PREPARATIONS " in *" $1 "*) return 0 ;; esac; return 1; }

# partition_number ROLE: the captured partition of ROLE, "" if there is none.
partition_number() { jq -r --arg role "$1" 'select(.role == $role) | .number' "$partitions_json" | head -n 1; }

# in_image COMMAND...: the image's own program in a chroot into its root at $mnt.
in_image() { chroot "$mnt" /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# open_image_root ROOT_NUMBER: the temporary disk read-write at $loop, its root at $mnt. What the
# image's programs change there stays in the temporary disk, after the capture of every partition.
open_image_root() {
  losetup -d "$loop"
  loop=$(attach_loop "$work/disk.raw")
  mnt=$work/root
  mkdir -p "$mnt"
  mount -t ext4 "${loop}p$1" "$mnt"
}

# chroot_filesystems: /proc, /sys and a private /dev holding the disk (lib/private-dev.sh) for
# the image's programs in a chroot at $mnt.
chroot_filesystems() {
  mount -t proc proc "$mnt/proc"
  mount --bind /sys "$mnt/sys"
  make_private_dev "$mnt/dev" "$loop"
}

# close_image_root: what open_image_root mounted, deepest first, and the second disk of
# prepare_bios_boot_mdraid (also the EXIT trap's first step).
boot_loop=""
close_image_root() {
  [ -z "$boot_loop" ] || { losetup -d "$boot_loop"; boot_loop=""; }
  [ -n "${mnt:-}" ] || return 0
  for _m in dev/shm dev/pts dev sys proc; do ! mountpoint -q "$mnt/$_m" || umount "$mnt/$_m"; done
  umount "$mnt"
  mnt=""
}

# prepare_bios_boot_mdraid NUMBER ARTIFACT: the BIOS boot partition as the image's grub-install
# writes it for a /boot on md RAID1: core.img with diskfilter and mdraid1x, finding /boot by the
# root file system's UUID (which every restore keeps). grub-install writes it onto a second,
# empty disk with the captured table: onto the disk that holds /boot it would name /boot's
# partition instead (hd0,gpt1), which on a machine is an array's member. The same on every disk
# of every machine, since the layout keeps the captured positions of the BIOS boot partition.
prepare_bios_boot_mdraid() {
  [ -f "$mnt/usr/lib/grub/i386-pc/mdraid1x.mod" ] ||
    die "bios-boot-mdraid: the image has no GRUB for BIOS with mdraid1x (/usr/lib/grub/i386-pc, package grub-pc-bin)"
  truncate -s "$(stat -c %s "$work/disk.raw")" "$work/boot-disk.raw"
  sed "s|^disk\([0-9]*\) :|$work/boot-disk.raw\1 :|" "$staging/partition-table.sfdisk" | sfdisk -q "$work/boot-disk.raw" >/dev/null ||
    die "bios-boot-mdraid: sfdisk could not write the captured table onto a new disk"
  boot_loop=$(attach_loop "$work/boot-disk.raw")
  # That disk in the chroot's private /dev too (make_private_dev added the image's).
  for _block in "$boot_loop" "$boot_loop"p*; do
    [ -b "$_block" ] || continue
    _numbers=$(cat "/sys/class/block/${_block#/dev/}/dev")
    mknod -m 660 "$mnt$_block" b "${_numbers%%:*}" "${_numbers#*:}"
  done
  say "bios-boot-mdraid: the image's grub-install writes core.img with mdraid1x into partition $1"
  in_image grub-install --target=i386-pc --modules="diskfilter mdraid1x" "$boot_loop" >"$work/grub-install.log" 2>&1 || {
    cat "$work/grub-install.log" >&2
    die "bios-boot-mdraid: the image's grub-install failed"
  }
  { partclone.dd -q -s "${boot_loop}p$1" -o - 2>>"$work/partclone.log" || echo $? >"$work/partclone.failed"; } | zstd -q -T0 -o "$staging/$2"
  [ ! -e "$work/partclone.failed" ] || { cat "$work/partclone.log" >&2; die "partclone.dd failed on the prepared partition $1"; }
  losetup -d "$boot_loop"
  boot_loop=""
}

# prepare_root_tar ARTIFACT: the root file system's files as a tar (owners by number, modes, times,
# hard links, ACLs, every xattr, sparse files), zstd-compressed: layouts that copy files (zfs)
# write each file once from it. Sets unpacked_bytes, the tar's own size.
prepare_root_tar() {
  say "root-tar: the root file system's files as a tar"
  rm -f "$work/tar.failed"
  { tar -C "$mnt" --one-file-system --numeric-owner --acls --xattrs --xattrs-include='*' --sparse -cf - . 2>"$work/tar.log" ||
    echo $? >"$work/tar.failed"; } | zstd -q -T0 -o "$staging/$1"
  [ ! -e "$work/tar.failed" ] || { cat "$work/tar.log" >&2; die "root-tar: tar failed on the root file system"; }
  unpacked_bytes=$(zstd -dc "$staging/$1" | wc -c)
}

# prepare NAME...: each preparation as an artifact, and the manifest's "prepared" entries in $work/prepared.json.
# (_prep: make_private_dev sets _name.)
prepare() {
  echo '{}' >"$work/prepared.json"
  [ $# -gt 0 ] || return 0
  _root=$(partition_number root)
  open_image_root "$_root"
  for _prep in $PREPARATIONS; do
    case " $* " in *" $_prep "*) ;; *) continue ;; esac
    _extra='{}'
    case "$_prep" in
      root-tar)
        _number=$_root _artifact=p$_root.files.tar.zst _tool=tar
        prepare_root_tar "$_artifact"
        _extra="{\"unpacked_bytes\": $unpacked_bytes}" ;;
      bios-boot-mdraid)
        _number=$(partition_number bios-boot)
        [ -n "$_number" ] || die "bios-boot-mdraid: the image has no BIOS boot partition"
        _artifact=p$_number.raw.mdraid.pcl.zst
        chroot_filesystems
        prepare_bios_boot_mdraid "$_number" "$_artifact"
        _tool=partclone.dd ;;
    esac
    jq --arg name "$_prep" --argjson number "$_number" --arg tool "$_tool" --arg artifact "$_artifact" \
      --argjson size "$(stat -c %s "$staging/$_artifact")" --arg sha "$(sha256sum "$staging/$_artifact" | cut -d' ' -f1)" \
      --argjson extra "$_extra" --arg recipe "$PREPARE_RECIPE" \
      '.[$name] = {number: $number, tool: $tool, artifact: $artifact, artifact_size: $size, sha256: $sha, recipe: $recipe} + $extra' \
      "$work/prepared.json" >"$work/prepared.next" && mv "$work/prepared.next" "$work/prepared.json"
  done
  close_image_root
}
