#!/bin/sh
# Apply a profile (packages, files, commands; see profiles/README.md) to a copy
# of a Debian cloud image in a chroot, using the host's apt configuration for
# the duration of the build only, and write the result as a new qcow2.
set -eu
umask 022

PROG=customize-image
USAGE="usage: customize-image.sh --base BASE.qcow2 --profiles-dir DIR --profile NAME --output OUT.qcow2"
EXPECTED="expected install.d/*.list, commands.d/NN-*.sh, files/, apt-sources.d/*.sources, extends, releases, README.md"
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Prefix of every file this script puts into the image for the build only.
TEMP_PREFIX=btw-host-

. "$(dirname "$0")/lib/image-mount.sh"
own_mount_namespace "$@"
. "$(dirname "$0")/lib/private-dev.sh"
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "error: $*"; exit 1; }
usage_error() { say "$*"; echo "$USAGE" >&2; exit 2; }

print_help() {
  cat <<EOF
$USAGE

Copies BASE (never modified), applies profile NAME from DIR in a chroot and
writes OUT atomically. Needs root, qemu-img, losetup, partx, mount, chroot.

  --base FILE          cloud image to start from (any format qemu-img reads)
  --profiles-dir DIR   folder holding one folder per profile
  --profile NAME       profile to apply, after the profiles it extends
  --output FILE        qcow2 to write; OUT.work/ beside it holds the build

A profile folder may hold: extends, releases, README.md, install.d/*.list,
apt-sources.d/*.sources, files/ and commands.d/NN-name.sh (see profiles/README.md).
A run killed with SIGKILL is cleaned up by the next run for the same OUT.
EOF
}

# ---------------------------------------------------------------- arguments

base="" profiles_dir="" profile="" output=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) print_help; exit 0 ;;
    --base=*|--profiles-dir=*|--profile=*|--output=*) opt=${1%%=*}; val=${1#*=}; shift ;;
    --base|--profiles-dir|--profile|--output)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      opt=$1; val=$2; shift 2 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
  case "$opt" in
    --base) base=$val ;;
    --profiles-dir) profiles_dir=$val ;;
    --profile) profile=$val ;;
    --output) output=$val ;;
  esac
done
[ -n "$base" ] || usage_error "missing --base"
[ -n "$profiles_dir" ] || usage_error "missing --profiles-dir"
[ -n "$profile" ] || usage_error "missing --profile"
[ -n "$output" ] || usage_error "missing --output"

[ "$(id -u)" -eq 0 ] || die "must run as root (loop devices, mount, chroot)"
for tool in qemu-img losetup partx blkid blockdev mount umount chroot flock tar realpath; do
  command -v "$tool" >/dev/null 2>&1 || die "required tool not found: $tool"
done
[ -f "$base" ] || die "base image not found: $base"
[ -d "$profiles_dir" ] || die "profiles folder not found: $profiles_dir"
out_dir=$(dirname "$output")
mkdir -p "$out_dir" || die "cannot create the output folder $out_dir"
output=$(realpath "$output")
case "$output" in *[[:space:]]*) die "output path must not contain whitespace: $output" ;; esac
[ "$output" != "$(realpath "$base")" ] || die "output must differ from base"
[ ! -d "$output" ] || die "output is a folder: $output"
base_format=$(qemu-img info "$base" 2>/dev/null | sed -n 's/^file format: //p')
[ -n "$base_format" ] || die "qemu-img cannot read base image: $base"

# ---------------------------------------------------------------- profiles

available_profiles() {
  _names=""
  for _d in "$profiles_dir"/*/; do
    [ -d "$_d" ] || continue
    _d=${_d%/}
    _names="$_names${_names:+, }${_d##*/}"
  done
  echo "${_names:-none}"
}

valid_profile_name() {
  case "$1" in ''|.*|*[!A-Za-z0-9._-]*) return 1 ;; esac
}

# Non-comment, non-blank lines of FILE, trimmed, each prefixed with its line number.
content_lines() {
  awk '{ sub(/#.*/, ""); gsub(/^[ \t]+|[ \t]+$/, ""); if ($0 != "") print NR ":" $0 }' "$1"
}

