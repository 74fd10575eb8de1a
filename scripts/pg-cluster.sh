#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests, on a free loopback port.
#   source scripts/pg-cluster.sh start   -> exports QM_TEST_POSTGRES_URL and QM_PG_DATA
#   scripts/pg-cluster.sh stop           (uses QM_PG_DATA)
# Sourced, it leaves the caller's shell options as it found them (a caller without `set -e`
# that sources it must not start exiting at its first failing command, leaving the cluster).
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then qm_pg_caller_options=$(set +o); fi
set -euo pipefail
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "${1:-}" in
  start)
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    data=$(mktemp -d /tmp/qm-pg-XXXXXX)
    if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$data"; fi
    as_pg "$pg_bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    # fsync off etc.: throwaway test data, speed over durability.
    as_pg "$pg_bin/pg_ctl" -D "$data" -l "$data/server.log" -w start \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" >/dev/null
    export QM_PG_DATA="$data"
    export QM_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "PostgreSQL test cluster on 127.0.0.1:$port ($data)"
    ;;
  stop)
    if [[ -n "${QM_PG_DATA:-}" && -d "$QM_PG_DATA" ]]; then
      as_pg "$pg_bin/pg_ctl" -D "$QM_PG_DATA" -m fast -w stop >/dev/null || true
      rm -rf "$QM_PG_DATA"
    fi
    ;;
  *)
    echo "usage: source scripts/pg-cluster.sh start | scripts/pg-cluster.sh stop" >&2
    exit 2
    ;;
esac
if [[ -n "${qm_pg_caller_options:-}" ]]; then eval "$qm_pg_caller_options"; unset qm_pg_caller_options; fi
