#!/bin/sh
# Capture a customized disk image as bare-metal artifacts: one partclone image
# per partition (only used blocks, zstd-compressed), the partition table, the
# MBR boot code, what the machines' layouts need prepared (capture/prepare.sh) and
# a manifest.json that deploy-env/restore.sh reads.
# shellcheck source-path=SCRIPTDIR
set -eu
umask 022

PROG=capture-partitions
USAGE="usage: capture-partitions.sh --image IMG.qcow2 --output-dir DIR [--profile NAME] [--source-checksum SHA256]
         [--prepare NAME ...]"
# Bump when deploy-env/restore.sh could no longer read what this script writes.
FORMAT_VERSION=1
ROOT_TYPE=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709
BIOS_BOOT_TYPE=21686148-6449-6E6F-744E-656564454649
ESP_TYPE=C12A7328-F81F-11D2-BA4B-00A0C93EC93B

. "$(dirname "$0")/lib/messages.sh"
. "$(dirname "$0")/lib/image-mount.sh"
. "$(dirname "$0")/lib/private-dev.sh"
. "$(dirname "$0")/lib/stale-work.sh"
. "$(dirname "$0")/capture/prepare.sh"
own_mount_namespace "$@"

print_help() {
  cat <<EOF
$USAGE

Reads IMG (never modified) and writes into DIR, atomically (DIR is replaced
only when the whole capture succeeded):
  manifest.json            format $FORMAT_VERSION: disk, partitions, artifacts with sha256
  partition-table.sfdisk   sfdisk -d of the image
  boot-code.bin            first 440 bytes of the disk (GRUB's boot.img for BIOS)
  pN.<fs>.pcl.zst          partclone image of partition N, zstd-compressed
  pN.<fs>.<name>.pcl.zst   with --prepare NAME: partition N as layouts that ask for NAME
                           write it, made by the image's own programs (manifest: prepared)
--prepare, once per name ($PREPARATIONS):
  root-tar                 the root file system's files as a tar (layouts zfs, zfs-mirror)
  bios-boot-mdraid         the BIOS boot partition with GRUB's core.img reading md RAID1
                           (layout raid1); the image's grub-install writes it
A capture that is up to date (same image, profile and format, every --prepare
in it, made by this capture/prepare.sh) is left as it is.
Needs root, qemu-img, losetup, partx, sfdisk, blkid, partclone, zstd, jq.
EOF
}

image="" output_dir="" profile="" source_checksum="" prepared=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) print_help; exit 0 ;;
    --image|--output-dir|--profile|--source-checksum|--prepare)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case "$1" in
        --image) image=$2 ;;
        --output-dir) output_dir=$2 ;;
        --profile) profile=$2 ;;
        --source-checksum) source_checksum=$2 ;;
        --prepare)
          is_preparation "$2" || usage_error "--prepare: unknown preparation '$2' (known: $PREPARATIONS)"
          prepared="$prepared $2" ;;
      esac
      shift 2 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$image" ] || usage_error "missing --image"
[ -n "$output_dir" ] || usage_error "missing --output-dir"
case "$source_checksum" in ''|[0-9a-f]*) ;; *) usage_error "--source-checksum must be a hex sha256" ;; esac

[ "$(id -u)" -eq 0 ] || die "must run as root (loop devices)"
for tool in qemu-img losetup partx sfdisk blkid blockdev dd flock partclone.ext4 partclone.vfat partclone.dd zstd jq sha256sum chroot mknod; do
  command -v "$tool" >/dev/null 2>&1 || die "required tool not found: $tool"
done
[ -f "$image" ] || die "image not found: $image"
mkdir -p "$(dirname "$output_dir")"
output_dir=$(cd "$(dirname "$output_dir")" && pwd)/$(basename "$output_dir")

# Concurrent captures into the same folder (lab and baremetal stacks) take turns.
exec 9>"$output_dir.lock"
flock 9
release_stale_work "$output_dir.capture"

if [ -z "$source_checksum" ]; then
  say "hashing $image"
  source_checksum=$(sha256sum "$image" | cut -d' ' -f1)
