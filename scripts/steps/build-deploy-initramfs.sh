#!/bin/sh
# Build the deploy environment that PXE-booted machines run: the kernel of a
# customized image and an initramfs of ours in two parts: initramfs.img (busybox,
# zstd, the image's network drivers and their firmware, deploy-init.sh as /init) and
# tools.img, which /init fetches (storage drivers, partclone, sfdisk, e2fsprogs, jq,
# deploy-env/ as /usr/lib/btw: restore.sh, its parts and layout drivers, and the layout
# table of --layout); and the image's signed shim and GRUB network image that UEFI
# machines boot first.
# shellcheck source-path=SCRIPTDIR
set -eu
umask 022

PROG=build-deploy-initramfs
USAGE="usage: build-deploy-initramfs.sh --image IMG.qcow2 --output-dir DIR --layout NAME:DRIVER:MIN:MAX... [--image-program NAME]...
         [--image-module NAME]... [--image-data /PATH]..."
# Driver folders and files of the image's kernel that go into the initramfs.
# ext4 is a module in the generic kernel (built in in the cloud one): the
# restore mounts the new root file system to write the seed; efivarfs lets it set
# a UEFI machine's BootNext.
MODULE_DIRS="kernel/drivers/net kernel/drivers/block kernel/drivers/ata kernel/drivers/scsi kernel/drivers/nvme
  kernel/drivers/virtio kernel/drivers/md kernel/net/core kernel/lib kernel/crypto
  kernel/fs/ext4 kernel/fs/jbd2 kernel/fs/mbcache.ko kernel/fs/efivarfs"
# (An entry ending in .ko is one module, compressed or not.)
# Host programs copied with their shared libraries into tools.img, which /init fetches
# once the network is up, instead of initramfs.img, which the boot loader loads through
# the firmware's network (GRUB's HTTP moved about 2 MB/s under emulation: each MB left
# out is half a second). zstd, which unpacks tools.img, goes into initramfs.img.
PROGRAMS="sfdisk partx partclone.ext4 partclone.vfat partclone.dd jq e2fsck resize2fs efibootmgr kexec wipefs blkdiscard udp-receiver"
# Driver folders (of MODULE_DIRS) that go into tools.img too.
TOOLS_MODULE_DIRS="kernel/drivers/block kernel/drivers/ata kernel/drivers/scsi kernel/drivers/nvme kernel/drivers/md kernel/fs updates"

. "$(dirname "$0")/lib/messages.sh"
. "$(dirname "$0")/lib/image-mount.sh"
. "$(dirname "$0")/lib/initramfs-parts.sh"
. "$(dirname "$0")/lib/stale-work.sh"
# What runs on the machine being deployed: the folder named here as written, so the
# step's script hash (lib/constructs/host-step.ts) covers every file in it.
deploy_env=$(readlink -f "$(dirname "$0")/../../deploy-env/")
own_mount_namespace "$@"

image="" output_dir="" layouts="" layout_entries="" image_programs="" image_modules="" image_data=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help)
      echo "$USAGE"
      echo "Writes DIR/vmlinuz, DIR/initramfs.img (zstd cpio: /init, busybox, zstd, the network drivers),"
      echo "DIR/tools.img (zstd cpio: storage drivers, the restore's programs) and, when the image has them,"
      echo "DIR/shimx64.efi and DIR/grubx64.efi (Debian's signed shim and GRUB network image) atomically."
      echo "--layout is a line of the layout table (lib/config/layout.ts: name, restore driver, fewest and"
      echo "most disks, '-' for no limit), once per layout the environment restores, the first the default;"
      echo "--image-program copies a program of the image, with the"
      echo "image's libraries, under /image in tools.img (run through the image's loader by a wrapper in"
      echo "/usr/sbin); --image-module copies a module of the image's kernel (updates/dkms too) and what it"
      echo "depends on into tools.img; --image-data copies a file or folder of the image that those programs"
      echo "read (zpool's feature sets) to the same path in tools.img."
      echo "Needs root, busybox (static), cpio, xz, jq."
      exit 0 ;;
    --image|--output-dir|--layout|--image-program|--image-module|--image-data)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case "$1" in
        --image) image=$2 ;;
        --output-dir) output_dir=$2 ;;
        --image-data)
          # A word of a list, and a path inside the image.
          case "$2" in /*/*) ;; *) usage_error "--image-data takes an absolute path such as /usr/share/zfs/compatibility.d" ;; esac
          case "$2" in *[!A-Za-z0-9_./+-]*|*/../*|*/..|*//*) usage_error "--image-data takes a plain absolute path (letters, digits, '_./+-', no '..')" ;; esac
          image_data="$image_data $2" ;;
        --layout)
          case "$2" in
            [a-z]*:[a-z]*:[0-9]*:[0-9-]*) ;;
            *) usage_error "--layout takes NAME:DRIVER:MIN:MAX (lib/config/layout.ts's layoutTable), got '$2'" ;;
          esac
          case "$2" in *[!a-z0-9:-]*|*:*:*:*:*) usage_error "--layout takes NAME:DRIVER:MIN:MAX of letters, digits and '-', got '$2'" ;; esac
          [ -f "$deploy_env/layouts/$(echo "$2" | cut -d: -f2).sh" ] || usage_error "--layout $2: no driver deploy-env/layouts/$(echo "$2" | cut -d: -f2).sh"
          layouts="$layouts ${2%%:*}"
          layout_entries="$layout_entries $2" ;;
        *)
          # These become file names and words of a list.
          case "$2" in ''|*[!A-Za-z0-9_.+-]*) usage_error "$1 takes a name of letters, digits and '_.+-'" ;; esac
          case "$1" in
            --image-program) image_programs="$image_programs $2" ;;
            --image-module) image_modules="$image_modules $2" ;;
          esac ;;
      esac
      shift 2 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

