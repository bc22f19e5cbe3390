#!/bin/sh
# The bare-metal deploy server: dnsmasq (DHCP + TFTP, bound to one bridge
# only) hands BIOS machines iPXE and UEFI machines Debian's signed shim and
# GRUB (from the deploy environment's image, so Secure Boot accepts them). iPXE
# asks our CGI (busybox httpd on the bridge address) what the machine boots;
# GRUB reads it over TFTP from the machine's own folder (dnsmasq's unique root
# by MAC), as every GRUB speaks TFTP and Debian 12's signed one has no HTTP.
# The answer: our deploy kernel and initramfs, which restore the captured image
# and the machine's seed, or, once installed, its disk (GRUB chainloads the
# disk's own shim at once: no wait for the firmware's other network options).
# A machine is installed once: its "done" record lives in DIR.records, which
# no restart, replace or stop removes; only `reinstall` (btw metal reinstall)
# or a start whose machines no longer include it forget it. Until then the
# machine has a random token, given to its deploy kernel as an archive beside the
# initramfs (never on a command line or in a file name): served only to the
# address the host sees with the machine's MAC (GRUB's, in the MAC's TFTP folder,
# readable by dnsmasq's user alone); its seed is served with the token to that
# address from its deploy environment's "up" report until its "started" (at most
# SEED_TTL, pxe/folders.sh), when the next boot's token is armed; its reports need the token.
# shellcheck source-path=SCRIPTDIR
set -eu
umask 077

PROG=pxe-server
USAGE="usage: PXE_MACHINES=JSON pxe-server.sh start --state-dir DIR --interface BRIDGE --address IP [--dhcp-range FIRST,LAST]
         [--http-port PORT] [--multicast-port-base PORT] [--multicast-min-receivers N]
         [--multicast-max-wait S] [--multicast-wait S] --deploy PROFILE=DIR... --artifacts PROFILE=DIR...
       pxe-server.sh stop --state-dir DIR
       pxe-server.sh status --state-dir DIR
       pxe-server.sh reinstall --state-dir DIR --mac MAC
       pxe-server.sh release --state-dir DIR --mac MAC [--erase quick|full]"
IPXE_DIR=${IPXE_DIR:-/usr/lib/ipxe}
# In every folder this script creates and may remove: a folder without it is not ours.
MARKER=.btw-img-owned
# The server's parts: the CGI and the boot script templates it copies and fills, and the
# functions it sources.
PXE_DIR=$(cd "$(dirname "$0")/pxe/" && pwd)

. "$(dirname "$0")/lib/messages.sh"
. "$(dirname "$0")/pxe/folders.sh"
. "$(dirname "$0")/pxe/daemons.sh"
. "$(dirname "$0")/pxe/machines.sh"
. "$(dirname "$0")/pxe/records.sh"
. "$(dirname "$0")/pxe/multicast.sh"

