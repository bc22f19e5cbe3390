#!/bin/sh
# After readiness: run a VM's Ansible playbooks, in order, against its running
# domain through the QEMU guest agent (Ansible's community.libvirt.libvirt_qemu
# connection: no SSH, no network). Each runs from its own folder, so its roles,
# group_vars and ansible.cfg apply. A failing task fails the step naming the VM,
# the playbook, the play and the task.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=run-playbooks
USAGE="usage: run-playbooks.sh --uri URI --domain NAME --vm NAME --playbook FILE [--playbook FILE]..."
. "$(dirname "$0")/lib/messages.sh"
. "$(dirname "$0")/lib/ansible-log.sh"

uri=""
domain=""
vm=""
playbooks=0
# The playbooks, one a line, in order (paths hold no newline: the lab config refuses control characters).
playbook_list=""
while [ $# -gt 0 ]; do
  case "$1" in
    --uri) uri="$2"; shift 2 ;;
    --domain) domain="$2"; shift 2 ;;
    --vm) vm="$2"; shift 2 ;;
    --playbook) playbook_list="$playbook_list$2
"; playbooks=$((playbooks + 1)); shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$uri" ] || usage_error "missing --uri"
[ -n "$domain" ] || usage_error "missing --domain"
[ -n "$vm" ] || usage_error "missing --vm"
[ "$playbooks" -gt 0 ] || usage_error "missing --playbook"

for tool in ansible-playbook jq; do
  command -v "$tool" >/dev/null 2>&1 || die "$vm: the playbooks need $tool on this host (scripts/host/host-requirements.txt)"
done
# The Python that runs ansible-playbook (its #! line) loads the connection.
ansible_python=$(sed -n '1s/^#! *//p' "$(command -v ansible-playbook)")
# shellcheck disable=SC2086 # the #! line may be "/usr/bin/env python3"
${ansible_python:-python3} -c 'import libvirt_qemu' 2>/dev/null ||
  die "$vm: Ansible's libvirt_qemu connection needs libvirt's Python bindings on this host (python3-libvirt)"

work=$(mktemp -d "${TMPDIR:-/tmp}/btw-playbooks.XXXXXX")
cleanup() { rm -rf "$work"; }
on_exit cleanup

# The one host is the domain; the connection asks its guest agent. jq quotes the names.
jq -n --arg domain "$domain" --arg uri "$uri" '{all: {hosts: {($domain): {
  ansible_connection: "community.libvirt.libvirt_qemu",
  ansible_libvirt_uri: $uri,
  ansible_python_interpreter: "/usr/bin/python3"}}}}' >"$work/inventory.json"

# ansible-playbook ARGS... on PLAYBOOK, from its folder, with only the environment set
# here: Ansible's own files go to $work, which the exit removes.
playbook() {
  _playbook=$1; shift
  rm -f "$work/log"
  _status=0
  env -i -C "$(dirname "$_playbook")" PATH="$PATH" HOME="$work/home" LC_ALL=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 \
    ANSIBLE_HOME="$work/ansible" ANSIBLE_LOCAL_TEMP="$work/local" ANSIBLE_LOG_PATH="$work/log" \
    ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
    ansible-playbook -i "$work/inventory.json" -e "btw_vm=$vm" "$@" "$_playbook" >&2 ||
    _status=$?
  [ "$_status" -eq 0 ] || die "$vm: playbook $_playbook failed$(playbook_failure "$work/log")"
}

# Before the VM is touched: every playbook parses and finds its roles.
printf '%s' "$playbook_list" | while IFS= read -r file; do
  [ -f "$file" ] || die "$vm: playbook $file does not exist"
  say "$vm: checking playbook $file"
  playbook "$file" --syntax-check
done

printf '%s' "$playbook_list" | while IFS= read -r file; do
  say "$vm: running playbook $file on $domain through its guest agent"
  playbook "$file"
done
say "$vm: $playbooks playbook(s) applied"
