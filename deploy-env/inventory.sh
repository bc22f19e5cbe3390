#!/bin/sh
# btw-inventory: this machine's hardware as JSON on stdout, as the deploy environment
# sees it (sysfs, /proc, efivars): disks (name, size, model, serial, by-id path,
# rotational), NICs (MAC, link, speed, driver), CPUs, memory, firmware mode and
# Secure Boot state. Needs jq (tools.img).
set -u
read_file() { { tr -d '\n' <"$1"; } 2>/dev/null | sed 's/[[:space:]]*$//'; }

disks() {
  for block in /sys/block/*; do
    name=${block##*/}
    case "$name" in loop*|ram*|sr*|zram*|nbd*|md*|dm-*|fd*) continue ;; esac
    [ -e "$block/device" ] || continue
    serial=$(read_file "$block/device/serial")
    [ -n "$serial" ] || serial=$(read_file "$block/serial")
    by_id=""
    for link in /dev/disk/by-id/*; do
      [ -L "$link" ] && [ "$(readlink -f "$link")" = "/dev/$name" ] && { by_id=$link; break; }
    done
    jq -n --arg name "/dev/$name" --argjson sectors "$(read_file "$block/size")" --arg model "$(read_file "$block/device/model")" \
      --arg serial "$serial" --arg by_id "$by_id" --arg rotational "$(read_file "$block/queue/rotational")" \
      '{name: $name, size_bytes: ($sectors * 512), model: $model, serial: $serial, by_id: $by_id, rotational: ($rotational == "1")}'
  done | jq -s .
}

nics() {
  for dev in /sys/class/net/*; do
    name=${dev##*/}
    [ -e "$dev/device" ] || continue
    driver=$(readlink "$dev/device/driver" 2>/dev/null)
    speed=$(read_file "$dev/speed")
    case "$speed" in ''|-*|*[!0-9]*) speed=null ;; esac
    jq -n --arg name "$name" --arg mac "$(read_file "$dev/address")" --arg carrier "$(read_file "$dev/carrier")" \
      --argjson speed "$speed" --arg driver "${driver##*/}" \
      '{name: $name, mac: $mac, link: ($carrier == "1"), speed_mbps: $speed, driver: $driver}'
  done | jq -s .
}

firmware=bios secure_boot=false
if [ -d /sys/firmware/efi ]; then
  firmware=uefi
  # The firmware's variables, where nothing has mounted them yet.
  if ! grep -q ' /sys/firmware/efi/efivars ' /proc/mounts; then
    modprobe -q efivarfs 2>/dev/null || true
    mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null || true
  fi
  variable=/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
  [ "$(od -An -tu1 "$variable" 2>/dev/null | awk '{ print $NF }')" != 1 ] || secure_boot=true
fi
jq -n --argjson disks "$(disks)" --argjson nics "$(nics)" \
  --argjson cpus "$(grep -c '^processor' /proc/cpuinfo)" --arg cpu_model "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
  --argjson memory_kib "$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)" --arg firmware "$firmware" --argjson secure_boot "$secure_boot" \
  '{disks: $disks, nics: $nics, cpus: $cpus, cpu_model: $cpu_model, memory_bytes: ($memory_kib * 1024), firmware: $firmware, secure_boot: $secure_boot}'
