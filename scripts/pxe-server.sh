#!/bin/sh
# The bare-metal deploy server: dnsmasq (DHCP + TFTP, bound to one bridge
# only) hands out iPXE, iPXE loads our deploy kernel and initramfs over HTTP
# (busybox httpd), which restore the captured image and the machine's seed.
# A machine that reported "done" is sent to its local disk on the next boot.
set -eu
umask 022

PROG=pxe-server
USAGE="usage: PXE_MACHINES=JSON pxe-server.sh start --state-dir DIR --interface BRIDGE --address IP [--dhcp-range FIRST,LAST]
         [--http-port PORT] --deploy PROFILE=DIR... --artifacts PROFILE=DIR...
       pxe-server.sh stop --state-dir DIR
       pxe-server.sh status --state-dir DIR"
IPXE_DIR=${IPXE_DIR:-/usr/lib/ipxe}

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "error: $*"; exit 1; }
usage_error() { say "$*"; echo "$USAGE" >&2; exit 2; }

print_help() {
  cat <<EOF
$USAGE

start   (re)starts the server; PXE_MACHINES is a JSON list of
        {name, mac, profile, disk?, wipe, user_data, meta_data, network_config}.
        Without --dhcp-range dnsmasq runs as proxy DHCP beside the LAN's own server.
        A machine boots the deploy environment (vmlinuz, initramfs.img in the
        --deploy DIR) and restores the artifacts of its own profile.
stop    stops both daemons and removes DIR.
status  prints each machine's reported state (started, done, failed).
Files: DIR/tftp (iPXE), DIR/http (boot scripts, deploy/<profile>/, artifacts/<profile>/, seeds/,
cgi-bin/report), DIR/state (reports), DIR/*.pid, DIR/*.log.
EOF
}

[ $# -ge 1 ] || usage_error "missing command"
command=$1
shift
case "$command" in
  start|stop|status) ;;
  -h|--help) print_help; exit 0 ;;
  *) usage_error "unknown command: $command" ;;
esac

state_dir="" interface="" address="" dhcp_range="" http_port=8181 deploys="" artifacts=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) print_help; exit 0 ;;
    --state-dir|--interface|--address|--dhcp-range|--http-port|--deploy|--artifacts)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case "$1" in
        --state-dir) state_dir=$2 ;;
        --interface) interface=$2 ;;
        --address) address=$2 ;;
        --dhcp-range) dhcp_range=$2 ;;
        --http-port) http_port=$2 ;;
        --deploy) deploys="$deploys $2" ;;
        --artifacts) artifacts="$artifacts $2" ;;
      esac
      shift 2 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$state_dir" ] || usage_error "missing --state-dir"
case "$state_dir" in /*) ;; *) usage_error "--state-dir must be an absolute path" ;; esac

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

if [ "$command" = stop ]; then
  stop_daemon dnsmasq
  stop_daemon httpd
  rm -rf "$state_dir"
  say "stopped; removed $state_dir"
  exit 0
fi

if [ "$command" = status ]; then
  for report in "$state_dir"/state/*; do
    [ -f "$report" ] && printf '%s %s\n' "${report##*/}" "$(cat "$report")"
  done
  exit 0
fi

[ -n "$interface" ] || usage_error "missing --interface"
[ -n "$address" ] || usage_error "missing --address"
[ -n "$deploys" ] || usage_error "missing --deploy"
: "${PXE_MACHINES:?pxe-server: PXE_MACHINES is not set}"
[ "$(id -u)" -eq 0 ] || die "must run as root (DHCP and TFTP ports)"
for tool in dnsmasq busybox jq ip; do
  command -v "$tool" >/dev/null 2>&1 || die "required tool not found: $tool"
done
for file in undionly.kpxe snponly.efi; do
  [ -f "$IPXE_DIR/$file" ] || die "iPXE not found: $IPXE_DIR/$file (Debian package ipxe)"
done
[ -d "/sys/class/net/$interface" ] || die "no such interface: $interface (baremetal.pxe.interface): create the bridge or fix the key"
ip -4 addr show dev "$interface" | grep -qF "inet $address/" || die "$interface does not have the address $address (baremetal.pxe.address): give the bridge that address or fix the key"
for entry in $deploys; do
  for file in vmlinuz initramfs.img; do
    [ -f "${entry#*=}/$file" ] || die "deploy environment of profile ${entry%%=*} incomplete: ${entry#*=}/$file"
  done
done
printf '%s' "$PXE_MACHINES" | jq -e 'type == "array"' >/dev/null || die "PXE_MACHINES must be a JSON list"

