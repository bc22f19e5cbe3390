#!/bin/sh
# Sourced by customize-image.sh: the build as a chain of cached layers. Each step
# (the packages of the chain, then files/, ansible/ and each commands.d script of
# each layer, parent first) is a qcow2 overlay on the one before it, named by the
# hash of everything up to that step: key = sha256(previous key, the step's
# content). A change in one step rebuilds from that step on.
# The store ($layer_store) holds KEY.qcow2 (complete: synced, then renamed),
# KEY.step (the step's name), KEY.own-apt (the base image's own sources.list.d
# entries, customize/host-apt.sh), KEY.lock (one build of a key at a time), .lock
# (builds hold it shared; garbage collection takes it alone) and refs/PROFILE
# (the layer keys of its last KEEP_BUILDS builds; layers no ref names are removed).
# Reads: base base_format release packages apt_mirrors layer_repos layer_store; sets: steps.
# shellcheck disable=SC2154 # the globals named above are customize-image.sh's

KEEP_BUILDS=3

sha256_of() { sha256sum | cut -c1-64; }

# A folder of a layer as copied into the image (owner, modes, order; not times).
tree_hash() {
  tar -C "$1" --sort=name --owner=0 --group=0 --numeric-owner --mode=go-w --mtime=@0 -cf - "$2" | sha256_of
}

