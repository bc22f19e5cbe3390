#!/bin/sh
# As Proxmox documents: once its kernel is in, remove Debian's kernel (the
# generic or cloud meta package and its linux-image-6.* packages) so GRUB boots
# Proxmox's, and os-prober, which would list VM disks as boot entries.
set -eu
installed() {
  dpkg-query -W -f '${Package} ${Status}\n' "$@" 2>/dev/null | awk '$NF == "installed" { print $1 }'
}
proxmox_kernels=$(installed 'proxmox-kernel-*')
[ -n "$proxmox_kernels" ] || { echo "proxmox: no Proxmox kernel is installed (proxmox-default-kernel failed?)" >&2; exit 1; }
debian_kernels=$(installed linux-image-amd64 linux-image-cloud-amd64 'linux-image-6.*')
remove=$(printf '%s\n%s\n' "$debian_kernels" "$(installed os-prober)" | sed '/^$/d' | tr '\n' ' ')
if [ -n "$remove" ]; then
  echo "proxmox: removing $remove(keeping $(echo "$proxmox_kernels" | tr '\n' ' ' | sed 's/ $//'))"
  # shellcheck disable=SC2086 # one package name per word
  DEBIAN_FRONTEND=noninteractive apt-get remove -y -q $remove
fi
