#!/bin/sh
# Acquire a cloud image: download it (resumably), verify its SHA-512 against
# the published SHA512SUMS, unpack disk.raw if it is a Debian .tar.xz, convert
# to qcow2 into a content-addressed cache and point a symlink at the result.
set -eu

prog=prepare-cloud-img
usage="usage: prepare-cloud-img.sh --url URL [--checksums URL [--sha512 HEX]] --cache-dir DIR --link PATH
  --sha512  the checksum the plan was made for: refuse if SHA512SUMS now names another image"

log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { log "error: $*"; exit 1; }

url="" sums_url="" cache="" link="" planned=""
while [ $# -gt 0 ]; do
  case $1 in
    --url) [ $# -ge 2 ] || die "--url needs a value"; url=$2; shift 2 ;;
    --checksums) [ $# -ge 2 ] || die "--checksums needs a value"; sums_url=$2; shift 2 ;;
    --sha512) [ $# -ge 2 ] || die "--sha512 needs a value"; planned=$2; shift 2 ;;
    --cache-dir) [ $# -ge 2 ] || die "--cache-dir needs a value"; cache=$2; shift 2 ;;
    --link) [ $# -ge 2 ] || die "--link needs a value"; link=$2; shift 2 ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "$usage" >&2; die "unknown argument: $1" ;;
  esac
done
[ -n "$url" ] && [ -n "$cache" ] && [ -n "$link" ] || { echo "$usage" >&2; exit 2; }
file=${url%%[?#]*}
file=${file##*/}
case $file in
  *.tar.xz) format=tar.xz ;;
  *.qcow2) format=qcow2 ;;
  *.raw) format=raw ;;
  *) die "cannot tell the image format of $url (expected .tar.xz, .qcow2 or .raw)" ;;
esac
if [ -z "$sums_url" ]; then
  [ "$format" != tar.xz ] || die "--checksums is required for $file (a .tar.xz is only accepted verified)"
fi
if [ -d "$link" ] && [ ! -L "$link" ]; then
  die "--link $link is a directory"
fi
for tool in curl sha512sum tar xz qemu-img flock; do
  command -v "$tool" >/dev/null || die "missing tool: $tool"
done

mkdir -p "$cache/downloads" "$cache/base" "$(dirname "$link")"
cache=$(cd "$cache" && pwd)

