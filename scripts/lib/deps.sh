# Installs what ParaFS's scripts need on a fresh Debian machine (the .NET SDK is assumed).
# Sourced by scripts/test and scripts/parafs.

parafs_apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $(id -u) -ne 0 ]]; then
    echo "parafs: needs Debian packages ${missing[*]}; install them (sudo apt-get install ${missing[*]}) and run again" >&2
    return 1
  fi
  echo "== installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

parafs_ensure_dotnet() {
  if ! command -v dotnet >/dev/null 2>&1; then
    echo "parafs: the .NET SDK 10 is required (dotnet not found on PATH)" >&2
    return 1
  fi
}

# The store tests run a throwaway PostgreSQL server (scripts/lib/postgres.sh installs it).
# The mount tests use ordinary tools on the mount: getfattr/setfattr (attr), fusermount3 (fuse3),
# setpriv (util-linux), fallocate, cmp, diff, tar, python3 (os.lseek, fcntl locks), and ss
# (iproute2: the lease test cuts the connections to the MDS with ss -K).
parafs_ensure_test_deps() {
  parafs_ensure_dotnet
  local need=()
  command -v getfattr >/dev/null 2>&1 || need+=(attr)
  command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
  command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
  command -v cmp >/dev/null 2>&1 || need+=(diffutils)
  command -v python3 >/dev/null 2>&1 || need+=(python3)
  command -v ss >/dev/null 2>&1 || need+=(iproute2)
  if [[ ${#need[@]} -gt 0 ]] && ! parafs_apt_install "${need[@]}"; then
    # The tests that use these tools will fail and say what is missing; the rest still run.
    echo "parafs: warning: could not install ${need[*]}; the mount tests that use them will fail" >&2
  fi
}
