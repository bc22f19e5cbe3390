#!/bin/sh
# /init of the deploy environment (scripts/steps/build-deploy-initramfs.sh): bring
# up the NIC that PXE-booted, restore the image onto the disk with
# restore.sh, report to the PXE server, then start the restored system:
# btw.after=kexec (the machine's first_boot default) kexecs its own kernel where
# it can (not under Secure Boot), else it reboots, as btw.after=reboot always does.
# A restore happens once: when "done" does not reach the server, the machine
# boots the restored disk from here instead of rebooting into the network, and
# a later network boot finds its own install on the disk and restores nothing.
# Disks that hold another btw-img install (the server lost its records of it) are
# kept as they are and started ("kept"), unless btw.replace=1 (a reinstall of
# this machine) asks to replace it.
# The machine's token: /etc/btw-token, from the archive its boot loader loads beside this
# initramfs (never on the command line, which consoles print).
# Kernel command line: btw.server=URL btw.mac=MAC btw.manifest=URL
#   btw.tools=URL btw.tools_sha256=HEX (tools.img: storage drivers and the restore's
#   programs, fetched once the network is up)
#   [btw.manifest_sha256=HEX] [btw.seed=URL (the seed is at URL/TOKEN/) btw.seed_sha256=HEX] [btw.layout=NAME] [btw.disk=/dev/X ...] [btw.wipe=1] [btw.replace=1]
#   [btw.after=kexec|reboot|poweroff] [btw.erase=quick|full (a release: erase.sh, then off)]
#   [btw.multicast=URL (the server's multicast session table) btw.multicast_wait=SECONDS]
# btw.layout= names a line of the layout table (/usr/lib/btw/layouts.tab; none: its first);
# btw.disk= comes once per disk of the layout, in order; none: the machine's only disk.
# Nothing here knows a layout: restore.sh and its drivers do.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

# Only as the deploy environment's /init (process 1): run anywhere else it would
# mount over that system's /proc, /dev, /tmp and /run and reboot it.
if [ "$$" -ne 1 ]; then
  echo "deploy-init.sh: the deploy environment's /init; it runs only as process 1 of that initramfs, never on a running system" >&2
  exit 2
fi

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp /run
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
# The kernel loads modules it needs on its own (e.g. ext4 for a mount) through
# this helper; its default, /sbin/modprobe, is not where busybox put it.
echo /bin/modprobe >/proc/sys/kernel/modprobe

# Seconds since the deploy kernel started: where a slow deploy spends its time.
say() { echo "btw-deploy [$(cut -d' ' -f1 /proc/uptime)s]: $*"; }

# Without btw.after (a server older than first_boot): a reboot, as before.
server="" mac="" token="" manifest="" manifest_sha256="" tools="" tools_sha256="" seed="" seed_sha256="" disks="" layout="" wipe="" replace="" erase="" after=reboot
multicast="" multicast_wait=300
# shellcheck disable=SC2013 # the kernel's command line is words
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    btw.server=*) server=${arg#*=} ;;
    btw.mac=*) mac=$(echo "${arg#*=}" | tr 'A-F' 'a-f') ;;
    btw.manifest=*) manifest=${arg#*=} ;;
    btw.manifest_sha256=*) manifest_sha256=${arg#*=} ;;
    btw.seed_sha256=*) seed_sha256=${arg#*=} ;;
    btw.tools=*) tools=${arg#*=} ;;
    btw.tools_sha256=*) tools_sha256=${arg#*=} ;;
    btw.seed=*) seed=${arg#*=} ;;
    btw.disk=?*) disks="$disks ${arg#*=}" ;;
    btw.layout=*) layout=${arg#*=} ;;
    btw.wipe=1) wipe=--wipe ;;
    btw.replace=1) replace=--replace ;;
    btw.erase=quick|btw.erase=full) erase=${arg#*=} ;;
    btw.after=*) after=${arg#*=} ;;
    btw.multicast=*) multicast=${arg#*=} ;;
    btw.multicast_wait=*) multicast_wait=${arg#*=} ;;
  esac
done

# report STATUS [TRIES [PERCENT [NOTE]]]: tell the server (btw-report), trying every 3 seconds;
# fails when it never answered.
report() { btw-report --tries "${2:-1}" "$1" "${3:-}" "${4:-}"; }

fail() {
  say "FAILED: $*"
  report failed 1 "" "$*" || true
  say "nothing more happens on its own; a shell is open on the console"
  exec sh </dev/console >/dev/console 2>&1
}

# Drivers for the hardware present, by modalias; twice, as buses load more devices.
# A device that has its driver already is skipped: each modprobe reads the whole
# alias index, seconds in all under emulation. (Before tools.img is here only the
# network's drivers can load; the storage ones fail quietly until then.)
# The second pass skips what the first could not load (the same modules are there).
load_drivers() {
  : >/tmp/no-driver
  for _pass in 1 2; do
    for alias_file in /sys/bus/*/devices/*/modalias; do
      { [ -f "$alias_file" ] && [ ! -e "${alias_file%/modalias}/driver" ]; } || continue
      _alias=$(cat "$alias_file")
      grep -qxF "$_alias" /tmp/no-driver && continue
      modprobe -q "$_alias" 2>/dev/null || echo "$_alias" >>/tmp/no-driver
    done
    [ "$_pass" = 2 ] || sleep 1
  done
}
load_drivers

[ ! -f /etc/btw-token ] || read -r token </etc/btw-token || token=""
[ -n "$token" ] || fail "no token in /etc/btw-token: the boot loader did not load the machine's token archive beside the initramfs"
{ [ -n "$server" ] && [ -n "$mac" ] && [ -n "$manifest" ] && [ -n "$tools" ] && [ -n "$tools_sha256" ]; } ||
  fail "btw.server, btw.mac, btw.manifest, btw.tools and btw.tools_sha256 are required on the kernel command line"

iface=""
tries=0
while [ -z "$iface" ] && [ "$tries" -lt 30 ]; do
  for dev in /sys/class/net/*; do
    [ "$(cat "$dev/address" 2>/dev/null)" = "$mac" ] && iface=${dev##*/}
  done
  [ -n "$iface" ] || sleep 1
  tries=$((tries + 1))
