# shellcheck shell=sh disable=SC2154,SC2034 # restore.sh's globals, set and read across its parts
# The restored system at /target, for layouts that configure it from the inside
# (sourced by restore.sh): its own programs in a chroot, fstab, the ESPs kept in
# step, and its initramfs and GRUB made for the layout.

TARGET=/target

# in_target COMMAND...: the restored system's own program, in a chroot.
in_target() { chroot "$TARGET" /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# bind_target: /dev, /proc, /sys and a /run of its own for the programs in the chroot.
bind_target() {
  for _fs in dev proc sys; do mount -o bind "/$_fs" "$TARGET/$_fs"; done
  mount -t tmpfs tmpfs "$TARGET/run"
}

# unmount_target: everything at or under /target, deepest first: the binds, what the restored
# system's programs mounted inside them (seen on UEFI: /target kept busy, so the array could not
# stop and the first boot could not read it), then the restored root.
unmount_target() {
  awk -v t="$TARGET" '$2 == t || index($2, t "/") == 1 { print $2 }' /proc/mounts | sort -r | while read -r _point; do
    umount "$_point" 2>/dev/null || umount -l "$_point" 2>/dev/null || say "could not unmount $_point"
  done
}

# esp_serial: the ESP's vfat serial (every disk's copy has it) for fstab, "" without an ESP;
# every disk's ESP PARTUUID into /etc/btw-img/esps, for btw-esp-sync.
esp_serial() {
  [ -n "$esp_number" ] || return 0
  mkdir -p "$TARGET/etc/btw-img"
  for _device in $devices; do in_target blkid -s PARTUUID -o value "$(part_path "$_device" "$esp_number")"; done >"$TARGET/etc/btw-img/esps"
  # shellcheck disable=SC2086 # device paths
  set -- $devices
  in_target blkid -s UUID -o value "$(part_path "$1" "$esp_number")"
}

# fstab_lines ROOT_SOURCE BOOT_LINE: the image's fstab with root's source replaced (or, for "-",
# its line dropped: ZFS mounts root) and BOOT_LINE in its place; the ESP by its vfat serial, with
# nofail: either disk's ESP will do, and a missing one stops nothing.
fstab_lines() {
  awk -v root="$1" -v boot="$2" -v esp="$(esp_serial | sed 's/^./UUID=&/')" '
    /^[[:space:]]*#/ { print; next }
    $2 == "/" && root == "-" { if (boot != "") print boot; next }
    $2 == "/" { $1 = root }
    $2 == "/boot/efi" && esp != "" { $1 = esp; if ($4 !~ /nofail/) $4 = $4 ",nofail" }
    { print }' "$TARGET/etc/fstab" >"$TARGET/etc/fstab.btw" && mv "$TARGET/etc/fstab.btw" "$TARGET/etc/fstab"
}

# grub_settings TEXT: the layout's GRUB settings (/etc/default/grub.d/90-btw-layout.cfg).
grub_settings() {
  printf '# Written by btw-img'"'"'s restore (layout %s).\n%s\n' "$layout" "$1" >"$TARGET/etc/default/grub.d/90-btw-layout.cfg"
}

# write_esp_sync: after each package run, the mounted ESP is copied onto the others (docs/layouts.md).
write_esp_sync() {
  mkdir -p "$TARGET/usr/local/sbin"
  cat >"$TARGET/usr/local/sbin/btw-esp-sync" <<'SYNC'
#!/bin/sh
# Written by btw-img's restore: copies /boot/efi onto the other disks' ESPs.
set -eu
# /boot/efi may be an automount (x-systemd.automount): reading it mounts the ESP for findmnt.
ls /boot/efi >/dev/null 2>&1 || exit 0
mounted=$(findmnt -n -o PARTUUID /boot/efi | tail -n 1)
[ -n "$mounted" ] || exit 0
while read -r partuuid; do
  [ -n "$partuuid" ] && [ "$partuuid" != "$mounted" ] && [ -e "/dev/disk/by-partuuid/$partuuid" ] || continue
  dir=$(mktemp -d)
  if mount -t vfat "/dev/disk/by-partuuid/$partuuid" "$dir"; then
    cp -a /boot/efi/. "$dir/" || echo "btw-esp-sync: could not copy /boot/efi onto $partuuid" >&2
    umount "$dir"
  fi
  rmdir "$dir"
done </etc/btw-img/esps
SYNC
  chmod 755 "$TARGET/usr/local/sbin/btw-esp-sync"
  echo 'DPkg::Post-Invoke { "if [ -x /usr/local/sbin/btw-esp-sync ]; then /usr/local/sbin/btw-esp-sync || true; fi"; };' \
    >"$TARGET/etc/apt/apt.conf.d/90btw-esp-sync"
}

# grub_cfg_root ROOT_ARGUMENT: the captured grub.cfg boots root=ROOT_ARGUMENT instead of the captured
# root partition's PARTUUID (grub_settings makes the restored system's own update-grub agree).
grub_cfg_root() {
  _cfg=$TARGET/boot/grub/grub.cfg
  sed -i "s/root=PARTUUID=[0-9A-Fa-f-]*/root=$1/g" "$_cfg" || die "cannot rewrite $_cfg"
  grep -q "root=$1 " "$_cfg" || die "the restored grub.cfg does not boot root=$1"
  ! grep -q "root=PARTUUID=" "$_cfg" || die "the restored grub.cfg still boots a root by PARTUUID"
}

# initramfs_add FILE...: the restored system's FILEs (paths under /) after every initramfs of its
# kernels, as an uncompressed cpio archive at a 4-byte boundary: the kernel unpacks it last, so
# its files replace the image's. The restored system's next update-initramfs makes it whole.
initramfs_add() {
  printf '%s\n' "$@" | in_target sh -c 'cd / && cpio -o -H newc --quiet -R 0:0' >"$work_dir/initramfs-add.cpio" ||
    die "cpio could not archive $* in the restored system"
  for _initrd in "$TARGET"/boot/initrd.img-*; do
    [ -f "$_initrd" ] || die "the restored system has no initramfs in /boot"
    _size=$(stat -c %s "$_initrd")
    head -c $(((4 - _size % 4) % 4)) /dev/zero >>"$_initrd"
    cat "$work_dir/initramfs-add.cpio" >>"$_initrd"
    say "added $* to ${_initrd#"$TARGET"}"
  done
}

# grub_in_target ROOT_ARGUMENT: GRUB's configuration made in the restored system for its layout
# (grub.cfg must boot root=ROOT_ARGUMENT), and GRUB for BIOS on every disk.
grub_in_target() {
  say "update-grub in the restored system"
  in_target update-grub >&2 || die "update-grub failed in the restored system"
  grep -q "root=$1" "$TARGET/boot/grub/grub.cfg" || die "the restored grub.cfg does not boot root=$1"
  for _device in $devices; do
    say "GRUB for BIOS onto $_device"
    in_target grub-install --target=i386-pc "$_device" >&2 || die "grub-install failed on $_device"
  done
}