# A restart keeps the machines' reports (a deployed machine stays deployed).
stop_daemon dnsmasq
stop_daemon httpd
# A start that fails half-way leaves no daemon behind.
trap 'status=$?; if [ "$status" -ne 0 ]; then stop_daemon dnsmasq; stop_daemon httpd; fi; exit "$status"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$state_dir/state"
chmod 755 "$state_dir"
rm -rf "$state_dir/tftp" "$state_dir/http" "$state_dir/dnsmasq.conf"
mkdir -p "$state_dir/tftp" "$state_dir/http/boot" "$state_dir/http/deploy" "$state_dir/http/artifacts" "$state_dir/http/seeds" "$state_dir/http/cgi-bin"
cp "$IPXE_DIR/undionly.kpxe" "$IPXE_DIR/snponly.efi" "$state_dir/tftp/"
chmod -R a+rX "$state_dir/tftp"
for entry in $deploys; do
  ln -s "$(cd "${entry#*=}" && pwd)" "$state_dir/http/deploy/${entry%%=*}"
done
for entry in $artifacts; do
  profile=${entry%%=*} dir=${entry#*=}
  [ -f "$dir/manifest.json" ] || die "no capture for profile $profile: $dir/manifest.json"
  ln -s "$(cd "$dir" && pwd)" "$state_dir/http/artifacts/$profile"
done

base_url=http://$address:$http_port
# Back to the firmware with a failure status: UEFI boot managers then try the
# next boot option (the disk); a success status stops them at their menu.
# An unknown MAC (no boot/<mac>.ipxe: iPXE prints "No such file") is never touched.
cat >"$state_dir/http/boot.ipxe" <<EOF
#!ipxe
chain $base_url/boot/\${mac:hexhyp}.ipxe ||
echo btw-img: back to the firmware, which boots the next device
exit 1
EOF

local_boot() {
  cat <<EOF
#!ipxe
echo btw-img: $1 is deployed: its disk boots next
exit 1
EOF
}
printf '%s' "$PXE_MACHINES" | jq -c '.[]' | while read -r machine; do
  field() { printf '%s' "$machine" | jq -r "$1"; }
  name=$(field .name) mac=$(field .mac) profile=$(field .profile)
  case "$mac" in *[!0-9a-f:]*|'') die "machine $name: bad MAC '$mac'" ;; esac
  [ -e "$state_dir/http/artifacts/$profile" ] || die "machine $name: no --artifacts for profile $profile"
  [ -e "$state_dir/http/deploy/$profile" ] || die "machine $name: no --deploy for profile $profile"
  hyphens=$(echo "$mac" | tr ':' '-')
  mkdir -p "$state_dir/http/seeds/$mac"
  field .user_data >"$state_dir/http/seeds/$mac/user-data"
  field .meta_data >"$state_dir/http/seeds/$mac/meta-data"
  field '.network_config // empty' >"$state_dir/http/seeds/$mac/network-config"
  [ -s "$state_dir/http/seeds/$mac/network-config" ] || rm "$state_dir/http/seeds/$mac/network-config"
  options="btw.disk=$(field '.disk // ""')"
  [ "$(field '.wipe // false')" = true ] && options="$options btw.wipe=1"
  if [ "$(cat "$state_dir/state/$mac" 2>/dev/null)" = "done" ]; then
    local_boot "$name" >"$state_dir/http/boot/$hyphens.ipxe"
  else
    cat >"$state_dir/http/boot/$hyphens.ipxe" <<EOF
#!ipxe
echo btw-img: deploying $name ($profile)
kernel $base_url/deploy/$profile/vmlinuz initrd=initramfs.img console=tty0 console=ttyS0,115200 btw.server=$base_url btw.mac=$mac btw.manifest=$base_url/artifacts/$profile/manifest.json btw.seed=$base_url/seeds/$mac/ $options
initrd $base_url/deploy/$profile/initramfs.img
boot
EOF
  fi
  local_boot "$name" >"$state_dir/http/boot/$hyphens.local"
done

# The deploy environment reports here; "done" sends the MAC to its disk from now on.
cat >"$state_dir/http/cgi-bin/report" <<EOF
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
mac=\$(printf '%s' "\$QUERY_STRING" | sed -n 's/.*mac=\([0-9a-f:]*\).*/\1/p')
status=\$(printf '%s' "\$QUERY_STRING" | sed -n 's/.*status=\([a-z]*\).*/\1/p')
case "\$status" in started|done|failed) ;; *) echo "bad status"; exit 0 ;; esac
hyphens=\$(echo "\$mac" | tr ':' '-')
[ -n "\$mac" ] && [ -f "$state_dir/http/boot/\$hyphens.ipxe" ] || { echo "unknown machine"; exit 0; }
echo "\$status" >"$state_dir/state/\$mac"
[ "\$status" = done ] && cp "$state_dir/http/boot/\$hyphens.local" "$state_dir/http/boot/\$hyphens.ipxe"
echo ok
EOF
chmod 755 "$state_dir/http/cgi-bin/report"

if [ -n "$dhcp_range" ]; then
  dhcp="dhcp-range=$dhcp_range,12h
dhcp-match=set:ipxe,175
dhcp-vendorclass=set:efi64,PXEClient:Arch:00007
dhcp-vendorclass=set:efi64,PXEClient:Arch:00009
dhcp-boot=tag:ipxe,$base_url/boot.ipxe
dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi
dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe"
else
  # Proxy DHCP: the LAN's server gives addresses, we only answer PXE requests.
  dhcp="dhcp-range=$address,proxy
dhcp-match=set:ipxe,175
pxe-service=tag:!ipxe,x86PC,btw-img,undionly.kpxe
pxe-service=tag:!ipxe,X86-64_EFI,btw-img,snponly.efi
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
log-dhcp
log-facility=$state_dir/dnsmasq.log
EOF

say "starting dnsmasq on $interface ($address, ${dhcp_range:-proxy DHCP})"
dnsmasq --conf-file="$state_dir/dnsmasq.conf" --pid-file="$state_dir/dnsmasq.pid" || die "dnsmasq did not start (see $state_dir/dnsmasq.log)"
say "starting busybox httpd on $base_url"
setsid busybox httpd -f -vv -p "$address:$http_port" -h "$state_dir/http" </dev/null >>"$state_dir/httpd.log" 2>&1 &
echo $! >"$state_dir/httpd.pid"
tries=0
until busybox wget -q -O /dev/null "$base_url/boot.ipxe" 2>/dev/null; do
  tries=$((tries + 1))
  [ "$tries" -lt 50 ] || die "busybox httpd does not answer on $base_url (see $state_dir/httpd.log)"
  sleep 0.1
done
say "serving $(printf '%s' "$PXE_MACHINES" | jq length) machine(s) from $state_dir"
