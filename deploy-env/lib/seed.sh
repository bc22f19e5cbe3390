# shellcheck shell=sh disable=SC2154 # deploy-init.sh's globals (seed, token)
# The machine's NoCloud seed for deploy-init.sh (sourced there), fetched before it reports
# started: the server serves it to this boot only from its up report until then.

# download_seed DIR: user-data, meta-data and network-config (if the machine has one) of
# $seed/$token/ into DIR, readable by root only. What the server refused is left out:
# restore.sh (--seed-dir DIR) names a missing file and checks the seed's sha256.
download_seed() {
  mkdir -p "$1"
  chmod 700 "$1"
  for _name in user-data meta-data network-config; do
    wget -q -O "$1/$_name" "$seed/$token/$_name" 2>/dev/null || rm -f "$1/$_name"
  done
}
