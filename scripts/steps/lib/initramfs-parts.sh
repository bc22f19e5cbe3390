# shellcheck shell=sh disable=SC2154 # build-deploy-initramfs.sh's globals (mnt, modules, kver, root, tools, ...)
# What build-deploy-initramfs.sh takes from the image and the host, a function a
# kind (sourced by it): kernel modules, a layout's programs, modules and data of the
# image, firmware, host programs with their libraries.

# copy_kernel_modules: the driver folders of MODULE_DIRS of the image's kernel, uncompressed.
copy_kernel_modules() {
  for dir in $MODULE_DIRS; do
    name='*.ko*'
    case "$dir" in *.ko) name="${dir##*/}*" dir=${dir%/*} ;; esac
    [ -d "$modules/$dir" ] || continue
    # Wireless, CAN, WWAN, 802.15.4, serial-line, WAN, ham radio, ARCnet, FDDI and HIPPI
    # drivers and tunnels do not PXE-boot a machine, nor do the kernel's self-tests
    # (lib/test_*): leaving them out halves the initramfs.
    (cd "$modules" && find "$dir" \( -path '*/net/wireless' -o -path '*/net/can' -o -path '*/net/wwan' -o -path '*/net/ieee802154' \
      -o -path '*/net/arcnet' -o -path '*/net/fddi' -o -path '*/net/hamradio' -o -path '*/net/hippi' -o -path '*/net/plip' \
      -o -path '*/net/ppp' -o -path '*/net/slip' -o -path '*/net/wan' -o -path '*/net/wireguard' -o -path '*/net/vxlan' \
      -o -name 'test_*' \) -prune -o -name "$name" -print) | while read -r module; do
      target=$root/lib/modules/$kver/${module%.xz}
      target=${target%.zst}
      mkdir -p "$(dirname "$target")"
      case "$module" in
        *.xz) xz -dc "$modules/$module" >"$target" ;;
        *.zst) zstd -q -dc "$modules/$module" >"$target" ;;
        *) cp "$modules/$module" "$target" ;;
      esac
    done
  done
  cp "$modules"/modules.builtin* "$modules"/modules.order "$root/lib/modules/$kver/" 2>/dev/null || true
}

# copy_layout_modules: what a layout needs from the image's kernel (lib/config/layout.ts):
# modules outside the folders above (zfs.ko and spl.ko that zfs-dkms built, in updates/dkms)
# and what they depend on.
copy_layout_modules() {
  pending=$image_modules
  while [ -n "$pending" ]; do
    # shellcheck disable=SC2086 # a list of module names
    set -- $pending
    [ $# -gt 0 ] || break
    module=$1
    shift
    pending=$*
    # Module names treat '-' and '_' alike (md_mod is md-mod.ko).
    pattern=$(echo "$module" | sed 's/[-_]/[-_]/g')
    grep -q "/$pattern\.ko$" "$modules/modules.builtin" 2>/dev/null && continue
    [ -z "$(find "$root/lib/modules/$kver" -name "$pattern.ko" | head -n 1)" ] || continue
    found=$(cd "$modules" && find . -name "$pattern.ko*" | sort | head -n 1)
    [ -n "$found" ] || die "the image's kernel $kver has no module $module (the layouts$layouts need it; is its package in the profile?)"
    target=$root/lib/modules/$kver/${found#./}
    target=${target%.xz}
    target=${target%.zst}
    mkdir -p "$(dirname "$target")"
    case "$found" in
      *.xz) xz -dc "$modules/$found" >"$target" ;;
      *.zst) zstd -q -dc "$modules/$found" >"$target" ;;
      *) cp "$modules/$found" "$target" ;;
    esac
    pending="$pending $(modinfo -F depends "$target" | tr ',' ' ')"
  done
}