# check_inputs: the arguments and the host's tools, before anything is made.
check_inputs() {
  [ -n "$image" ] || usage_error "missing --image"
  [ -n "$output_dir" ] || usage_error "missing --output-dir"
  [ -n "$layouts" ] || usage_error "missing --layout (one per layout the environment restores)"
  [ "$(id -u)" -eq 0 ] || die "must run as root (loop devices, mount)"
  for _tool in qemu-img losetup partx mount umount chroot cpio xz zstd ldd modinfo $PROGRAMS; do
    command -v "$_tool" >/dev/null 2>&1 || die "required tool not found: $_tool"
  done
  busybox=$(command -v busybox) || die "required tool not found: busybox (Debian package busybox-static)"
  ldd "$busybox" >/dev/null 2>&1 && die "$busybox is dynamically linked: install busybox-static"
  [ -f "$image" ] || die "image not found: $image"
  mkdir -p "$(dirname "$output_dir")"
  output_dir=$(cd "$(dirname "$output_dir")" && pwd)/$(basename "$output_dir")
}

# open_image: the image's root file system mounted read-only at $mnt; sets kernel, kver, modules.
open_image() {
  say "reading the kernel and its drivers from $image"
  qemu-img convert -O raw "$image" "$work/disk.raw"
  loop=$(attach_loop "$work/disk.raw" ro)
  mkdir "$work/image"
  mount -o ro,noload "$(root_partition "$loop")" "$work/image"
  mnt=$work/image
  # Debian's generic kernel (linux-image-amd64) drives real hardware; the cloud
  # kernel only virtual machines. Use the newest generic one when the image has it.
  _kernels=$(for _file in "$mnt"/boot/vmlinuz-*; do [ -f "$_file" ] && echo "$_file"; done | sort -V)
  [ -n "$_kernels" ] || die "no /boot/vmlinuz-* in $image"
  kernel=$(echo "$_kernels" | grep -v -- '-cloud-' | tail -n 1)
  [ -n "$kernel" ] || kernel=$(echo "$_kernels" | tail -n 1)
  case "$kernel" in
    *-cloud-*) say "warning: only the cloud kernel is in $image: it lacks most drivers of physical machines (add linux-image-amd64, e.g. profile 'metal')" ;;
  esac
  kver=${kernel##*/vmlinuz-}
  modules=$mnt/lib/modules/$kver
  [ -d "$modules" ] || modules=$mnt/usr/lib/modules/$kver
  [ -d "$modules" ] || die "no modules for kernel $kver in $image"
}

# copy_boot_chain: Debian's signed boot chain, for UEFI machines (Secure Boot or not): shim
# (signed by Microsoft) loads GRUB's network image (signed by Debian) from the same TFTP
# folder, which loads this kernel (signed by Debian); sets uefi_loader.
copy_boot_chain() {
  _shim=$mnt/usr/lib/shim/shimx64.efi.signed
  _grub_net=$mnt/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed
  if [ -f "$_shim" ] && [ -f "$_grub_net" ]; then
    cp "$_shim" "$staging/shimx64.efi"
    cp "$_grub_net" "$staging/grubx64.efi"
    uefi_loader=shim
  else
    say "warning: $image has no shim-signed and grub-efi-amd64-signed: UEFI machines get iPXE, which Secure Boot refuses"
    uefi_loader=ipxe
  fi
}

close_image() {
  umount "$mnt"
  mnt=""
  losetup -d "$loop"
  loop=""
  rm -f "$work/disk.raw"
}

