# shellcheck shell=sh disable=SC2154 # pxe-server.sh's globals (state_dir, records_dir, base_url, ...)
# The machines a server deploys (sourced by pxe-server.sh): each one's seed and boot
# scripts (from the templates beside this file), its token, its TFTP folder for GRUB.

# grub_folder MAC NAME PROFILE: the machine's TFTP root: the loaders, its profile's deploy
# kernel and initramfs, and GRUB's scripts. grub.cfg reads deploy.cfg, which exists from
# publish until done; without it, disk.cfg: GRUB starts the disk's own loader at once (UEFI
# firmware would first try its other network options, minutes each). Debian's ESP has shim
# in EFI/debian and the fallback path. The loader must come from root: GRUB gives the started
# image root's device, where shim looks for GRUB (as MAAS's local boot config does).
grub_folder() {
  _root=$(tftp_dir "$1")
  (
    umask 022
    mkdir -p "$_root/grub"
    ln "$state_dir/tftp/undionly.kpxe" "$state_dir/tftp/snponly.efi" "$state_dir/tftp/shimx64.efi" "$state_dir/tftp/grubx64.efi" "$_root/"
    ln "$state_dir/tftp/deploy/$3/vmlinuz" "$state_dir/tftp/deploy/$3/initramfs.img" "$_root/"
    fill machine.grub.cfg "NAME=$2" "MAC=$1" >"$_root/grub/grub.cfg"
    fill disk.grub.cfg "NAME=$2" >"$_root/grub/disk.cfg"
  )
}

# publish MAC: arm the machine's deploy (or erase): its token (kept until done; after a boot reported
# started, the one armed for the next boot), as the archives its deploy kernel gets, and its deploy scripts.
publish() {
  _machine=$state_dir/machines/$1
  _token=""
  for _file in "$records_dir/$1.next-token" "$records_dir/$1.token"; do
    if [ -z "$_token" ] && [ -f "$_file" ]; then _token=$(head -n 1 "$_file"); fi
  done
  if [ -z "$_token" ]; then
    _token=$(new_token)
    echo "$_token" | put "$records_dir/$1.token"
  fi
  write_token_archives "$1" "$_token"
  # A reinstall (its mark in the records) replaces the install the disks hold; a release
  # (its mark) erases the disks instead of restoring.
  _replace=""
  [ ! -f "$records_dir/$1.replace" ] || _replace=" btw.replace=1"
  [ ! -f "$records_dir/$1.erase" ] || _replace="$_replace btw.erase=$(cat "$records_dir/$1.erase")"
  sed -e "s/@REPLACE@/$_replace/" "$_machine/deploy.ipxe.in" | put "$_machine/boot.ipxe"
  # GRUB's: dnsmasq's user's alone, in the MAC's own TFTP folder.
  _tftp=$(tftp_dir "$1")
  [ ! -d "$_tftp/grub" ] || sed -e "s/@REPLACE@/$_replace/" "$_machine/deploy.grub.in" | tftp_put "$_tftp/grub/deploy.cfg"
}

