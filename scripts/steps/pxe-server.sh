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
# machine has a random token: its boot script, which carries it, goes only to
# the address the host sees with the machine's MAC (GRUB's, in the MAC's TFTP
# folder, readable by dnsmasq's user alone); its seed is served under the token
# and removed at "done"; its reports need the token.
# shellcheck source-path=SCRIPTDIR
set -eu
umask 077

PROG=pxe-server
USAGE="usage: PXE_MACHINES=JSON pxe-server.sh start --state-dir DIR --interface BRIDGE --address IP [--dhcp-range FIRST,LAST]
         [--http-port PORT] --deploy PROFILE=DIR... --artifacts PROFILE=DIR...
       pxe-server.sh stop --state-dir DIR
       pxe-server.sh status --state-dir DIR
       pxe-server.sh reinstall --state-dir DIR --mac MAC"
IPXE_DIR=${IPXE_DIR:-/usr/lib/ipxe}
# dnsmasq serves TFTP as this user (Debian's dnsmasq-base makes it): GRUB's deploy scripts are its alone.
TFTP_USER=dnsmasq
# In every folder this script creates and may remove: a folder without it is not ours.
MARKER=.btw-img-owned

. "$(dirname "$0")/lib/messages.sh"

print_help() {
  cat <<EOF
$USAGE

start      (re)starts the server; PXE_MACHINES is a JSON list of
           {name, mac, profile, disks, layout, wipe, first_boot (kexec|reboot),
           user_data, meta_data, network_config}
           (disks: a list, empty for the machine's only disk; layout: a name of
           the deploy environment's layout table, none for its default).
           Without --dhcp-range dnsmasq runs as proxy DHCP beside the LAN's own server.
           A machine boots the deploy environment (vmlinuz, initramfs.img, tools.img in the
           --deploy DIR) and restores the artifacts of its own profile, once.
           Records of machines no longer in PXE_MACHINES are forgotten.
stop       stops both daemons and removes DIR (only when it carries $MARKER);
           DIR.records stays.
status     prints each machine's reported state (started, done, failed).
reinstall  forgets that the machine is done: its next network boot restores it
           again (a running server serves it at once).
Files: DIR/tftp (iPXE; shimx64.efi, grubx64.efi and grub/grub.cfg for UEFI; with GRUB,
one folder per MAC, aa-bb-cc-dd-ee-ff/, with the same loaders, the deploy kernel and
initramfs, and grub/grub.cfg reading grub/deploy.cfg until done, then grub/disk.cfg),
DIR/http (boot.ipxe, deploy/<profile>/, artifacts/<profile>/, seeds/<token>/, cgi-bin/boot
and report), DIR/machines/<mac> (seed and boot scripts, root only), DIR/*.pid, DIR/*.log;
DIR.records/<mac> (state) and <mac>.token.
A --deploy DIR with shimx64.efi and grubx64.efi (build-deploy-initramfs.sh copies
them from the image) gives UEFI machines that chain; without, they get iPXE.
EOF
}

[ $# -ge 1 ] || usage_error "missing command"
command=$1
shift
case "$command" in
  start|stop|status|reinstall) ;;
  -h|--help) print_help; exit 0 ;;
  *) usage_error "unknown command: $command" ;;
esac

state_dir="" interface="" address="" dhcp_range="" http_port=8181 deploys="" artifacts="" mac=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) print_help; exit 0 ;;
    --state-dir|--interface|--address|--dhcp-range|--http-port|--deploy|--artifacts|--mac)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case "$1" in
        --state-dir) state_dir=$2 ;;
        --interface) interface=$2 ;;
        --address) address=$2 ;;
        --dhcp-range) dhcp_range=$2 ;;
        --http-port) http_port=$2 ;;
        --deploy) deploys="$deploys $2" ;;
        --artifacts) artifacts="$artifacts $2" ;;
        --mac) mac=$2 ;;
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

is_mac() { printf '%s\n' "$1" | grep -qx '\([0-9a-f][0-9a-f]:\)\{5\}[0-9a-f][0-9a-f]'; }

# ours DIR: DIR carries our marker (a server folder from before the marker: our dnsmasq.conf).
ours() { [ -f "$1/$MARKER" ] || head -n 1 "$1/dnsmasq.conf" 2>/dev/null | grep -q '^# Written by pxe-server.sh: '; }

# own_dir DIR: DIR exists and is ours; a folder that exists without the marker is
# someone else's (say state_dir / with lab name etc) and is never written to.
own_dir() {
  if [ -e "$1" ] && ! ours "$1" && [ -n "$(ls -A "$1" 2>/dev/null)" ]; then
    die "$1 exists and is not btw-img's (no $MARKER in it): choose another baremetal.pxe.state_dir, or remove it"
  fi
  (umask 022 && mkdir -p "$(dirname "$1")")
  mkdir -p "$1"
  : >"$1/$MARKER"
}

# stop_daemon NAME: kill the pid in NAME.pid if it is still our daemon.
stop_daemon() {
  _pidfile=$state_dir/$1.pid
  [ -f "$_pidfile" ] || return 0
  _pid=$(cat "$_pidfile")
  # Only a process whose command line names our state folder is ours to stop.
  if [ -n "$_pid" ] && tr '\0' ' ' <"/proc/$_pid/cmdline" 2>/dev/null | grep -qF "$state_dir"; then
    say "stopping $1 (pid $_pid)"
    kill "$_pid" 2>/dev/null || true
    _tries=0
    while kill -0 "$_pid" 2>/dev/null && [ "$_tries" -lt 50 ]; do sleep 0.1; _tries=$((_tries + 1)); done
    kill -9 "$_pid" 2>/dev/null || true
  fi
  rm -f "$_pidfile"
}

new_token() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# put FILE: stdin to FILE through a rename, so a reader never sees half of it.
put() { cat >"$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"; }

# tftp_dir MAC: the machine's own TFTP root (dnsmasq's tftp-unique-root=mac names it so).
tftp_dir() { echo "$state_dir/tftp/$(echo "$1" | tr : -)"; }

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
    cat >"$_root/grub/grub.cfg" <<EOF
# Written by pxe-server.sh: $2 ($1).
set timeout=0
source "\$prefix/deploy.cfg"
source "\$prefix/disk.cfg"
EOF
    cat >"$_root/grub/disk.cfg" <<EOF
echo 'btw-img: $2 boots from its disk'
for loader in /EFI/debian/shimx64.efi /EFI/BOOT/BOOTX64.EFI; do
  if search --no-floppy --set=root --file \$loader; then chainloader \$loader; boot; fi
done
echo 'btw-img: no boot loader on the disks of $2: back to the firmware'
exit 1
EOF
  )
}

# publish MAC: serve the machine's seed under its token and arm its deploy scripts.
publish() {
  _machine=$state_dir/machines/$1
  _token=$(cat "$records_dir/$1.token" 2>/dev/null) || _token=""
  if [ -z "$_token" ]; then
    _token=$(new_token)
    echo "$_token" | put "$records_dir/$1.token"
  fi
  rm -rf "$state_dir/http/seeds/$_token"
  mkdir "$state_dir/http/seeds/$_token"
  for _file in user-data meta-data network-config; do
    [ ! -f "$_machine/$_file" ] || cp "$_machine/$_file" "$state_dir/http/seeds/$_token/$_file"
  done
  sed "s/@TOKEN@/$_token/g" "$_machine/deploy.ipxe.in" | put "$_machine/boot.ipxe"
  _grub=$(tftp_dir "$1")/grub
  if [ -d "$_grub" ]; then
    sed "s/@TOKEN@/$_token/g" "$_machine/deploy.grub.in" >"$_grub/deploy.cfg.tmp.$$"
    chown "$TFTP_USER" "$_grub/deploy.cfg.tmp.$$"
    chmod 0400 "$_grub/deploy.cfg.tmp.$$"
    mv -f "$_grub/deploy.cfg.tmp.$$" "$_grub/deploy.cfg"
  fi
}

if [ "$command" = stop ]; then
  if ours "$state_dir"; then
    stop_daemon dnsmasq
    stop_daemon httpd
    # A server from before the records folder kept "done" in state/: keep it.
    for report in "$state_dir"/state/*; do
      [ "$(cat "$report" 2>/dev/null)" = "done" ] || continue
      own_dir "$records_dir"
      echo "done" >"$records_dir/${report##*/}"
    done
    rm -rf "$state_dir"
    say "stopped; removed $state_dir (the machines' records stay in $records_dir)"
  elif [ -e "$state_dir" ]; then
    say "left $state_dir alone: it is not btw-img's (no $MARKER in it)"
  fi
  exit 0
fi

if [ "$command" = status ]; then
  for record in "$records_dir"/*; do
    case "$record" in *.token|*"/*") continue ;; esac
    printf '%s %s\n' "${record##*/}" "$(cat "$record")"
  done
  exit 0
