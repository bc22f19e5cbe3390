#!/bin/sh
# Sourced by customize-image.sh: the extra apt repositories of the layers
# (apt-sources.d/*.sources and, for the image's release only,
# apt-sources.d/RELEASE/*.sources; deb822). They are read before anything is
# changed; once the image is mounted each repository must answer, its Signed-By
# keyring must be in some layer's files/ or the image, and its Release must be
# signed by a key of that keyring; then they are added to the image (where they
# stay) before apt-get update. With --apt-mirror URI=MIRROR the build fetches
# URI's repositories from MIRROR (an internal mirror, a stand-in) and the image,
# and each layer, keeps URI.
# Functions taking LAYER... get the layer folders, parent first.
# Reads: root work release apt_mirrors; sets: layer_repos key_sources.
# shellcheck disable=SC2154 # the globals named above are customize-image.sh's

# "REPO uri suite keyring" lines (keyring "-" without a Signed-By path); "ERR why" for a bad stanza.
parse_sources() {
  awk '
    function flush() {
      if (nfields == 0) return
      if (uris == "" || suites == "") print "ERR a stanza ending at line " NR " lacks URIs or Suites"
      else if (enabled != "no") {
        n = split(uris, u, /[ \t]+/); m = split(suites, s, /[ \t]+/)
        for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print "REPO", u[i], s[j], (key == "" ? "-" : key)
      }
      uris = suites = key = enabled = ""; nfields = 0
    }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { flush(); next }
    /^[ \t]/ { next }
    {
      nfields++
      field = tolower(substr($0, 1, index($0, ":") - 1)); value = substr($0, index($0, ":") + 1)
      gsub(/^[ \t]+|[ \t]+$/, "", value)
      if (field == "uris") uris = value
      else if (field == "suites") suites = value
      else if (field == "enabled") enabled = tolower(value)
      else if (field == "signed-by" && value ~ /^\//) key = value
    }
    END { flush() }' "$1"
}

# The .sources files of one layer that apply to the image's release.
layer_sources() {
  for _file in "$1"/apt-sources.d/*.sources "$1/apt-sources.d/$release"/*.sources; do
    [ ! -f "$_file" ] || printf '%s\n' "$_file"
  done
}

# mirrored URI: where the build fetches URI from (its --apt-mirror, or URI itself).
mirrored() {
  printf '%s\n' "$apt_mirrors" | awk -v uri="$1" '
    { from = $1; sub(/\/+$/, "", from); u = uri; sub(/\/+$/, "", u) }
    $1 != "" && from == u { print $2; found = 1; exit }
    END { if (!found) print uri }'
}

# layer_repos: "uri suite keyring file layer" lines.
read_layer_sources() {
  layer_repos=""
  for _layer in "$@"; do
    for _src in $(layer_sources "$_layer"); do
      _rel=${_src#"$_layer"/}
      _parsed=$(parse_sources "$_src")
      [ -n "$_parsed" ] || die "profile ${_layer##*/}: $_rel holds no repository"
      case "$_parsed" in *ERR*) die "profile ${_layer##*/}: $_rel: $(printf '%s\n' "$_parsed" | sed -n 's/^ERR //p' | head -n1)" ;; esac
      layer_repos="$layer_repos$(printf '%s\n' "$_parsed" | awk -v f="$_rel" -v l="$_layer" '$1 == "REPO" { print $2, $3, $4, f, l }')
"
    done
  done
  for _from in $(printf '%s\n' "$apt_mirrors" | awk '{ print $1 }'); do
    printf '%s\n' "$layer_repos" | awk -v u="${_from%/}" '{ sub(/\/+$/, "", $1) } $1 == u { found = 1 } END { exit !found }' ||
      die "--apt-mirror $_from: no repository of the layers has that URI"
  done
}

# "https://host/path/dists/suite/" or, for a flat repository ("suite/"), "https://host/path/suite/".
release_dir() {
  case "$2" in
    */) printf '%s/%s\n' "${1%/}" "$2" ;;
    *) printf '%s/dists/%s/\n' "${1%/}" "$2" ;;
  esac
}

