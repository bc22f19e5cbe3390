# shellcheck shell=sh
# Sourced by customize-image.sh: its help and its arguments, read into the
# globals the other parts read (base release layers packages steps apt_mirrors
# layer_store secure_boot output). Every value is checked for its form here;
# what it names (folders, files) is checked by the script after.
# shellcheck disable=SC2034 # the globals set here are read by customize-image.sh and its parts

print_help() {
  cat <<HELP
$USAGE

Applies the layers to BASE (never modified) in a chroot, one cached qcow2
overlay per step, and writes OUT, the chain flattened, atomically. Needs root,
qemu-img, qemu-storage-daemon (FUSE), losetup, partx, mount, chroot.

  --base FILE          cloud image to start from: the raw disk prepare-cloud-img.sh
                       caches, or any format qemu-img reads
  --release CODENAME   Debian release the image must be (its VERSION_CODENAME)
  --layer DIR          a profile folder; repeated for a profile's chain, parent first
  --package 'NAME [ORIGIN]'
                       a package to install, repeated; ORIGIN (say "profile minimal:
                       install.d/base.list:3") names where it comes from in errors
  --secure-boot        the image must boot with Secure Boot enforced: an unsigned
                       kernel (/boot/vmlinuz-*) or kernel module no package ships
                       (dkms output, say) fails the build; without it, a warning
  --apt-mirror URI=MIRROR
                       fetch the repositories of apt-sources.d whose URI is URI from
                       MIRROR during the build (an internal mirror, a stand-in); the
                       image keeps URI. Repeated for several URIs
  --step 'KEY NAME'    a step to build as a cached layer, repeated in build order:
                       NAME is packages, PROFILE/files, PROFILE/ansible or
                       PROFILE/commands.d/NN-name.sh; KEY (sha256) names the layer
                       in the store: lib/image/layer-plan.ts computes them
  --layer-store DIR    where the layers are cached (default: layers/ beside OUT)
  --output FILE        qcow2 to write; OUT.work/ beside it holds the build

Of each layer, apt-sources.d/*.sources, files/, ansible/playbook.yml and
commands.d/NN-name.sh are applied (see profiles/README.md); its install.d lists
come as --package. The steps (the packages, then each layer's files/, playbook
and commands.d script) come as --step, keyed by everything up to them: a step
whose key is in the store is not run again. lib/config/profile.ts resolves a
profile and lib/image/layer-plan.ts plans its steps into these arguments
(customizeArgs in lib/constructs/customized-image.ts). A run killed with SIGKILL
is cleaned up by the next run for the same OUT.
HELP
}

parse_arguments() {
  base="" release="" layers="" packages="" output="" secure_boot="" apt_mirrors="" layer_store="" steps=""
  while [ $# -gt 0 ]; do
    case "$1" in
      -h|--help) print_help; exit 0 ;;
      --secure-boot) secure_boot=1; shift; continue ;;
      --base=*|--release=*|--layer=*|--package=*|--step=*|--apt-mirror=*|--layer-store=*|--output=*) opt=${1%%=*}; val=${1#*=}; shift ;;
      --base|--release|--layer|--package|--step|--apt-mirror|--layer-store|--output)
        [ $# -ge 2 ] || usage_error "$1 needs a value"
        opt=$1; val=$2; shift 2 ;;
      *) usage_error "unknown argument: $1" ;;
    esac
    case "$opt" in
      --base) base=$val ;;
      --release) release=$val ;;
      --layer) layers="$layers${val%/}
" ;;
      --package)
        # A word apt takes as a package (never an option), then where it comes from.
        case "${val%% *}" in ''|[!a-z0-9]*|*[!a-zA-Z0-9+.:=~/-]*) usage_error "--package: not a package name: '${val%% *}'" ;; esac
        packages="$packages$val
" ;;
      --apt-mirror)
        case "$val" in
          [a-z]*://*=[a-z]*://*) ;;
          *) usage_error "--apt-mirror: expected URI=MIRROR (two URLs): '$val'" ;;
        esac
        case "$val" in *[[:space:]]*) usage_error "--apt-mirror: no whitespace: '$val'" ;; esac
        apt_mirrors="$apt_mirrors${val%%=*} ${val#*=}
" ;;
      --step)
        printf '%s\n' "$val" | grep -Eqx '[0-9a-f]{64} (packages|[A-Za-z0-9][A-Za-z0-9_.-]*/(files|ansible|commands\.d/[0-9]{2}-[A-Za-z0-9_.-]+\.sh))' ||
          usage_error "--step: expected 'KEY NAME' (a sha256, then packages, PROFILE/files, PROFILE/ansible or PROFILE/commands.d/NN-name.sh): '$val'"
        steps="$steps$val
" ;;
      --layer-store) layer_store=$val ;;
      --output) output=$val ;;
    esac
  done
  [ -n "$base" ] || usage_error "missing --base"
  [ -n "$release" ] || usage_error "missing --release"
  [ -n "$layers" ] || usage_error "missing --layer"
  [ -n "$output" ] || usage_error "missing --output"
}
