#!/bin/sh
# Sourced by customize-image.sh: the build as a chain of cached layers. Each step
# it is given (--step KEY NAME, planned by lib/image/layer-plan.ts: the packages of
# the chain, then files/, ansible/ and each commands.d script of each layer,
# parent first) is a qcow2 overlay on the one before it, named by its KEY.
# The store ($layer_store) holds KEY.qcow2 (complete: synced, then renamed),
# KEY.step (the step's name), KEY.own-apt (the base image's own sources.list.d
# entries, customize/host-apt.sh), KEY.lock (one build of a key at a time), .lock
# (builds hold it shared; garbage collection takes it alone) and refs/PROFILE
# (the layer keys of its last KEEP_BUILDS builds; layers no ref names are removed).
# Reads: base base_format layers steps layer_store.
# shellcheck disable=SC2154 # the globals named above are customize-image.sh's

KEEP_BUILDS=3

# The step's layer folder: the --layer whose name is PROFILE.
layer_named() {
  for _l in $layers; do [ "${_l##*/}" != "$1" ] || { printf '%s\n' "$_l"; return 0; }; done
  return 1
}

# Each --step names a part of a --layer that is there, before anything is read or changed.
check_steps() {
  while read -r _key _step; do
    [ -n "$_key" ] || continue
    [ "$_step" != packages ] || continue
    _layer=$(layer_named "${_step%%/*}") || die "--step $_step: no --layer is named ${_step%%/*}"
    case "$_step" in
      */files) _part=$_layer/files ;;
      */ansible) _part=$_layer/ansible/playbook.yml ;;
      *) _part=$_layer/${_step#*/} ;;
    esac
    [ -e "$_part" ] || die "--step $_step: $_part is not there"
  done <<LIST
$steps
LIST
}

layer_file() { printf '%s/%s.qcow2' "$layer_store" "$1"; }

# need_space DIR MIB WHAT: DIR's file system has MIB free, or the build stops saying how much is missing.
need_space() {
  _free=$(df -Pk "$1" | awk 'NR == 2 { print int($4 / 1024) }')
  [ -n "$_free" ] || die "cannot read the free space of $1"
  [ "$_free" -ge "$2" ] || die "$3 needs $2 MiB free in $1, which has $_free MiB: free $(($2 - _free)) MiB or more there (BTW_CACHE_DIR moves the cache) and run again; nothing was kept of this step"
}

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
