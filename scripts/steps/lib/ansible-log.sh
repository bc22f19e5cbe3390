# shellcheck shell=sh
# Sourced by the steps that run ansible-playbook (customize-image.sh, run-playbooks.sh):
# what failed, read from the log Ansible writes when ANSIBLE_LOG_PATH is set.

# "in play 'P', task 'T': MSG" from Ansible's log (ANSIBLE_LOG_PATH), else ": ERROR! ...".
playbook_failure() {
  # The log's lines are "DATE p=PID u=USER n=ansible | MESSAGE".
  sed 's/^[0-9-]* [0-9:,]* p=[0-9]* u=[^ ]* n=[^ ]* | //' "$1" | awk '
    function banner(line) { sub(/^[A-Z ]+\[/, "", line); sub(/\] \**$/, "", line); return line }
    /^PLAY \[/ { play = banner($0) }
    /^(TASK|RUNNING HANDLER) \[/ { task = banner($0) }
    /^(fatal|failed): \[.* => \{/ { where = " in play '\''" play "'\'', task '\''" task "'\''"; result = substr($0, index($0, " => ") + 4) }
    /^ERROR! / { error = $0 }
    END { if (where == "") where = ": " (error != "" ? error : "see its output above"); print where; print result }' |
    { IFS= read -r _where; IFS= read -r _result
      _message=$(printf '%s' "$_result" | jq -r '[.msg, .stderr] | map(select(. != null and . != "")) | join(": ")' 2>/dev/null)
      printf '%s%s\n' "$_where" "${_message:+: $_message}"; }
}
