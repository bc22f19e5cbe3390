#!/bin/sh
# Debian's qemu-guest-agent.service has an empty [Install] section: udev starts
# it when the virtio port org.qemu.guest_agent.0 appears (at boot too, when
# udev replays devices). Check that this path is in place rather than enable it.
set -eu

rule=""
for dir in /usr/lib/udev/rules.d /lib/udev/rules.d /etc/udev/rules.d; do
  for f in "$dir"/*qemu-guest-agent*.rules; do
    [ -f "$f" ] && grep -q 'SYSTEMD_WANTS.*qemu-guest-agent.service' "$f" && rule=$f
  done
done
if [ -z "$rule" ]; then
  rule=/etc/udev/rules.d/60-qemu-guest-agent.rules
  echo "qemu-guest-agent: no udev rule starts the agent; writing $rule"
  cat >"$rule" <<'RULE'
SUBSYSTEM=="virtio-ports", ATTR{name}=="org.qemu.guest_agent.0", TAG+="systemd", ENV{SYSTEMD_WANTS}="qemu-guest-agent.service"
RULE
fi
echo "qemu-guest-agent: started by udev ($rule) when the guest agent channel appears"

# A masked unit would defeat the udev rule.
if [ -L /etc/systemd/system/qemu-guest-agent.service ] && [ "$(readlink /etc/systemd/system/qemu-guest-agent.service)" = /dev/null ]; then
  rm /etc/systemd/system/qemu-guest-agent.service
  echo "qemu-guest-agent: unmasked"
fi