# curl through the host's apt proxy, as apt in the chroot will fetch.
apt_curl() {
  _proxy=""
  case "$1" in http:*) _proxy=$apt_http_proxy ;; https:*) _proxy=${apt_https_proxy:-$apt_http_proxy} ;; esac
  shift
  http_proxy=$_proxy https_proxy=$_proxy curl -fsS --max-time 10 "$@"
}

# Each repository answers (its Release file, 10 s), through the host's apt proxy as apt in the chroot will.
check_layer_repos() {
  [ -n "$(printf '%s' "$layer_repos" | tr -d '\n')" ] || return 0
  for _tool in curl apt-config; do
    command -v "$_tool" >/dev/null 2>&1 || die "required tool not found: $_tool"
  done
  apt_http_proxy="" apt_https_proxy=""
  eval "$(apt-config shell apt_http_proxy Acquire::http::Proxy apt_https_proxy Acquire::https::Proxy)"
  [ "$apt_http_proxy" != DIRECT ] || apt_http_proxy=""
  [ "$apt_https_proxy" != DIRECT ] || apt_https_proxy=""
  while read -r _uri _suite _key _rel _layer; do
    [ -n "$_uri" ] || continue
    _fetch=$(mirrored "$_uri")
    _release_url="$(release_dir "$_fetch" "$_suite")Release"
    _through=""
    [ "$_fetch" = "$_uri" ] || _through=" through --apt-mirror $_fetch"
    say "checking repository $_uri $_suite (${_layer##*/}: $_rel)$_through"
    if ! _err=$(apt_curl "$_fetch" -o /dev/null "$_release_url" 2>&1); then
      die "profile ${_layer##*/}: $_rel: repository $_uri suite $_suite is unreachable ($_release_url: $_err)"
    fi
  done <<LIST
$layer_repos
LIST
}

# keyring_layer KEYPATH LAYER...: the last layer whose files/ hold the keyring (none: the image's own).
keyring_layer() {
  _keypath=$1; shift
  _holder=""
  for _candidate in "$@"; do [ ! -f "$_candidate/files$_keypath" ] || _holder=$_candidate; done
  printf '%s' "$_holder"
}

# Keyrings named by Signed-By: from some layer's files/ (the last one holding it) or already in
# the image; each repository's Release must be signed by a key of its keyring.
check_layer_keys() {
  key_sources=""  # "keypath layer" for keyrings found in a layer's files/
  while read -r _uri _suite _key _rel _layer; do
    { [ -n "$_uri" ] && [ "$_key" != - ]; } || continue
    _from=$(keyring_layer "$_key" "$@")
    if [ -n "$_from" ]; then
      key_sources="$key_sources$_key $_from
"
      _keyring=$_from/files$_key
    elif chroot "$root" /usr/bin/test -e "$_key"; then
      _keyring=$root$(chroot "$root" /usr/bin/realpath "$_key")
    else
      die "profile ${_layer##*/}: $_rel: Signed-By keyring $_key is missing; place it at $_layer/files$_key"
    fi
    check_release_signature "$_uri" "$_suite" "$_keyring" "$_key" "$_rel" "$_layer"
  done <<LIST
$layer_repos
LIST
  key_sources=$(printf '%s' "$key_sources" | awk '!seen[$0]++')
}

