#!/bin/sh
# Build terraform-provider-libvirt from the Go module proxy into a filesystem
# mirror and write a CLI config that installs it offline.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=install-libvirt-provider
USAGE="usage: install-libvirt-provider.sh --cache-dir DIR --cli-config FILE [--version X.Y.Z]"
. "$(dirname "$0")/../steps/lib/messages.sh"

cache_dir=""
cli_config=""
version="0.8.3"
while [ $# -gt 0 ]; do
  case "$1" in
    --cache-dir) cache_dir="$2"; shift 2 ;;
    --cli-config) cli_config="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$cache_dir" ] || usage_error "missing --cache-dir"
[ -n "$cli_config" ] || usage_error "missing --cli-config"


mirror="$cache_dir/provider-mirror"
binary_name="terraform-provider-libvirt_v$version"
tf_path="$mirror/registry.terraform.io/dmacvicar/libvirt/$version/linux_amd64/$binary_name"
tofu_path="$mirror/registry.opentofu.org/dmacvicar/libvirt/$version/linux_amd64/$binary_name"

if [ -x "$tf_path" ] && [ -x "$tofu_path" ]; then
  say "provider dmacvicar/libvirt $version already in $mirror"
else
  PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null 2>&1 || { say "Go is needed to build terraform-provider-libvirt; install Go (https://go.dev/dl/)"; exit 1; }
  mkdir -p "$mirror"
  work=$(mktemp -d "$mirror/.build.XXXXXX")
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT INT TERM
  say "building dmacvicar/libvirt $version from the Go module proxy (about a minute)"
  src=$(cd "$work" && go mod download -json "github.com/dmacvicar/terraform-provider-libvirt@v$version" | sed -n 's/.*"Dir": *"\(.*\)".*/\1/p')
  [ -d "$src" ] || { say "could not download github.com/dmacvicar/terraform-provider-libvirt@v$version"; exit 1; }
  cp -r "$src" "$work/src"; chmod -R u+w "$work/src"
  (cd "$work/src" && CGO_ENABLED=0 go build -ldflags "-X main.version=$version" -o "$work/provider" .)
  for dest in "$tf_path" "$tofu_path"; do
    mkdir -p "$(dirname "$dest")"
    cp "$work/provider" "$dest.$$.tmp" && mv "$dest.$$.tmp" "$dest"
  done
  say "installed $tf_path"
fi

mkdir -p "$(dirname "$cli_config")"
cat > "$cli_config.$$.tmp" <<CONFIG
# Written by scripts/host/install-libvirt-provider.sh: libvirt comes from the local mirror.
# No plugin_cache_dir: the engine's cache is not safe for two inits at once (two labs
# deployed together), and from this unpacked mirror init links the provider, copying nothing.
disable_checkpoint = true
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/dmacvicar/libvirt", "registry.opentofu.org/dmacvicar/libvirt"]
  }
  direct {
    exclude = ["registry.terraform.io/dmacvicar/libvirt", "registry.opentofu.org/dmacvicar/libvirt"]
  }
}
CONFIG
mv "$cli_config.$$.tmp" "$cli_config"
