# shellcheck shell=sh disable=SC2154 # pxe-server.sh's globals (state_dir, records_dir, mac, erase, ...)
# What the server keeps of its machines, DIR.records (sourced by pxe-server.sh): stop
# (which keeps them), status, reinstall and release.

cmd_stop() {
  if ours "$state_dir"; then
    stop_daemon dnsmasq
    stop_daemon httpd
    stop_multicast
    # A server from before the records folder kept "done" in state/: keep it.
    for _report in "$state_dir"/state/*; do
      [ "$(cat "$_report" 2>/dev/null)" = "done" ] || continue
      own_dir "$records_dir"
      echo "done" >"$records_dir/${_report##*/}"
    done
    rm -rf "$state_dir"
    say "stopped; removed $state_dir (the machines' records stay in $records_dir)"
  elif [ -e "$state_dir" ]; then
    say "left $state_dir alone: it is not btw-img's (no $MARKER in it)"
  fi
}

cmd_status() {
  for _record in "$records_dir"/*; do
    # A machine's state is the file named by its MAC; its token, log and inventory have a suffix.
    case "${_record##*/}" in *.*|"*") continue ;; esac
    printf '%s %s\n' "${_record##*/}" "$(cat "$_record")"
  done
}

cmd_reinstall() {
  is_mac "$mac" || usage_error "--mac must be a lowercase MAC such as 52:54:00:12:34:56"
  if [ -d "$records_dir" ] && ! ours "$records_dir"; then die "$records_dir is not btw-img's (no $MARKER in it)"; fi
  _was=$(cat "$records_dir/$mac" 2>/dev/null) || _was="no record"
  rm -f "$records_dir/$mac" "$records_dir/$mac.token" "$records_dir/$mac.next-token" "$records_dir/$mac.up" "$records_dir/$mac.erase"
  # The mark that its next restore replaces the install its disks hold (until done).
  own_dir "$records_dir"
  chmod 700 "$records_dir"
  echo replace >"$records_dir/$mac.replace"
  if ours "$state_dir" && [ -f "$state_dir/machines/$mac/deploy.ipxe.in" ]; then
    publish "$mac"
    say "$mac ($(cat "$state_dir/machines/$mac/name")) was $_was: its next network boot restores it"
  else
    say "$mac was $_was: forgotten; the server is not serving it now, its next start will"
  fi
}

cmd_release() {
  is_mac "$mac" || usage_error "--mac must be a lowercase MAC such as 52:54:00:12:34:56"
  case "$erase" in ''|quick|full) ;; *) usage_error "--erase must be quick or full" ;; esac
  if [ -d "$records_dir" ] && ! ours "$records_dir"; then die "$records_dir is not btw-img's (no $MARKER in it)"; fi
  _was=$(cat "$records_dir/$mac" 2>/dev/null) || _was="no record"
  own_dir "$records_dir"
  chmod 700 "$records_dir"
  rm -f "$records_dir/$mac.replace" "$records_dir/$mac.erase"
  if [ -z "$erase" ]; then
    # Nothing written: not served from now on (its token and scripts gone).
    echo released >"$records_dir/$mac"
    rm -f "$records_dir/$mac.token" "$records_dir/$mac.next-token" "$records_dir/$mac.up" "$state_dir/machines/$mac/boot.ipxe" "$state_dir/machines/$mac/token.cpio" \
      "$(tftp_dir "$mac")/grub/deploy.cfg" "$(tftp_dir "$mac")/token.img"
    say "$mac was $_was: released (its disks as they are); btw metal reinstall installs it again"
    return
  fi
  # Its next network boot erases (the mark stays until it reports released).
  rm -f "$records_dir/$mac"
  echo "$erase" >"$records_dir/$mac.erase"
  if ours "$state_dir" && [ -f "$state_dir/machines/$mac/deploy.ipxe.in" ]; then
    publish "$mac"
    say "$mac ($(cat "$state_dir/machines/$mac/name")) was $_was: its next network boot erases its disks ($erase) and powers it off"
  else
    say "$mac was $_was: marked for a $erase erase; the server is not serving it now, its next start will"
  fi
}