# Entries of a folder, hidden ones included (a glob alone would skip them).
folder_entries() {
  for _e in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    present "$_e" || continue
    printf '%s\n' "${_e##*/}"
  done
}

unexpected() { die "profile $1: unexpected file $2 ($EXPECTED)"; }
plain_file() { [ -f "$1" ] && [ ! -L "$1" ]; }
plain_dir() { [ -d "$1" ] && [ ! -L "$1" ]; }
present() { [ -e "$1" ] || [ -L "$1" ]; }

# Each profile folder holds only what this script understands.
check_layout() {
  _name=$1 _dir=$profiles_dir/$1
  for _entry in $(folder_entries "$_dir"); do
    case "$_entry" in
      extends|releases|README.md) plain_file "$_dir/$_entry" || unexpected "$_name" "$_entry" ;;
      files) plain_dir "$_dir/files" || unexpected "$_name" files ;;
      install.d|commands.d|apt-sources.d)
        plain_dir "$_dir/$_entry" || unexpected "$_name" "$_entry"
        for _inner in $(folder_entries "$_dir/$_entry"); do
          plain_file "$_dir/$_entry/$_inner" || unexpected "$_name" "$_entry/$_inner"
          case "$_entry/$_inner" in
            install.d/*[!A-Za-z0-9_.-]*|commands.d/*[!A-Za-z0-9_.-]*|apt-sources.d/*[!A-Za-z0-9_.-]*) unexpected "$_name" "$_entry/$_inner" ;;
            install.d/?*.list|commands.d/[0-9][0-9]-?*.sh|apt-sources.d/?*.sources) ;;
            *) unexpected "$_name" "$_entry/$_inner" ;;
          esac
        done ;;
      *) unexpected "$_name" "$_entry" ;;
    esac
  done
}

# The chain of profiles, parent first; each folder checked on the way.
if ! valid_profile_name "$profile" || ! plain_dir "$profiles_dir/$profile"; then
  die "unknown profile '$profile' (profiles in $profiles_dir: $(available_profiles))"
fi
chain="" seen=" " name=$profile path_so_far=""
while :; do
  path_so_far="${path_so_far:+$path_so_far -> }$name"
  case "$seen" in *" $name "*) die "profile $profile: 'extends' forms a cycle ($path_so_far)" ;; esac
  seen="$seen$name "
  check_layout "$name"
  chain="$name${chain:+ $chain}"
  [ -f "$profiles_dir/$name/extends" ] || break
  parent=$(content_lines "$profiles_dir/$name/extends" | cut -d: -f2-)
  case "$parent" in
    *[[:space:]]*|'') die "profile $name: extends must hold exactly one profile name" ;;
  esac
  if ! valid_profile_name "$parent" || ! plain_dir "$profiles_dir/$parent"; then
    die "profile $name: extends unknown profile '$parent' (profiles in $profiles_dir: $(available_profiles))"
  fi
  name=$parent
done

# Packages as "package profile install.d/file.list:line" lines, checked for syntax.
packages=""
releases_rules=""
for p in $chain; do
  for list in "$profiles_dir/$p"/install.d/*.list; do
    [ -f "$list" ] || continue
    rel="install.d/${list##*/}"
    while IFS=: read -r line_no pkg; do
      [ -n "$line_no" ] || continue
      case "$pkg" in
        *[[:space:]]*) die "profile $p: $rel:$line_no: one package per line: '$pkg'" ;;
        [a-z0-9]*[!a-zA-Z0-9+.:=~/-]*|[!a-z0-9]*) die "profile $p: $rel:$line_no: not a package name: '$pkg'" ;;
      esac
      packages="$packages$pkg $p $rel:$line_no
"
    done <<EOF
$(content_lines "$list")
EOF
  done
  if [ -f "$profiles_dir/$p/releases" ]; then
    supported=$(content_lines "$profiles_dir/$p/releases" | cut -d: -f2- | tr '\n' ' ')
    releases_rules="$releases_rules$p:$supported
"
  fi
done
package_names=$(printf '%s' "$packages" | awk '{ print $1 }' | tr '\n' ' ')

# Extra apt repositories: "REPO uri suite" and "KEY path" lines per file.
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

