#!/bin/sh
# btw-report: the deploy environment's reports to its PXE server (cgi-bin/report),
# from the machine's own address with its token (/etc/btw-token, never on a command
# line): its state, with how far it is and a note, or its hardware inventory.
#   btw-report [--tries N] STATE [PERCENT [NOTE]]
#   btw-report [--tries N] --inventory FILE
# The server's URL and the machine's MAC come from /run/btw-report (server=, mac=),
# which /init writes once the network is up; the token from /etc/btw-token (tests
# name others in BTW_REPORT_CONFIG and BTW_TOKEN_FILE). Tries every 3 seconds, N times (1).
set -u
tries=1
if [ "${1:-}" = --tries ]; then tries=$2; shift 2; fi
[ $# -ge 1 ] || { echo "usage: btw-report [--tries N] STATE [PERCENT [NOTE]] | --inventory FILE" >&2; exit 2; }
server="" mac="" token=""
config=${BTW_REPORT_CONFIG:-/run/btw-report} token_file=${BTW_TOKEN_FILE:-/etc/btw-token}
# shellcheck disable=SC1090 # written by /init
[ ! -f "$config" ] || . "$config"
[ ! -f "$token_file" ] || read -r token <"$token_file"
[ -n "$server" ] && [ -n "$mac" ] && [ -n "$token" ] || exit 1

# A note travels in the query: only characters that need no escaping, spaces as %20.
encode() { printf '%s' "$1" | tr -c 'A-Za-z0-9 ._:/()=,+-' '_' | cut -c1-200 | sed 's/ /%20/g'; }

url="$server/cgi-bin/report?mac=$mac&token=$token"
post=""
if [ "$1" = --inventory ]; then
  post=$2 url="$url&status=inventory"
else
  url="$url&status=$1${2:+&percent=$2}${3:+&note=$(encode "$3")}"
fi
attempt=0
while :; do
  if [ -n "$post" ]; then
    timeout 15 wget -q -O /dev/null --post-file "$post" "$url" 2>/dev/null && exit 0
  else
    timeout 15 wget -q -O /dev/null "$url" 2>/dev/null && exit 0
  fi
  attempt=$((attempt + 1))
  [ "$attempt" -lt "$tries" ] || exit 1
  sleep 3
done
