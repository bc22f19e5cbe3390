#!/bin/sh
# Build a stand-in for Debian's official "generic" cloud image (cloud.debian.org
# is unreachable from the build machines): same archive name, same disk.raw
# layout, same SHA512SUMS format. Used as a test fixture only.
set -eu

prog=build-test-image
usage="usage: build-test-image.sh --release trixie|bookworm --output-dir DIR [--mirror URL]"

log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { log "error: $*"; exit 1; }

release="" outdir="" mirror=http://deb.debian.org/debian
while [ $# -gt 0 ]; do
  case $1 in
    --release) [ $# -ge 2 ] || die "--release needs a value"; release=$2; shift 2 ;;
    --output-dir) [ $# -ge 2 ] || die "--output-dir needs a value"; outdir=$2; shift 2 ;;
    --mirror) [ $# -ge 2 ] || die "--mirror needs a value"; mirror=$2; shift 2 ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "$usage" >&2; die "unknown argument: $1" ;;
  esac
done
[ -n "$release" ] && [ -n "$outdir" ] || { echo "$usage" >&2; exit 2; }
case $release in
  trixie) version=13 ;;
  bookworm) version=12 ;;
  *) die "unsupported release '$release' (trixie or bookworm)" ;;
esac
[ "$(id -u)" = 0 ] || die "must run as root (loop devices, mounts, chroot)"
for tool in mmdebstrap sfdisk losetup partx mkfs.ext4 mkfs.vfat mmd mcopy dd xz tar sha512sum flock; do
  command -v "$tool" >/dev/null || die "missing tool: $tool"
done

name=debian-$version-generic-amd64
# The stamp ties a build to this exact script and release, so edits rebuild.
stamp=$({ cat "$0"; echo "release=$release"; } | sha256sum | cut -d' ' -f1)
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
# Parallel test runs share fixtures: one builds, the others wait and reuse it.
exec 9<"$outdir"
flock -n 9 || { log "waiting for another build into $outdir"; flock 9; }
if [ -f "$outdir/$name.tar.xz" ] && [ -f "$outdir/SHA512SUMS" ] &&
   [ "$(cat "$outdir/.builder-sha256" 2>/dev/null)" = "$stamp" ]; then
  log "cached: $outdir/$name.tar.xz"
  exit 0
fi

