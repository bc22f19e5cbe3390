# shellcheck shell=sh disable=SC2154 # deploy-init.sh's globals (restored_root, layout, layout_args, disk, ...)
# How the deploy environment's /init (deploy-init.sh) starts the restored system: its
# own kernel by kexec, the disk by UEFI's BootNext, or through the firmware under
# Secure Boot (sourced by deploy-init.sh from tools.img).

# load_restored_kernel: load the restored system's own kernel, initramfs and command
# line (the first entry of its GRUB config) for kexec, so that its first boot skips
# the firmware, the network boot and the boot loader: on a PC that is most of a
# minute, under emulation more. Fails (nothing loaded) when any of it is not plain.
load_restored_kernel() {
  command -v kexec >/dev/null 2>&1 || { say "no kexec in this deploy environment"; return 1; }
  [ -n "$restored_root" ] || { say "kexec: layout $layout starts its system by a reboot"; return 1; }
  mkdir -p /sysroot
  mount -t ext4 -o ro "$restored_root" /sysroot || return 1
  _grub=/sysroot/boot/grub/grub.cfg
  _kernel=$(awk '$1 == "linux" { print $2; exit }' "$_grub" 2>/dev/null)
  _initrd=$(awk '$1 == "initrd" { print $2; exit }' "$_grub" 2>/dev/null)
  _args=$(awk '$1 == "linux" { $1 = ""; $2 = ""; sub(/^ +/, ""); print; exit }' "$_grub" 2>/dev/null)
  _loaded=1
  case "$_kernel$_initrd$_args" in
    *'$'*|*'`'*) say "kexec: the restored GRUB config uses variables; rebooting instead" ;;
    *)
      if [ -f "/sysroot$_kernel" ] && [ -f "/sysroot$_initrd" ]; then
        # A plain load first, without the integrity check (purgatory's sha256 of every segment:
        # seconds under emulation, of what was just read from the disk); under Secure Boot's
        # lockdown (only when "done" was not heard) the kernel refuses it: -s, it loads and checks.
        if kexec -l -i "/sysroot$_kernel" --initrd="/sysroot$_initrd" --command-line="$_args" 2>/dev/null ||
          kexec -s -l "/sysroot$_kernel" --initrd="/sysroot$_initrd" --command-line="$_args"; then
          _loaded=0
          say "kexec: loaded ${_kernel##*/} with the restored system's command line: $_args"
        else
          say "kexec: the kernel refused ${_kernel##*/}; rebooting instead"
        fi
      else
        say "kexec: no kernel or initramfs at '$_kernel' '$_initrd' in the restored GRUB config; rebooting instead"
      fi ;;
  esac
  umount /sysroot
  return "$_loaded"
}

# release_layout: what the layout holds let go of just before the restored system starts.
# shellcheck disable=SC2086 # options and disk paths, one a word
release_layout() { "$BTW/restore.sh" $layout_args --work-dir /tmp/restore --release || true; }

# UEFI, when the restored system is not started from here: its first boot starts its
# shim at once (BootNext, used once by the firmware), not through the network;
# BootOrder stays as it is, network first, and every later boot reaches the disk
# through the server's GRUB.
boot_next_disk() {
  [ -d /sys/firmware/efi ] || return 2
  esp_number=$(jq -r '.partitions[] | select(.role == "esp") | .number' /tmp/restore/manifest.json)
  [ -n "$esp_number" ] && [ "$esp_number" != null ] || return 2
  modprobe -q efivarfs 2>/dev/null
  grep -q ' /sys/firmware/efi/efivars ' /proc/mounts || mount -t efivarfs efivarfs /sys/firmware/efi/efivars || return 1
  # An entry of an earlier install of this machine goes first.
  for old in $(efibootmgr | sed -n 's/^Boot\([0-9A-F]\{4\}\)\*\{0,1\} btw-img .*/\1/p'); do
    efibootmgr -q -b "$old" -B || return 1
  done
  entry=$(efibootmgr --create-only --disk "$(readlink -f "$disk")" --part "$esp_number" --label "btw-img restored disk" \
    --loader '\EFI\debian\shimx64.efi' | sed -n 's/^Boot\([0-9A-F]\{4\}\)\*\{0,1\} btw-img .*/\1/p' | tail -n 1)
  [ -n "$entry" ] && efibootmgr -q --bootnext "$entry"
}

# Secure Boot on (the firmware's SecureBoot variable is 1): the first boot goes through the
# firmware and shim as every later one will, so the first boot already proves the signed
# chain (shim, GRUB, kernel) that each later boot depends on.
secure_boot_on() {
  [ -d /sys/firmware/efi ] || return 1
  modprobe -q efivarfs 2>/dev/null
  grep -q ' /sys/firmware/efi/efivars ' /proc/mounts || mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null || return 1
  [ "$(od -An -tu1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c 2>/dev/null | awk '{ print $NF }')" = 1 ]
}
