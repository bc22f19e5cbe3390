#!/bin/sh
# /dev/disk/by-id and /dev/disk/by-path links in the deploy environment, which
# has no udev: the names udev's persistent-storage rules give whole disks, read
# from sysfs, so a machine's `disk` may name its disk by serial, WWN or slot.
# by-id: virtio-SERIAL, nvme-MODEL_SERIAL, nvme-WWID, ata-MODEL_SERIAL, wwn-0xWWN.
# by-path: pci-ADDR (virtio), pci-ADDR-nvme-NSID, pci-ADDR-ata-PORT.N (and ata-PORT),
#   pci-ADDR-scsi-H:C:T:L, pci-ADDR-usb-0:PORT-scsi-H:C:T:L.
# Runs under busybox sh (deploy-init.sh) and on hosts (tests, with --sys/--dev).
set -eu

PROG=disk-links
USAGE="usage: disk-links.sh [--sys DIR] [--dev DIR]"

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
usage_error() { say "$*"; echo "$USAGE" >&2; exit 2; }

sys=/sys dev=/dev
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) echo "$USAGE"; echo "Creates DEV/disk/by-id and DEV/disk/by-path links for the disks in SYS/block."; exit 0 ;;
    --sys|--dev)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case "$1" in --sys) sys=$2 ;; --dev) dev=$2 ;; esac
      shift 2 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

# attr FILE: a sysfs value without surrounding blanks (empty when absent).
attr() {
  [ -r "$1" ] || return 0
  tr -d '\n\000' <"$1" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'
}
# udev's escaping of an id: blank runs become one '_', other unsafe characters '_'.
clean() { printf '%s' "$1" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e 's/[[:space:]][[:space:]]*/_/g' -e 's/[^A-Za-z0-9#+.:=@_-]/_/g'; }
# identify FILE OFFSET LENGTH: an ATA IDENTIFY string (byte-swapped words) from VPD page 89h.
# The second dd waits for the whole string (fullblock): swapping each short read from the pipe
# on its own shifted the pairs, and a busy machine got a wrong serial.
identify() {
  dd if="$1" bs=1 skip=$((60 + $2)) count="$3" 2>/dev/null | dd bs="$3" iflag=fullblock conv=swab 2>/dev/null | tr -d '\000' |
    sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'
}

link() {
  [ -n "$2" ] || return 0
  mkdir -p "$dev/disk/$1"
  ln -sfn "../../$3" "$dev/disk/$1/$2"
  say "$dev/disk/$1/$2 -> $3"
}

# by_path DEVICE_DIR: the ID_PATH udev's path_id builds, walking up from the disk
# (and for ATA a second line: the older name udev also links, without the device number).
by_path() {
  _dir=$1 _path="" _transport="" _parent="" _compat=""
  while [ "$_dir" != / ] && [ "$_dir" != "$sys/devices" ] && [ "$_dir" != "$sys" ]; do
    _name=${_dir##*/}
    _subsystem=""
    [ -L "$_dir/subsystem" ] && _subsystem=$(basename "$(readlink "$_dir/subsystem")")
    case "$_subsystem:$_name" in
      pci:*)
        # The innermost PCI device names the slot; its bridges do not.
        [ -n "$_parent" ] || _path="pci-$_name${_path:+-$_path}"
        _parent=pci ;;
      nvme:*) [ -n "$_transport" ] || { _path="nvme-$(attr "$1/nsid")"; _transport=nvme; } ;;
      virtio:*) _transport=virtio ;;
      scsi:*:*:*:*)
        _transport=scsi
        case "$_dir" in
          */ata[0-9]*)
            _ata=$(printf '%s\n' "$_dir" | sed -n 's|.*/\(ata[0-9][0-9]*\)/.*|\1|p')
            _port=$(attr "$sys/class/ata_port/$_ata/port_no")
            [ -n "$_port" ] || return 0
            # Behind a port multiplier the bus numbers the drive, else the target (master/slave).
            _bus=$(echo "$_name" | cut -d: -f2) _target=$(echo "$_name" | cut -d: -f3)
            if [ "$_bus" != 0 ]; then _path="ata-$_port.$_bus.0"; else _path="ata-$_port.$_target"; fi
            _compat="ata-$_port" ;;
          */end_device-*|*/rport-*|*/session*|*/vmbus_*|*/VMBUS*) return 0 ;;
          *)
            # Host numbers are global: udev counts from the lowest host of the same controller.
            _hostdir=$(printf '%s\n' "$_dir" | sed -n 's|\(.*/host[0-9][0-9]*\)/.*|\1|p')
            _base=$(for _h in "${_hostdir%/*}"/host*; do echo "${_h##*/host}"; done | sort -n | head -n 1)
            _host=${_name%%:*}
            _path="scsi-$((_host - _base)):${_name#*:}" ;;
        esac ;;
      usb:*-*)
        # The first USB interface or device above the disk: its port path.
        case "$_transport" in scsi|"") _path="usb-0:${_name#*-}${_path:+-$_path}"; _transport=usb ;; esac ;;
    esac
    _dir=${_dir%/*}
  done
  [ "$_parent" = pci ] && [ -n "$_transport" ] || return 0
  echo "$_path"
  [ -z "$_compat" ] || echo "${_path%-ata-*}-$_compat"
}

for block in "$sys"/block/*; do
  [ -e "$block" ] || continue
  name=${block##*/}
  case "$name" in loop*|ram*|sr*|zram*|nbd*|md*|dm-*|fd*) continue ;; esac
  device=$(readlink -f "$block")
  case "$name" in
    vd*) link by-id "$(clean "virtio-$(attr "$block/serial")")" "$name" ;;
    nvme*)
      model=$(attr "$block/device/model") serial=$(attr "$block/device/serial")
      [ -z "$model$serial" ] || link by-id "nvme-$(clean "$model")_$(clean "$serial")" "$name"
      wwid=$(attr "$block/wwid")
      [ -z "$wwid" ] || link by-id "nvme-$(clean "$wwid")" "$name" ;;
    sd*)
      wwid=$(attr "$block/device/wwid")
      case "$wwid" in naa.*) link by-id "wwn-0x$(clean "${wwid#naa.}")" "$name" ;; esac
      if [ "$(attr "$block/device/vendor")" = ATA ]; then
        # The full model and serial are in the drive's IDENTIFY data; sysfs's model is cut at 16 characters.
        if [ -r "$block/device/vpd_pg89" ]; then
          model=$(identify "$block/device/vpd_pg89" 54 40) serial=$(identify "$block/device/vpd_pg89" 20 20)
        else
          model=$(attr "$block/device/model") serial=$(tail -c +5 "$block/device/vpd_pg80" 2>/dev/null | tr -d '\000' | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
        fi
        [ -z "$serial" ] || link by-id "ata-$(clean "$model")_$(clean "$serial")" "$name"
      fi ;;
  esac
  for path in $(by_path "$device"); do link by-path "$path" "$name"; done
done