fi

if [ "$command" = reinstall ]; then
  is_mac "$mac" || usage_error "--mac must be a lowercase MAC such as 52:54:00:12:34:56"
  [ -d "$records_dir" ] && ! ours "$records_dir" && die "$records_dir is not btw-img's (no $MARKER in it)"
  was=$(cat "$records_dir/$mac" 2>/dev/null) || was="no record"
  rm -f "$records_dir/$mac" "$records_dir/$mac.token"
  if ours "$state_dir" && [ -f "$state_dir/machines/$mac/deploy.ipxe.in" ]; then
    publish "$mac"
    say "$mac ($(cat "$state_dir/machines/$mac/name")) was $was: its next network boot restores it"
  else
    say "$mac was $was: forgotten; the server is not serving it now, its next start will"
  fi
  exit 0
fi

[ -n "$interface" ] || usage_error "missing --interface"
[ -n "$address" ] || usage_error "missing --address"
[ -n "$deploys" ] || usage_error "missing --deploy"
# These go into dnsmasq.conf, one line each.
case "$interface" in ''|*[!A-Za-z0-9_.-]*) usage_error "--interface must be a bridge name such as br50" ;; esac
case "$address" in *[!0-9.]*) usage_error "--address must be an IPv4 address" ;; esac
case "$dhcp_range" in *[!0-9.,]*) usage_error "--dhcp-range must be FIRST,LAST IPv4 addresses" ;; esac
case "$http_port" in ''|*[!0-9]*) usage_error "--http-port must be a number" ;; esac
: "${PXE_MACHINES:?pxe-server: PXE_MACHINES is not set}"
[ "$(id -u)" -eq 0 ] || die "must run as root (DHCP and TFTP ports)"
id -u "$TFTP_USER" >/dev/null 2>&1 || die "no user $TFTP_USER, whom dnsmasq serves TFTP as (Debian's dnsmasq-base creates it)"
for tool in dnsmasq busybox jq ip ss od; do
  command -v "$tool" >/dev/null 2>&1 || die "required tool not found: $tool"
