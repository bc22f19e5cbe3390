#!/bin/sh
# dpkg's path filters (files/etc/dpkg/dpkg.cfg.d/btw-slim) apply to packages
# installed from now on; remove what the image's packages installed before,
# by the same rules, so the filter file stays the one list of what is dropped.
set -eu
set -f # the rules are globs for find, not for this shell

conf=/etc/dpkg/dpkg.cfg.d/btw-slim
[ -f "$conf" ] || { echo "slim: $conf is missing" >&2; exit 1; }
excludes="" includes="" dirs=""
# shellcheck disable=SC2013 # a rule is one word
for pattern in $(sed -n 's/^path-exclude=//p' "$conf"); do
  excludes="$excludes${excludes:+ -o} -path $pattern"
  [ ! -d "${pattern%/\*}" ] || dirs="$dirs ${pattern%/\*}"
done
[ -n "$dirs" ] || { echo "slim: nothing to remove"; exit 0; }
# shellcheck disable=SC2013 # dpkg's path patterns, one a word
for pattern in $(sed -n 's/^path-include=//p' "$conf"); do
  includes="$includes${includes:+ -o} -path $pattern"
done
# shellcheck disable=SC2086 # $dirs: one folder per word
before=$(du -sk $dirs 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
# shellcheck disable=SC2086 # the expressions are find arguments, one per word
find $dirs ! -type d \( $excludes \) ! \( ${includes:--false} \) -delete
# shellcheck disable=SC2086 # $dirs: one folder per word
find $dirs -mindepth 1 -type d -empty -delete
# shellcheck disable=SC2086 # $dirs: one folder per word
after=$(du -sk $dirs 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
echo "slim: removed $(((before - after) / 1024)) MiB of documentation, manual pages and translations"
