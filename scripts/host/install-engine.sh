#!/bin/sh
# Pick the Terraform-compatible engine: terraform or tofu from PATH (>= 1.5),
# otherwise build OpenTofu from the Go module proxy into the cache.
# Prints two lines for env.sh: BTW_ENGINE_BIN=<abs path> and BTW_ENGINE_NAME=<terraform|tofu>.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=install-engine
USAGE="usage: install-engine.sh --cache-dir DIR [--tofu-version vX.Y.Z]"
. "$(dirname "$0")/../steps/lib/messages.sh"

cache_dir=""
tofu_version="v1.10.7"
while [ $# -gt 0 ]; do
  case "$1" in
    --cache-dir) cache_dir="$2"; shift 2 ;;
    --tofu-version) tofu_version="$2"; shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$cache_dir" ] || usage_error "missing --cache-dir"

# version_ok "1.11.4" -> true when >= 1.5
version_ok() {
  major=${1%%.*}; rest=${1#*.}; minor=${rest%%.*}
  [ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -ge 5 ]; }
}

engine_version() {
  "$1" version -json 2>/dev/null | sed -n 's/.*"terraform_version": *"\([0-9.]*\)".*/\1/p' | head -n 1
}

if [ -n "${BTW_ENGINE:-}" ]; then
  candidates="$BTW_ENGINE"
else
  candidates="terraform tofu"
fi
for name in $candidates; do
  path=$(command -v "$name" 2>/dev/null || true)
  [ -n "$path" ] || continue
  version=$(engine_version "$path")
  if [ -n "$version" ] && version_ok "$version"; then
    say "using $name $version ($path)"
    echo "BTW_ENGINE_BIN=$path"
    echo "BTW_ENGINE_NAME=$(basename "$path")"
    exit 0
  fi
  say "ignoring $path: version '${version:-unknown}' is older than 1.5"
done

tofu_dir="$cache_dir/engine/tofu-$tofu_version"
if [ -x "$tofu_dir/tofu" ]; then
  say "using cached OpenTofu $tofu_version ($tofu_dir/tofu)"
else
  command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || {
    say "no terraform/tofu on PATH and no Go toolchain to build OpenTofu; install terraform or tofu >= 1.5, or Go"; exit 1; }
  PATH="$PATH:/usr/local/go/bin"
  say "no terraform/tofu >= 1.5 on PATH: building OpenTofu $tofu_version from the Go module proxy (a few minutes)"
  work=$(mktemp -d "$cache_dir/engine/.build.XXXXXX" 2>/dev/null || { mkdir -p "$cache_dir/engine"; mktemp -d "$cache_dir/engine/.build.XXXXXX"; })
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT INT TERM
  # go install fails on OpenTofu's replace directives: build inside a copy of the module.
  src=$(cd "$work" && go mod download -json "github.com/opentofu/opentofu@$tofu_version" | sed -n 's/.*"Dir": *"\(.*\)".*/\1/p')
  [ -d "$src" ] || { say "could not download github.com/opentofu/opentofu@$tofu_version"; exit 1; }
  cp -r "$src" "$work/src"; chmod -R u+w "$work/src"
  (cd "$work/src" && CGO_ENABLED=0 go build -o "$work/tofu" ./cmd/tofu)
  mkdir -p "$tofu_dir"
  mv "$work/tofu" "$tofu_dir/tofu.$$.tmp" && mv "$tofu_dir/tofu.$$.tmp" "$tofu_dir/tofu"
  say "built $tofu_dir/tofu"
fi
echo "BTW_ENGINE_BIN=$tofu_dir/tofu"
echo "BTW_ENGINE_NAME=tofu"
