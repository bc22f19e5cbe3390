#!/bin/sh
# Clear btw-img's image cache (base and customized images, seeds, fixtures).
# Engine and provider builds are kept unless --all is given. Only a folder that
# carries the marker setup-host.sh leaves in the cache is touched, so a cache
# dir of / or /var never loses /images or /var/base.
set -eu

usage() { echo "usage: purge-cache.sh --cache-dir DIR [--all]"; }
cache_dir=""
all=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cache-dir) cache_dir="$2"; shift 2 ;;
    --all) all=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "purge-cache: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$cache_dir" ] || { usage >&2; exit 2; }
[ -d "$cache_dir" ] || { echo "purge-cache: nothing to purge in $cache_dir" >&2; exit 0; }
if [ ! -f "$cache_dir/.btw-img-owned" ]; then
  echo "purge-cache: $cache_dir is not btw-img's cache (no .btw-img-owned in it): nothing removed" >&2
  exit 1
fi

# Never delete a cache an unfinished customization still has mounted.
if grep -q " $cache_dir/" /proc/mounts; then
  echo "purge-cache: something under $cache_dir is still mounted; finish or kill the running build first" >&2
  exit 1
fi
for part in base images downloads labs fixtures; do
  if [ -e "$cache_dir/$part" ]; then
    echo "purge-cache: removing $cache_dir/$part ($(du -sh "$cache_dir/$part" | cut -f1))" >&2
    rm -rf "${cache_dir:?}/$part"
  fi
done
if [ -n "$all" ]; then
  for part in engine provider-mirror plugin-cache; do
    [ ! -e "$cache_dir/$part" ] || { echo "purge-cache: removing $cache_dir/$part" >&2; rm -rf "${cache_dir:?}/$part"; }
  done
fi