fi
if [ -f "$output_dir/manifest.json" ] &&
   jq -e --arg sha "$source_checksum" --arg profile "$profile" --argjson version "$FORMAT_VERSION" --arg prepared "$prepared" \
     --arg recipe "$PREPARE_RECIPE" '.format_version == $version and .source_image.sha256 == $sha and .profile == $profile and
      ([$prepared | splits(" ") | select(. != "")] - ((.prepared // {}) | with_entries(select(.value.recipe == $recipe)) | keys)
       | length == 0)' "$output_dir/manifest.json" >/dev/null 2>&1; then
  say "up to date: $output_dir holds the capture of this image"
  exit 0
fi

# The prepared root's mounts first; release_taken then reads the script's status.
release_capture() {
  _capture_status=$?
  set +e
  close_image_root
  (exit "$_capture_status")
  release_taken
}
work="" loop="" mnt=""
on_exit release_capture

# Built beside the output so the final rename stays on one file system.
work=$(mktemp -d "$output_dir.capture-XXXXXX")
mark_work "$work"
staging=$work/artifacts
mkdir "$staging"

say "converting $image to a raw temporary disk"
qemu-img convert -O raw "$image" "$work/disk.raw"
disk_bytes=$(stat -c %s "$work/disk.raw")
loop=$(attach_loop "$work/disk.raw" ro)
say "attached read-only at $loop"

label=$(sfdisk -J "$loop" | jq -r .partitiontable.label)
[ "$label" = gpt ] || die "$image: expected a GPT disk, found '$label'"
sector_size=$(sfdisk -J "$loop" | jq -r '.partitiontable.sectorsize // 512')
# Partition names become "diskN": deploy-env/restore.sh rewrites them for its target.
sfdisk -d "$loop" | sed -e '/^device:/d' -e "s|^$loop\(p\)\{0,1\}\([0-9][0-9]*\) :|disk\2 :|" >"$staging/partition-table.sfdisk"
dd if="$loop" of="$staging/boot-code.bin" bs=440 count=1 status=none

partitions_json=$work/partitions.jsonl
: >"$partitions_json"
sfdisk -J "$loop" | jq -c '.partitiontable.partitions[]' | while read -r part; do
  node=$(printf '%s' "$part" | jq -r .node)
  number=${node##*[!0-9]}
  start=$(printf '%s' "$part" | jq -r .start)
  size=$(printf '%s' "$part" | jq -r .size)
  type=$(printf '%s' "$part" | jq -r .type)
  uuid=$(printf '%s' "$part" | jq -r '.uuid // ""')
  dev=${loop}p$number
  [ -b "$dev" ] || die "no device node for partition $number ($dev)"
  fs=$(blkid -p -o value -s TYPE "$dev" 2>/dev/null || true)
  case "$type:$fs" in
    "$BIOS_BOOT_TYPE":*) fs=raw tool=partclone.dd role=bios-boot ;;
    *:ext4) tool=partclone.ext4 role=data; [ "$type" = "$ROOT_TYPE" ] && role=root ;;
    *:vfat) tool=partclone.vfat role=data; [ "$type" = "$ESP_TYPE" ] && role=esp ;;
    *) die "partition $number: no partclone tool chosen for type $type, file system '${fs:-none}'" ;;
  esac
  artifact=p$number.$fs.pcl.zst
  say "partition $number ($role, $fs): $tool -> $artifact"
  mode=-c
  [ "$tool" = partclone.dd ] && mode=""
  # A pipeline only reports zstd's status: partclone's goes through a file.
  # shellcheck disable=SC2094 # the log is only appended to, by partclone and by its status
  { "$tool" $mode -q -L "$work/partclone.log" -s "$dev" -o - 2>>"$work/partclone.log" || echo $? >"$work/partclone.failed"; } | zstd -q -T0 -o "$staging/$artifact"
  if [ -e "$work/partclone.failed" ]; then
    cat "$work/partclone.log" >&2
    die "$tool failed on partition $number"
  fi
  artifact_size=$(stat -c %s "$staging/$artifact")
  sha=$(sha256sum "$staging/$artifact" | cut -d' ' -f1)
  jq -cn --argjson number "$number" --arg type "$type" --arg uuid "$uuid" --argjson start "$start" --argjson size "$size" \
    --argjson sector "$sector_size" --arg fs "$fs" --arg tool "$tool" --arg role "$role" --arg artifact "$artifact" \
    --argjson artifact_size "$artifact_size" --arg sha "$sha" \
    '{number: $number, role: $role, type_guid: $type, uuid: $uuid, start_sector: $start, size_sectors: $size,
      size_bytes: ($size * $sector), fs: $fs, tool: $tool, artifact: $artifact, artifact_size: $artifact_size, sha256: $sha}' \
    >>"$partitions_json"
done
[ -s "$partitions_json" ] || die "the image has no partitions"
jq -e -s 'map(select(.role == "root")) | length == 1' "$partitions_json" >/dev/null || die "expected exactly one ext4 root partition (type $ROOT_TYPE)"
# shellcheck disable=SC2086 # preparation names, one a word
prepare $prepared

file_entry() {
  jq -cn --arg file "$1" --argjson size "$(stat -c %s "$staging/$1")" --arg sha "$(sha256sum "$staging/$1" | cut -d' ' -f1)" \
    '{file: $file, size: $size, sha256: $sha}'
}
jq -n --argjson version "$FORMAT_VERSION" --arg profile "$profile" --arg image "$(basename "$image")" --arg checksum "$source_checksum" \
  --argjson disk_bytes "$disk_bytes" --argjson sector "$sector_size" \
  --argjson table "$(file_entry partition-table.sfdisk)" --argjson boot "$(file_entry boot-code.bin)" \
  --slurpfile partitions "$partitions_json" --slurpfile prepared "$work/prepared.json" \
  '{format_version: $version, profile: $profile,
    source_image: {file: $image, sha256: $checksum},
    disk: {label: "gpt", sector_size: $sector, size_bytes: $disk_bytes,
           min_size_bytes: ((([$partitions[] | .start_sector + .size_sectors] | max) + 34) * $sector)},
    partition_table: $table, boot_code: $boot,
    partitions: ($partitions | sort_by(.start_sector)), prepared: $prepared[0]}' >"$staging/manifest.json"

losetup -d "$loop"
loop=""
rm -f "$work/disk.raw"

# Swap in the new capture: the old one is removed only after the rename.
if [ -e "$output_dir" ]; then
  mv "$output_dir" "$work/previous"
fi
mv "$staging" "$output_dir"
say "captured $(jq '.partitions | length' "$output_dir/manifest.json") partitions into $output_dir ($(du -sh "$output_dir" | cut -f1))"