done
for file in undionly.kpxe snponly.efi; do
  [ -f "$IPXE_DIR/$file" ] || die "iPXE not found: $IPXE_DIR/$file (Debian package ipxe)"
done
[ -d "/sys/class/net/$interface" ] || die "no such interface: $interface (baremetal.pxe.interface): create the bridge or fix the key"
ip -4 addr show dev "$interface" | grep -qF "inet $address/" || die "$interface does not have the address $address (baremetal.pxe.address): give the bridge that address or fix the key"
for entry in $deploys; do
  for file in vmlinuz initramfs.img tools.img; do
    [ -f "${entry#*=}/$file" ] || die "deploy environment of profile ${entry%%=*} incomplete: ${entry#*=}/$file (build-deploy-initramfs.sh writes it)"
  done
done
printf '%s' "$PXE_MACHINES" | jq -e 'type == "array"' >/dev/null || die "PXE_MACHINES must be a JSON list"

own_dir "$state_dir"
own_dir "$records_dir"
# A restart keeps the machines' records (a deployed machine stays deployed).
stop_daemon dnsmasq
stop_daemon httpd
listener=$(ss -Hltnp "( sport = :$http_port )" | grep -E "(^|[[:space:]])($address|0\.0\.0\.0|\*|\[::\]):${http_port}[[:space:]]" || true)
[ -z "$listener" ] || die "something else listens on port $http_port (baremetal.pxe.http_port): $listener"
# A start that fails half-way leaves no daemon behind.
stop_daemons_if_failed() {
  status=$?
  if [ "$status" -ne 0 ]; then stop_daemon dnsmasq; stop_daemon httpd; fi
  exit "$status"
}
on_exit stop_daemons_if_failed
# dnsmasq serves TFTP as an unprivileged user: only tftp/ is readable by others.
chmod 755 "$state_dir"
chmod 700 "$records_dir"
rm -rf "$state_dir/tftp" "$state_dir/http" "$state_dir/machines" "$state_dir/dnsmasq.conf"
mkdir -p "$state_dir/http/deploy" "$state_dir/http/artifacts" "$state_dir/http/seeds" "$state_dir/http/cgi-bin" "$state_dir/machines"
(umask 022 && mkdir "$state_dir/tftp" && cp "$IPXE_DIR/undionly.kpxe" "$IPXE_DIR/snponly.efi" "$state_dir/tftp/")
uefi_boot_file=snponly.efi
for entry in $deploys; do
  dir=${entry#*=}
  ln -s "$(cd "$dir" && pwd)" "$state_dir/http/deploy/${entry%%=*}"
  # One lab, one release: any profile's signed shim and GRUB boot every UEFI machine.
  # Not beside the LAN's DHCP server (proxy DHCP): Debian's GRUB takes its TFTP
  # server from that server's answer, not ours, and finds no configuration.
  if [ -n "$dhcp_range" ] && [ "$uefi_boot_file" = snponly.efi ] && [ -f "$dir/shimx64.efi" ] && [ -f "$dir/grubx64.efi" ]; then
    (umask 022 && cp "$dir/shimx64.efi" "$dir/grubx64.efi" "$state_dir/tftp/")
    uefi_boot_file=shimx64.efi
  fi
done
# GRUB loads the deploy kernel and initramfs over TFTP: each profile's, readable by dnsmasq's user.
if [ "$uefi_boot_file" = shimx64.efi ]; then
  for entry in $deploys; do
    (umask 022 && mkdir -p "$state_dir/tftp/deploy/${entry%%=*}" && cp "${entry#*=}/vmlinuz" "${entry#*=}/initramfs.img" "$state_dir/tftp/deploy/${entry%%=*}/")
  done
fi
if [ "$uefi_boot_file" != shimx64.efi ]; then
  if [ -z "$dhcp_range" ]; then
    say "proxy DHCP: UEFI machines get iPXE, not Debian's signed shim and GRUB (no Secure Boot; set baremetal.pxe.dhcp_range for them)"
  else
    say "warning: no deploy environment has Debian's signed shim and GRUB: UEFI machines get iPXE (not with Secure Boot)"
  fi
fi
for entry in $artifacts; do
  profile=${entry%%=*} dir=${entry#*=}
  [ -f "$dir/manifest.json" ] || die "no capture for profile $profile: $dir/manifest.json"
  ln -s "$(cd "$dir" && pwd)" "$state_dir/http/artifacts/$profile"
done

base_url=http://$address:$http_port
# Back to the firmware with a failure status: UEFI boot managers then try the
# next boot option (the disk); a success status stops them at their menu.
# An unknown MAC gets the same: the server never touches a machine not in the config.
# UEFI machines take Debian's signed chain from the firmware's own PXE, even where
# the NIC's option ROM is iPXE (QEMU's are): iPXE on UEFI goes straight back.
uefi_ipxe=""
# shellcheck disable=SC2016 # ${platform} is iPXE's.
[ "$uefi_boot_file" = snponly.efi ] || uefi_ipxe='iseq ${platform} efi && goto firmware ||'
cat >"$state_dir/http/boot.ipxe" <<EOF
#!ipxe
$uefi_ipxe
chain $base_url/cgi-bin/boot?mac=\${mac:hexhyp} ||
:firmware
echo btw-img: back to the firmware, which boots the next device
exit 1
EOF

# GRUB (prefix /grub on the TFTP server) reads this when the MAC has no folder of its own.
(umask 022 && mkdir "$state_dir/tftp/grub" && cat >"$state_dir/tftp/grub/grub.cfg") <<EOF
# Written by pxe-server.sh: a MAC this server does not know.
echo "btw-img: \$net_default_mac is not a machine of this server: back to the firmware"
exit 1
EOF

# One CGI script, as cgi-bin/boot (a MAC's iPXE script) and cgi-bin/report (the
# deploy environment's reports). Both trust a request only from the address the
# host's neighbour table gives the MAC on our bridge; a report also needs the token.
{
  printf '#!/bin/sh\n# Written by pxe-server.sh.\nstate_dir=%s records_dir=%s interface=%s\n' "$state_dir" "$records_dir" "$interface"
  cat <<'EOF'
umask 077
query() { printf '%s\n' "$QUERY_STRING" | tr '&' '\n' | sed -n "s/^$1=//p" | head -n 1; }
answer() {
  _status=$1
  shift
  _body=$(printf '%s\n' "$@")
  printf 'Status: %s\r\nContent-Type: text/plain\r\nContent-Length: %s\r\n\r\n%s\n' "$_status" "$(printf '%s\n' "$_body" | wc -c)" "$_body"
  exit 0
}
mac=$(query mac | tr 'A-F-' 'a-f:')
printf '%s\n' "$mac" | grep -qx '\([0-9a-f][0-9a-f]:\)\{5\}[0-9a-f][0-9a-f]' || mac=""
seen=$(awk -v ip="$REMOTE_ADDR" -v dev="$interface" '$1 == ip && $6 == dev && $3 != "0x0" { print $4 }' /proc/net/arp)
record=$(cat "$records_dir/$mac" 2>/dev/null) || record=""
machine=$state_dir/machines/$mac
case "${SCRIPT_NAME##*/}" in
  boot)
    # The log (httpd.log) says what each machine was sent: deploy or disk.
    if [ -n "$mac" ] && [ "$record" != done ] && [ -f "$machine/boot.ipxe" ]; then
      if [ "$seen" = "$mac" ]; then
        echo "btw-img: boot $mac: deploy by ipxe (to $REMOTE_ADDR)" >&2
        answer "200 OK" "$(cat "$machine/boot.ipxe")"
      fi
      echo "btw-img: boot $mac: refused the deploy script to $REMOTE_ADDR (seen as ${seen:-no MAC})" >&2
    fi
    if [ -z "$mac" ] || [ ! -f "$machine/name" ]; then
      echo "btw-img: boot ${mac:-?}: not ours, back to its firmware (to $REMOTE_ADDR)" >&2
      answer "200 OK" "#!ipxe" "echo btw-img: not a machine of this server" "exit 1"
    fi
    # iPXE gives the machine back to the firmware, which goes on to the next device.
    echo "btw-img: boot $mac: disk by ipxe (to $REMOTE_ADDR)" >&2
    answer "200 OK" "#!ipxe" "echo btw-img: $(cat "$machine/name") boots from its disk" "exit 1" ;;
  report)
    token=$(query token) status=$(query status)
    expected=$(cat "$records_dir/$mac.token" 2>/dev/null) || expected=""
    if [ -z "$mac" ] || [ "$seen" != "$mac" ] || [ -z "$expected" ] || [ "$token" != "$expected" ]; then
      echo "btw-img: refused a report for ${mac:-no MAC} from $REMOTE_ADDR" >&2
      answer "403 Forbidden" "refused"
    fi
    case "$status" in started|done|failed) ;; *) answer "400 Bad Request" "bad status" ;; esac
    echo "$status" >"$records_dir/$mac.tmp.$$" && mv -f "$records_dir/$mac.tmp.$$" "$records_dir/$mac"
    # Done: the seed leaves the server and the token is void; the MAC boots its disk from now on.
    [ "$status" != done ] || rm -rf "$records_dir/$mac.token" "$state_dir/http/seeds/$expected" "$machine/boot.ipxe" "$state_dir/tftp/$(echo "$mac" | tr : -)/grub/deploy.cfg"
    answer "200 OK" ok ;;
