# shellcheck shell=sh
# Sourced: what in an image root Secure Boot would refuse to load. shim and GRUB
# start only a kernel with an Authenticode signature, and that kernel, locked
# down, loads only modules with a signature appended. Whether the key is one
# the firmware trusts (a MOK must be enrolled) is not checked here: only that
# there is a signature at all.

# le_uint FILE OFFSET SIZE: the little-endian unsigned integer of SIZE bytes at
# OFFSET, read byte by byte (od's wider types use the host's byte order); fails
# past the end of FILE.
le_uint() {
  od -An -v -tu1 -j "$2" -N "$3" "$1" 2>/dev/null |
    awk -v size="$3" '{ for (i = 1; i <= NF; i++) b[n++] = $i }
      END { if (n < size) exit 1; v = 0; for (i = n - 1; i >= 0; i--) v = v * 256 + b[i]; print v }'
}

# pe_signed FILE: FILE is a PE/COFF image (an EFI stub kernel) whose certificate
# table, entry 4 of its optional header's data directories, is not empty. A
# file too short for that is not one.
pe_signed() {
  [ "$(le_uint "$1" 0 2)" = 23117 ] || return 1 # "MZ"
  _pe=$(le_uint "$1" 60 4) || return 1
  [ "$(le_uint "$1" "$_pe" 4)" = 17744 ] || return 1 # "PE\0\0"
  _optional=$((_pe + 24))
  _optional_size=$(le_uint "$1" $((_pe + 20)) 2) || return 1
  # The data directories follow the optional header's fields: 96 bytes of them in PE32, 112 in PE32+.
  case $(le_uint "$1" "$_optional" 2) in
    267) _directories=$((_optional + 96)) ;;
    523) _directories=$((_optional + 112)) ;;
    *) return 1 ;;
  esac
  _count=$(le_uint "$1" $((_directories - 4)) 4) || return 1
  [ "$_count" -gt 4 ] && [ $((_directories + 40)) -le $((_optional + _optional_size)) ] || return 1
  _certificates_size=$(le_uint "$1" $((_directories + 36)) 4) || return 1
  [ "$_certificates_size" -gt 0 ]
}

# module_signed FILE: FILE (.ko, or compressed: the signature is inside) ends
# with the marker the kernel's sign-file appends. tr keeps the tail's NULs and
# newline from being dropped by the command substitution.
module_signed() {
  case "$1" in
    *.ko.xz) _tail=$(xz -dc "$1" | tail -c 28 | tr '\000\n' '?|') ;;
    *.ko.zst) _tail=$(zstd -dcq "$1" | tail -c 28 | tr '\000\n' '?|') ;;
    *.ko.gz) _tail=$(gzip -dc "$1" | tail -c 28 | tr '\000\n' '?|') ;;
    *) _tail=$(tail -c 28 "$1" | tr '\000\n' '?|') ;;
  esac
  [ "$_tail" = "~Module signature appended~|" ]
}

# unpackaged_modules ROOT: kernel modules under ROOT no installed package ships,
# as paths in the image. A packaged module was signed by its kernel's build
# (Debian's are), and reading all of them (some 4000 .ko.xz) takes half a
# minute, so only what the profile built or copied is read (dkms output in
# updates/dkms, a module from files/).
unpackaged_modules() {
  _merged="" _module_dirs="./lib/modules ./usr/lib/modules"
  # Merged /usr: /lib is a link to usr/lib (never followed: an absolute one names the host's).
  if [ -L "$1/lib" ]; then _merged=1 _module_dirs=./usr/lib/modules; fi
  {
    cat "$1"/var/lib/dpkg/info/*.list 2>/dev/null | grep '/modules/' | sed 's/^/owned /'
    # shellcheck disable=SC2086 # one word per folder
    (cd "$1" && find $_module_dirs -type f \( -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' \) 2>/dev/null)
  } | awk -v merged="$_merged" '
    /^owned / {
      path = substr($0, 7)
      if (merged && index(path, "/lib/modules/") == 1) path = "/usr" path
      owned[path] = 1
      next
    }
    { path = substr($0, 2); if (!(path in owned)) print path }'
}

# unsigned_boot_files ROOT: one line per file Secure Boot would refuse, as a path in the image.
unsigned_boot_files() {
  for _kernel in "$1"/boot/vmlinuz-*; do
    # A link is not followed: an absolute one names the host's file.
    if [ -L "$_kernel" ] || [ ! -f "$_kernel" ]; then continue; fi
    pe_signed "$_kernel" || printf '%s\n' "${_kernel#"$1"}"
  done
  unpackaged_modules "$1" | while IFS= read -r _module; do
    module_signed "$1$_module" || printf '%s\n' "$_module"
  done
}