apt_repos=""   # "profile file uri suite"
apt_keys=""    # "profile file keypath"
for p in $chain; do
  for src in "$profiles_dir/$p"/apt-sources.d/*.sources; do
    [ -f "$src" ] || continue
    rel="apt-sources.d/${src##*/}"
    parsed=$(parse_sources "$src")
    [ -n "$parsed" ] || die "profile $p: $rel holds no repository"
    case "$parsed" in *ERR*) die "profile $p: $rel: $(printf '%s\n' "$parsed" | sed -n 's/^ERR //p' | head -n1)" ;; esac
    apt_repos="$apt_repos$(printf '%s\n' "$parsed" | awk -v p="$p" -v f="$rel" '$1 == "REPO" { print p, f, $2, $3 }')
"
    apt_keys="$apt_keys$(printf '%s\n' "$parsed" | awk -v p="$p" -v f="$rel" '$1 == "KEY" { print p, f, $2 }')
"
  done
done

say "profile $profile: chain $(echo "$chain" | sed 's/ / -> /g')"
say "packages: ${package_names:-(none)}"

# ---------------------------------------------------------------- work dir

work=$output.work
raw=$work/disk.raw
root=$work/root
backup=$work/backup
state=$work/state
partial=$output.partial
have_lock=""
child_pid=""
succeeded=""

# Processes whose root is our chroot (daemons a package or a command left behind).
kill_chroot_processes() {
  for _sig in TERM KILL; do
    _found=""
    for _p in /proc/[0-9]*; do
      [ "$(readlink "$_p/root" 2>/dev/null)" = "$root" ] || continue
      _cmd=$(tr '\0' ' ' <"$_p/cmdline" 2>/dev/null | cut -c1-60)
      kill "-$_sig" "${_p#/proc/}" 2>/dev/null && _found=1 &&
        say "stopped process ${_p#/proc/} left in the chroot ($_cmd)"
    done
    [ -n "$_found" ] || return 0
    sleep 1
  done
}

