# shellcheck shell=sh disable=SC2154,SC2034 # restore.sh's globals, set and read across its parts
# Artifacts from the PXE server's multicast sessions (sourced by restore.sh): the
# session table ($multicast: "FILE PORTBASE" lines, scripts/steps/pxe/multicast.sh
# writes it) says which artifacts have one; udp-receiver joins it on
# $multicast_interface and writes the file as HTTP would. A session not joined
# within $multicast_wait seconds, or a file that then fails its sha256, is fetched
# over HTTP (fetch_artifacts): the disk never gets a byte that did not match.

# read_multicast_table: the session table into the work folder ($work_dir/multicast.tab).
read_multicast_table() {
  : >"$work_dir/multicast.tab"
  [ -n "$multicast" ] || return 0
  need udp-receiver
  [ -n "$multicast_interface" ] || usage_error "--multicast needs --multicast-interface"
  fetch "$multicast" "$work_dir/multicast.tab" || die "cannot read the multicast session table $multicast"
  awk 'NF != 2 || $2 !~ /^[0-9]+$/ { exit 1 }' "$work_dir/multicast.tab" || die "the multicast session table $multicast is not 'FILE PORTBASE' lines"
}

# multicast_port FILE: the first port of FILE's session ("" without one).
multicast_port() { awk -v f="$1" '$1 == f { print $2; exit }' "$work_dir/multicast.tab"; }

# receive_multicast FILE PORTBASE DEST: FILE from its session into DEST; 1 when no session
# started within $multicast_wait seconds or it broke off.
receive_multicast() {
  say "joining the multicast session of $1 (ports $2-$(($2 + 1)) on $multicast_interface, up to ${multicast_wait}s until it starts)"
  rm -f "$3"
  # --receive-timeout: a sender silent that long is gone (its session ended with us left out).
  udp-receiver --file "$3" --portbase "$2" --interface "$multicast_interface" --mcast-rdv-address 224.0.0.1 \
    --nokbd --no-progress --start-timeout "$multicast_wait" --receive-timeout 30 </dev/null >>"$work_dir/multicast.log" 2>&1
}
