#!/bin/sh
# Clear btw-img's image cache (base and customized images and their layers, seeds, fixtures).
# Engine and provider builds are kept unless --all is given. Only a folder that
# carries the marker setup-host.sh leaves in the cache is touched, so a cache
# dir of / or /var never loses /images or /var/base.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=purge-cache
USAGE="usage: purge-cache.sh --cache-dir DIR [--all]"
. "$(dirname "$0")/../steps/lib/messages.sh"
cache_dir=""
all=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cache-dir) cache_dir="$2"; shift 2 ;;
    --all) all=1; shift ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$cache_dir" ] || usage_error "missing --cache-dir"
[ -d "$cache_dir" ] || { say "nothing to purge in $cache_dir"; exit 0; }
if [ ! -f "$cache_dir/.btw-img-owned" ]; then
  say "$cache_dir is not btw-img's cache (no .btw-img-owned in it): nothing removed"
  exit 1
fi

# Never delete a cache an unfinished customization still has mounted.
if grep -q " $cache_dir/" /proc/mounts; then
  say "something under $cache_dir is still mounted; finish or kill the running build first"
  exit 1
fi
# A customization holds its layer store's lock (shared) and mounts in a namespace of its own.
if [ -f "$cache_dir/images/layers/.lock" ]; then
  exec 7>>"$cache_dir/images/layers/.lock"
  if ! flock -n -x 7; then
    say "a customization is running (it holds $cache_dir/images/layers/.lock); let it finish or kill it first"
    exit 1
  fi
fi
for part in base images downloads labs fixtures; do
  if [ -e "$cache_dir/$part" ]; then
    say "removing $cache_dir/$part ($(du -sh "$cache_dir/$part" | cut -f1))"
    rm -rf "${cache_dir:?}/$part"
  fi
done
if [ -n "$all" ]; then
  for part in engine provider-mirror plugin-cache; do
    [ ! -e "$cache_dir/$part" ] || { say "removing $cache_dir/$part"; rm -rf "${cache_dir:?}/$part"; }
  done
fi