done
[ -n "$iface" ] || fail "no network interface has MAC $mac (interfaces: $(cd /sys/class/net && echo *))"
ip link set lo up
ip link set "$iface" up
say "DHCP on $iface ($mac)"
udhcpc -i "$iface" -n -q -t 20 -T 3 -s /etc/udhcpc.script || fail "no DHCP answer on $iface"
# Where btw-report (this script's reports and the restore's progress) reaches the server.
printf "server='%s'\nmac='%s'\n" "$server" "$mac" >/run/btw-report
# The server serves this boot's seed from this report on: it is worth a few tries.
report deploy-env-up 5 || true

# The rest of the deploy environment, over Linux's network (much faster than the boot loader's).
wget -q -O /tmp/tools.img "$tools" || fail "cannot download $tools"
[ "$(sha256sum /tmp/tools.img | cut -d' ' -f1)" = "$tools_sha256" ] || fail "$tools does not match its sha256 (btw.tools_sha256)"
(cd / && zstd -q -dc /tmp/tools.img | cpio -i -d -m 2>/dev/null) || fail "cannot unpack $tools"
rm -f /tmp/tools.img
say "tools unpacked; loading the storage drivers"
load_drivers
# No udev here: the disk's by-id and by-path links, for a disk named that way.
disk-links.sh 2>/dev/null || say "could not create all /dev/disk links"
# What the machine is made of, for `btw metal inventory` (disks by serial for the config).
{ btw-inventory >/tmp/inventory.json && btw-report --tries 3 --inventory /tmp/inventory.json; } || say "could not report the inventory"
# The restore reports how far it is through the same client.
export BTW_PROGRESS=btw-report

# machine_disks: the machine's own disks (not removable, not empty), as /dev paths.
machine_disks() {
  for block in /sys/block/*; do
    name=${block##*/}
    case "$name" in loop*|ram*|sr*|zram*|nbd*|md*|dm-*|fd*) continue ;; esac
    [ "$(cat "$block/removable" 2>/dev/null)" = 0 ] && [ "$(cat "$block/size")" -gt 0 ] && printf ' /dev/%s' "$name"
  done
  return 0
}

BTW=/usr/lib/btw
# A release (btw.erase=): the disks named, else all of the machine's, erased; then released, off.
if [ -n "$erase" ]; then
  targets=${disks:-$(machine_disks)}
  [ -n "$targets" ] || fail "no disk to erase"
  report erasing 1 0 || true
  # shellcheck disable=SC2046,SC2086 # disk paths, one a word
  "$BTW/erase.sh" --mode "$erase" $(printf -- ' --disk %s' $targets) || fail "the $erase erase of$targets failed: its messages are above"
  report released 20 || say "could not report released to $server"
  say "erased ($erase):$targets; powering off"
  sync
  sleep 2
  poweroff -f
fi

