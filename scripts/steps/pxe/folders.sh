# shellcheck shell=sh disable=SC2154 # pxe-server.sh's globals (state_dir, records_dir, MARKER, PXE_DIR)
# The server's folders and files (sourced by pxe-server.sh, and by the CGI from DIR/lib): what is
# ours, written whole, the templates filled in, the machines' token archives.

# dnsmasq serves TFTP as this user (Debian's dnsmasq-base makes it): GRUB's deploy scripts are its alone.
TFTP_USER=dnsmasq
# A machine's seed is served for this long (seconds) after its deploy environment reported up, and
# only until it reported started (the deploy environment fetches it in between, in about a minute).
# shellcheck disable=SC2034 # read by the CGI
SEED_TTL=900

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

new_token() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# put FILE: stdin to FILE through a rename, so a reader never sees half of it.
put() { cat >"$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"; }

# fill TEMPLATE NAME=VALUE...: a template of pxe/ with each @NAME@ replaced by its VALUE
# (values are checked words, paths and URLs: no '|', '&' or newline).
fill() {
  _template=$PXE_DIR/$1
  shift
  _script=""
  for _pair in "$@"; do
    case "${_pair#*=}" in *'|'*|*'&'*|*\\*) die "fill $_template: ${_pair%%=*} holds a character sed would read" ;; esac
    _script="$_script s|@${_pair%%=*}@|${_pair#*=}|g;"
  done
  sed -e "$_script" "$_template"
}

# tftp_dir MAC: the machine's own TFTP root (dnsmasq's tftp-unique-root=mac names it so).
tftp_dir() { echo "$state_dir/tftp/$(echo "$1" | tr : -)"; }

# tftp_put FILE: stdin to FILE, readable by dnsmasq's user alone, through a rename.
tftp_put() { cat >"$1.tmp.$$" && chown "$TFTP_USER" "$1.tmp.$$" && chmod 0400 "$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"; }

# write_token_archives MAC TOKEN: TOKEN as the archive (cpio: etc/btw-token) the machine's next deploy
# kernel gets beside its initramfs: token.cpio for iPXE's initrd (through the CGI) and, where the
# machine has a GRUB folder, its token.img (TFTP). The token is in no command line or file name.
write_token_archives() {
  _archive=$(mktemp -d "$state_dir/machines/$1/token.XXXXXX")
  mkdir "$_archive/etc"
  printf '%s\n' "$2" >"$_archive/etc/btw-token"
  (cd "$_archive" && printf 'etc\netc/btw-token\n' | cpio -o -H newc --quiet -R 0:0) | put "$state_dir/machines/$1/token.cpio"
  rm -rf "$_archive"
  [ ! -d "$(tftp_dir "$1")/grub" ] || tftp_put "$(tftp_dir "$1")/token.img" <"$state_dir/machines/$1/token.cpio"
}
