# shellcheck shell=sh
# Sourced by step scripts that build in a work folder beside their output (OUTPUT.<kind>-XXXXXX,
# on their own mount namespace): what a run killed outright (SIGKILL, a power loss) left there
# is released by the next run. Its mounts went with its mount namespace; its loop devices and
# files stay until then. Needs detach_loops_of (lib/image-mount.sh) and say (lib/messages.sh).

# mark_work DIR: DIR is this run's work folder (its pid, which later runs check).
mark_work() { echo "$$" >"$1/pid"; }

# release_stale_work PREFIX: each work folder PREFIX-* whose run is gone (the pid in it runs no
# more; a folder without one once it is 10 minutes old): its loop devices detached, then removed.
release_stale_work() {
  for _stale in "$1"-*; do
    [ -d "$_stale" ] || continue
    if [ -f "$_stale/pid" ]; then
      ! kill -0 "$(cat "$_stale/pid")" 2>/dev/null || continue
    elif [ -z "$(find "$_stale" -maxdepth 0 -mmin +10)" ]; then
      continue
    fi
    say "releasing what an interrupted run left: $_stale"
    detach_loops_of "$_stale"/*
    rm -rf "$_stale"
  done
}
