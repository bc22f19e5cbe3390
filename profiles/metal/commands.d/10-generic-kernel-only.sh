#!/bin/sh
# With two kernel flavours installed, GRUB's default entry depends on how their
# versions sort. Remove the cloud kernel so the generic one always boots.
set -eu

generic=$(dpkg-query -W -f '${Package} ${Status}\n' 'linux-image-[0-9]*' 2>/dev/null |
  awk '$NF == "installed" && $1 !~ /-cloud-/ { print $1 }')
[ -n "$generic" ] || { echo "metal: no generic kernel is installed (linux-image-amd64 failed?)" >&2; exit 1; }
cloud=$(dpkg-query -W -f '${Package} ${Status}\n' 'linux-image-*cloud*' 2>/dev/null |
  awk '$NF == "installed" { print $1 }')
if [ -n "$cloud" ]; then
  echo "metal: removing the cloud kernel ($(echo "$cloud" | tr '\n' ' ')), keeping $(echo "$generic" | tr '\n' ' ')"
  # shellcheck disable=SC2086 # one package name per word
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $cloud
fi