esac
answer "404 Not Found" "no such script"
EOF
} >"$state_dir/http/cgi-bin/boot"
chmod 700 "$state_dir/http/cgi-bin/boot"
ln -s boot "$state_dir/http/cgi-bin/report"

macs=$(printf '%s' "$PXE_MACHINES" | jq -r '.[].mac')
printf '%s' "$PXE_MACHINES" | jq -c '.[]' | while read -r machine; do
  field() { printf '%s' "$machine" | jq -r "$1"; }
  name=$(field .name) mac=$(field .mac) profile=$(field .profile) layout=$(field '.layout // ""')
  disks=$(field '(.disks // []) | join(" ")')
  # All of these go into an iPXE script, one line each.
  printf '%s\n' "$name" | grep -qx '[a-z0-9][a-z0-9-]*' || die "bad machine name '$name'"
  is_mac "$mac" || die "machine $name: bad MAC '$mac'"
  printf '%s\n' "$profile" | grep -qx '[A-Za-z0-9][A-Za-z0-9_.-]*' || die "machine $name: bad profile '$profile'"
  # The deploy environment's layout table knows the layouts (lib/config/layout.ts); a word here.
  printf '%s\n' "${layout:-none}" | grep -qx '[a-z0-9][a-z0-9-]*' || die "machine $name: bad layout '$layout'"
  options=${layout:+btw.layout=$layout}
  # One btw.disk= per disk, in order: the layout's first disk first.
  for disk in $disks; do
    printf '%s\n' "$disk" | grep -qx '/dev/[A-Za-z0-9_.:+@/-]*' || die "machine $name: bad disk '$disk'"
    options="$options btw.disk=$disk"
  done
  [ -e "$state_dir/http/artifacts/$profile" ] || die "machine $name: no --artifacts for profile $profile"
  [ -e "$state_dir/http/deploy/$profile" ] || die "machine $name: no --deploy for profile $profile"
  dir=$state_dir/machines/$mac
  mkdir "$dir"
  echo "$name" >"$dir/name"
  field .user_data >"$dir/user-data"
  field .meta_data >"$dir/meta-data"
  field '.network_config // empty' >"$dir/network-config"
  [ -s "$dir/network-config" ] || rm "$dir/network-config"
  options="$options btw.tools=$base_url/deploy/$profile/tools.img btw.tools_sha256=$(sha256sum "$state_dir/http/deploy/$profile/tools.img" | cut -c1-64)"
  [ "$(field '.wipe // false')" = true ] && options="$options btw.wipe=1"
  first_boot=$(field '.first_boot // "kexec"')
  case "$first_boot" in kexec|reboot) ;; *) die "machine $name: bad first_boot '$first_boot' (kexec or reboot)" ;; esac
  options="$options btw.after=$first_boot"
  # panic=10: a deploy environment whose kernel dies (seen once under emulation, in the
  # NIC driver while downloading) reboots into the network and restores again, not done yet.
  cmdline="console=tty0 console=ttyS0,115200 panic=10 btw.server=$base_url btw.mac=$mac btw.token=@TOKEN@ btw.manifest=$base_url/artifacts/$profile/manifest.json btw.seed=$base_url/seeds/@TOKEN@/ $options"
  cat >"$dir/deploy.ipxe.in" <<EOF
