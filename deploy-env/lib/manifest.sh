# shellcheck shell=sh disable=SC2154,SC2034 # restore.sh's globals, set and read across its parts
# The capture's manifest, its artifacts and the machine's seed (sourced by restore.sh):
# every file is fetched and matches its sha256 before anything is written.

FORMAT_VERSION=1

# read_manifest: the manifest (its URL, path or folder: $manifest) into $work_dir as $m, its
# format checked; sets source_base (where the artifacts are), root_number and esp_number.
read_manifest() {
  case "$manifest" in
    *.json) source_base=${manifest%/*} ;;
    *) source_base=${manifest%/}; manifest=$source_base/manifest.json ;;
  esac
  say "reading $manifest"
  m=$work_dir/manifest.json
  fetch "$manifest" "$m" || die "cannot read the manifest $manifest"
  if [ -n "$manifest_sha256" ] && [ "$(sha256sum "$m" | cut -d' ' -f1)" != "$manifest_sha256" ]; then
    die "the manifest $manifest does not match the sha256 its boot script gave (--manifest-sha256): nothing written"
  fi
  _version=$(jq -r '.format_version // "none"' "$m" 2>/dev/null) || die "the manifest is not JSON: $manifest"
  [ "$_version" = "$FORMAT_VERSION" ] || die "manifest format version $_version is not supported (this restore reads format $FORMAT_VERSION)"
  manifest_numbers
  for _name in $(layout_prepared); do
    jq -e --arg name "$_name" '.prepared[$name].artifact' "$m" >/dev/null 2>&1 ||
      die "the capture has no $_name, which layout $layout writes: capture the image again with --prepare $_name (cdktf deploy baremetal does for machines of this layout)"
  done
}

# manifest_numbers: root_number and esp_number ("" without an ESP) of the manifest in the work folder.
manifest_numbers() {
  m=$work_dir/manifest.json
  root_number=$(jq -r '.partitions[] | select(.role == "root") | .number' "$m" 2>/dev/null) || root_number=""
  esp_number=$(jq -r '.partitions[] | select(.role == "esp") | .number' "$m" 2>/dev/null) || esp_number=""
  [ "$esp_number" != null ] || esp_number=""
}

# artifact FILE: where the restore reads FILE: downloaded into the work folder, or in place.
artifact() { if is_url "$source_base"; then echo "$work_dir/$1"; else echo "$source_base/$1"; fi; }

# jq: the capture's preparations this layout writes (layout_prepared, as $used: " NAME ... ").
# shellcheck disable=SC2016 # jq's variables, not the shell's
USED_PREPARED='def used_prepared: [.prepared // {} | to_entries[] | select(. as $entry | $used | contains(" \($entry.key) ")) | .value];'

# prepared_for NUMBER: "TOOL ARTIFACT" of what the layout writes for partition NUMBER in place of
# the captured one (a preparation of the capture it uses), "" for the captured one.
prepared_for() {
  jq -r --argjson number "$1" --arg used " $(layout_prepared) " "$USED_PREPARED"'
    used_prepared[] | select(.number == $number) | "\(.tool) \(.artifact)"' "$m" | head -n 1
}

# download_artifact FILE: FILE over HTTP into the work folder, its progress followed.
download_artifact() {
  say "downloading $1"
  # To a file, then hashed: busybox tee moves about 1 KiB a system call, which made
  # a single pass through it slower under emulation than the two passes.
  fetch "$source_base/$1" "$work_dir/$1" &
  follow $! downloading "percent \$((_fetched + \$(stat -c %s '$work_dir/$1' 2>/dev/null || echo 0))) $_total" "$1" ||
    die "cannot download $source_base/$1"
}

# fetch_artifacts: every file of the manifest the layout writes (a prepared one in place of the
# captured partition it replaces), received from its multicast session or downloaded (local
# ones read in place), and checked.
fetch_artifacts() {
  jq -r --arg used " $(layout_prepared) " "$USED_PREPARED"'
      used_prepared as $prepared
    | ($prepared | map(.number)) as $replaced
    | .partition_table, .boot_code, (.partitions[] | select(.number as $n | $replaced | index($n) | not)), $prepared[]
    | "\(.file // .artifact) \(.sha256) \(.size // .artifact_size // 0)"' "$m" >"$work_dir/files"
  _total=$(awk '{ s += $3 } END { printf "%d", s }' "$work_dir/files")
  _fetched=0
  while read -r _file _sha _size; do
    case "$_file" in */*|.*|'') die "manifest names an unsafe file: '$_file'" ;; esac
    _port=$(multicast_port "$_file") _actual=""
    if [ -n "$_port" ] && is_url "$source_base"; then
      receive_multicast "$_file" "$_port" "$work_dir/$_file" &
      if follow $! downloading "percent \$((_fetched + \$(stat -c %s '$work_dir/$_file' 2>/dev/null || echo 0))) $_total" "$_file"; then
        _actual=$(sha256sum "$work_dir/$_file" | cut -d' ' -f1)
        if [ "$_actual" = "$_sha" ]; then say "received $_file from its multicast session"; else say "$_file from its multicast session does not match its sha256 ($_actual): fetching it over HTTP"; fi
      else
        say "no multicast session of $_file joined ($(tail -n 1 "$work_dir/multicast.log" 2>/dev/null)): fetching it over HTTP"
      fi
    fi
    if [ "$_actual" != "$_sha" ]; then
      if is_url "$source_base"; then download_artifact "$_file"; else [ -f "$source_base/$_file" ] || die "artifact missing: $source_base/$_file"; fi
      _actual=$(sha256sum "$(artifact "$_file")" | cut -d' ' -f1)
      [ "$_actual" = "$_sha" ] || die "checksum mismatch for $_file: expected $_sha, got $_actual (nothing was written to$devices)"
    fi
    _fetched=$((_fetched + _size))
    progress downloading "$(percent "$_fetched" "$_total")" "$_file"
  done <"$work_dir/files"
  # The whole download, whenever the last report was.
  progress_at=0
  progress downloading 100
  say "all $(wc -l <"$work_dir/files") artifacts match their sha256"
}