# Processes with our raw disk or partial output open (an orphaned qemu-img).
kill_file_users() {
  for _p in /proc/[0-9]*; do
    [ "${_p#/proc/}" != $$ ] || continue
    for _fd in "$_p"/fd/*; do
      case "$(readlink "$_fd" 2>/dev/null)" in
        "$raw"|"$raw (deleted)"|"$partial"|"$partial (deleted)")
          kill -KILL "${_p#/proc/}" 2>/dev/null && say "stopped process ${_p#/proc/} still writing $(readlink "$_fd")"
          break ;;
      esac
    done
  done
}

# Unmount everything under the work dir (deepest first) and detach the loop
# devices backed by our raw disk. Used by the trap and by crash recovery.
release_work() {
  kill_chroot_processes
  kill_file_users
  for _try in 1 2 3 4 5; do
    _mounts=$(awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -ru)
    _live=""
    for _m in $_mounts; do
      awk -v m="$_m" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo || continue
      _live=1
      say "unmounting $_m"
      umount "$_m" 2>/dev/null || umount -l "$_m" 2>/dev/null || true
    done
    [ -n "$_live" ] || break
  done
  _loops=""
  [ ! -e "$raw" ] || _loops=$(losetup -j "$raw" 2>/dev/null | cut -d: -f1)
  # shellcheck disable=SC2086 # one word per loop device
  for _l in $(printf '%s\n' $_loops | sort -u); do
    # Only loop devices whose backing file is our raw disk.
    _backing=$(losetup -nO BACK-FILE "$_l" 2>/dev/null | sed 's/ (deleted)$//' | sed 's/[[:space:]]*$//')
    [ "$_backing" = "$raw" ] || continue
    say "detaching $_l"
    losetup -d "$_l" 2>/dev/null || true
  done
}

cleanup() {
  _rc=$?
  set +e
  trap - EXIT INT TERM
  [ -z "$child_pid" ] || kill "$child_pid" 2>/dev/null
  if [ -n "$have_lock" ] && [ -z "$succeeded" ]; then
    say "releasing mounts and loop devices"
    release_work
    rm -f "$partial"
    rm -rf "$work"
  fi
  exit "$_rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Long steps run in the background so INT/TERM are handled at once; fd 9 (the
# lock) is closed for them so an orphan cannot keep the lock after a SIGKILL.
run() {
  "$@" 9>&- &
  child_pid=$!
  _status=0
  wait "$child_pid" || _status=$?
  child_pid=""
  return "$_status"
}

in_chroot() {
  run chroot "$root" /usr/bin/env -i PATH="$CHROOT_PATH" HOME=/root LC_ALL=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true "$@" >&2
}

note_temp() { printf '%s\n' "$1" >>"$work/temp-files"; }

mkdir -p "$work"
exec 9>>"$work/lock"
flock -n 9 || die "another customize-image run is building $output (lock $work/lock)"
have_lock=1

if [ -e "$state" ] || [ -e "$raw" ] || [ -e "$partial" ]; then
  say "recovering from an interrupted run in $work"
  release_work
  if [ -n "$(awk -v w="$work/" 'index($5, w) == 1' /proc/self/mountinfo)" ]; then
    die "mounts under $work are still busy; unmount them and retry"
  fi
  [ ! -e "$raw" ] || [ -z "$(losetup -j "$raw" 2>/dev/null)" ] || die "loop devices still hold $raw; detach them and retry"
fi
find "$work" -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf {} +
rm -f "$partial"
: >"$state"
: >"$work/temp-files"
mkdir "$root" "$backup"

# ---------------------------------------------------------------- disk

say "copying $base to $raw"
run qemu-img convert -f "$base_format" -O raw "$base" "$raw"

loop=$(attach_loop "$raw")
root_part=$(root_partition "$loop")
[ -n "$root_part" ] || die "no ext4 root partition found in $base"
say "mounting root partition $root_part (the ESP stays unmounted: the kernel here cannot mount vfat)"
mount "$root_part" "$root"

# A chroot'ed cat: /etc/os-release may be an absolute symlink.
image_release=$(chroot "$root" /bin/cat /etc/os-release 2>/dev/null | sed -n 's/^VERSION_CODENAME=//p' | tr -d "\"'")
[ -n "$image_release" ] || die "cannot read VERSION_CODENAME from the image's /etc/os-release"
host_release=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release | tr -d "\"'")
say "image release: $image_release (host: $host_release)"

while IFS=: read -r p supported; do
  [ -n "$p" ] || continue
  case " $supported " in
    *" $image_release "*) ;;
    *) die "profile $p supports releases: ${supported% } but the image is $image_release" ;;
  esac
done <<EOF
$releases_rules
EOF

# Reachability of the profile's own repositories, before anything in the image is changed
# (after the release check: a profile for another release fails for that reason first).
if [ -n "$(printf '%s' "$apt_repos" | tr -d '\n')" ]; then
  for tool in curl apt-config; do
    command -v "$tool" >/dev/null 2>&1 || die "required tool not found: $tool"
  done
  # apt in the chroot uses the host's apt proxy; so does this check.
  apt_http_proxy="" apt_https_proxy=""
  eval "$(apt-config shell apt_http_proxy Acquire::http::Proxy apt_https_proxy Acquire::https::Proxy)"
  [ "$apt_http_proxy" != DIRECT ] || apt_http_proxy=""
  [ "$apt_https_proxy" != DIRECT ] || apt_https_proxy=""
  while read -r p rel uri suite; do
    [ -n "$p" ] || continue
    case "$suite" in
      */) release_url="${uri%/}/$suite"Release ;;
      *) release_url="${uri%/}/dists/$suite/Release" ;;
    esac
    proxy=""
    case "$uri" in http:*) proxy=$apt_http_proxy ;; https:*) proxy=${apt_https_proxy:-$apt_http_proxy} ;; esac
    say "checking repository $uri $suite ($p: $rel)"
    if ! err=$(http_proxy=$proxy https_proxy=$proxy curl -fsS --max-time 10 -o /dev/null "$release_url" 2>&1); then
      die "profile $p: $rel: repository $uri suite $suite is unreachable ($release_url: $err)"
    fi
  done <<EOF
$apt_repos
EOF
fi

# Keyrings named by Signed-By: from a profile's files/ or already in the image.
key_sources=""  # "keypath profile" for keyrings found in a profile's files/
while read -r p rel key; do
  [ -n "$p" ] || continue
  from=""
  for q in $chain; do [ ! -f "$profiles_dir/$q/files$key" ] || from=$q; done
  if [ -n "$from" ]; then
    key_sources="$key_sources$key $from
