#!/bin/sh
# Build the linters the CI pipeline tests need (actionlint) from the Go module
# proxy into the cache. Idempotent: a run that finds the right version is instant.
# Prints the folder holding the tools on stdout.
set -eu

usage() { echo "usage: install-ci-tools.sh [--cache-dir DIR]"; }
cache_dir=${BTW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/btw-img}
while [ $# -gt 0 ]; do
  case "$1" in
    --cache-dir) [ $# -ge 2 ] || { usage >&2; exit 2; }; cache_dir="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install-ci-tools: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

log() { echo "install-ci-tools: $*" >&2; }
actionlint_version=1.7.12
tools_dir="$cache_dir/tools"
mkdir -p "$tools_dir"

if "$tools_dir/actionlint" -version 2>/dev/null | head -n 1 | grep -qx "v\{0,1\}$actionlint_version"; then
  log "actionlint $actionlint_version already in $tools_dir"
else
  PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null || { log "error: Go (1.23 or newer) is needed to build actionlint"; exit 1; }
  log "building actionlint $actionlint_version from the Go module proxy"
  # Build into a scratch folder and rename, so an interrupted build leaves no half binary.
  build_dir=$(mktemp -d "$tools_dir/.build.XXXXXX")
  trap 'rm -rf "$build_dir"' EXIT
  GOBIN="$build_dir" go install "github.com/rhysd/actionlint/cmd/actionlint@v$actionlint_version" >&2
  mv "$build_dir/actionlint" "$tools_dir/actionlint"
fi
echo "$tools_dir"