print_help() {
  cat <<EOF
$USAGE

start      (re)starts the server; PXE_MACHINES is a JSON list of
           {name, mac, profile, disks, layout, wipe, first_boot (kexec|reboot),
           transport (http|multicast), prepared (the capture's preparations its
           layout writes), user_data, meta_data, network_config}
           (disks: a list, empty for the machine's only disk; layout: a name of
           the deploy environment's layout table, none for its default).
           Without --dhcp-range dnsmasq runs as proxy DHCP beside the LAN's own server.
           A machine boots the deploy environment (vmlinuz, initramfs.img, tools.img in the
           --deploy DIR) and restores the artifacts of its own profile, once.
           Records of machines no longer in PXE_MACHINES are forgotten.
           Machines with transport multicast get each artifact their layout writes
           from a udpcast session (pxe/multicast.sh): it starts when the machines of
           the profile that are not installed and write it joined
           (--multicast-min-receivers for every session instead), or
           --multicast-max-wait seconds (60) after the first did; a machine waits
           --multicast-wait seconds (300) for one before it uses HTTP. Sessions take
           two UDP ports each from --multicast-port-base (9000).
stop       stops both daemons and removes DIR (only when it carries $MARKER);
           DIR.records stays.
status     prints each machine's reported state (deploy-env-up, started, downloading,
           writing, configuring, done, failed, kept: its disks hold another btw-img
           install, left as it is); btw metal status adds progress and the log.
reinstall  forgets that the machine is installed: its next network boot restores it
           again, replacing the install its disks hold (a running server serves it
           at once).
release    with --erase: its next network boot erases its disks (quick: signatures,
           tables, the first and last MiB of each partition and disk; full: discard,
           else zeroes), reports released and powers it off; without: released at
           once, no disk written. A released machine is not served until a reinstall.
Files: DIR/tftp (iPXE; shimx64.efi, grubx64.efi and grub/grub.cfg for UEFI; with GRUB,
one folder per MAC, aa-bb-cc-dd-ee-ff/, with the same loaders, the deploy kernel and
initramfs, and grub/grub.cfg reading grub/deploy.cfg until done, then grub/disk.cfg),
DIR/http (boot.ipxe, deploy/<profile>/, artifacts/<profile>/, multicast/<profile>.tab, cgi-bin/boot,
token, seed and report: pxe/boot-cgi.sh), DIR/machines/<mac> (seed, token archive and boot scripts, root only), DIR/*.pid,
DIR/*.log; DIR/lib (pxe/folders.sh, for the CGI); DIR.records/<mac> (state), <mac>.token, .next-token
(a later boot's, armed at started), .up (when this boot reported up), .log (reports), .inventory.json,
and the marks .replace (reinstall) and .erase (release). The boot scripts are pxe/'s templates.
A --deploy DIR with shimx64.efi and grubx64.efi (build-deploy-initramfs.sh copies
them from the image) gives UEFI machines that chain; without, they get iPXE.
EOF
}

[ $# -ge 1 ] || usage_error "missing command"
command=$1
shift
case "$command" in
  start|stop|status|reinstall|release) ;;
  -h|--help) print_help; exit 0 ;;
  *) usage_error "unknown command: $command" ;;
esac

state_dir="" interface="" address="" dhcp_range="" http_port=8181 deploys="" artifacts="" mac="" erase=""
multicast_port_base=9000 multicast_min_receivers="" multicast_max_wait=60 multicast_wait=300
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) print_help; exit 0 ;;
    --state-dir|--interface|--address|--dhcp-range|--http-port|--deploy|--artifacts|--mac|--erase|--multicast-port-base|--multicast-min-receivers|--multicast-max-wait|--multicast-wait)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case "$1" in
        --state-dir) state_dir=$2 ;;
        --interface) interface=$2 ;;
        --address) address=$2 ;;
        --dhcp-range) dhcp_range=$2 ;;
        --http-port) http_port=$2 ;;
        --multicast-port-base) multicast_port_base=$2 ;;
        --multicast-min-receivers) multicast_min_receivers=$2 ;;
        --multicast-max-wait) multicast_max_wait=$2 ;;
        --multicast-wait) multicast_wait=$2 ;;
        --deploy) deploys="$deploys $2" ;;
        --artifacts) artifacts="$artifacts $2" ;;
        --mac) mac=$2 ;;
        --erase) erase=$2 ;;
      esac
      shift 2 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$state_dir" ] || usage_error "missing --state-dir"
case "$state_dir" in /*) ;; *) usage_error "--state-dir must be an absolute path" ;; esac
# The folder goes into dnsmasq.conf and the CGI scripts: one line, nothing either reads specially.
case "$state_dir" in *[!A-Za-z0-9._/@+:-]*) usage_error "--state-dir may hold only letters, digits and ._/@+:- characters" ;; esac
state_dir=${state_dir%/}
[ -n "$state_dir" ] || usage_error "--state-dir must not be /"
records_dir=$state_dir.records

# ------------------------------------------------------------------ start

# check_start: every input, before anything changes.
check_start() {
  [ -n "$interface" ] || usage_error "missing --interface"
  [ -n "$address" ] || usage_error "missing --address"
  [ -n "$deploys" ] || usage_error "missing --deploy"
  # These go into dnsmasq.conf, one line each.
  case "$interface" in ''|*[!A-Za-z0-9_.-]*) usage_error "--interface must be a bridge name such as br50" ;; esac
  case "$address" in *[!0-9.]*) usage_error "--address must be an IPv4 address" ;; esac
  case "$dhcp_range" in *[!0-9.,]*) usage_error "--dhcp-range must be FIRST,LAST IPv4 addresses" ;; esac
  for _number in "$http_port" "$multicast_port_base" "$multicast_max_wait" "$multicast_wait" "${multicast_min_receivers:-1}"; do
    case "$_number" in ''|*[!0-9]*) usage_error "--http-port and the --multicast-* options take numbers: '$_number'" ;; esac
  done
  : "${PXE_MACHINES:?pxe-server: PXE_MACHINES is not set}"
  [ "$(id -u)" -eq 0 ] || die "must run as root (DHCP and TFTP ports)"
  id -u "$TFTP_USER" >/dev/null 2>&1 || die "no user $TFTP_USER, whom dnsmasq serves TFTP as (Debian's dnsmasq-base creates it)"
  for _tool in dnsmasq busybox jq ip ss od; do
    command -v "$_tool" >/dev/null 2>&1 || die "required tool not found: $_tool"
  done
  for _file in undionly.kpxe snponly.efi; do
    [ -f "$IPXE_DIR/$_file" ] || die "iPXE not found: $IPXE_DIR/$_file (Debian package ipxe)"
  done
  [ -d "/sys/class/net/$interface" ] || die "no such interface: $interface (baremetal.pxe.interface): create the bridge or fix the key"
  ip -4 addr show dev "$interface" | grep -qF "inet $address/" || die "$interface does not have the address $address (baremetal.pxe.address): give the bridge that address or fix the key"
  for _entry in $deploys; do
    for _file in vmlinuz initramfs.img tools.img; do
      [ -f "${_entry#*=}/$_file" ] || die "deploy environment of profile ${_entry%%=*} incomplete: ${_entry#*=}/$_file (build-deploy-initramfs.sh writes it)"
    done
  done
  printf '%s' "$PXE_MACHINES" | jq -e 'type == "array"' >/dev/null || die "PXE_MACHINES must be a JSON list"
}

# serve_deploys: each profile's deploy environment over HTTP; Debian's signed shim and GRUB
# for UEFI machines when one has them (sets uefi_boot_file), with each profile's kernel and
# initramfs over TFTP, readable by dnsmasq's user.
serve_deploys() {
  uefi_boot_file=snponly.efi
  for _entry in $deploys; do
    _dir=${_entry#*=}
    ln -s "$(cd "$_dir" && pwd)" "$state_dir/http/deploy/${_entry%%=*}"
    # One lab, one release: any profile's signed shim and GRUB boot every UEFI machine.
    # Not beside the LAN's DHCP server (proxy DHCP): Debian's GRUB takes its TFTP
    # server from that server's answer, not ours, and finds no configuration.
    if [ -n "$dhcp_range" ] && [ "$uefi_boot_file" = snponly.efi ] && [ -f "$_dir/shimx64.efi" ] && [ -f "$_dir/grubx64.efi" ]; then
      (umask 022 && cp "$_dir/shimx64.efi" "$_dir/grubx64.efi" "$state_dir/tftp/")
      uefi_boot_file=shimx64.efi
    fi
  done
  if [ "$uefi_boot_file" = shimx64.efi ]; then
    for _entry in $deploys; do
      (umask 022 && mkdir -p "$state_dir/tftp/deploy/${_entry%%=*}" && cp "${_entry#*=}/vmlinuz" "${_entry#*=}/initramfs.img" "$state_dir/tftp/deploy/${_entry%%=*}/")
    done
  elif [ -z "$dhcp_range" ]; then
    say "proxy DHCP: UEFI machines get iPXE, not Debian's signed shim and GRUB (no Secure Boot; set baremetal.pxe.dhcp_range for them)"
  else
    say "warning: no deploy environment has Debian's signed shim and GRUB: UEFI machines get iPXE (not with Secure Boot)"
  fi
}

serve_artifacts() {
  for _entry in $artifacts; do
    [ -f "${_entry#*=}/manifest.json" ] || die "no capture for profile ${_entry%%=*}: ${_entry#*=}/manifest.json"
    ln -s "$(cd "${_entry#*=}" && pwd)" "$state_dir/http/artifacts/${_entry%%=*}"
  done
}

# write_boot_files: what every machine reads first: iPXE's script, GRUB's answer for a MAC
# without a folder, and the CGI.
write_boot_files() {
  # Back to the firmware with a failure status: UEFI boot managers then try the next boot
  # option (the disk); a success status stops them at their menu. An unknown MAC gets the
  # same: the server never touches a machine not in the config. UEFI machines take Debian's
  # signed chain from the firmware's own PXE, even where the NIC's option ROM is iPXE (QEMU's
  # are): iPXE on UEFI goes straight back.
  # The template's iseq line sends UEFI machines back; without the signed chain, it goes.
  # shellcheck disable=SC2016 # ${platform} is iPXE's
  _drop='/^iseq ${platform} efi /d'
  [ "$uefi_boot_file" = snponly.efi ] || _drop=""
  fill boot.ipxe "BASE_URL=$base_url" | sed -e "$_drop" >"$state_dir/http/boot.ipxe"
  (umask 022 && mkdir "$state_dir/tftp/grub" && fill unknown.grub.cfg >"$state_dir/tftp/grub/grub.cfg")
  echo "$interface" >"$state_dir/interface"
  cp "$PXE_DIR/boot-cgi.sh" "$state_dir/http/cgi-bin/boot"
  mkdir "$state_dir/lib" && cp "$PXE_DIR/folders.sh" "$state_dir/lib/"
  chmod 700 "$state_dir/http/cgi-bin/boot"
  for _link in initrd seed report; do ln -s boot "$state_dir/http/cgi-bin/$_link"; done
}

cmd_start() {
  check_start
  own_dir "$state_dir"
  own_dir "$records_dir"
  # A restart keeps the machines' records (a deployed machine stays deployed).
  stop_daemon dnsmasq
  stop_daemon httpd
  stop_multicast
  _listener=$(ss -Hltnp "( sport = :$http_port )" | grep -E "(^|[[:space:]])($address|0\.0\.0\.0|\*|\[::\]):${http_port}[[:space:]]" || true)
  [ -z "$_listener" ] || die "something else listens on port $http_port (baremetal.pxe.http_port): $_listener"
  on_exit stop_daemons_if_failed
  # dnsmasq serves TFTP as an unprivileged user: only tftp/ is readable by others.
  chmod 755 "$state_dir"
  chmod 700 "$records_dir"
  rm -rf "${state_dir:?}/tftp" "$state_dir/http" "${state_dir:?}/lib" "$state_dir/machines" "$state_dir/dnsmasq.conf"
  mkdir -p "$state_dir/http/deploy" "$state_dir/http/artifacts" "$state_dir/http/cgi-bin" "$state_dir/machines"
  (umask 022 && mkdir "$state_dir/tftp" && cp "$IPXE_DIR/undionly.kpxe" "$IPXE_DIR/snponly.efi" "$state_dir/tftp/")
  base_url=http://$address:$http_port
  serve_deploys
  serve_artifacts
  write_boot_files
  printf '%s' "$PXE_MACHINES" | jq -c '.[]' | while read -r _machine; do add_machine "$_machine"; done
  forget_removed
  write_dnsmasq_conf
  start_multicast
  start_dnsmasq
  start_httpd
  say "serving $(printf '%s' "$PXE_MACHINES" | jq length) machine(s) from $state_dir"
}

"cmd_$command"
