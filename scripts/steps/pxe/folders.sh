# shellcheck shell=sh disable=SC2154 # pxe-server.sh's globals (state_dir, records_dir, MARKER, PXE_DIR)
# The server's folders and files (sourced by pxe-server.sh): what is ours, written
# whole, and the templates filled in.

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
