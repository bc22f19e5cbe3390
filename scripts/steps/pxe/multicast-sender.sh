#!/bin/sh
# One artifact sent by udpcast multicast, session after session, until stopped
# (pxe-server.sh starts one per artifact of a profile whose machines use multicast).
# A session starts when MIN receivers joined, or MAX_WAIT seconds after the first
# one did; a machine that comes later joins the next session (or fetches over HTTP
# after its own wait). udp-sender's messages go to this script's output.
# usage: multicast-sender.sh FILE PORTBASE INTERFACE MIN_RECEIVERS MAX_WAIT
set -eu
[ $# -eq 5 ] || { echo "usage: multicast-sender.sh FILE PORTBASE INTERFACE MIN_RECEIVERS MAX_WAIT" >&2; exit 2; }
file=$1 portbase=$2 interface=$3 min=$4 max_wait=$5 sender=""
[ -f "$file" ] || { echo "multicast-sender: no file $file" >&2; exit 1; }
# The sender ends when this script does: a stop signal reaches the session too.
trap 'kill "$sender" 2>/dev/null; exit 0' TERM INT
while :; do
  # The rendezvous on the all-hosts group, as the receivers ask (a bridge in a network
  # namespace drops the default broadcast one).
  udp-sender --file "$file" --portbase "$portbase" --interface "$interface" --mcast-rdv-address 224.0.0.1 \
    --min-receivers "$min" --max-wait "$max_wait" --nokbd --retries-until-drop 200 </dev/null &
  sender=$!
  wait "$sender" || sleep 1
done
