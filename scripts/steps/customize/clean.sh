#!/bin/sh
# Sourced by customize-image.sh: leave the image as clean as Debian ships it.
# No apt caches or lists, no machine identity (systemd makes one at first
# boot), no SSH host keys, no shell history, empty /tmp and /var/tmp, and
# nothing the build brought in (checked, not assumed).
# Reads: root work TEMP_PREFIX.
# shellcheck disable=SC2154 # the globals named above are customize-image.sh's

# update-grub in the chroot must name the root partition by UUID/PARTUUID (lib/private-dev.sh).
check_boot_config() {
  if [ -f "$root/boot/grub/grub.cfg" ] && grep -q 'root=/dev/loop' "$root/boot/grub/grub.cfg"; then
    die "/boot/grub/grub.cfg names the build's loop device (root=/dev/loop...): the image would not boot"
  fi
}

clean_image() {
  say "cleaning caches, machine identity and host keys"
  in_chroot apt-get clean
  find "$root/var/lib/apt/lists" -mindepth 1 ! -name partial ! -path "$root/var/lib/apt/lists/partial" -exec rm -rf {} + 2>/dev/null || true
  find "$root/var/lib/apt/lists/partial" -mindepth 1 -exec rm -rf {} + 2>/dev/null || true
  rm -f "$root"/var/cache/apt/*.bin
  [ ! -f "$root/etc/machine-id" ] || [ -L "$root/etc/machine-id" ] || : >"$root/etc/machine-id"
  [ ! -f "$root/var/lib/dbus/machine-id" ] || [ -L "$root/var/lib/dbus/machine-id" ] || rm -f "$root/var/lib/dbus/machine-id"
  rm -f "$root"/etc/ssh/ssh_host_*
  rm -f "$root/root/.bash_history"
  for _dir in "$root/tmp" "$root/var/tmp"; do
    [ ! -d "$_dir" ] || [ -L "$_dir" ] || find "$_dir" -mindepth 1 -delete
  done
}

# Nothing the build brought in may stay behind.
check_leftovers() {
  _leftover=""
  while read -r _temp; do
    if present "$root$_temp"; then _leftover="$_leftover $_temp"; fi
  done <"$work/temp-files"
  for _f in "$root"/etc/apt/apt.conf.d/*"$TEMP_PREFIX"* "$root"/etc/apt/sources.list.d/"$TEMP_PREFIX"* "$root/usr/sbin/grub-install.btw-real"; do
    if present "$_f"; then _leftover="$_leftover ${_f#"$root"}"; fi
  done
  [ -z "$_leftover" ] || die "temporary files left in the image:$_leftover"
}