tmp="" stage=""
cleanup() {
  status=$?
  [ -n "$tmp" ] && rm -rf "$tmp"
  [ -n "$stage" ] && rm -f "$stage"
  [ $status -eq 0 ] || log "failed (exit $status)"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
tmp=$(mktemp -d "$cache/.prepare.XXXXXX")

# One download per cache at a time: two runs must not append to the same .part.
exec 9<"$cache/downloads"
flock -n 9 || { log "waiting for another $prog using $cache"; flock 9; }

point_link() {
  ln -sfn "$1" "$tmp/link"
  mv -T "$tmp/link" "$link"
  log "$link -> $1"
}

expected=
if [ -n "$sums_url" ]; then
  log "fetching checksums $sums_url"
  curl -fsSL --retry 3 -o "$tmp/SHA512SUMS" "$sums_url" || die "cannot download checksums from $sums_url"
  # Lines look like "<sha512>  <file>" (or "*<file>" in binary mode).
  expected=$(awk -v f="$file" '$2 == f || $2 == "*" f { print $1; exit }' "$tmp/SHA512SUMS")
  [ -n "$expected" ] || die "SHA512SUMS at $sums_url has no line for $file"
  echo "$expected" | grep -Eqx '[0-9a-f]{128}' || die "SHA512SUMS at $sums_url has a malformed line for $file"
  # A new image published between plan and apply must not slip in unreviewed.
  if [ -n "$planned" ] && [ "$planned" != "$expected" ]; then
    die "$file changed since the plan (planned sha512 ${planned%"${planned#????????????????}"}..., now ${expected%"${expected#????????????????}"}...): run the deploy again to plan with the new image"
  fi
  if [ -f "$cache/base/$expected/disk.qcow2" ]; then
    log "cached: $file ($expected)"
    point_link "$cache/base/$expected/disk.qcow2"
    exit 0
  fi
  part=$cache/downloads/$expected.$file.part
else
  log "WARNING: no --checksums given: $url will NOT be verified against a published checksum"
  part=$cache/downloads/url-$(printf '%s' "$url" | sha256sum | cut -c1-16).$file.part
fi

fetch() {
  curl -fL --retry 3 --progress-bar -w '%{http_code}' "$@" -o "$part" "$url" >"$tmp/http-code"
}
rc=0
if [ -n "$expected" ] && [ -s "$part" ] && [ "$(sha512sum "$part" | cut -d' ' -f1)" = "$expected" ]; then
  log "already downloaded: $part" # a previous run stopped before converting
else
  if [ -s "$part" ]; then
    log "resuming $url ($(du -h "$part" | cut -f1) already in $part)"
  else
    log "downloading $url"
  fi
  fetch -C - || rc=$?
fi
# 33: server refuses ranges, 36/416: the .part does not fit the file; start over.
if [ $rc = 33 ] || [ $rc = 36 ] || [ "$(cat "$tmp/http-code" 2>/dev/null)" = 416 ]; then
  log "cannot resume $url; downloading from the start"
  rm -f "$part"
  rc=0
  fetch || rc=$?
fi
if [ $rc != 0 ]; then
  if [ -s "$part" ]; then
    die "cannot download $url (curl exit $rc); $(du -h "$part" | cut -f1) kept in $part to resume next time"
  fi
  rm -f "$part"
  die "cannot download $url (curl exit $rc)"
fi

log "verifying sha512 of $file"
actual=$(sha512sum "$part" | cut -d' ' -f1)
if [ -n "$expected" ]; then
  if [ "$actual" != "$expected" ]; then
    rm -f "$part"
    die "checksum mismatch for $url: expected $expected got $actual"
  fi
else
  log "WARNING: unverified sha512 of $file is $actual"
fi

dest=$cache/base/$actual
if [ -f "$dest/disk.qcow2" ]; then
  log "cached: $file ($actual)"
  rm -f "$part"
  point_link "$dest/disk.qcow2"
  exit 0
fi

src=$part
if [ "$format" = tar.xz ]; then
  log "extracting disk.raw from $file"
  if ! tar -C "$tmp" --sparse -xJf "$part" disk.raw 2>"$tmp/tar.err"; then
    rm -f "$part" # verified yet unusable: downloading it again cannot help
    grep -q 'Not found in archive' "$tmp/tar.err" && die "archive at $url has no disk.raw"
    die "archive at $url is corrupt or truncated: $(tr '\n' ' ' <"$tmp/tar.err")"
  fi
  src=$tmp/disk.raw
  format=raw
fi

# The format is always given: letting qemu-img probe untrusted data is unsafe.
if [ "$format" = qcow2 ]; then
  if ! qemu-img info -f qcow2 --output=json "$src" >"$tmp/info.json" 2>"$tmp/qemu.err"; then
    rm -f "$part"
    die "$url is not a valid qcow2 image: $(tr '\n' ' ' <"$tmp/qemu.err")"
  fi
  if grep -q '"backing-filename"' "$tmp/info.json"; then
    rm -f "$part"
    die "$url is a qcow2 with a backing file; refusing it"
  fi
fi
log "converting to qcow2 in $dest"
mkdir -p "$dest"
stage=$dest/disk.qcow2.tmp.$$
qemu-img convert -f "$format" -O qcow2 "$src" "$stage" 2>"$tmp/qemu.err" ||
  die "cannot convert $url to qcow2: $(tr '\n' ' ' <"$tmp/qemu.err")"

json_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
cat >"$dest/source.json" <<EOF
{
  "url": "$(json_escape "$url")",
  "checksums": "$(json_escape "$sums_url")",
  "sha512": "$actual",
  "verified": $([ -n "$expected" ] && echo true || echo false),
  "fetched": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
mv "$stage" "$dest/disk.qcow2"
stage=
rm -f "$part"
log "cached $file as $dest/disk.qcow2"
point_link "$dest/disk.qcow2"
