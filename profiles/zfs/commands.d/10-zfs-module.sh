#!/bin/sh
# zfs-dkms builds the module for the kernels whose headers it finds when it is
# installed; check that every installed kernel has it (the restored system boots
# the newest, the deploy environment runs it), and build it where it is missing.
set -eu

for modules in /lib/modules/*; do
  kver=${modules##*/}
  [ -e "/boot/vmlinuz-$kver" ] || continue
  if [ -z "$(find "$modules" -name 'zfs.ko*' | head -n 1)" ]; then
    [ -d "/usr/src/linux-headers-$kver" ] || { echo "zfs: no headers for kernel $kver (linux-headers-$kver): zfs-dkms cannot build for it" >&2; exit 1; }
    echo "zfs: building the module for kernel $kver"
    dkms autoinstall -k "$kver"
  fi
  module=$(find "$modules" -name 'zfs.ko*' | head -n 1)
  [ -n "$module" ] || { echo "zfs: dkms built no zfs module for kernel $kver" >&2; exit 1; }
  echo "zfs: kernel $kver has ${module#"$modules"/}"
done

# dkms signed the module with a private key it made here, which every machine of the
# image would share (and so could anyone holding the image): it leaves the image. A
# machine's dkms makes a key of its own when it next builds (after a kernel update).
rm -f /var/lib/dkms/mok.key
echo "zfs: dkms's private signing key removed from the image (its public half stays: /var/lib/dkms/mok.pub)"
