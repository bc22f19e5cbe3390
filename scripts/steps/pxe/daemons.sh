# shellcheck shell=sh disable=SC2154 # pxe-server.sh's globals (state_dir, interface, address, ...)
# dnsmasq and busybox httpd (sourced by pxe-server.sh): their configuration, start and stop.

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

# A start that fails half-way leaves no daemon behind.
stop_daemons_if_failed() {
  status=$?
  if [ "$status" -ne 0 ]; then stop_daemon dnsmasq; stop_daemon httpd; stop_multicast; fi
  exit "$status"
}

# write_dnsmasq_conf: DHCP (or proxy DHCP beside the LAN's server) and TFTP on the bridge only.
write_dnsmasq_conf() {
  # GRUB reads a MAC's folder of tftp/ as its root; other clients read tftp/ itself.
  _unique_root=""
  [ "$uefi_boot_file" != shimx64.efi ] || _unique_root=tftp-unique-root=mac
  if [ -n "$dhcp_range" ]; then
    _dhcp="dhcp-range=$dhcp_range,12h
dhcp-match=set:ipxe,175
dhcp-vendorclass=set:efi64,PXEClient:Arch:00007
dhcp-vendorclass=set:efi64,PXEClient:Arch:00009
dhcp-boot=tag:ipxe,$base_url/boot.ipxe
dhcp-boot=tag:!ipxe,tag:efi64,$uefi_boot_file
dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe"
  else
    # Proxy DHCP: the LAN's server gives addresses, we only answer PXE requests.
    _dhcp="dhcp-range=$address,proxy
dhcp-match=set:ipxe,175
pxe-service=tag:!ipxe,x86PC,btw-img,undionly.kpxe
pxe-service=tag:!ipxe,X86-64_EFI,btw-img,$uefi_boot_file
dhcp-boot=tag:ipxe,$base_url/boot.ipxe"
  fi
  # Only the machines of the config get an answer (an address, a PXE reply): not every host on the bridge.
  for _machine in "$state_dir"/machines/*; do
    [ -d "$_machine" ] || continue
    _dhcp="$_dhcp
dhcp-host=${_machine##*/}"
  done
  _dhcp="$_dhcp
dhcp-ignore=tag:!known"
  cat >"$state_dir/dnsmasq.conf" <<CONF
# Written by pxe-server.sh: DHCP and TFTP on $interface only, no DNS.
port=0
interface=$interface
except-interface=lo
bind-interfaces
$_dhcp
dhcp-leasefile=$state_dir/dnsmasq.leases
enable-tftp
tftp-root=$state_dir/tftp
user=$TFTP_USER
$_unique_root
log-dhcp
log-facility=$state_dir/dnsmasq.log
CONF
}

start_dnsmasq() {
  say "starting dnsmasq on $interface ($address, ${dhcp_range:-proxy DHCP})"
  # The daemons (and the CGI) get none of the machines' data the start was given.
  env -u PXE_MACHINES dnsmasq --conf-file="$state_dir/dnsmasq.conf" --pid-file="$state_dir/dnsmasq.pid" || die "dnsmasq did not start (see $state_dir/dnsmasq.log)"
}

# start_httpd: busybox httpd on the bridge address; what answers must be it: it serves a
# random value only this start knows.
start_httpd() {
  say "starting busybox httpd on $base_url"
  env -u PXE_MACHINES setsid busybox httpd -f -vv -p "$address:$http_port" -h "$state_dir/http" </dev/null >>"$state_dir/httpd.log" 2>&1 &
  _httpd_pid=$!
  echo "$_httpd_pid" >"$state_dir/httpd.pid"
  _probe=$(new_token)
  echo "$_probe" >"$state_dir/http/probe"
  _tries=0
  until [ "$(busybox wget -q -O - "$base_url/probe" 2>/dev/null)" = "$_probe" ]; do
    kill -0 "$_httpd_pid" 2>/dev/null || die "busybox httpd exited (see $state_dir/httpd.log)"
    _tries=$((_tries + 1))
    [ "$_tries" -lt 50 ] || die "$base_url does not answer with this server's files (see $state_dir/httpd.log)"
    sleep 0.1
  done
  rm -f "$state_dir/http/probe"
}
