#!/bin/sh
# Sourced by customize-image.sh: the layers' Ansible playbooks (ansible/playbook.yml,
# with its roles and vars beside it), after files/ and before commands.d/, parent
# first, through Ansible's chroot connection. The image's own python3 runs the
# modules; apt tasks use the build's apt configuration; no service starts
# (guard_build). Nothing of Ansible stays: its temporary folders are in the
# image's /tmp and on the host in $work.
# Functions taking LAYER... get the layer folders, parent first.
# Reads: root work image_release TEMP_PREFIX CHROOT_PATH (check_layer_playbooks
# writes the inventory that run_layer_playbooks uses).
# shellcheck disable=SC2154 # the globals named above are customize-image.sh's

# In the image: Ansible's remote temporary folders and the lent python3-apt.
ANSIBLE_IMAGE_TMP=/tmp/btw-ansible
PYTHON_APT_PTH=/usr/lib/python3/dist-packages/${TEMP_PREFIX}python-apt.pth

has_playbook() { [ -f "$1/ansible/playbook.yml" ]; }

# Before anything is changed: the host can run the playbooks and read their errors.
check_ansible() {
  for _layer in "$@"; do
    has_playbook "$_layer" || continue
    for _tool in ansible-playbook jq; do
      command -v "$_tool" >/dev/null 2>&1 ||
        die "profile ${_layer##*/}: ansible/playbook.yml needs $_tool on the build host (scripts/host/host-requirements.txt)"
    done
    return 0
  done
}

# The apt module needs python3-apt. An image without it gets the package's files
# unpacked in its /tmp and put on python3's path by a .pth file, for the build
# only: dpkg never records it, so nothing is left to purge, and a playbook that
# installs python3-apt (or what needs it) keeps it.
lend_python_apt() {
  if chroot "$root" /usr/bin/python3 -c 'import apt_pkg' 2>/dev/null; then return 0; fi
  plain_dir "$root${PYTHON_APT_PTH%/*}" || die "the image has no ${PYTHON_APT_PTH%/*} folder for python3-apt"
  say "lending python3-apt to the image's python3 for the playbooks (not installed)"
  in_chroot apt-get -qq -y --download-only --no-install-recommends install python3-apt ||
    die "cannot download python3-apt, which Ansible's apt module needs"
  # shellcheck disable=SC2016 # $1 is the chroot's sh's
  in_chroot sh -c 'dpkg-deb -x /var/cache/apt/archives/python3-apt_*.deb "$1"' sh "$ANSIBLE_IMAGE_TMP/python-apt" ||
    die "cannot unpack python3-apt"
  printf '%s\n' "$ANSIBLE_IMAGE_TMP/python-apt/usr/lib/python3/dist-packages" >"$root$PYTHON_APT_PTH"
  note_temp "$PYTHON_APT_PTH"
}

# ansible-playbook ARGS... on LAYER's playbook, from its folder (so an ansible.cfg
# there applies), with only the environment the build sets: Ansible's own files go
# to $work/ansible on the host and under /tmp in the image, and the chroot
# connection hands this environment to the modules in the image.
layer_playbook() {
  _playbook_layer=$1; shift
  rm -f "$work/ansible/log"
  _status=0
  run env -i -C "$_playbook_layer/ansible" PATH="$CHROOT_PATH" HOME=/root LC_ALL=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true PYTHONDONTWRITEBYTECODE=1 \
    ANSIBLE_HOME="$work/ansible/home" ANSIBLE_LOCAL_TEMP="$work/ansible/local" \
    ANSIBLE_REMOTE_TEMP="$ANSIBLE_IMAGE_TMP/remote" ANSIBLE_ASYNC_DIR="$ANSIBLE_IMAGE_TMP/async" \
    ANSIBLE_LOG_PATH="$work/ansible/log" ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
    ansible-playbook -i "$work/ansible/inventory" -e "btw_profile=${_playbook_layer##*/} btw_release=$image_release" "$@" playbook.yml >&2 ||
    _status=$?
  [ "$_status" -eq 0 ] || die "profile ${_playbook_layer##*/}: ansible/playbook.yml failed$(playbook_failure "$work/ansible/log")"
}

# Before the image is changed: each playbook parses and finds its roles.
check_layer_playbooks() {
  mkdir -p "$work/ansible"
  # The image is the one host; its own python3 runs the modules.
  printf 'image ansible_connection=community.general.chroot ansible_host=%s ansible_python_interpreter=/usr/bin/python3\n' "$root" >"$work/ansible/inventory"
  for _layer in "$@"; do
    has_playbook "$_layer" || continue
    say "profile ${_layer##*/}: checking ansible/playbook.yml"
    layer_playbook "$_layer" --syntax-check
  done
}

run_layer_playbooks() {
  _any=""
  for _layer in "$@"; do has_playbook "$_layer" && _any=1; done
  [ -n "$_any" ] || return 0
  chroot "$root" test -x /usr/bin/python3 || die "Ansible needs python3 in the image: add it to an install.d list"
  mkdir -p "$root$ANSIBLE_IMAGE_TMP"
  lend_python_apt
  for _layer in "$@"; do
    has_playbook "$_layer" || continue
    say "profile ${_layer##*/}: running ansible/playbook.yml"
    layer_playbook "$_layer"
  done
  rm -f "$root$PYTHON_APT_PTH"
  rm -rf "${root:?}$ANSIBLE_IMAGE_TMP"
}
