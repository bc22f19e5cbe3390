#!/bin/sh
# Sourced by customize-image.sh: the extra apt repositories of the layers
# (apt-sources.d/*.sources, deb822). They are read before anything is changed,
# checked for reachability and for their Signed-By keyrings once the image is
# mounted, and added to the image (where they stay) before apt-get update.
# Functions taking LAYER... get the layer folders, parent first.
# Reads: root; sets: layer_repos layer_keys key_sources.
# shellcheck disable=SC2154 # the globals named above are customize-image.sh's

# "REPO uri suite" and "KEY path" lines for one .sources file; "ERR why" for a bad stanza.
parse_sources() {
  awk '
    function flush() {
      if (nfields == 0) return
      if (uris == "" || suites == "") print "ERR a stanza ending at line " NR " lacks URIs or Suites"
      else if (enabled != "no") {
        n = split(uris, u, /[ \t]+/); m = split(suites, s, /[ \t]+/)
        for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print "REPO", u[i], s[j]
        if (key != "") print "KEY", key
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

# layer_repos: "uri suite file layer" lines; layer_keys: "keypath file layer" lines.
read_layer_sources() {
  layer_repos="" layer_keys=""
  for _layer in "$@"; do
    for _src in "$_layer"/apt-sources.d/*.sources; do
      [ -f "$_src" ] || continue
      _rel="apt-sources.d/${_src##*/}"
      _parsed=$(parse_sources "$_src")
      [ -n "$_parsed" ] || die "profile ${_layer##*/}: $_rel holds no repository"
      case "$_parsed" in *ERR*) die "profile ${_layer##*/}: $_rel: $(printf '%s\n' "$_parsed" | sed -n 's/^ERR //p' | head -n1)" ;; esac
      layer_repos="$layer_repos$(printf '%s\n' "$_parsed" | awk -v f="$_rel" -v l="$_layer" '$1 == "REPO" { print $2, $3, f, l }')
"
      layer_keys="$layer_keys$(printf '%s\n' "$_parsed" | awk -v f="$_rel" -v l="$_layer" '$1 == "KEY" { print $2, f, l }')
"
    done
  done
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
  while read -r _uri _suite _rel _layer; do
    [ -n "$_uri" ] || continue
    case "$_suite" in
      */) _release_url="${_uri%/}/$_suite"Release ;;
      *) _release_url="${_uri%/}/dists/$_suite/Release" ;;
    esac
    _proxy=""
    case "$_uri" in http:*) _proxy=$apt_http_proxy ;; https:*) _proxy=${apt_https_proxy:-$apt_http_proxy} ;; esac
    say "checking repository $_uri $_suite (${_layer##*/}: $_rel)"
    if ! _err=$(http_proxy=$_proxy https_proxy=$_proxy curl -fsS --max-time 10 -o /dev/null "$_release_url" 2>&1); then
      die "profile ${_layer##*/}: $_rel: repository $_uri suite $_suite is unreachable ($_release_url: $_err)"
    fi
  done <<LIST
$layer_repos
LIST
}

# Keyrings named by Signed-By: from some layer's files/ (the last one holding it) or already in the image.
check_layer_keys() {
  key_sources=""  # "keypath layer" for keyrings found in a layer's files/
  while read -r _key _rel _layer; do
    [ -n "$_key" ] || continue
    _from=""
    for _candidate in "$@"; do [ ! -f "$_candidate/files$_key" ] || _from=$_candidate; done
    if [ -n "$_from" ]; then
      key_sources="$key_sources$_key $_from
"
    elif ! chroot "$root" /usr/bin/test -e "$_key"; then
      die "profile ${_layer##*/}: $_rel: Signed-By keyring $_key is missing; place it at $_layer/files$_key"
    fi
  done <<LIST
$layer_keys
LIST
}

# The layers' repositories stay in the image; their keyrings come first.
add_layer_sources() {
  for _layer in "$@"; do
    for _src in "$_layer"/apt-sources.d/*.sources; do
      [ -f "$_src" ] || continue
      say "adding repository apt-sources.d/${_src##*/} from profile ${_layer##*/}"
      cp "$_src" "$root/etc/apt/sources.list.d/${_src##*/}"
      chmod 0644 "$root/etc/apt/sources.list.d/${_src##*/}"
    done
  done
  while read -r _key _from; do
    [ -n "$_key" ] || continue
    copy_into_image "$_from/files" ".$_key"
  done <<LIST
$key_sources
LIST
}