# assemble_trees: busybox and zstd in the initramfs; the host's programs, the storage drivers
# and deploy-env/ (as /usr/lib/btw, with the layout table) in tools.
assemble_trees() {
  "$busybox" depmod -b "$root" "$kver"
  say "assembling the initramfs (kernel $kver)"
  mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/run" "$root/mnt"
  cp "$busybox" "$root/bin/busybox"
  for _applet in $("$busybox" --list); do
    [ -e "$root/bin/$_applet" ] || ln -s busybox "$root/bin/$_applet"
  done
  copy_program "$root" zstd
  for _program in $PROGRAMS; do copy_program "$tools" "$_program"; done
  for _dir in $TOOLS_MODULE_DIRS; do
    [ -d "$root/lib/modules/$kver/$_dir" ] || continue
    mkdir -p "$tools/lib/modules/$kver/$(dirname "$_dir")"
    mv "$root/lib/modules/$kver/$_dir" "$tools/lib/modules/$kver/$_dir"
  done
  # glibc loads libgcc_s at run time (thread exit), so ldd does not name it.
  for _lib in /lib/x86_64-linux-gnu/libgcc_s.so.1 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1; do
    [ -e "$_lib" ] || continue
    mkdir -p "$root/lib/x86_64-linux-gnu"
    cp -L "$_lib" "$root/lib/x86_64-linux-gnu/libgcc_s.so.1"
    break
  done
  # Debian's merged /usr: /lib64 holds the dynamic loader.
  [ -e "$root/lib64" ] || [ ! -d "$root/usr/lib64" ] || ln -s usr/lib64 "$root/lib64"
  mkdir -p "$tools/usr/bin" "$tools/usr/lib/btw"
  cp -R "$deploy_env/restore.sh" "$deploy_env/erase.sh" "$deploy_env/lib" "$deploy_env/layouts" "$tools/usr/lib/btw/"
  cp "$deploy_env/disk-links.sh" "$tools/usr/bin/"
  cp "$deploy_env/inventory.sh" "$tools/usr/bin/btw-inventory"
  cp "$deploy_env/deploy-init.sh" "$root/init"
  cp "$deploy_env/udhcpc.script" "$root/etc/udhcpc.script"
  cp "$deploy_env/report.sh" "$root/usr/bin/btw-report"
  chmod 755 "$root/init" "$root/etc/udhcpc.script" "$root/usr/bin/btw-report" "$tools/usr/lib/btw/restore.sh" "$tools/usr/lib/btw/erase.sh" "$tools/usr/bin/disk-links.sh" "$tools/usr/bin/btw-inventory"
  # The layout table: the layouts this environment restores, one a line, the default first.
  for _entry in $layout_entries; do echo "$_entry"; done >"$tools/usr/lib/btw/layouts.tab"
  ln -s /proc/mounts "$root/etc/mtab"
  # The machine's clock may be anything before NTP: e2fsck must not stop on it.
  printf '[options]\nbroken_system_clock = 1\n' >"$root/etc/e2fsck.conf"
}

# pack: both trees as zstd cpio archives, build.json beside them, the folder swapped in whole.
pack() {
  (cd "$root" && find . | sort | cpio -o -H newc --quiet -R 0:0) | zstd -q -19 -T0 -o "$staging/initramfs.img"
  (cd "$tools" && find . | sort | cpio -o -H newc --quiet -R 0:0) | zstd -q -19 -T0 -o "$staging/tools.img"
  jq -n --arg kver "$kver" --arg image "$(basename "$image")" --arg loader "$uefi_loader" \
    --arg layouts "$layouts" --arg programs "$image_programs" --arg modules "$image_modules" --arg data "$image_data" \
    'def words: split(" ") | map(select(. != ""));
     {kernel_version: $kver, source_image: $image, uefi_loader: $loader,
      layouts: ($layouts | words), image_programs: ($programs | words), image_modules: ($modules | words), image_data: ($data | words)}' >"$staging/build.json"
  [ ! -e "$output_dir" ] || mv "$output_dir" "$work/previous"
  mv "$staging" "$output_dir"
  say "wrote $output_dir/vmlinuz, initramfs.img ($(du -h "$output_dir/initramfs.img" | cut -f1)) and tools.img ($(du -h "$output_dir/tools.img" | cut -f1))"
}

check_inputs
release_stale_work "$output_dir.build"
work="" loop="" mnt=""
on_exit release_taken
work=$(mktemp -d "$output_dir.build-XXXXXX")
mark_work "$work"
staging=$work/out
root=$work/initramfs
tools=$work/tools
mkdir -p "$staging" "$root" "$tools"

open_image
cp "$kernel" "$staging/vmlinuz"
copy_kernel_modules
copy_layout_modules
copy_image_programs
copy_image_data
copy_firmware
copy_boot_chain
close_image
assemble_trees
pack