# add_machine JSON: one machine of PXE_MACHINES: its seed, its deploy scripts (a reinstall's
# replace left as @REPLACE@ for publish), its GRUB folder; published
# unless it is installed already (done, or kept: its disks hold an install left as it is).
add_machine() {
  _json=$1
  field() { printf '%s' "$_json" | jq -r "$1"; }
  _name=$(field .name) _mac=$(field .mac) _profile=$(field .profile) _layout=$(field '.layout // ""')
  _disks=$(field '(.disks // []) | join(" ")')
  # All of these go into a boot script, one line each.
  printf '%s\n' "$_name" | grep -qx '[a-z0-9][a-z0-9-]*' || die "bad machine name '$_name'"
  is_mac "$_mac" || die "machine $_name: bad MAC '$_mac'"
  printf '%s\n' "$_profile" | grep -qx '[A-Za-z0-9][A-Za-z0-9_.-]*' || die "machine $_name: bad profile '$_profile'"
  # The deploy environment's layout table knows the layouts (lib/config/layout.ts); a word here.
  printf '%s\n' "${_layout:-none}" | grep -qx '[a-z0-9][a-z0-9-]*' || die "machine $_name: bad layout '$_layout'"
  _options=${_layout:+btw.layout=$_layout}
  # One btw.disk= per disk, in order: the layout's first disk first.
  for _disk in $_disks; do
    printf '%s\n' "$_disk" | grep -qx '/dev/[A-Za-z0-9_.:+@/-]*' || die "machine $_name: bad disk '$_disk'"
    _options="$_options btw.disk=$_disk"
  done
  [ -e "$state_dir/http/artifacts/$_profile" ] || die "machine $_name: no --artifacts for profile $_profile"
  [ -e "$state_dir/http/deploy/$_profile" ] || die "machine $_name: no --deploy for profile $_profile"
  _first_boot=$(field '.first_boot // "kexec"')
  case "$_first_boot" in kexec|reboot) ;; *) die "machine $_name: bad first_boot '$_first_boot' (kexec or reboot)" ;; esac
  _dir=$state_dir/machines/$_mac
  mkdir "$_dir"
  echo "$_name" >"$_dir/name"
  echo "$_profile" >"$_dir/profile"
  field .user_data >"$_dir/user-data"
  field .meta_data >"$_dir/meta-data"
  field '.network_config // empty' >"$_dir/network-config"
  [ -s "$_dir/network-config" ] || rm "$_dir/network-config"
  _options="$_options btw.tools=$base_url/deploy/$_profile/tools.img btw.tools_sha256=$(sha256sum "$state_dir/http/deploy/$_profile/tools.img" | cut -c1-64)"
  # What the deploy environment fetches is checked against what its boot script says: the
  # manifest (whose sha256s cover the artifacts) and the seed (restore.sh --seed-sha256).
  _options="$_options btw.manifest_sha256=$(sha256sum "$state_dir/http/artifacts/$_profile/manifest.json" | cut -c1-64)"
  # shellcheck disable=SC2046 # the seed's file names, one a word
  _options="$_options btw.seed_sha256=$(cd "$_dir" && sha256sum user-data meta-data $(ls network-config 2>/dev/null) | sha256sum | cut -c1-64)"
  [ "$(field '.wipe // false')" != true ] || _options="$_options btw.wipe=1"
  [ "$(field '.transport // "http"')" != multicast ] || _options="$_options btw.multicast=$base_url/multicast/$_profile.tab btw.multicast_wait=$multicast_wait"
  _options="$_options btw.after=$_first_boot@REPLACE@"
  # panic=10: a deploy environment whose kernel dies (seen once under emulation, in the
  # NIC driver while downloading) reboots into the network and restores again, not done yet.
  _cmdline="console=tty0 console=ttyS0,115200 panic=10 btw.server=$base_url btw.mac=$_mac btw.manifest=$base_url/artifacts/$_profile/manifest.json btw.seed=$base_url/cgi-bin/seed $_options"
  fill deploy.ipxe "NAME=$_name" "PROFILE=$_profile" "BASE_URL=$base_url" "CMDLINE=$_cmdline" >"$_dir/deploy.ipxe.in"
  # GRUB loads the kernel through shim, which checks its signature under Secure Boot.
  fill deploy.grub.cfg "NAME=$_name" "PROFILE=$_profile" "ADDRESS=$address" "CMDLINE=$_cmdline" >"$_dir/deploy.grub.in"
  [ "$uefi_boot_file" != shimx64.efi ] || grub_folder "$_mac" "$_name" "$_profile"
  _record=$(cat "$records_dir/$_mac" 2>/dev/null) || _record=""
  if [ "$_record" = "done" ] || [ "$_record" = kept ]; then
    rm -f "$records_dir/$_mac.token" "$records_dir/$_mac.next-token" "$records_dir/$_mac.up"
    say "$_name ($_mac) is installed ($_record): it boots its disk (btw metal reinstall $_name restores it again)"
  elif [ "$_record" = released ]; then
    rm -f "$records_dir/$_mac.token" "$records_dir/$_mac.next-token" "$records_dir/$_mac.up"
    say "$_name ($_mac) is released: not served (btw metal reinstall $_name installs it again)"
  else
    publish "$_mac"
  fi
}

# forget_removed: a machine taken out of the config is forgotten: added back, it is installed again.
forget_removed() {
  _macs=" $(printf '%s' "$PXE_MACHINES" | jq -r '.[].mac' | tr '\n' ' ') "
  for _record in "$records_dir"/*; do
    [ -e "$_record" ] || continue
    # A MAC's records: its state, and files named MAC.SUFFIX (token, log, inventory, marks).
    _known=${_record##*/}
    _known=${_known%%.*}
    case "$_macs" in *" $_known "*) ;; *) rm -f "$_record"; say "forgot $_known: no longer in the config" ;; esac
  done
}
