# shellcheck shell=sh disable=SC2154 # pxe-server.sh's globals (state_dir, records_dir, interface, multicast_*)
# Multicast sessions of the artifacts (sourced by pxe-server.sh): for each profile that
# machines restore by multicast, one udpcast sender per partition artifact
# (multicast-sender.sh, session after session), each on two UDP ports of its own from
# --multicast-port-base, and the table the machines' restore reads to join them
# (http/multicast/PROFILE.tab: "FILE PORTBASE" lines; deploy-env/lib/multicast.sh).

# session_receivers PROFILE FILE: how many machines a session of FILE waits for: those of PROFILE
# that restore by multicast, are not installed, and whose layout writes FILE (a preparation it
# uses, or a captured partition none of its preparations replaces).
session_receivers() {
  printf '%s' "$PXE_MACHINES" | jq -r --arg p "$1" --arg f "$2" --slurpfile m "$state_dir/http/artifacts/$1/manifest.json" '
      ($m[0].prepared // {}) as $prepared
    | .[] | select(.transport == "multicast" and .profile == $p)
    | (.prepared // []) as $uses
    | ([$uses[] | $prepared[.] | select(. != null)]) as $mine
    | select(($mine | map(.artifact) | index($f)) or
             ([$m[0].partitions[] | select(.artifact == $f) | .number] as $n | $n != [] and ($mine | map(.number) | index($n[0]) | not)))
    | .mac' |
    while read -r _mac; do
      case "$(cat "$records_dir/$_mac" 2>/dev/null)" in done|kept|released) ;; *) echo "$_mac" ;; esac
    done | wc -l
}

start_multicast() {
  _profiles=$(printf '%s' "$PXE_MACHINES" | jq -r '[.[] | select(.transport == "multicast") | .profile] | unique | .[]')
  [ -n "$_profiles" ] || return 0
  command -v udp-sender >/dev/null 2>&1 || die "machines restore by multicast (transport: multicast) but udp-sender is not installed (Debian's udpcast)"
  mkdir -p "$state_dir/http/multicast"
  _port=$multicast_port_base _n=0
  for _profile in $_profiles; do
    _dir=$state_dir/http/artifacts/$_profile
    : >"$state_dir/http/multicast/$_profile.tab"
    for _file in $(jq -r '.partitions[].artifact, (.prepared // {} | .[].artifact)' "$_dir/manifest.json"); do
      _min=${multicast_min_receivers:-$(session_receivers "$_profile" "$_file")}
      if [ "$_min" -gt 0 ]; then
        printf '%s %s\n' "$_file" "$_port" >>"$state_dir/http/multicast/$_profile.tab"
        _n=$((_n + 1))
        say "multicast: $_profile/$_file on ports $_port-$((_port + 1)) (a session when $_min machine(s) joined, or ${multicast_max_wait}s after the first did)"
        env -u PXE_MACHINES setsid "$PXE_DIR/multicast-sender.sh" "$_dir/$_file" "$_port" "$interface" "$_min" "$multicast_max_wait" </dev/null >>"$state_dir/multicast.log" 2>&1 &
        echo $! >"$state_dir/multicast-$_n.pid"
      fi
      _port=$((_port + 2))
    done
  done
}

stop_multicast() {
  for _pidfile in "$state_dir"/multicast-*.pid; do
    [ -f "$_pidfile" ] || continue
    _name=${_pidfile##*/}
    stop_daemon "${_name%.pid}"
  done
}