"
  elif ! chroot "$root" /usr/bin/test -e "$key"; then
    die "profile $p: $rel: Signed-By keyring $key is missing; place it at $profiles_dir/$p/files$key"
  fi
done <<EOF
$apt_keys
EOF

# ---------------------------------------------------------------- chroot

for dir in dev proc sys run tmp etc/apt/apt.conf.d etc/apt/sources.list.d; do
  plain_dir "$root/$dir" || die "the image has no /$dir folder (or it is a symlink)"
done
mount -t proc proc "$root/proc"
mount --bind /sys "$root/sys"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
make_private_dev "$root/dev" "$loop"

# Copy PATHS (relative to SRC) into the image, resolving symlinks inside the
# image (merged /usr, absolute links) and without changing existing folders.
# Owned by root and never group/world-writable: git keeps only the x bit.
copy_into_image() {
  _src=$1; shift
  tar -C "$_src" --owner=0 --group=0 --numeric-owner --mode=go-w -cf - "$@" |
    chroot "$root" /bin/tar -xf - -C / --keep-directory-symlink --no-overwrite-dir
}

if present "$root/usr/sbin/policy-rc.d"; then
  cp -a "$root/usr/sbin/policy-rc.d" "$backup/policy-rc.d"
fi
printf '#!/bin/sh\n# customize-image: no service starts while the image is built\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"

# grub-install (from grub-efi/shim maintainer scripts) would fail without the
# ESP mounted; the image's boot loader is left as Debian built it.
grub_diverted=""
if [ -e "$root/usr/sbin/grub-install" ]; then
  say "diverting grub-install for the build (the ESP is not mounted)"
  in_chroot dpkg-divert --local --rename --divert /usr/sbin/grub-install.btw-real --add /usr/sbin/grub-install
  grub_diverted=1
  printf '#!/bin/sh\necho "customize-image: skipped grub-install $*: the ESP is not mounted while customizing" >&2\nexit 0\n' >"$root/usr/sbin/grub-install"
  chmod 0755 "$root/usr/sbin/grub-install"
fi

# The image's own resolver and apt sources go to the backup, outside the image.
if present "$root/etc/resolv.conf"; then
  cp -a "$root/etc/resolv.conf" "$backup/resolv.conf"
  rm -f "$root/etc/resolv.conf"
fi
cat /etc/resolv.conf >"$root/etc/resolv.conf"
if present "$root/etc/apt/sources.list"; then
  cp -a "$root/etc/apt/sources.list" "$backup/sources.list"
  rm -f "$root/etc/apt/sources.list"
fi
mkdir "$backup/sources.list.d"
for entry in $(folder_entries "$root/etc/apt/sources.list.d"); do
  cp -a "$root/etc/apt/sources.list.d/$entry" "$backup/sources.list.d/"
  rm -rf "$root/etc/apt/sources.list.d/$entry"
done

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
say "using the host's apt configuration for $image_release (temporary)"
host_unsigned=""  # set when a host source relies on apt's global trusted keys
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  target="/etc/apt/sources.list.d/$TEMP_PREFIX${f##*/}"
  case "$f" in
    *.sources) map_deb822 <"$f" >"$root$target" ;;
    *) map_one_line <"$f" >"$root$target" ;;
  esac
  note_temp "$target"
  grep -qi 'signed-by' "$f" || ! grep -q '^[[:space:]]*[^#[:space:]]' "$f" || host_unsigned=1
  # A keyring the host's sources need but the image lacks comes in for the build too.
  for key in $(sed -n -e 's/^[Ss]igned-[Bb]y:[[:space:]]*\(\/[^[:space:]]*\).*/\1/p' -e 's/.*signed-by=\(\/[^] ,]*\).*/\1/p' "$f"); do
    if [ -f "$key" ] && [ ! -e "$root$key" ] && [ -d "$root$(dirname "$key")" ]; then
      cp "$key" "$root$key"
      note_temp "$key"
    fi
  done
done
for f in /etc/apt/apt.conf.d/*; do
  [ -f "$f" ] || continue
  cp "$f" "$root/etc/apt/apt.conf.d/00$TEMP_PREFIX${f##*/}"
  note_temp "/etc/apt/apt.conf.d/00$TEMP_PREFIX${f##*/}"