# copy_image_programs: programs a layout needs from the image (lib/config/layout.ts): the
# versions the restored system runs (zpool and zfs must match the module). Under /image with
# the image's own libraries, beside the host's programs, whose libraries may be other
# versions; in tools.img with the rest of the restore.
copy_image_programs() {
  image_loader=""
  for program in $image_programs; do
    program_path=""
    for dir in /usr/sbin /usr/bin /sbin /bin; do
      if [ -f "$mnt$dir/$program" ] && [ -x "$mnt$dir/$program" ]; then program_path=$dir/$program; break; fi
    done
    [ -n "$program_path" ] || die "the image has no program $program (the layouts$layouts need it; is its package in the profile?)"
    # Paths resolved by the image itself (its links may be absolute); its own loader lists the libraries.
    resolved=$(chroot "$mnt" /usr/bin/readlink -f "$program_path")
    [ -n "$image_loader" ] || image_loader=$(chroot "$mnt" /usr/bin/readlink -f /lib64/ld-linux-x86-64.so.2)
    mkdir -p "$tools/image$(dirname "$program_path")" "$tools/image$(dirname "$image_loader")"
    cp "$mnt$resolved" "$tools/image$program_path"
    [ -e "$tools/image$image_loader" ] || cp "$mnt$image_loader" "$tools/image$image_loader"
    # Each library under the name the loader looks for (the soname link), with the content it points to.
    chroot "$mnt" "$image_loader" --list "$resolved" | awk '/=> \// { print $3 }' | while read -r lib; do
      [ -e "$tools/image$lib" ] && continue
      mkdir -p "$tools/image$(dirname "$lib")"
      cp "$mnt$(chroot "$mnt" /usr/bin/readlink -f "$lib")" "$tools/image$lib"
    done
    mkdir -p "$tools/usr/sbin"
    printf '#!/bin/sh\n# The image'"'"'s own %s (build-deploy-initramfs.sh --image-program), with the image'"'"'s libraries.\nexec /image%s --library-path /image/lib/x86_64-linux-gnu:/image/usr/lib/x86_64-linux-gnu /image%s "$@"\n' \
      "$program" "$image_loader" "$program_path" >"$tools/usr/sbin/$program"
    chmod 755 "$tools/usr/sbin/$program"
  done
}

# copy_image_data: files the image's programs read (zpool's feature sets, for
# compatibility=grub2), at their own path.
copy_image_data() {
  for data in $image_data; do
    [ -e "$mnt$data" ] || die "the image has no $data (the layouts$layouts need it; is its package in the profile?)"
    mkdir -p "$tools$(dirname "$data")"
    cp -a "$mnt$data" "$tools$data"
  done
}

# copy_firmware: firmware the included drivers ask for, where the image has it (a profile's
# firmware-* packages): without it some NICs do not come up.
copy_firmware() {
  firmware_dir=$mnt/lib/firmware
  [ -d "$firmware_dir" ] || firmware_dir=$mnt/usr/lib/firmware
  if [ -d "$firmware_dir" ]; then
    find "$root/lib/modules/$kver" -name '*.ko' -exec modinfo -F firmware {} + 2>/dev/null | sort -u | while read -r firmware; do
      for file in "$firmware_dir/$firmware" "$firmware_dir/$firmware.xz" "$firmware_dir/$firmware.zst"; do
        [ -f "$file" ] || continue
        mkdir -p "$root/lib/firmware/$(dirname "$firmware")"
        cp -L "$file" "$root/lib/firmware/${file#"$firmware_dir"/}"
      done
    done
    say "firmware for the drivers: $(find "$root/lib/firmware" -type f 2>/dev/null | wc -l) file(s) from the image"
  fi
}

# copy_with_libs TREE FILE: the program at the same path in TREE, plus what ldd names
# (a library the initramfs has already is not copied into tools).
copy_with_libs() {
  mkdir -p "$1$(dirname "$2")"
  cp -L "$2" "$1$2"
  ldd "$2" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }' | while read -r lib; do
    { [ -e "$root$lib" ] || [ -e "$1$lib" ]; } && continue
    mkdir -p "$1$(dirname "$lib")"
    cp -L "$lib" "$1$lib"
  done
}
# copy_program TREE NAME: the host's NAME (with its libraries) and, when NAME is a link, the link.
copy_program() {
  _path=$(command -v "$2")
  _real=$(readlink -f "$_path")
  copy_with_libs "$1" "$_real"
  [ "$_real" = "$_path" ] || { mkdir -p "$1$(dirname "$_path")"; ln -sf "$_real" "$1$_path"; }
}
