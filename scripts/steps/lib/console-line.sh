# shellcheck shell=sh
# console_line LOG: ": " and the last line of a serial console's log, to read while waiting: its
# escape sequences and indent gone, cut at 120 characters; never cloud-init's own lines, which
# carry what the user data's commands print. Nothing when the log has no such line.
console_line() {
  [ -n "$1" ] && [ -r "$1" ] || return 0
  _line=$(tail -n 40 "$1" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | tr -cd '[:print:]\n' |
    grep -v 'cloud-init\[' | sed 's/^[[:space:]]*//' | grep -v '^$' | tail -n 1 | cut -c1-120)
  [ -z "$_line" ] || printf ': %s' "$_line"
}