# What every layer starts from: the base file (by identity: the cache writes it
# once and renames it into place), the release and the scripts that build layers.
chain_root_key() {
  _dir=$(dirname "$0")
  {
    echo "btw-img layers 1"
    stat -L -c '%n %d:%i %s %Y' "$(realpath "$base")"
    echo "release $release"
    cat "$0" "$_dir"/customize/*.sh "$_dir"/lib/image-mount.sh "$_dir"/lib/private-dev.sh
  } | sha256_of
}

# What the packages step adds: the package names, the layers' repositories of this
# release (customize/sources.sh: layer_sources), the keyrings they are signed with
# from files/ (as add_layer_sources copies them) and where the build fetches them
# (--apt-mirror), in chain order.
packages_content() {
  printf '%s' "$packages" | awk '{ print "package", $1 }'
  for _layer in "$@"; do
    for _src in $(layer_sources "$_layer"); do
      printf 'source %s %s %s\n' "${_layer##*/}" "${_src#"$_layer"/}" "$(sha256_of <"$_src")"
    done
  done
  while read -r _uri _suite _key _rel _layer; do
    { [ -n "$_uri" ] && [ "$_key" != - ]; } || continue
    _from=$(keyring_layer "$_key" "$@")
    [ -z "$_from" ] || printf 'keyring %s %s %s\n' "$_key" "${_from##*/}" "$(sha256_of <"$_from/files$_key")"
  done <<LIST
$layer_repos
LIST
  printf '%s' "$apt_mirrors" | awk 'NF { print "apt-mirror", $1, $2 }'
}

# steps: "KEY NAME" lines in build order; NAME is "packages", "PROFILE/files",
# "PROFILE/ansible" or "PROFILE/commands.d/NN-name.sh" (lib/constructs/customized-image.ts
# names them the same way for the plan summary).
plan_steps() {
  steps=""
  _key=$(chain_root_key)
  _content=$(packages_content "$@")
  if [ -n "$_content" ]; then
    _key=$(printf '%s\n%s\n' "$_key" "$_content" | sha256_of)
    steps="$_key packages
"
  fi
  for _layer in "$@"; do
    _profile=${_layer##*/}
    if [ -d "$_layer/files" ] && [ -n "$(folder_entries "$_layer/files")" ]; then
      _key=$(printf '%s\nfiles %s %s\n' "$_key" "$_profile" "$(tree_hash "$_layer" files)" | sha256_of)
      steps="$steps$_key $_profile/files
"
    fi
  done
  for _layer in "$@"; do
    has_playbook "$_layer" || continue
    _key=$(printf '%s\nansible %s %s\n' "$_key" "${_layer##*/}" "$(tree_hash "$_layer" ansible)" | sha256_of)
    steps="$steps$_key ${_layer##*/}/ansible
"
  done
  for _layer in "$@"; do
    for _script in "$_layer"/commands.d/*.sh; do
      [ -f "$_script" ] || continue
      _key=$(printf '%s\ncommand %s %s %s\n' "$_key" "${_layer##*/}" "${_script##*/}" "$(sha256_of <"$_script")" | sha256_of)
      steps="$steps$_key ${_layer##*/}/commands.d/${_script##*/}
"
    done
  done
}

layer_file() { printf '%s/%s.qcow2' "$layer_store" "$1"; }

# The base image's own apt sources entries for a step on PARENT (a layer's key, or "" for the base: read when mounted).
inherit_own_apt() {
  rm -f "$work/own-apt"
  [ -n "$1" ] || return 0
  [ -f "$layer_store/$1.own-apt" ] || die "layer $1 in $layer_store lacks its $1.own-apt; remove the layer store and build again"
  cp "$layer_store/$1.own-apt" "$work/own-apt"
}

# fd 7: the store, shared for the whole build (garbage collection waits for no build).
open_layer_store() {
  mkdir -p "$layer_store/refs"
  exec 7>>"$layer_store/.lock"
  flock -s 7
}

# fd 8: one layer's lock; returns 1 when another build completed the layer meanwhile.
lock_layer() {
  exec 8>>"$layer_store/$1.lock"
  if ! flock -n 8; then
    say "waiting for another build of layer $2 ($1)"
    flock 8
  fi
  if [ -e "$(layer_file "$1")" ]; then
    exec 8>&-
    return 1
  fi
  # Only a killed build leaves a partial layer: nobody else holds this key.
  rm -f "$(layer_file "$1").partial"
}

# KEY.qcow2.partial on PARENT (a layer of the store by its name, or the base by its path).
create_layer() {
  _parent=$2 _parent_format=qcow2
  [ -n "$_parent" ] || { _parent=$(realpath "$base"); _parent_format=$base_format; }
  run qemu-img create -q -f qcow2 -F "$_parent_format" -b "$_parent" "$(layer_file "$1").partial"
}

# The layer is written: flushed to disk, then visible under its name.
commit_layer() {
  _file=$(layer_file "$1")
  sync "$_file.partial"
  printf '%s\n' "$2" >"$layer_store/$1.step"
  cp "$work/own-apt" "$layer_store/$1.own-apt"
  mv -f "$_file.partial" "$_file"
  sync "$layer_store"
  exec 8>&-
}

# Records this build's layers for PROFILE, then, when no other build is running,
# removes the layers that none of each profile's last KEEP_BUILDS builds used.
collect_layers() {
  _ref=$layer_store/refs/$1
  _keys=$(printf '%s' "$steps" | awk '{ printf "%s ", $1 }')
  [ -n "$_keys" ] || return 0
  { printf '%s\n' "$_keys"; [ ! -f "$_ref" ] || grep -vxF "$_keys" "$_ref" | head -n $((KEEP_BUILDS - 1)); } >"$_ref.new"
  mv -f "$_ref.new" "$_ref"
  flock -n -x 7 || return 0
  _kept=$(cat "$layer_store"/refs/* 2>/dev/null | tr ' ' '\n' | sort -u)
  for _f in "$layer_store"/*.qcow2 "$layer_store"/*.qcow2.partial; do
    [ -e "$_f" ] || continue
    _k=${_f##*/}; _k=${_k%%.*}
    printf '%s\n' "$_kept" | grep -qxF "$_k" && continue
    say "removing layer $(cat "$layer_store/$_k.step" 2>/dev/null || echo '?') ($_k): no recent build uses it"
    rm -f "$_f" "$layer_store/$_k.step" "$layer_store/$_k.own-apt" "$layer_store/$_k.lock"
  done
  flock -s 7
}