work="" loopdev="" mnt=""
cleanup() {
  status=$?
  set +e
  if [ -n "$mnt" ]; then
    for m in "$mnt/sys" "$mnt/proc" "$mnt/dev" "$mnt"; do
      mountpoint -q "$m" && umount "$m"
    done
  fi
  [ -n "$loopdev" ] && losetup -d "$loopdev"
  if [ -n "$work" ]; then
    # Never rm -rf through a mount that failed to unmount (e.g. the /dev bind).
    if awk -v w="$work/" 'index($5 "/", w) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
      log "warning: mounts remain under $work; not removing it"
    else
      rm -rf "$work"
    fi
  fi
  [ $status -eq 0 ] || log "failed (exit $status)"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

work=$(mktemp -d "$(dirname "$outdir")/.$(basename "$outdir").build.XXXXXX")
log "building $name in $work"

packages=systemd-sysv,linux-image-cloud-amd64,cloud-init,cloud-initramfs-growroot
packages=$packages,grub-pc-bin,grub-efi-amd64-bin,grub2-common,netplan.io,systemd-resolved
packages=$packages,dbus,udev,kmod,e2fsprogs,openssh-server,netbase,ca-certificates,sudo
packages=$packages,iproute2,iputils-ping,less,zstd
log "mmdebstrap $release (minbase + cloud packages)"
mmdebstrap --variant=minbase --include="$packages" "$release" "$work/rootfs.tar" "$mirror" </dev/null

# Layout of Debian's cloud images: p14 BIOS boot, p15 ESP, p1 root to the end.
log "partitioning a 3 GiB disk"
truncate -s 3G "$work/disk.raw"
sfdisk --quiet "$work/disk.raw" <<EOF
label: gpt
unit: sectors

p14 : start=2048, size=6144, type=21686148-6449-6E6F-744E-656564454649
p15 : start=8192, size=253952, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
p1 : start=262144, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709
EOF

loopdev=$(losetup -f --show -P "$work/disk.raw")
for _ in 1 2 3 4 5 6 7 8 9 10; do
  [ -b "${loopdev}p1" ] && [ -b "${loopdev}p15" ] && break
  partx -a "$loopdev" 2>/dev/null || true
  sleep 0.2
done
[ -b "${loopdev}p1" ] && [ -b "${loopdev}p15" ] || die "partition nodes for $loopdev did not appear"

# Like Debian: no filesystem labels; fstab and the kernel find filesystems by UUID.
root_uuid=$(cat /proc/sys/kernel/random/uuid)
efi_volid=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n' | tr a-f A-F)
efi_uuid=$(echo "$efi_volid" | sed 's/^\(....\)/\1-/')
log "formatting root (ext4 $root_uuid) and ESP (vfat $efi_uuid)"
mkfs.ext4 -q -U "$root_uuid" "${loopdev}p1"
tune2fs -c 0 -i 0 "${loopdev}p1" >/dev/null

mnt=$work/root
mkdir "$mnt"
mount "${loopdev}p1" "$mnt"
log "unpacking the root filesystem"
tar -C "$mnt" --numeric-owner --xattrs --xattrs-include='*' -xpf "$work/rootfs.tar"
rm "$work/rootfs.tar"
[ -e "$mnt/vmlinuz" ] && [ -e "$mnt/initrd.img" ] || die "kernel symlinks /vmlinuz and /initrd.img missing"
# grub-install in the chroot needs the loop device nodes, /proc and /sys.
mount --bind /dev "$mnt/dev"
mount -t proc proc "$mnt/proc"
mount -t sysfs sysfs "$mnt/sys"

log "configuring the image like Debian's"
cat >"$mnt/etc/fstab" <<EOF
# /etc/fstab: static file system information
UUID=$root_uuid / ext4 rw,discard,errors=remount-ro,x-systemd.growfs 0 1
UUID=$efi_uuid /boot/efi vfat defaults 0 0
EOF
mkdir -p "$mnt/boot/efi"

rm -f "$mnt/etc/apt/sources.list" "$mnt"/etc/apt/sources.list.d/*
mkdir -p "$mnt/etc/apt/mirrors"
echo https://deb.debian.org/debian >"$mnt/etc/apt/mirrors/debian.list"
echo https://deb.debian.org/debian-security >"$mnt/etc/apt/mirrors/debian-security.list"
cat >"$mnt/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb deb-src
URIs: mirror+file:///etc/apt/mirrors/debian.list
Suites: $release $release-updates $release-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: mirror+file:///etc/apt/mirrors/debian-security.list
Suites: $release-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

# Without a system locale, cloud-init's locale module tries to generate
# en_US.UTF-8 and fails on bookworm.
echo LANG=C.UTF-8 >"$mnt/etc/default/locale"
chroot "$mnt" systemctl enable --quiet systemd-resolved.service
ln -sf /run/systemd/resolve/resolv.conf "$mnt/etc/resolv.conf"

# Identity is created at first boot: machine-id, hostname, SSH host keys.
: >"$mnt/etc/machine-id"
: >"$mnt/etc/hostname"
chmod 644 "$mnt/etc/machine-id" "$mnt/etc/hostname"
rm -f "$mnt/var/lib/dbus/machine-id" "$mnt"/etc/ssh/ssh_host_*
rm -rf "$mnt"/var/lib/apt/lists/* "$mnt"/var/cache/apt/* "$mnt"/tmp/* "$mnt"/var/tmp/*
rm -rf "$mnt/var/log/apt" "$mnt/var/log/dpkg.log" "$mnt/var/log/alternatives.log" "$mnt/var/log/bootstrap.log"

# grub.cfg is written here: update-grub in a chroot would put /dev/loopNp1 on
# the command line. /vmlinuz and /initrd.img follow kernel upgrades.
console="console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0"
cmdline="root=UUID=$root_uuid ro $console"
# Like Debian's cloud images: a later update-grub (a profile that installs a
# kernel) keeps the serial console and a text terminal; its default gfxterm
# hangs machines that have no display.
cat >"$mnt/etc/default/grub" <<EOF
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR="Debian"
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="$console"
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --speed=115200"
EOF
mkdir -p "$mnt/boot/grub"
cat >"$mnt/boot/grub/grub.cfg" <<EOF
set default=0
set timeout=1
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
insmod part_gpt
insmod ext2
search --no-floppy --fs-uuid --set=root $root_uuid
menuentry 'Debian GNU/Linux' {
	linux /vmlinuz $cmdline
	initrd /initrd.img
}
EOF

log "installing GRUB for BIOS (i386-pc) on $loopdev"
chroot "$mnt" grub-install --target=i386-pc --boot-directory=/boot --modules="part_gpt ext2" "$loopdev" \
  >"$work/grub-install.log" 2>&1 || { cat "$work/grub-install.log" >&2; die "grub-install --target=i386-pc failed"; }

log "building a standalone GRUB for UEFI (EFI/BOOT/BOOTX64.EFI)"
cat >"$mnt/tmp/early.cfg" <<EOF
search --no-floppy --fs-uuid --set=root $root_uuid
set prefix=(\$root)/boot/grub
configfile \$prefix/grub.cfg
EOF
chroot "$mnt" grub-mkimage -O x86_64-efi -o /tmp/BOOTX64.EFI -p /boot/grub -c /tmp/early.cfg \
  part_gpt part_msdos ext2 fat search search_fs_uuid normal configfile linux echo test \
  serial terminal efi_gop efi_uga all_video gzio boot ls cat loadenv minicmd reboot halt
# The ESP is built as a file (mtools, since vfat cannot be mounted here) and
# written into p15 once the loop device is gone.
truncate -s $((253952 * 512)) "$work/esp.img"
mkfs.vfat -i "$efi_volid" "$work/esp.img" >/dev/null
mmd -i "$work/esp.img" ::/EFI ::/EFI/BOOT
mcopy -i "$work/esp.img" "$mnt/tmp/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
rm -f "$mnt/tmp/BOOTX64.EFI" "$mnt/tmp/early.cfg"

for m in "$mnt/sys" "$mnt/proc" "$mnt/dev"; do umount "$m"; done
log "root filesystem uses $(df -h --output=used "$mnt" | tail -1 | tr -d ' ')"
umount "$mnt"
mnt=
losetup -d "$loopdev"
loopdev=
dd if="$work/esp.img" of="$work/disk.raw" bs=1M seek=4 conv=notrunc,sparse status=none
rm "$work/esp.img"

log "compressing $name.tar.xz"
tar -C "$work" --sparse -cf "$work/$name.tar.xz" --use-compress-program='xz -T0 -3' disk.raw
rm "$work/disk.raw"
# Debian's SHA512SUMS lists many files; a second line keeps parsers honest.
printf '{"release": "%s", "version": "%s", "builder": "build-test-image.sh", "built": "%s"}\n' \
  "$release" "$version" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$work/$name.json"
(cd "$work" && sha512sum "$name.json" "$name.tar.xz") >"$work/SHA512SUMS"
echo "$stamp" >"$work/.builder-sha256"

# Rename file by file so a server running inside DIR keeps working; stamp last.
rm -f "$outdir/.builder-sha256"
for f in "$name.tar.xz" "$name.json" SHA512SUMS .builder-sha256; do
  mv -f "$work/$f" "$outdir/$f"
done
log "done: $outdir/$name.tar.xz ($(du -h "$outdir/$name.tar.xz" | cut -f1))"