done
if [ -n "$host_unsigned" ] && [ -d "$root/etc/apt/trusted.gpg.d" ]; then
  [ ! -f /etc/apt/trusted.gpg ] || { cp /etc/apt/trusted.gpg "$root/etc/apt/trusted.gpg.d/${TEMP_PREFIX}trusted.gpg"; note_temp "/etc/apt/trusted.gpg.d/${TEMP_PREFIX}trusted.gpg"; }
  for f in /etc/apt/trusted.gpg.d/*.gpg /etc/apt/trusted.gpg.d/*.asc; do
    [ -f "$f" ] || continue
    cp "$f" "$root/etc/apt/trusted.gpg.d/$TEMP_PREFIX${f##*/}"
    note_temp "/etc/apt/trusted.gpg.d/$TEMP_PREFIX${f##*/}"
  done
fi
if [ -f /etc/apt/auth.conf ] || [ -n "$(folder_entries /etc/apt/auth.conf.d 2>/dev/null)" ]; then
  if [ ! -d "$root/etc/apt/auth.conf.d" ]; then
    mkdir "$root/etc/apt/auth.conf.d"
    note_temp /etc/apt/auth.conf.d
  fi
  if [ -f /etc/apt/auth.conf ]; then
    install -m 0600 /etc/apt/auth.conf "$root/etc/apt/auth.conf.d/${TEMP_PREFIX}auth.conf"
    note_temp "/etc/apt/auth.conf.d/${TEMP_PREFIX}auth.conf"
  fi
  for f in /etc/apt/auth.conf.d/*; do
    [ -f "$f" ] || continue
    install -m 0600 "$f" "$root/etc/apt/auth.conf.d/$TEMP_PREFIX${f##*/}"
    note_temp "/etc/apt/auth.conf.d/$TEMP_PREFIX${f##*/}"
  done
fi

# The profiles' own repositories stay in the image; their keyrings come first.
for p in $chain; do
  for src in "$profiles_dir/$p"/apt-sources.d/*.sources; do
    [ -f "$src" ] || continue
    say "adding repository apt-sources.d/${src##*/} from profile $p"
    cp "$src" "$root/etc/apt/sources.list.d/${src##*/}"
    chmod 0644 "$root/etc/apt/sources.list.d/${src##*/}"
  done
done
while read -r key from; do
  [ -n "$key" ] || continue
  copy_into_image "$profiles_dir/$from/files" ".$key"
done <<EOF
$key_sources
EOF

# ---------------------------------------------------------------- packages

say "apt-get update"
in_chroot apt-get -q update || die "apt-get update failed in the image"

if [ -n "$package_names" ]; then
  while read -r pkg p rel; do
    [ -n "$pkg" ] || continue
    name=${pkg%%[=/]*}
    candidate=$(chroot "$root" /usr/bin/env -i PATH="$CHROOT_PATH" apt-cache policy "$name" 2>/dev/null | sed -n 's/^ *Candidate: //p')
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
      die "profile $p: $rel: package '$name' is not available for $image_release"
    fi
  done <<EOF
$packages
EOF
  say "installing: $package_names"
  # shellcheck disable=SC2086 # one word per package
  in_chroot apt-get -q -y --no-install-recommends -o Dpkg::Use-Pty=0 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    install $package_names || die "apt-get install failed (packages: $package_names)"
fi

# ---------------------------------------------------------------- files and commands

for p in $chain; do
  if [ -d "$profiles_dir/$p/files" ] && [ -n "$(folder_entries "$profiles_dir/$p/files")" ]; then
    say "copying files/ of profile $p"
    copy_into_image "$profiles_dir/$p/files" .
  fi
done

mkdir -p "$root/tmp/btw-customize"
for p in $chain; do
  for script in "$profiles_dir/$p"/commands.d/*.sh; do
    [ -f "$script" ] || continue
    script_name=${script##*/}
    say "profile $p: running commands.d/$script_name"
    cp "$script" "$root/tmp/btw-customize/$script_name"
    status=0
    in_chroot BTW_PROFILE="$p" BTW_RELEASE="$image_release" sh "/tmp/btw-customize/$script_name" || status=$?
    rm -f "$root/tmp/btw-customize/$script_name"
    [ "$status" -eq 0 ] || die "profile $p: commands.d/$script_name failed with exit code $status"
  done