# The layouts this environment restores are its layout table's (build-deploy-initramfs.sh
# --layout); anything else stops here, before anything is written, once the network is up
# so that the server hears 'failed'.
# shellcheck source=lib/layout-table.sh # deploy-env/ is /usr/lib/btw there
. "$BTW/lib/layout-table.sh"
layout_lookup "$BTW/layouts.tab" "$layout" || fail "$layout_error: deploy the baremetal stack again"
# shellcheck disable=SC2086 # disk paths, one a word
set -- $disks
# No disk named: the machine's only disk, where the layout takes one.
if [ $# -gt 0 ] || ! layout_takes 1; then
  layout_takes $# || fail "$layout_error on the kernel command line:${disks:- none}"
fi
disk=${1:-}
if [ -z "$disk" ]; then
  candidates=$(machine_disks)
  # shellcheck disable=SC2086 # disk paths, one a word
  set -- $candidates
  [ $# -eq 1 ] || fail "cannot choose the disk (found:${candidates:- none}); set the machine's disk in the config"
  disk=$1
fi

# The seed first: the server serves it to this boot only until it reports started.
# shellcheck source=lib/seed.sh # deploy-env/ is /usr/lib/btw there
. "$BTW/lib/seed.sh"
seed_dir=""
[ -z "$seed" ] || { seed_dir=/tmp/seed && download_seed "$seed_dir"; }
report started || true
say "restoring $manifest onto${disks:- $disk} (layout $layout)"
# The disk keeps this install's ID (not the token itself): a second boot of the same install finds it there.
install_id=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
# One --disk per disk, in the machine's order; the same for asking the restore how the system starts.
layout_args="--layout $layout"
for each in ${disks:-$disk}; do layout_args="$layout_args --disk $each"; done
status=0
# shellcheck disable=SC2086 # options and disk paths, one a word
"$BTW/restore.sh" $layout_args --manifest "$manifest" ${manifest_sha256:+--manifest-sha256 "$manifest_sha256"} ${seed_dir:+--seed-dir "$seed_dir/"} ${seed_sha256:+--seed-sha256 "$seed_sha256"} ${multicast:+--multicast "$multicast" --multicast-interface "$iface" --multicast-wait "$multicast_wait"} $wipe $replace --work-dir /tmp/restore --install-id "$install_id" || status=$?
# What the server hears: done (restored now or before), or kept (another install left as it is).
outcome="done" outcome_text="restore done"
case "$status" in
  0) ;;
  3) say "the disk already holds this install: nothing restored" ;;
  4) outcome=kept outcome_text="install kept"; say "the disks hold another btw-img install, kept as it is: reinstall this machine to replace it" ;;
  *) fail "the restore ($layout onto${disks:- $disk}) failed: its messages are above" ;;
esac

# The restored root to start from here, as the layout has it (none: a reboot starts it).
# shellcheck disable=SC2086 # options and disk paths, one a word
restored_root=$("$BTW/restore.sh" $layout_args --work-dir /tmp/restore --print-root) || restored_root=""

# How the restored system starts from here (kexec, BootNext, Secure Boot): functions of lib/start.sh.
# shellcheck source=lib/start.sh # deploy-env/ is /usr/lib/btw there
. "$BTW/lib/start.sh"

if report "$outcome" 20; then
  if [ "$after" = kexec ] && secure_boot_on; then
    say "Secure Boot is on: the restored system starts through the firmware (no kexec)"
  elif [ "$after" = kexec ] && load_restored_kernel; then
    say "$outcome_text; starting the restored system (kexec)"
    sync
    release_layout
    kexec -e
    say "kexec -e returned; rebooting instead"
  fi
  boot_next=0
  boot_next_disk || boot_next=$?
  case "$boot_next" in
    0) say "UEFI: the next boot starts the restored disk (BootNext)" ;;
    1) say "UEFI: could not set BootNext; the next boot reaches the disk through the server" ;;
  esac
  [ "$after" = poweroff ] || after=reboot
  say "$outcome_text; $after"
  sync
  release_layout
  sleep 2
  if [ "$after" = poweroff ]; then poweroff -f; else reboot -f; fi
fi

# The server did not hear the outcome, so a reboot would reach the deploy script again:
# start the restored system from here, with its own kernel when kexec can, else
# with this one (the deploy kernel is the image's own).
say "the server did not confirm; booting the restored disk directly"
if [ "$after" = kexec ] && load_restored_kernel; then
  sync
  release_layout
  kexec -e
fi
if [ -z "$restored_root" ]; then
  # The disks hold this install's ID, so the next deploy boot leaves them.
  say "layout $layout starts its system by a reboot"
  sleep 2
  reboot -f
fi
root=$restored_root
mkdir -p /sysroot
mount -t ext4 -o ro "$root" /sysroot || fail "cannot mount the restored root $root"
[ -e /sysroot/sbin/init ] || [ -L /sysroot/sbin/init ] || fail "no /sbin/init on $root"
umount /tmp
for fs in dev proc sys run; do mount -o move "/$fs" "/sysroot/$fs"; done
exec switch_root /sysroot /sbin/init
