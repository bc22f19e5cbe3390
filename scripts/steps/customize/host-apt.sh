#!/bin/sh
# Sourced by customize-image.sh: the build uses the host's apt configuration
# (sources with the host's release mapped to the image's, apt.conf.d, keys,
# auth on a tmpfs, resolver), never the image's own, which waits in $backup meanwhile.
# Every file brought in is noted in $work/temp-files and taken out again by
# restore_image_apt, which puts the image's own files back byte for byte.
# Reads: root work backup image_release host_release TEMP_PREFIX.
# shellcheck disable=SC2154 # the globals named above are customize-image.sh's

# Host sources with the host's release names mapped to the image's.
map_deb822() {
  awk -v from="$host_release" -v to="$image_release" '
    tolower($1) == "suites:" {
      line = $1
      for (i = 2; i <= NF; i++) { s = $i; if (s == from || index(s, from "-") == 1) s = to substr(s, length(from) + 1); line = line " " s }
      print line; next
    }
    { print }'
}
map_one_line() {
  awk -v from="$host_release" -v to="$image_release" '
    $1 == "deb" || $1 == "deb-src" {
      i = 2
      if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      i++
      s = $i; if (s == from || index(s, from "-") == 1) $i = to substr(s, length(from) + 1)
    }
    { print }'
}

note_temp() { printf '%s\n' "$1" >>"$work/temp-files"; }

# The image's own resolver and apt sources go to the backup, outside the image.
backup_image_apt() {
  if present "$root/etc/resolv.conf"; then
    cp -a "$root/etc/resolv.conf" "$backup/resolv.conf"
    rm -f "$root/etc/resolv.conf"
  fi
  if present "$root/etc/apt/sources.list"; then
    cp -a "$root/etc/apt/sources.list" "$backup/sources.list"
    rm -f "$root/etc/apt/sources.list"
  fi
  mkdir "$backup/sources.list.d"
  # Only the base image's entries: what an earlier layer's step added (the layers'
  # repositories, a package's) stays, as it would in one pass, for this step to use or remove.
  [ -f "$work/own-apt" ] || folder_entries "$root/etc/apt/sources.list.d" >"$work/own-apt"
  for _entry in $(folder_entries "$root/etc/apt/sources.list.d"); do
    grep -qxF "$_entry" "$work/own-apt" || continue
    cp -a "$root/etc/apt/sources.list.d/$_entry" "$backup/sources.list.d/"
    rm -rf "$root/etc/apt/sources.list.d/$_entry"
  done
}

import_host_apt() {
  backup_image_apt
  cat /etc/resolv.conf >"$root/etc/resolv.conf"
  say "using the host's apt configuration for $image_release (temporary)"
  _host_unsigned=""  # set when a host source relies on apt's global trusted keys
  for _f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$_f" ] || continue
    _target="/etc/apt/sources.list.d/$TEMP_PREFIX${_f##*/}"
    case "$_f" in
      *.sources) map_deb822 <"$_f" >"$root$_target" ;;
      *) map_one_line <"$_f" >"$root$_target" ;;
    esac
    note_temp "$_target"
    grep -qi 'signed-by' "$_f" || ! grep -q '^[[:space:]]*[^#[:space:]]' "$_f" || _host_unsigned=1
    # A keyring the host's sources need but the image lacks comes in for the build too.
    for _key in $(sed -n -e 's/^[Ss]igned-[Bb]y:[[:space:]]*\(\/[^[:space:]]*\).*/\1/p' -e 's/.*signed-by=\(\/[^] ,]*\).*/\1/p' "$_f"); do
      if [ -f "$_key" ] && [ ! -e "$root$_key" ] && [ -d "$root$(dirname "$_key")" ]; then
        cp "$_key" "$root$_key"
        note_temp "$_key"
      fi
    done
  done
  for _f in /etc/apt/apt.conf.d/*; do
    [ -f "$_f" ] || continue
    cp "$_f" "$root/etc/apt/apt.conf.d/00$TEMP_PREFIX${_f##*/}"
    note_temp "/etc/apt/apt.conf.d/00$TEMP_PREFIX${_f##*/}"
  done
  if [ -n "$_host_unsigned" ] && [ -d "$root/etc/apt/trusted.gpg.d" ]; then
    [ ! -f /etc/apt/trusted.gpg ] || { cp /etc/apt/trusted.gpg "$root/etc/apt/trusted.gpg.d/${TEMP_PREFIX}trusted.gpg"; note_temp "/etc/apt/trusted.gpg.d/${TEMP_PREFIX}trusted.gpg"; }
    for _f in /etc/apt/trusted.gpg.d/*.gpg /etc/apt/trusted.gpg.d/*.asc; do
      [ -f "$_f" ] || continue
      cp "$_f" "$root/etc/apt/trusted.gpg.d/$TEMP_PREFIX${_f##*/}"
      note_temp "/etc/apt/trusted.gpg.d/$TEMP_PREFIX${_f##*/}"
    done
  fi
  if [ -f /etc/apt/auth.conf ] || [ -n "$(folder_entries /etc/apt/auth.conf.d 2>/dev/null)" ]; then
    if [ ! -d "$root/etc/apt/auth.conf.d" ]; then
      mkdir "$root/etc/apt/auth.conf.d"
      note_temp /etc/apt/auth.conf.d
    fi
    # The credentials on a tmpfs of their own over the image's folder: never written to
    # the image's file system, so no layer holds them, not even in freed blocks.
    mount -t tmpfs -o mode=0755,size=1m btw-apt-auth "$root/etc/apt/auth.conf.d"
    : >"$work/auth-mounted"
    [ ! -f /etc/apt/auth.conf ] || install -m 0600 /etc/apt/auth.conf "$root/etc/apt/auth.conf.d/${TEMP_PREFIX}auth.conf"
    for _f in /etc/apt/auth.conf.d/*; do
      [ ! -f "$_f" ] || install -m 0600 "$_f" "$root/etc/apt/auth.conf.d/$TEMP_PREFIX${_f##*/}"
    done
  fi
}

# Takes out what import_host_apt brought in (newest first, so a folder the build
# created is empty when its turn comes) and puts the image's own files back.
restore_image_apt() {
  if [ -f "$work/auth-mounted" ]; then
    umount "$root/etc/apt/auth.conf.d"
    rm -f "$work/auth-mounted"
  fi
  for _temp in $(awk '{ line[NR] = $0 } END { for (i = NR; i > 0; i--) print line[i] }' "$work/temp-files"); do
    if [ -d "$root$_temp" ] && [ ! -L "$root$_temp" ]; then rmdir "$root$_temp"; else rm -f "$root$_temp"; fi
  done
  rm -f "$root/etc/resolv.conf"
  if present "$backup/resolv.conf"; then cp -a "$backup/resolv.conf" "$root/etc/resolv.conf"; fi
  rm -f "$root/etc/apt/sources.list"
  if present "$backup/sources.list"; then cp -a "$backup/sources.list" "$root/etc/apt/sources.list"; fi
  for _entry in $(folder_entries "$backup/sources.list.d"); do
    rm -rf "$root/etc/apt/sources.list.d/$_entry"
    cp -a "$backup/sources.list.d/$_entry" "$root/etc/apt/sources.list.d/"
  done
}
