#!/bin/sh
# The PXE server's CGI (pxe-server.sh copies it as http/cgi-bin/boot, linked as
# cgi-bin/initrd, seed and report): boot, a MAC's iPXE script; initrd, the deploy
# initramfs with the machine's token archive after it, for iPXE; seed, its NoCloud
# files; report, the deploy environment's reports. Each trusts a request only from
# the address the host's neighbour table gives the machine's MAC on the server's
# bridge; a seed and a report also need the machine's token, which this script
# only compares (it never reaches a command line or a file name).
# busybox httpd starts it in cgi-bin/, two folders under the server's folder.
umask 077
state_dir=$(cd ../.. && pwd)
records_dir=$state_dir.records
interface=$(cat "$state_dir/interface")
# put, tftp_dir, new_token, write_token_archives, SEED_TTL
# shellcheck source=scripts/steps/pxe/folders.sh # pxe-server.sh copies it to DIR/lib
. "$state_dir/lib/folders.sh"

query() { printf '%s\n' "$QUERY_STRING" | tr '&' '\n' | sed -n "s/^$1=//p" | head -n 1; }
answer() {
  _status=$1
  shift
  _body=$(printf '%s\n' "$@")
  printf 'Status: %s\r\nContent-Type: text/plain\r\n\r\n%s\n' "$_status" "$_body"
  exit 0
}

mac=$(query mac | tr 'A-F-' 'a-f:')
printf '%s\n' "$mac" | grep -qx '\([0-9a-f][0-9a-f]:\)\{5\}[0-9a-f][0-9a-f]' || mac=""
seen=$(awk -v ip="$REMOTE_ADDR" -v dev="$interface" '$1 == ip && $6 == dev && $3 != "0x0" { print $4 }' /proc/net/arp)
record=$(cat "$records_dir/$mac" 2>/dev/null) || record=""
machine=$state_dir/machines/$mac

# installed: the machine boots its disk: done, or kept (its disks hold another install, left as it
# is), or released (not served until a reinstall).
installed() { case "$record" in done|kept|released) return 0 ;; *) return 1 ;; esac; }

# boot: the deploy script to the machine's own address until it is installed, else its disk.
# The log (httpd.log) says what each machine was sent: deploy or disk.
boot() {
  if [ -n "$mac" ] && ! installed && [ -f "$machine/boot.ipxe" ]; then
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
  [ "$record" != released ] || answer "200 OK" "#!ipxe" "echo btw-img: $(cat "$machine/name") is released (btw metal reinstall installs it)" "exit 1"
  answer "200 OK" "#!ipxe" "echo btw-img: $(cat "$machine/name") boots from its disk" "exit 1"
}

# initrd: iPXE's one initrd: the deploy initramfs of the machine's profile, then (at a 4-byte
# boundary) its token as a cpio archive (etc/btw-token), to the machine's own address until it
# is installed. One file, as a kernel started by UEFI iPXE reads only one.
initrd() {
  _initramfs=$state_dir/http/deploy/$(cat "$machine/profile" 2>/dev/null)/initramfs.img
  if [ -n "$mac" ] && ! installed && [ "$seen" = "$mac" ] && [ -f "$machine/token.cpio" ] && [ -f "$_initramfs" ]; then
    _size=$(stat -c %s "$_initramfs")
    _pad=$(((4 - _size % 4) % 4))
    echo "btw-img: initrd $mac: deploy/$(cat "$machine/profile")/initramfs.img and its token (to $REMOTE_ADDR)" >&2
    printf 'Status: 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %s\r\n\r\n' "$((_size + _pad + $(stat -c %s "$machine/token.cpio")))"
    cat "$_initramfs"
    head -c "$_pad" /dev/zero
    cat "$machine/token.cpio"
    exit 0
  fi
  echo "btw-img: initrd ${mac:-?}: refused to $REMOTE_ADDR (seen as ${seen:-no MAC})" >&2
  answer "404 Not Found" "no initrd"
}

# take_next_token MAC TOKEN: a new boot's first request with the token armed for it when the
# machine's last boot reported started: from now on that is the machine's token, and this boot
# has not reported up yet.
take_next_token() {
  _next=$(cat "$records_dir/$1.next-token" 2>/dev/null) || return 0
  [ -n "$_next" ] && [ "$2" = "$_next" ] && [ "$seen" = "$1" ] || return 0
  mv -f "$records_dir/$1.next-token" "$records_dir/$1.token"
  rm -f "$records_dir/$1.up"
}

