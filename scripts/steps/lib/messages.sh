# shellcheck shell=sh
# Sourced by the step and host scripts (deploy-env/ carries its own: it runs alone
# in the initramfs). Messages go to stderr headed by the script's $PROG; a usage
# error also prints its $USAGE and exits 2.
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "error: $*"; exit 1; }
usage_error() { say "$*"; echo "$USAGE" >&2; exit 2; }

# on_exit COMMAND: run COMMAND on every exit; INT and TERM exit 130 and 143, so through it too.
on_exit() {
  # shellcheck disable=SC2064 # COMMAND is set now, as given; it runs at exit
  trap "$1" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
