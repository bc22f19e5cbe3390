#!/bin/sh
# Readiness: wait until cloud-init inside a domain reports done, asking it
# through the QEMU guest agent; fail naming the VM and cloud-init's own error.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=wait-for-cloud-init
USAGE="usage: wait-for-cloud-init.sh --uri URI --domain NAME --hostname NAME [--timeout SECONDS] [--console-log FILE]"
. "$(dirname "$0")/lib/messages.sh"

uri=""
domain=""
hostname=""
timeout=1200
console_log=""
while [ $# -gt 0 ]; do
  case "$1" in
    --uri) uri="$2"; shift 2 ;;
    --domain) domain="$2"; shift 2 ;;
    --hostname) hostname="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --console-log) console_log="$2"; shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$uri" ] || usage_error "missing --uri"
[ -n "$domain" ] || usage_error "missing --domain"
[ -n "$hostname" ] || usage_error "missing --hostname"
case "$timeout" in *[!0-9]*|'') usage_error "--timeout must be a number of seconds" ;; esac

log() { say "$hostname: $*"; }

agent() { virsh -c "$uri" qemu-agent-command "$domain" "$1" 2>/dev/null; }

# guest_exec PROGRAM ARG... -> prints the program's stdout+stderr, returns its exit code
guest_exec() {
  program=$1; shift
  args=""
  for a in "$@"; do args="$args${args:+,}\"$a\""; done
  pid=$(agent "{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"$program\",\"arg\":[$args],\"capture-output\":true}}" | jq -r '.return.pid') || return 125
  [ -n "$pid" ] && [ "$pid" != null ] || return 125
  while :; do
    status=$(agent "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}") || return 125
    if [ "$(echo "$status" | jq -r '.return.exited')" = true ]; then
      echo "$status" | jq -r '.return["out-data"] // empty' | base64 -d 2>/dev/null || true
      echo "$status" | jq -r '.return["err-data"] // empty' | base64 -d 2>/dev/null || true
      return "$(echo "$status" | jq -r '.return.exitcode // 125')"
    fi
    sleep 1
  done
}

show_console_tail() {
  [ -n "$console_log" ] && [ -r "$console_log" ] || return 0
  echo "--- last lines of the serial console ($console_log) ---" >&2
  tail -n 15 "$console_log" | tr -d '\r' >&2
}

. "$(dirname "$0")/lib/console-line.sh"

start=$(date +%s)
deadline=$((start + timeout))
log "waiting for the guest agent and cloud-init (timeout ${timeout}s)"
agent_seen="" libvirt_gone=""
last_note=$start
while :; do
  now=$(date +%s)
  if [ "$now" -ge "$deadline" ]; then
    if [ -z "$agent_seen" ]; then
      log "not ready after ${timeout}s: the QEMU guest agent never answered (does the VM's profile install qemu-guest-agent?)"
    else
      log "not ready after ${timeout}s: cloud-init is still running"
    fi
    show_console_tail
    exit 1
  fi
  if ! state=$(virsh -c "$uri" domstate "$domain" 2>/dev/null); then
    # A libvirtd restarting (an upgrade, a crash) is waited for; the guest runs on meanwhile.
    if ! virsh -c "$uri" version >/dev/null 2>&1; then
      [ -n "$libvirt_gone" ] || log "libvirt ($uri) does not answer: waiting for it (the VM runs on)"
      libvirt_gone=1
      sleep 3
      continue
    fi
    state=missing
  fi
  [ -z "$libvirt_gone" ] || log "libvirt ($uri) answers again"
  libvirt_gone=""
  case "$state" in
    running) ;;
    *) log "domain $domain is $state, not running"; show_console_tail; exit 1 ;;
  esac
  if agent '{"execute":"guest-ping"}' >/dev/null; then
    [ -n "$agent_seen" ] || log "guest agent answered after $((now - start))s"
    agent_seen=1
    code=0
    report=$(guest_exec /usr/bin/cloud-init status --long) || code=$?
    status=$(echo "$report" | sed -n 's/^status: *//p' | head -n 1)
    case "$status" in
      done)
        actual=$(guest_exec /bin/hostname | tr -d '\n' || true)
        if [ "$actual" != "$hostname" ]; then
          log "cloud-init is done but the hostname is '$actual', expected '$hostname'"
          exit 1
        fi
        log "ready after $((now - start))s: cloud-init done, hostname $actual"
        exit 0 ;;
      error|degraded*)
        log "cloud-init reported $status (exit code $code):"
        echo "$report" | sed 's/^/  /' >&2
        guest_exec /usr/bin/tail -n 15 /var/log/cloud-init-output.log | sed 's/^/  cloud-init-output.log: /' >&2 || true
        exit 1 ;;
    esac
  fi
  if [ $((now - last_note)) -ge 30 ]; then
    log "still booting ($((now - start))s)$(console_line "$console_log")"
    last_note=$now
  fi
  sleep 3
done
