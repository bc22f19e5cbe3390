#!/bin/sh
# What a release publishes beside its files: SHA256SUMS of every file in DIR and,
# when CI has a signing key, its detached signature SHA256SUMS.asc.
#   sign-release.sh --dir DIR
# The key comes from BTW_SIGNING_KEY (an ASCII-armored secret key, CI's secret)
# with BTW_SIGNING_KEY_PASSPHRASE if it has one; both reach gpg on its standard
# input, never as an argument, in a keyring of this run's own that is removed after.
# shellcheck source-path=SCRIPTDIR
set -eu

PROG=sign-release
USAGE="usage: [BTW_SIGNING_KEY=... [BTW_SIGNING_KEY_PASSPHRASE=...]] sign-release.sh --dir DIR"
. "$(dirname "$0")/lib/messages.sh"

dir=""
while [ $# -gt 0 ]; do
  case $1 in
    --dir) [ $# -ge 2 ] || usage_error "--dir needs a value"; dir=$2; shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$dir" ] || usage_error "missing --dir"
[ -d "$dir" ] || die "no such folder: $dir"

home=""
cleanup() {
  [ -z "$home" ] || { gpgconf --homedir "$home" --kill all 2>/dev/null || true; rm -rf "$home"; }
  rm -f "$dir/SHA256SUMS.tmp" "$dir/SHA256SUMS.asc.tmp"
}
on_exit cleanup

rm -f "$dir/SHA256SUMS" "$dir/SHA256SUMS.asc"
(cd "$dir" && find . -maxdepth 1 -type f ! -name 'SHA256SUMS*' | sed 's|^\./||' | sort | xargs -r sha256sum --) >"$dir/SHA256SUMS.tmp"
[ -s "$dir/SHA256SUMS.tmp" ] || die "$dir holds no file to list"
mv "$dir/SHA256SUMS.tmp" "$dir/SHA256SUMS"
say "wrote $dir/SHA256SUMS ($(wc -l <"$dir/SHA256SUMS") files)"

if [ -z "${BTW_SIGNING_KEY:-}" ]; then
  say "not signed: no BTW_SIGNING_KEY (a release's CI job has it as a secret)"
  exit 0
fi
home=$(mktemp -d)
chmod 700 "$home"
printf '%s\n' "$BTW_SIGNING_KEY" | gpg --homedir "$home" --batch --quiet --import 2>/dev/null || die "BTW_SIGNING_KEY is not a secret key gpg can import"
fingerprint=$(gpg --homedir "$home" --batch --with-colons --list-secret-keys | awk -F: '$1 == "fpr" { print $10; exit }')
[ -n "$fingerprint" ] || die "BTW_SIGNING_KEY holds no secret key"
# The passphrase, if any, on standard input (--passphrase-fd 0), as loopback pinentry reads it.
printf '%s\n' "${BTW_SIGNING_KEY_PASSPHRASE:-}" |
  gpg --homedir "$home" --batch --yes --quiet --pinentry-mode loopback --passphrase-fd 0 \
    --local-user "$fingerprint" --armor --detach-sign --output "$dir/SHA256SUMS.asc.tmp" "$dir/SHA256SUMS" 2>/dev/null ||
  die "gpg could not sign with BTW_SIGNING_KEY (a wrong BTW_SIGNING_KEY_PASSPHRASE?)"
mv "$dir/SHA256SUMS.asc.tmp" "$dir/SHA256SUMS.asc"
say "signed $dir/SHA256SUMS with $fingerprint: $dir/SHA256SUMS.asc"