#!ipxe
echo btw-img: deploying $name ($profile)
kernel $base_url/deploy/$profile/vmlinuz initrd=initramfs.img $cmdline
initrd $base_url/deploy/$profile/initramfs.img
boot
EOF
  # GRUB loads the kernel through shim, which checks its signature under Secure Boot.
  cat >"$dir/deploy.grub.in" <<EOF
echo 'btw-img: deploying $name ($profile)'
linux (tftp,$address)/vmlinuz $cmdline
initrd (tftp,$address)/initramfs.img
boot
EOF
  [ "$uefi_boot_file" != shimx64.efi ] || grub_folder "$mac" "$name" "$profile"
  if [ "$(cat "$records_dir/$mac" 2>/dev/null)" = "done" ]; then
    rm -f "$records_dir/$mac.token"
    say "$name ($mac) is installed: it boots its disk (btw metal reinstall $name restores it again)"
  else
    publish "$mac"
  fi
done
# A machine taken out of the config is forgotten: added back, it is installed again.
for record in "$records_dir"/*; do
  [ -e "$record" ] || continue
  known=${record##*/}
  known=${known%.token}
  case " $(echo "$macs" | tr '\n' ' ') " in *" $known "*) ;; *) rm -f "$record"; say "forgot $known: no longer in the config" ;; esac
