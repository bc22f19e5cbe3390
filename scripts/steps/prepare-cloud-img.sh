#!/bin/sh
# Acquire a cloud image in one pass: download it (resumably) unless the cache
# already holds it, and while it arrives compute its SHA-512 and unpack disk.raw
# from a Debian .tar.xz (xz decodes multi-block archives on every core; GNU tar
# writes the sparse disk with its holes). The raw disk is renamed into a
# content-addressed cache only when the SHA-512 matched the one given and xz and
# tar both succeeded; a symlink points at it. A .qcow2 or .raw URL is verified
# the same way, then written as a sparse raw disk. The base is raw: whatever
# reads it says -f raw (customize-image.sh copies it before changing anything).
# The caller reads the checksum from the release's SHA512SUMS (btw-img does, at
# synth: lib/config/image-release.ts); this script never parses it.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=prepare-cloud-img
USAGE="usage: prepare-cloud-img.sh --url URL --sha512 HEX [--checksums URL] --cache-dir DIR --link PATH
  --sha512          the image's sha512: its line in the release's SHA512SUMS
                    (curl -fsSL .../SHA512SUMS | grep FILE)
  --checksums       the SHA512SUMS the sha512 was read from (recorded, named in errors)
  --link            the symlink to point at the cached raw disk (base/SHA512/disk.raw); beside
                    it PATH.json says which image that is ({sha512, url, checksums}), what
                    synth reads when SHA512SUMS cannot be read (lib/config/image-release.ts)"

. "$(dirname "$0")/lib/messages.sh"

