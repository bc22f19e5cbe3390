# shellcheck shell=sh disable=SC2154,SC2034 # restore.sh's globals, set and read across its parts
# The captured partitions onto the disks (sourced by restore.sh): root where the
# layout puts it (layout_write_root), the others (ESP, BIOS boot) onto every disk,
# and the BIOS boot code onto every disk.

# restore_partition TOOL ARTIFACT DEVICE: one partclone artifact onto DEVICE.
restore_partition() {
  # -i: no CRC of every block; the artifact's sha256 was checked before anything was
  # written (and zstd checks its frames): under emulation the CRC took half the restore.
  _mode="-r -i"
  [ "$1" = partclone.dd ] && _mode="-i"
  rm -f "$work_dir/partclone.failed"
  # partclone's progress (-B: a line every 2 seconds, -f 2) goes to its own file, which follow reads.
  : >"$work_dir/partclone.progress"
  # shellcheck disable=SC2086,SC2094 # the mode is several options; the log is only appended to
  zstd -dc "$(artifact "$2")" | { "$1" $_mode -B -f 2 -L "$work_dir/partclone.log" -s - -o "$3" 2>"$work_dir/partclone.progress" >>"$work_dir/partclone.log" || echo $? >"$work_dir/partclone.failed"; } &
  # shellcheck disable=SC2016 # the command is follow's, run by it
  follow $! writing 'tr "\r" "\n" <"$work_dir/partclone.progress" | sed -n "s/.*Completed: *\([0-9]*\).*/\1/p" | tail -n 1' "${3##*/}"
  cat "$work_dir/partclone.progress" >>"$work_dir/partclone.log"
  if [ -e "$work_dir/partclone.failed" ]; then
    cat "$work_dir/partclone.log" >&2
    die "$1 could not restore $3"
  fi
}

# write_partitions: every partition of the manifest, then the boot code.
write_partitions() {
  jq -r '.partitions[] | "\(.number) \(.tool) \(.artifact) \(.role)"' "$m" >"$work_dir/partitions"
  while read -r _number _tool _file _role; do
    # What the layout writes instead, prepared by the capture (layout_prepared).
    _prepared=$(prepared_for "$_number")
    [ -z "$_prepared" ] || { _tool=${_prepared%% *} _file=${_prepared#* }; }
    case "$_role:$_tool" in *:partclone.ext4|*:partclone.vfat|*:partclone.dd|root:tar) ;; *) die "partition $_number: unsupported tool '$_tool'" ;; esac
    [ "$_tool" = tar ] || need "$_tool"
    if [ "$_role" = root ]; then
      layout_write_root "$_tool" "$_file"
      continue
    fi
    for _device in $devices; do
      _node=$(part_node "$_device" "$_number")
      say "restoring partition $_number ($_role) from $_file with $_tool onto $_node"
      restore_partition "$_tool" "$_file" "$_node"
    done
  done <"$work_dir/partitions"
  for _device in $devices; do
    say "writing the BIOS boot code (first 440 bytes) to $_device"
    dd if="$(artifact "$(jq -r .boot_code.file "$m")")" of="$_device" bs=440 count=1 conv=notrunc 2>/dev/null
  done
}

# grow_ext4 DEVICE: the restored ext4 file system checked and grown to DEVICE's end.
grow_ext4() {
  say "growing the root file system on $1"
  e2fsck -f -p "$1" >&2 || [ $? -le 1 ] || die "e2fsck found errors on $1"
  resize2fs "$1" >&2 2>&1 || die "resize2fs failed on $1"
}
