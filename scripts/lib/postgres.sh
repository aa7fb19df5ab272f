# A throwaway PostgreSQL server for the tests: Debian's postgresql package, a cluster in a
# temporary directory, listening on loopback only, trust authentication. Sourced by scripts/test.
#
#   parafs_pg_start DIR    initdb + pg_ctl start in DIR; exports PARAFS_TEST_PG (a connection string)
#   parafs_pg_stop DIR     pg_ctl stop (immediate) and removes DIR

# The directory of initdb/pg_ctl/postgres of the newest installed major version.
parafs_pg_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $dir && -x $dir/initdb ]] && echo "$dir"
}

parafs_pg_ensure() {
  parafs_pg_bindir >/dev/null && return 0
  parafs_apt_install postgresql
  # Debian's package starts a cluster of its own on port 5432; ParaFS uses its own, so stop it.
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | while read -r version name _; do
      pg_ctlcluster "$version" "$name" stop >/dev/null 2>&1 || true
    done
  fi
  parafs_pg_bindir >/dev/null
}

# Runs a PostgreSQL program as the postgres user when we are root (initdb refuses root).
parafs_pg_as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

parafs_pg_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000))
}

parafs_pg_start() {
  local dir=$1 bin port
  bin=$(parafs_pg_bindir) || { echo "parafs: PostgreSQL is not installed (apt-get install postgresql)" >&2; return 1; }
  mkdir -p "$dir"
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$dir" --shell /usr/sbin/nologin postgres
    chown postgres: "$dir"
    chmod 700 "$dir"
  fi
  parafs_pg_as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  port=$(parafs_pg_free_port)
  # Sockets in DIR, TCP on loopback only; fsync stays on (the tests check durability).
  parafs_pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=300 -c shared_buffers=64MB" \
    start >/dev/null || { cat "$dir/server.log" >&2; return 1; }
  export PARAFS_TEST_PG="Host=127.0.0.1;Port=$port;Username=postgres;Database=postgres"
  echo "== PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data $dir)"
}

parafs_pg_stop() {
  local dir=$1 bin
  [[ -d $dir ]] || return 0
  bin=$(parafs_pg_bindir) || true
  if [[ -n $bin && -f $dir/data/postmaster.pid ]]; then
    parafs_pg_as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}