url="" sums_url="" cache="" link="" expected=""
while [ $# -gt 0 ]; do
  case $1 in
    --url) [ $# -ge 2 ] || usage_error "--url needs a value"; url=$2; shift 2 ;;
    --checksums) [ $# -ge 2 ] || usage_error "--checksums needs a value"; sums_url=$2; shift 2 ;;
    --sha512) [ $# -ge 2 ] || die "--sha512 needs a value"; expected=$2; shift 2 ;;
    --cache-dir) [ $# -ge 2 ] || usage_error "--cache-dir needs a value"; cache=$2; shift 2 ;;
    --link) [ $# -ge 2 ] || usage_error "--link needs a value"; link=$2; shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

is_sha512() { printf '%s\n' "$1" | grep -Eqx '[0-9a-f]{128}'; }

# The cache layout below is this script's own: callers read only LINK.json (point_link).
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
for tool in curl sha512sum tee head mkfifo tar xz qemu-img flock; do
  command -v "$tool" >/dev/null || die "missing tool: $tool"
done

mkdir -p "$cache/downloads" "$cache/base" "$(dirname "$link")"
cache=$(cd "$cache" && pwd)

tmp="" pids="" succeeded=""
cleanup() {
  status=$?
  set +e
  trap - EXIT INT TERM
  # An interrupted pass: stop what it started; the .part stays to resume from.
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086 # a list of pids
    kill $pids 2>/dev/null
    wait 2>/dev/null
  fi
  [ -n "$tmp" ] && rm -rf "$tmp"
  [ -n "$succeeded" ] || say "failed (exit $status)"
  exit "$status"
}
on_exit cleanup

# One run per cache at a time: two runs must not append to the same .part. The
# lock goes with the processes of a pass, so a pass orphaned by SIGKILL finishes
# (or fails) before the next run reads its .part.
exec 9<"$cache/downloads"
flock -n 9 || { say "waiting for another $PROG using $cache"; flock 9; }
# Left by runs killed with SIGKILL (whose processes are gone: the lock is ours).
rm -rf "$cache"/.acquire.*
tmp=$(mktemp -d "$cache/.acquire.XXXXXX")

# point_link TARGET: the link at TARGET, and LINK.json beside it, each replaced whole.
point_link() {
  ln -sfn "$1" "$tmp/link"
  jq -n --arg sha512 "$expected" --arg url "$url" --arg checksums "$sums_url" '{sha512: $sha512, url: $url, checksums: $checksums}' >"$tmp/link.json"
  mv -T "$tmp/link" "$link"
  mv -f "$tmp/link.json" "$link.json"
  say "$link -> $1"
}

dest=$cache/base/$expected
if [ -f "$dest/disk.raw" ]; then
  succeeded=1
  say "cached: $file ($expected)"
  point_link "$dest/disk.raw"
  exit 0
fi
part=$cache/downloads/$expected.$file.part

# Every process of a pass runs in the background, so INT/TERM stop them at once
# (cleanup); started records the last one's pid, reap PID sets $reaped to its exit status.
started() { pids="$pids $!"; }
reap() { reaped=0; wait "$1" || reaped=$?; }

# pass OFFSET: the first OFFSET bytes of $part (kept by an earlier run), then the
# rest of $url appended to $part as it arrives, all through sha512sum and (for a
# .tar.xz) xz and tar at the same time. Sets the exit statuses and $actual.
pass() {
  _offset=$1
  rm -rf "$tmp/pass"
  mkdir "$tmp/pass"
  _p=$tmp/pass
  mkfifo "$_p/feed" "$_p/sha" "$_p/unpack" "$_p/tar" "$_p/download"
  pids=""
  sha512sum <"$_p/sha" >"$_p/sha.out" &
  sha_pid=$!; started
  if [ "$format" = tar.xz ]; then
    # A tar that stops early cannot cut the check short: tee goes on into sha512sum
    # (-p: a closed pipe is not an error) and xz's and tar's own statuses are judged.
    xz -T0 -dc <"$_p/unpack" >"$_p/tar" 2>"$_p/xz.err" &
    xz_pid=$!; started
    tar -C "$_p" -x --sparse --no-same-owner -f - disk.raw <"$_p/tar" 2>"$_p/tar.err" &
    tar_pid=$!; started
    tee -p "$_p/sha" <"$_p/feed" >"$_p/unpack" &
  else
    xz_pid="" tar_pid=""
    tee -p "$_p/sha" <"$_p/feed" >/dev/null &
  fi
  split_pid=$!; started
  exec 8>"$_p/feed"
  if [ "$_offset" -gt 0 ]; then
    head -c "$_offset" "$part" >&8 &
    started
    reap $!; head_rc=$reaped
    set -- -C "$_offset"
  else
    head_rc=0
    set --
  fi
  # Without --max-time or --retry-all-errors, --retry repeats only requests that got
  # no body (a retry after body bytes would write them into the stream again).
  # -N: each piece is written as it arrives; buffered, curl held up to 4 KiB back
  # while a server stalled, and a kill lost them from the .part.
  curl -fLN --retry 3 --progress-bar -D "$_p/headers" "$@" "$url" >"$_p/download" 8>&- &
  curl_pid=$!; started
  tee -a "$part" <"$_p/download" >&8 &
  save_pid=$!; started
  reap "$curl_pid"; curl_rc=$reaped
  reap "$save_pid"; save_rc=$reaped
  exec 8>&-
  reap "$split_pid"; split_rc=$reaped
  reap "$sha_pid"; sha_rc=$reaped
  xz_rc=0 tar_rc=0
  if [ -n "$xz_pid" ]; then
    reap "$xz_pid"; xz_rc=$reaped
    reap "$tar_pid"; tar_rc=$reaped
  fi
  pids=""
  http_code=$(sed -n 's/^HTTP\/[0-9.]* \([0-9][0-9]*\).*/\1/p' "$_p/headers" 2>/dev/null | tail -n 1)
  actual=$(cut -d' ' -f1 "$_p/sha.out")
  [ "$sha_rc" = 0 ] && [ "$split_rc" = 0 ] && [ "$head_rc" = 0 ] || actual=""
}

if [ "$format" = tar.xz ]; then
  what="downloading, verifying and unpacking disk.raw in one pass"
else
  what="downloading and verifying in one pass"
fi
offset=0
if [ -s "$part" ]; then
  offset=$(wc -c <"$part")
  say "resuming $url: $(du -h "$part" | cut -f1) already in $part; $what"
else
  say "$url: $what"
fi
pass "$offset"
# 33: server refuses ranges, 36: the .part does not fit the file, 416: nothing
# left to send; unless the .part alone was the image, start over.
if [ "$actual" != "$expected" ] && [ "$offset" -gt 0 ] &&
  { [ "$curl_rc" = 33 ] || [ "$curl_rc" = 36 ] || [ "$http_code" = 416 ]; }; then
  say "cannot resume $url; downloading from the start"
  rm -f "$part"
  offset=0
  pass 0
fi

# The bytes are the image exactly when their sha512 is the one given, whatever
# curl said (a complete .part gets 416); otherwise a failed download is resumed later.
if [ "$actual" != "$expected" ]; then
  if [ "$curl_rc" != 0 ]; then
    if [ -s "$part" ]; then
      die "cannot download $url (curl exit $curl_rc); $(du -h "$part" | cut -f1) kept in $part to resume next time"
    fi
    rm -f "$part"
    die "cannot download $url (curl exit $curl_rc)"
  fi
  [ "$save_rc" = 0 ] || die "cannot write $part (tee exit $save_rc)"
  [ -n "$actual" ] || die "cannot compute the sha512 of $url (sha512sum exit $sha_rc, tee exit $split_rc)"
  rm -f "$part"
  die "checksum mismatch for $url: expected $expected got $actual; if a new image was published behind this URL since ${sums_url:-its SHA512SUMS} was read, run the deploy again to plan with it"
fi
say "sha512 verified: $file"

raw=$tmp/pass/disk.raw
if [ "$format" = tar.xz ]; then
  if [ "$tar_rc" != 0 ] || [ "$xz_rc" != 0 ]; then
    rm -f "$part" # verified yet unusable: downloading it again cannot help
    grep -q 'Not found in archive' "$tmp/pass/tar.err" && die "archive at $url has no disk.raw"
    die "archive at $url is corrupt or truncated: $(tr '\n' ' ' <"$tmp/pass/xz.err")$(tr '\n' ' ' <"$tmp/pass/tar.err")(xz exit $xz_rc, tar exit $tar_rc)"
  fi
  if [ ! -f "$raw" ] || [ -L "$raw" ]; then
    rm -f "$part"
    die "archive at $url has no disk.raw file"
  fi
else
  # The format is always given: letting qemu-img probe untrusted data is unsafe.
  if [ "$format" = qcow2 ]; then
    if ! qemu-img info -f qcow2 --output=json "$part" >"$tmp/info.json" 2>"$tmp/qemu.err"; then
      rm -f "$part"
      die "$url is not a valid qcow2 image: $(tr '\n' ' ' <"$tmp/qemu.err")"
    fi
    if grep -q '"backing-filename"' "$tmp/info.json"; then
      rm -f "$part"
      die "$url is a qcow2 with a backing file; refusing it"
    fi
  fi
  say "writing $file as a sparse raw disk"
  pids=""
  qemu-img convert -f "$format" -O raw "$part" "$raw" 2>"$tmp/qemu.err" &
  started
  reap $!; convert_rc=$reaped
  [ "$convert_rc" = 0 ] || die "cannot convert $url to raw: $(tr '\n' ' ' <"$tmp/qemu.err")"
  pids=""
fi
chmod 0644 "$raw"

json_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
mkdir -p "$dest"
cat >"$dest/source.json" <<JSON
{
  "url": "$(json_escape "$url")",
  "checksums": "$(json_escape "$sums_url")",
  "sha512": "$expected",
  "fetched": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
JSON
mv "$raw" "$dest/disk.raw"
succeeded=1
rm -f "$part"
say "cached $file as $dest/disk.raw"
point_link "$dest/disk.raw"