done

# ---------------------------------------------------------------- clean up the image

if [ -f "$root/boot/grub/grub.cfg" ] && grep -q 'root=/dev/loop' "$root/boot/grub/grub.cfg"; then
  die "/boot/grub/grub.cfg names the build's loop device (root=/dev/loop...): the image would not boot"
fi

say "removing the host's apt configuration and restoring the image's own"
kill_chroot_processes
# Newest first, so a folder the build created is empty when its turn comes.
for temp in $(awk '{ line[NR] = $0 } END { for (i = NR; i > 0; i--) print line[i] }' "$work/temp-files"); do
  if [ -d "$root$temp" ] && [ ! -L "$root$temp" ]; then rmdir "$root$temp"; else rm -f "$root$temp"; fi
done
rm -f "$root/etc/resolv.conf"
if present "$backup/resolv.conf"; then cp -a "$backup/resolv.conf" "$root/etc/resolv.conf"; fi
rm -f "$root/etc/apt/sources.list"
if present "$backup/sources.list"; then cp -a "$backup/sources.list" "$root/etc/apt/sources.list"; fi
for entry in $(folder_entries "$backup/sources.list.d"); do
  rm -rf "$root/etc/apt/sources.list.d/$entry"
  cp -a "$backup/sources.list.d/$entry" "$root/etc/apt/sources.list.d/"
done
if [ -n "$grub_diverted" ]; then
  rm -f "$root/usr/sbin/grub-install"
  in_chroot dpkg-divert --local --rename --divert /usr/sbin/grub-install.btw-real --remove /usr/sbin/grub-install
fi
rm -f "$root/usr/sbin/policy-rc.d"
if present "$backup/policy-rc.d"; then cp -a "$backup/policy-rc.d" "$root/usr/sbin/policy-rc.d"; fi

say "cleaning caches, machine identity and host keys"
in_chroot apt-get clean
find "$root/var/lib/apt/lists" -mindepth 1 ! -name partial ! -path "$root/var/lib/apt/lists/partial" -exec rm -rf {} + 2>/dev/null || true
find "$root/var/lib/apt/lists/partial" -mindepth 1 -exec rm -rf {} + 2>/dev/null || true
rm -f "$root"/var/cache/apt/*.bin
[ ! -f "$root/etc/machine-id" ] || [ -L "$root/etc/machine-id" ] || : >"$root/etc/machine-id"
[ ! -f "$root/var/lib/dbus/machine-id" ] || [ -L "$root/var/lib/dbus/machine-id" ] || rm -f "$root/var/lib/dbus/machine-id"
rm -f "$root"/etc/ssh/ssh_host_*
rm -f "$root/root/.bash_history"
for dir in "$root/tmp" "$root/var/tmp"; do
  [ ! -d "$dir" ] || [ -L "$dir" ] || find "$dir" -mindepth 1 -delete
done

# Nothing the build brought in may stay behind.
leftover=""
while read -r temp; do
  if present "$root$temp"; then leftover="$leftover $temp"; fi
done <"$work/temp-files"
for f in "$root"/etc/apt/apt.conf.d/*"$TEMP_PREFIX"* "$root"/etc/apt/sources.list.d/"$TEMP_PREFIX"* "$root/usr/sbin/grub-install.btw-real"; do
  if present "$f"; then leftover="$leftover ${f#"$root"}"; fi
done
[ -z "$leftover" ] || die "temporary files left in the image:$leftover"

# ---------------------------------------------------------------- output

say "unmounting and writing $output"
kill_chroot_processes
# Blocks freed in the image become holes in the raw disk, so the qcow2 stays small.
fstrim "$root" 2>/dev/null || true
for m in dev/shm dev/pts dev run sys proc; do
  umount "$root/$m"
done
umount "$root"
losetup -d "$loop"
run qemu-img convert -f raw -O qcow2 "$raw" "$partial"
mv -f "$partial" "$output"
succeeded=1
rm -rf "$work"
say "done: $output"
