#!/bin/sh
# pve-manager adds the enterprise repositories, which answer 401 without a
# subscription and would break every apt-get update; this image uses
# pve-no-subscription (apt-sources.d/RELEASE/pve-install-repo.sources) instead. Deleting a conffile
# is remembered by dpkg, so upgrades do not bring them back.
set -eu
for f in /etc/apt/sources.list.d/pve-enterprise.list /etc/apt/sources.list.d/pve-enterprise.sources; do
  if [ -e "$f" ]; then
    rm -f "$f"
    echo "proxmox: removed $f"
  fi
done
for f in /etc/apt/sources.list.d/ceph.list /etc/apt/sources.list.d/ceph.sources; do
  if [ -e "$f" ] && grep -q enterprise.proxmox.com "$f"; then
    rm -f "$f"
    echo "proxmox: removed $f (enterprise Ceph repository)"
  fi
done
