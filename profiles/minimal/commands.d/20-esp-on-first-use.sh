#!/bin/sh
# The EFI system partition is mounted on first use (as systemd's GPT auto-generator
# mounts it), not waited for at boot: Debian's fstab makes local-fs.target need it,
# so a disk whose partitions udev reports late (a slow controller, or a VM under
# software emulation on a busy host: udev started after systemd's 90 s device
# timeout in our tests) sent the boot to emergency mode. The system needs it only
# when GRUB or shim are updated, and mounts it then.
set -eu

awk '$1 !~ /^#/ && $2 == "/boot/efi" && $4 !~ /x-systemd\.automount/ { $4 = $4 ",x-systemd.automount,nofail"; changed = 1 }
  { print }
  END { if (!changed) print "esp-on-first-use: /etc/fstab mounts no /boot/efi at boot; nothing to change" > "/dev/stderr" }' /etc/fstab >/etc/fstab.btw-new
mv /etc/fstab.btw-new /etc/fstab
grep '[[:space:]]/boot/efi[[:space:]]' /etc/fstab | sed 's/^/esp-on-first-use: /' || true