# seed: /cgi-bin/seed/TOKEN/FILE, a file of the seed of the machine whose token it is, to that
# machine's address, from its deploy environment's up report (at most SEED_TTL seconds after it)
# until it reports started: then the next boot gets a new token, and a leaked one reads nothing.
seed() {
  _rest=${PATH_INFO#/}
  _token=${_rest%%/*} _file=${_rest#*/}
  case "$_file" in user-data|meta-data|network-config) ;; *) answer "404 Not Found" "no such seed file" ;; esac
  _owner=""
  case "$_token" in
    ''|*[!0-9a-f]*) ;;
    *)
      for _record in "$records_dir"/*.token "$records_dir"/*.next-token; do
        { [ -f "$_record" ] && read -r _known <"$_record"; } || continue
        if [ "$_known" = "$_token" ]; then _owner=${_record##*/}; _owner=${_owner%%.*}; break; fi
      done ;;
  esac
  [ -z "$_owner" ] || take_next_token "$_owner" "$_token"
  _why=""
  if [ -z "$_owner" ] || [ "$seen" != "$_owner" ] || [ ! -f "$state_dir/machines/$_owner/$_file" ]; then
    _why="no such seed"
  elif [ -f "$records_dir/$_owner.next-token" ]; then
    _why="this boot reported started"
  else
    _up=$(stat -c %Y "$records_dir/$_owner.up" 2>/dev/null) || _up=0
    [ $(($(date +%s) - _up)) -le "$SEED_TTL" ] || _why="no up report in the last $SEED_TTL s"
  fi
  if [ -n "$_why" ]; then
    echo "btw-img: seed: refused $_file to $REMOTE_ADDR (seen as ${seen:-no MAC}): $_why" >&2
    answer "404 Not Found" "no such seed"
  fi
  echo "btw-img: seed $_owner: $_file (to $REMOTE_ADDR)" >&2
  printf 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n'
  cat "$state_dir/machines/$_owner/$_file"
  exit 0
}

# report: a machine's state, from its own address with its token: a state word, how far it is
# (percent) and a note, each a line of <mac>.log (the last 200, with the time); or, POSTed, its
# hardware inventory (<mac>.inventory.json). Done, kept or released: the seed leaves the server,
# the token is void and a reinstall's or release's mark gone; the MAC boots its disk from now on.
report() {
  token=$(query token) status=$(query status)
  [ -z "$mac" ] || take_next_token "$mac" "$token"
  expected=$(cat "$records_dir/$mac.token" 2>/dev/null) || expected=""
  if [ -z "$mac" ] || [ "$seen" != "$mac" ] || [ -z "$expected" ] || [ "$token" != "$expected" ]; then
    echo "btw-img: refused a report for ${mac:-no MAC} from $REMOTE_ADDR" >&2
    answer "403 Forbidden" "refused"
  fi
  case "$status" in
    inventory) inventory ;;
    deploy-env-up|started|downloading|writing|configuring|done|failed|kept|erasing|released) ;;
    *) answer "400 Bad Request" "bad status" ;;
  esac
  percent=$(query percent | grep -x '[0-9]\{1,3\}') || percent="-"
  # The note as it arrived (btw-report sends only these characters, spaces as %20).
  note=$(query note | sed 's/%20/ /g' | tr -c 'A-Za-z0-9 ._:/()=,+\n-' '_' | cut -c1-200)
  echo "$(date +%s) $status $percent${note:+ $note}" >>"$records_dir/$mac.log"
  tail -n 200 "$records_dir/$mac.log" >"$records_dir/$mac.log.tmp.$$" && mv -f "$records_dir/$mac.log.tmp.$$" "$records_dir/$mac.log"
  echo "$status" >"$records_dir/$mac.tmp.$$" && mv -f "$records_dir/$mac.tmp.$$" "$records_dir/$mac"
  record=$status
  case "$status" in
    # When this boot came up: its seed is served for SEED_TTL from now.
    deploy-env-up) : >"$records_dir/$mac.up" ;;
    # This boot has its seed: none for this token from now on; a later boot gets a new token.
    started)
      if [ ! -f "$records_dir/$mac.next-token" ] && [ -f "$machine/token.cpio" ]; then
        _next=$(new_token)
        printf '%s\n' "$_next" | put "$records_dir/$mac.next-token"
        write_token_archives "$mac" "$_next"
      fi ;;
  esac
  _tftp=$(tftp_dir "$mac")
  ! installed || rm -f "$records_dir/$mac.token" "$records_dir/$mac.next-token" "$records_dir/$mac.up" "$records_dir/$mac.replace" "$records_dir/$mac.erase" "$machine/boot.ipxe" "$machine/token.cpio" "$_tftp/grub/deploy.cfg" "$_tftp/token.img"
  answer "200 OK" ok
}

# inventory: the POSTed JSON object (at most 256 KiB) as the machine's inventory.
inventory() {
  case "${CONTENT_LENGTH:-}" in ''|*[!0-9]*) answer "411 Length Required" "no length" ;; esac
  [ "$CONTENT_LENGTH" -le 262144 ] || answer "413 Payload Too Large" "inventory over 256 KiB"
  head -c "$CONTENT_LENGTH" >"$records_dir/$mac.inventory.tmp.$$"
  if ! jq -e 'type == "object"' "$records_dir/$mac.inventory.tmp.$$" >/dev/null 2>&1; then
    rm -f "$records_dir/$mac.inventory.tmp.$$"
    answer "400 Bad Request" "the inventory is not a JSON object"
  fi
  mv -f "$records_dir/$mac.inventory.tmp.$$" "$records_dir/$mac.inventory.json"
  echo "btw-img: inventory $mac (from $REMOTE_ADDR)" >&2
  answer "200 OK" ok
}

case "${SCRIPT_NAME##*/}" in
  boot) boot ;;
  initrd) initrd ;;
  seed) seed ;;
  report) report ;;
esac
answer "404 Not Found" "no such script"