# check_release_signature URI SUITE KEYRING KEYPATH REL LAYER: InRelease (or Release with
# Release.gpg) verifies with gpgv against KEYRING (armored keyrings are dearmored first).
check_release_signature() {
  command -v gpgv >/dev/null 2>&1 || die "required tool not found: gpgv"
  _sig=$work/signature
  rm -rf "$_sig"
  mkdir "$_sig"
  if head -c 64 "$3" | grep -q -- '-----BEGIN PGP'; then
    command -v gpg >/dev/null 2>&1 || die "required tool not found: gpg (to read the armored keyring $4)"
    gpg --batch --quiet --dearmor <"$3" >"$_sig/keyring.gpg" || die "profile ${6##*/}: $5: Signed-By keyring $4 is not an OpenPGP keyring"
  else
    cp "$3" "$_sig/keyring.gpg"
  fi
  _fetch=$(mirrored "$1")
  _dir=$(release_dir "$_fetch" "$2")
  if apt_curl "$_fetch" -o "$_sig/InRelease" "${_dir}InRelease" 2>/dev/null; then
    set -- "$@" "$_sig/InRelease"
  elif apt_curl "$_fetch" -o "$_sig/Release" "${_dir}Release" 2>/dev/null && apt_curl "$_fetch" -o "$_sig/Release.gpg" "${_dir}Release.gpg" 2>/dev/null; then
    set -- "$@" "$_sig/Release.gpg" "$_sig/Release"
  else
    die "profile ${6##*/}: $5: repository $1 suite $2 has no signed Release (neither ${_dir}InRelease nor ${_dir}Release.gpg)"
  fi
  _files=$(shift 6; printf '%s\n' "$@")
  # shellcheck disable=SC2086 # one or two file names, no spaces (under $work)
  if ! _err=$(gpgv --homedir "$_sig" --keyring "$_sig/keyring.gpg" $_files 2>&1); then
    die "profile ${6##*/}: $5: repository $1 suite $2 is not signed by a key of its Signed-By keyring $4 (gpgv: $(printf '%s\n' "$_err" | grep -v '^gpgv: \(Signature made\|  *using\)' | tr '\n' ' ' | sed 's/ *$//'))"
  fi
  say "repository $1 $2: Release signed by a key of $4"
  rm -rf "$_sig"
}

# write_mirrored_source SRC TARGET: the layer's source file in the image, its URIs those of
# --apt-mirror; restore_layer_sources puts SRC back when the step ends.
write_mirrored_source() {
  printf '%s\n' "$apt_mirrors" | awk '
    NR == FNR { if ($1 != "") { f = $1; sub(/\/+$/, "", f); map[f] = $2 } next }
    tolower($1) == "uris:" { line = $1; for (i = 2; i <= NF; i++) { u = $i; sub(/\/+$/, "", u); line = line " " (u in map ? map[u] : $i) } print line; next }
    { print }' - "$1" >"$root$2"
  chmod 0644 "$root$2"
  printf '%s %s\n' "$1" "$2" >>"$work/mirrored-sources"
}

# The layers' repositories stay in the image (as written; during each step with
# their --apt-mirror URIs); their keyrings come first.
add_layer_sources() {
  for _layer in "$@"; do
    for _src in $(layer_sources "$_layer"); do
      _target=/etc/apt/sources.list.d/${_src##*/}
      say "adding repository ${_src#"$_layer"/} from profile ${_layer##*/}"
      if [ -n "$apt_mirrors" ]; then
        write_mirrored_source "$_src" "$_target"
      else
        cp "$_src" "$root$_target"
        chmod 0644 "$root$_target"
      fi
    done
  done
  while read -r _key _from; do
    [ -n "$_key" ] || continue
    copy_into_image "$_from/files" ".$_key"
  done <<LIST
$key_sources
LIST
}

# A step after the packages' fetches the layers' repositories (those still in the
# image) through --apt-mirror too, as the packages step did.
mirror_layer_sources() {
  [ -n "$apt_mirrors" ] || return 0
  for _layer in "$@"; do
    for _src in $(layer_sources "$_layer"); do
      _target=/etc/apt/sources.list.d/${_src##*/}
      [ ! -f "$root$_target" ] || write_mirrored_source "$_src" "$_target"
    done
  done
}

# At the end of each step: the repositories it fetched through --apt-mirror get
# their own URIs back, so no layer keeps a mirror's.
restore_layer_sources() {
  [ -f "$work/mirrored-sources" ] || return 0
  while read -r _src _target; do
    [ -n "$_src" ] || continue
    cp "$_src" "$root$_target"
    chmod 0644 "$root$_target"
  done <"$work/mirrored-sources"
  rm -f "$work/mirrored-sources"
}
