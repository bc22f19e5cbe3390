#!/bin/sh
# Build the linters the CI pipeline tests need (actionlint) from the Go module
# proxy into the cache. Idempotent: a run that finds the right version is instant.
# Prints the folder holding the tools on stdout.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=install-ci-tools
USAGE="usage: install-ci-tools.sh [--cache-dir DIR]"
. "$(dirname "$0")/../steps/lib/messages.sh"
cache_dir=${BTW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/btw-img}
while [ $# -gt 0 ]; do
  case "$1" in
    --cache-dir) [ $# -ge 2 ] || usage_error "--cache-dir needs a value"; cache_dir="$2"; shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

actionlint_version=1.7.12
tools_dir="$cache_dir/tools"
mkdir -p "$tools_dir"

if "$tools_dir/actionlint" -version 2>/dev/null | head -n 1 | grep -qx "v\{0,1\}$actionlint_version"; then
  say "actionlint $actionlint_version already in $tools_dir"
else
  PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null || die "Go (1.23 or newer) is needed to build actionlint"
  say "building actionlint $actionlint_version from the Go module proxy"
  # Build into a scratch folder and rename, so an interrupted build leaves no half binary.
  build_dir=$(mktemp -d "$tools_dir/.build.XXXXXX")
  trap 'rm -rf "$build_dir"' EXIT
  GOBIN="$build_dir" go install "github.com/rhysd/actionlint/cmd/actionlint@v$actionlint_version" >&2
  mv "$build_dir/actionlint" "$tools_dir/actionlint"
fi
echo "$tools_dir"