done

# GRUB reads a MAC's folder of tftp/ as its root; other clients read tftp/ itself.
unique_root=""
[ "$uefi_boot_file" != shimx64.efi ] || unique_root=tftp-unique-root=mac
if [ -n "$dhcp_range" ]; then
  dhcp="dhcp-range=$dhcp_range,12h
dhcp-match=set:ipxe,175
dhcp-vendorclass=set:efi64,PXEClient:Arch:00007
dhcp-vendorclass=set:efi64,PXEClient:Arch:00009
dhcp-boot=tag:ipxe,$base_url/boot.ipxe
dhcp-boot=tag:!ipxe,tag:efi64,$uefi_boot_file
dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe"
else
  # Proxy DHCP: the LAN's server gives addresses, we only answer PXE requests.
  dhcp="dhcp-range=$address,proxy
dhcp-match=set:ipxe,175
pxe-service=tag:!ipxe,x86PC,btw-img,undionly.kpxe
pxe-service=tag:!ipxe,X86-64_EFI,btw-img,$uefi_boot_file
dhcp-boot=tag:ipxe,$base_url/boot.ipxe"
fi
cat >"$state_dir/dnsmasq.conf" <<EOF
# Written by pxe-server.sh: DHCP and TFTP on $interface only, no DNS.
port=0
interface=$interface
except-interface=lo
bind-interfaces
$dhcp
dhcp-leasefile=$state_dir/dnsmasq.leases
enable-tftp
tftp-root=$state_dir/tftp
user=$TFTP_USER
$unique_root
log-dhcp
log-facility=$state_dir/dnsmasq.log
EOF

