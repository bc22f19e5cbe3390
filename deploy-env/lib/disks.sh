# shellcheck shell=sh disable=SC2154,SC2034 # restore.sh's globals, set and read across its parts
# The machine's disks (sourced by restore.sh): checked before anything is read or
# written, then each given its partition table.

# part_path DEVICE NUMBER: the partition's node (nvme0n1p1, sda1).
part_path() { case "$1" in *[0-9]) echo "${1}p$2" ;; *) echo "$1$2" ;; esac; }

# part_node DEVICE NUMBER: the partition's node once the kernel shows it.
part_node() {
  _node=$(part_path "$1" "$2")
  _tries=0
  while [ ! -b "$_node" ] && [ "$_tries" -lt 50 ]; do
    partx -a "$1" 2>/dev/null || true
    sleep 0.2
    _tries=$((_tries + 1))
  done
  [ -b "$_node" ] || die "partition node $_node did not appear"
  echo "$_node"
}

# disk_attr DEVICE NAME...: the first of the disk's sysfs attributes that has a value, else "-".
disk_attr() {
  _name=${1##*/}
  shift
  for _attr in "$@"; do
    [ -r "/sys/class/block/$_name/$_attr" ] || continue
    _value=$(tr -d '\000' <"/sys/class/block/$_name/$_attr" 2>/dev/null | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//') || true
    [ -z "$_value" ] || { echo "$_value"; return 0; }
  done
  echo "-"
}

# check_disks: every disk (the config's names: a by-id or by-path link names the same disk
# whatever the kernel called it this boot) present, whole, distinct, unmounted and big
# enough; sets devices (the kernel's nodes, in order) and smallest_bytes.
check_disks() {
  _need=$(jq -r .disk.min_size_bytes "$m")
  devices="" smallest_bytes=""
  for _disk in $disks; do
    [ -e "$_disk" ] || die "no such disk: $_disk (disks here: $(cd /sys/block && echo *))"
    _device=$(readlink -f "$_disk")
    [ -b "$_device" ] || die "not a block device: $_disk"
    [ ! -e "/sys/class/block/${_device##*/}/partition" ] || die "$_disk ($_device) is a partition: give the whole disk"
    case " $devices " in *" $_device "*) die "$_disk is $_device, which another --disk names too" ;; esac
    _bytes=$(blockdev --getsize64 "$_device")
    say "disk $_disk: $_device, model $(disk_attr "$_device" device/model loop/backing_file), serial $(disk_attr "$_device" serial device/serial), wwid $(disk_attr "$_device" wwid device/wwid), $_bytes bytes ($((_bytes / 1073741824)) GiB)"
    [ "$_bytes" -ge "$_need" ] || die "$_disk is too small: $_bytes bytes, the image needs at least $_need"
    if grep -q "^$_device\(p\)\{0,1\}[0-9]* " /proc/mounts /proc/swaps 2>/dev/null; then
      die "$_disk (or one of its partitions) is mounted or in use as swap"
    fi
    devices="$devices $_device"
    [ -n "$smallest_bytes" ] && [ "$smallest_bytes" -le "$_bytes" ] || smallest_bytes=$_bytes
  done
}

# install_guid: the disk GUID (GPT label-id) of every disk this install writes: made from its
# ID, so that a later boot of the same install knows a table it wrote before being cut short.
install_guid() {
  printf 'btw-img install %s' "$install_id" | sha256sum | sed 's/^\(.\{8\}\)\(.\{4\}\)\(.\{4\}\)\(.\{4\}\)\(.\{12\}\).*/\1-\2-\3-\4-\5/' | tr a-f A-F
}

# check_blank: without --wipe, nothing on any disk may be overwritten, but for a table this
# install wrote before it was cut short (its disk GUID, install_guid).
check_blank() {
  [ -z "$wipe" ] || return 0
  for _disk in $disks; do
    _device=$(readlink -f "$_disk")
    if [ -n "$install_id" ] && sfdisk -d "$_device" 2>/dev/null | grep -qix "label-id: $(install_guid)"; then
      say "$_disk ($_device) holds a table of this install ($install_id), cut short before it was done: writing it again"
      continue
    fi
    ! sfdisk -d "$_device" >/dev/null 2>&1 || die "$_disk ($_device) holds a partition table: pass --wipe to overwrite it"
    [ -z "$(dd if="$_device" bs=65536 count=16 2>/dev/null | tr -d '\000' | head -c 1)" ] ||
      die "$_disk ($_device) is not blank (data in its first MiB): pass --wipe to overwrite it"
  done
}

# captured_table: the capture's sfdisk dump without the lines that pin it to the captured disk.
captured_table() { sed -e '/^device:/d' -e '/^last-lba:/d' "$(artifact "$(jq -r .partition_table.file "$m")")"; }

# own_ids: a table (stdin) without the disk's and the partitions' GUIDs: each disk gets its own.
own_ids() { sed -e '/^label-id:/d' -e 's/, *uuid= *[0-9A-Fa-f-]*//'; }

# root_line LINE: a table (stdin) with the root partition's line replaced by LINE ("start=...").
root_line() {
  awk -v n="disk$root_number" -v line="$1" '
    $1 == n && $2 == ":" { print n " : " line; done = 1; next }
    { print }
    END { if (!done) exit 1 }' || die "the captured table has no line for the root partition $root_number"
}

# root_extent: sets root_start and root_size (sectors of sector_size bytes) for a root partition
# that ends where the smallest disk ends (before the backup GPT's 33 sectors), aligned to 1 MiB.
root_extent() {
  sector_size=$(jq -r .disk.sector_size "$m")
  root_start=$(jq -r '.partitions[] | select(.role == "root") | .start_sector' "$m")
  root_size=$(( (smallest_bytes / sector_size - 33 - root_start) / 2048 * 2048 ))
}

# write_tables: the layout's table (layout_table) on every disk, its first MiB zeroed first; with
# an install ID, the disk GUID made from it (install_guid).
write_tables() {
  if [ -n "$install_id" ]; then
    layout_table | awk -v guid="$(install_guid)" '
      /^label-id:/ { next }
      { print }
      /^label:/ { print "label-id: " guid }' >"$work_dir/table.sfdisk"
  else
    layout_table >"$work_dir/table.sfdisk"
  fi
  for _device in $devices; do
    say "writing the partition table to $_device"
    dd if=/dev/zero of="$_device" bs=65536 count=16 conv=notrunc 2>/dev/null
    sfdisk -q --wipe always --wipe-partitions always "$_device" <"$work_dir/table.sfdisk" || die "sfdisk could not write the partition table to $_device"
    partx -u "$_device" 2>/dev/null || true
  done
}
