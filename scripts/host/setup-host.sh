#!/bin/sh
# Idempotent host setup shared by README's two commands: Debian packages,
# libvirt daemons, npm dependencies, engine, libvirt provider, bindings.
# Writes .btw/env.sh, which the npm scripts source.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=setup-host
USAGE="usage: setup-host.sh [--quiet]"
. "$(dirname "$0")/../steps/lib/messages.sh"
quiet=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quiet) quiet=1; shift ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

log() { [ -n "$quiet" ] || say "$*"; }
project_dir=$(cd "$(dirname "$0")/../.." && pwd)
cache_dir=${BTW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/btw-img}
state_dir="$project_dir/.btw"
mkdir -p "$cache_dir" "$state_dir"
# purge-cache.sh removes only from a folder with this marker: it goes only into a
# cache folder that is new or holds nothing but the cache's own folders.
if [ ! -f "$cache_dir/.btw-img-owned" ]; then
  foreign=""
  for entry in "$cache_dir"/*; do
    case "${entry##*/}" in
      '*'|artifacts|base|deploy-env|downloads|engine|fixtures|images|labs|plugin-cache|provider-mirror|tools) ;;
      *) foreign="$foreign ${entry##*/}" ;;
    esac
  done
  [ -z "$foreign" ] || { say "$cache_dir (BTW_CACHE_DIR) holds files btw-img did not make:$foreign; give it a folder of its own"; exit 1; }
  : >"$cache_dir/.btw-img-owned"
fi
# The engine's state files and the synth output hold the labs' cloud-init data:
# their folders are root's alone (a BTW_STATE_DIR made so when new; the project's own always).
[ -d "${BTW_STATE_DIR:-$state_dir/state}" ] || (umask 077 && mkdir -p "${BTW_STATE_DIR:-$state_dir/state}")
mkdir -p "$state_dir/state" "$project_dir/cdktf.out"
chmod 700 "$state_dir/state" "$project_dir/cdktf.out"

# scripts/host/host-requirements.txt is the one list of what the host must have:
# install the packages it names, then check every line (a package may be half
# removed, or a path moved), naming what is still missing.
sh "$project_dir/scripts/host/install-packages.sh" ${quiet:+--quiet}
sh "$project_dir/scripts/host/check-requirements.sh"

# Without udev /dev/kvm stays root-only; libvirt then finds KVM "unusable" for
# its QEMU user, distrusts its capability cache and re-probes QEMU on every call
# (seconds each). Apply what Debian's udev rule would: group kvm, mode 0660.
if [ -c /dev/kvm ] && getent group kvm >/dev/null && [ "$(stat -c %G /dev/kvm)" != kvm ]; then
  log "giving /dev/kvm to group kvm (what udev does on Debian)"
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi

# libvirt writes a network's MAC list there when a domain joins a network
# without DHCP, but creates the folder only when it first starts dnsmasq:
# on a fresh host the first such domain would fail to start.
mkdir -p /var/lib/libvirt/dnsmasq

# No systemd here: start the daemons by hand when they are not running.
if ! virsh -c qemu:///system version >/dev/null 2>&1; then
  log "starting virtlogd and libvirtd"
  pgrep -x virtlogd >/dev/null || virtlogd -d
  pgrep -x libvirtd >/dev/null || libvirtd -d
  tries=0
  until virsh -c qemu:///system version >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || { say "libvirtd did not answer on qemu:///system"; exit 1; }
    sleep 0.2
  done
fi

cd "$project_dir"
# By content, not date: a fresh checkout's lock file is always newer than the install.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.btw-lock-sha256 2>/dev/null)" != "$lock_sum" ]; then
  # A node_modules linked from another checkout is that checkout's: npm ci would empty it under it.
  [ ! -L node_modules ] || die "node_modules links to $(readlink node_modules), installed from another package-lock.json: run npm ci there, or remove the link"
  log "installing npm dependencies"
  npm ci --no-audit --no-fund >&2
  echo "$lock_sum" >node_modules/.btw-lock-sha256
fi

engine_env=$(sh scripts/host/install-engine.sh --cache-dir "$cache_dir")
sh scripts/host/install-libvirt-provider.sh --cache-dir "$cache_dir" --cli-config "$state_dir/terraformrc"

eval "$engine_env"
cat > "$state_dir/env.sh.$$.tmp" <<ENV
# Written by scripts/host/setup-host.sh; sourced by the npm scripts.
export BTW_CACHE_DIR="$cache_dir"
export TF_CLI_CONFIG_FILE="$state_dir/terraformrc"
export TERRAFORM_BINARY_NAME="$BTW_ENGINE_BIN"
export BTW_ENGINE_NAME="$BTW_ENGINE_NAME"
export CHECKPOINT_DISABLE=1
export CDKTF_DISABLE_PLUGIN_CACHE_ENV=1
export PATH="$project_dir/node_modules/.bin:\$PATH"
ENV
mv "$state_dir/env.sh.$$.tmp" "$state_dir/env.sh"

# The project's login key: a lab's users without keys of their own get it (lib/config/config.ts),
# and `btw ssh` logs in with it. Root's alone.
if [ ! -f "$state_dir/ssh/id_ed25519" ]; then
  mkdir -p "$state_dir/ssh"
  chmod 700 "$state_dir/ssh"
  ssh-keygen -q -t ed25519 -N "" -C "btw-img@$(hostname)" -f "$state_dir/ssh/id_ed25519"
  log "made the login key $state_dir/ssh/id_ed25519 (btw ssh VM)"
fi

# Bindings are committed in .gen; regenerate only when they are missing.
if [ ! -f .gen/providers/libvirt/provider/index.ts ]; then
  log "generating libvirt provider bindings (cdktf get)"
  # shellcheck source=/dev/null # written above
  (. "$state_dir/env.sh" && npx cdktf get >&2)
fi
log "ready: engine $BTW_ENGINE_NAME ($BTW_ENGINE_BIN), libvirt provider 0.8.3, cache $cache_dir"