say "starting dnsmasq on $interface ($address, ${dhcp_range:-proxy DHCP})"
dnsmasq --conf-file="$state_dir/dnsmasq.conf" --pid-file="$state_dir/dnsmasq.pid" || die "dnsmasq did not start (see $state_dir/dnsmasq.log)"
say "starting busybox httpd on $base_url"
setsid busybox httpd -f -vv -p "$address:$http_port" -h "$state_dir/http" </dev/null >>"$state_dir/httpd.log" 2>&1 &
httpd_pid=$!
echo "$httpd_pid" >"$state_dir/httpd.pid"
# What answers must be our httpd: it serves a random value only this start knows.
probe=$(new_token)
echo "$probe" >"$state_dir/http/probe"
tries=0
until [ "$(busybox wget -q -O - "$base_url/probe" 2>/dev/null)" = "$probe" ]; do
  kill -0 "$httpd_pid" 2>/dev/null || die "busybox httpd exited (see $state_dir/httpd.log)"
  tries=$((tries + 1))
  [ "$tries" -lt 50 ] || die "$base_url does not answer with this server's files (see $state_dir/httpd.log)"
  sleep 0.1
done
rm -f "$state_dir/http/probe"
say "serving $(printf '%s' "$PXE_MACHINES" | jq length) machine(s) from $state_dir"
