#!/bin/sh
# Acquire a cloud image: download it (resumably) unless the cache already holds
# it, verify its SHA-512 against the one given, unpack disk.raw if it is a Debian
# .tar.xz, convert to qcow2 into a content-addressed cache and point a symlink at
# the result. The caller reads the checksum from the release's SHA512SUMS
# (btw-img does, at synth: lib/config/image-release.ts); this script never parses it.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=prepare-cloud-img
USAGE="usage: prepare-cloud-img.sh --url URL --sha512 HEX [--checksums URL] --cache-dir DIR --link PATH
       prepare-cloud-img.sh --print-acquired --link PATH
  --sha512          the image's sha512: its line in the release's SHA512SUMS
                    (curl -fsSL .../SHA512SUMS | grep FILE)
  --checksums       the SHA512SUMS the sha512 was read from (recorded, named in errors)
  --print-acquired  print the sha512 of the image PATH points at (nothing when none) and exit"

. "$(dirname "$0")/lib/messages.sh"

url="" sums_url="" cache="" link="" expected="" print_acquired=""
while [ $# -gt 0 ]; do
  case $1 in
    --url) [ $# -ge 2 ] || usage_error "--url needs a value"; url=$2; shift 2 ;;
    --checksums) [ $# -ge 2 ] || usage_error "--checksums needs a value"; sums_url=$2; shift 2 ;;
    --sha512) [ $# -ge 2 ] || die "--sha512 needs a value"; expected=$2; shift 2 ;;
    --cache-dir) [ $# -ge 2 ] || usage_error "--cache-dir needs a value"; cache=$2; shift 2 ;;
    --link) [ $# -ge 2 ] || usage_error "--link needs a value"; link=$2; shift 2 ;;
    --print-acquired) print_acquired=1; shift ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

is_sha512() { printf '%s\n' "$1" | grep -Eqx '[0-9a-f]{128}'; }

# The cache layout below is this script's own: callers ask it, they do not read it.
if [ -n "$print_acquired" ]; then
  [ -n "$link" ] || usage_error "missing --link"
  target=$(readlink "$link" 2>/dev/null) || exit 0
  acquired=${target%/disk.qcow2}
  acquired=${acquired##*/}
  if is_sha512 "$acquired"; then echo "$acquired"; fi
  exit 0
fi

[ -n "$url" ] || usage_error "missing --url"
[ -n "$cache" ] || usage_error "missing --cache-dir"
[ -n "$link" ] || usage_error "missing --link"
file=${url%%[?#]*}
file=${file##*/}
case $file in
  *.tar.xz) format=tar.xz ;;
  *.qcow2) format=qcow2 ;;
  *.raw) format=raw ;;
  *) die "cannot tell the image format of $url (expected .tar.xz, .qcow2 or .raw)" ;;
esac
[ -n "$expected" ] || die "missing --sha512: the sha512 of $file is unknown (${sums_url:-SHA512SUMS} lists it); images are only accepted verified"
is_sha512 "$expected" || die "--sha512 is not a sha512 (128 hex digits): $expected"
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
  [ $status -eq 0 ] || say "failed (exit $status)"
}
on_exit cleanup
tmp=$(mktemp -d "$cache/.prepare.XXXXXX")

# One download per cache at a time: two runs must not append to the same .part.
exec 9<"$cache/downloads"
flock -n 9 || { say "waiting for another $PROG using $cache"; flock 9; }

point_link() {
  ln -sfn "$1" "$tmp/link"
  mv -T "$tmp/link" "$link"
  say "$link -> $1"
}

dest=$cache/base/$expected
if [ -f "$dest/disk.qcow2" ]; then
  say "cached: $file ($expected)"
  point_link "$dest/disk.qcow2"
  exit 0
fi
part=$cache/downloads/$expected.$file.part

fetch() {
  curl -fL --retry 3 --progress-bar -w '%{http_code}' "$@" -o "$part" "$url" >"$tmp/http-code"
}
rc=0
if [ -s "$part" ] && [ "$(sha512sum "$part" | cut -d' ' -f1)" = "$expected" ]; then
  say "already downloaded: $part" # a previous run stopped before converting
else
  if [ -s "$part" ]; then
    say "resuming $url ($(du -h "$part" | cut -f1) already in $part)"
  else
    say "downloading $url"
  fi
  fetch -C - || rc=$?
fi
# 33: server refuses ranges, 36/416: the .part does not fit the file; start over.
if [ $rc = 33 ] || [ $rc = 36 ] || [ "$(cat "$tmp/http-code" 2>/dev/null)" = 416 ]; then
  say "cannot resume $url; downloading from the start"
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

say "verifying sha512 of $file"
actual=$(sha512sum "$part" | cut -d' ' -f1)
if [ "$actual" != "$expected" ]; then
  rm -f "$part"
  die "checksum mismatch for $url: expected $expected got $actual; if a new image was published behind this URL since ${sums_url:-its SHA512SUMS} was read, run the deploy again to plan with it"
fi

src=$part
if [ "$format" = tar.xz ]; then
  say "extracting disk.raw from $file"
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
say "converting to qcow2 in $dest"
mkdir -p "$dest"
stage=$dest/disk.qcow2.tmp.$$
qemu-img convert -f "$format" -O qcow2 "$src" "$stage" 2>"$tmp/qemu.err" ||
  die "cannot convert $url to qcow2: $(tr '\n' ' ' <"$tmp/qemu.err")"

json_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
cat >"$dest/source.json" <<EOF
{
  "url": "$(json_escape "$url")",
  "checksums": "$(json_escape "$sums_url")",
  "sha512": "$expected",
  "fetched": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
mv "$stage" "$dest/disk.qcow2"
stage=
rm -f "$part"
say "cached $file as $dest/disk.qcow2"
point_link "$dest/disk.qcow2"