# fetch_seed: the machine's NoCloud seed ($seed: user-data, meta-data, optional network-config)
# into $work_dir/seed, readable by root only; seed_files lists what it holds.
fetch_seed() {
  seed_files=""
  [ -n "$seed" ] || return 0
  mkdir -p "$work_dir/seed"
  chmod 700 "$work_dir/seed"
  for _name in user-data meta-data network-config; do
    if fetch "${seed%/}/$_name" "$work_dir/seed/$_name" 2>/dev/null; then
      seed_files="$seed_files $_name"
    elif [ "$_name" != network-config ]; then
      die "the seed has no $_name (the server refused it, or it is missing)"
    fi
  done
  # shellcheck disable=SC2086 # seed file names, one a word
  if [ -n "$seed_sha256" ] && [ "$(cd "$work_dir/seed" && sha256sum $seed_files | sha256sum | cut -d' ' -f1)" != "$seed_sha256" ]; then
    die "the seed does not match the sha256 its boot script gave (--seed-sha256): nothing written"
  fi
}

# write_seed_and_id ROOT: the seed (on the root file system, not a cidata partition: it then
# needs no network and no extra partition, and NoCloud finds it before networking) and this
# install's ID into the restored root mounted at ROOT.
write_seed_and_id() {
  if [ -n "$seed_files" ]; then
    mkdir -p "$1/var/lib/cloud/seed/nocloud"
    for _name in $seed_files; do cp "$work_dir/seed/$_name" "$1/var/lib/cloud/seed/nocloud/$_name"; done
    chmod 600 "$1/var/lib/cloud/seed/nocloud/user-data"
    say "wrote the cloud-init seed ($seed_files ) to /var/lib/cloud/seed/nocloud"
  fi
  if [ -n "$install_id" ]; then
    mkdir -p "$1/var/lib/btw-img"
    echo "$install_id" >"$1/var/lib/btw-img/install-id"
  fi
}

# install_id_on DEVICE TYPE [MOUNT_OPTIONS]: the install ID on the root file system on DEVICE, if any.
install_id_on() {
  mkdir -p "$work_dir/check"
  mount -t "$2" -o "ro${3:+,$3}" "$1" "$work_dir/check" 2>/dev/null || return 0
  cat "$work_dir/check/var/lib/btw-img/install-id" 2>/dev/null || true
  umount "$work_dir/check"
}
